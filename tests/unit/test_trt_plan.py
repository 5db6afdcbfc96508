"""TensorRT planning without TensorRT: profiles, the exact trtexec script, and the Jetson bundle compile makes."""

from __future__ import annotations

import json
import os

import pytest

from edgept.backends import trt
from edgept.bundle import IOSpec
from edgept.errors import ConfigError, MissingDependencyError
from edgept.targets import resolve_target

TEXT = [IOSpec(n, "int64", ("batch", "sequence")) for n in ("input_ids", "attention_mask", "token_type_ids")]
IMAGE = [IOSpec("pixel_values", "float32", ("batch", 3, "height", "width"))]


def _has_tensorrt() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return True


def test_text_plan_script_is_exact():
    target, _ = resolve_target("jetson-orin-nano")
    plan = trt.plan_engine(TEXT, {"max_sequence": 512}, target, "int8")
    script = trt.build_script(plan, "10.3")
    assert script.startswith("#!/usr/bin/env bash\n# Build the TensorRT engine for target jetson-orin-nano (int8)")
    assert script.split("set -euo pipefail\n", 1)[1] == (
        'cd "$(dirname "$0")"\n'
        "mkdir -p engines/jetson-orin-nano\n"
        "trtexec \\\n"
        "    --onnx=model.onnx \\\n"
        "    --saveEngine=engines/jetson-orin-nano/model.plan \\\n"
        "    --minShapes=input_ids:1x1,attention_mask:1x1,token_type_ids:1x1 \\\n"
        "    --optShapes=input_ids:1x128,attention_mask:1x128,token_type_ids:1x128 \\\n"
        "    --maxShapes=input_ids:8x256,attention_mask:8x256,token_type_ids:8x256 \\\n"
        "    --stronglyTyped \\\n"
        "    --memPoolSize=workspace:1024 \\\n"
        "    --timingCacheFile=engines/jetson-orin-nano/timing.cache\n"
    )


def test_image_plan_on_old_tensorrt_uses_precision_flags():
    target, _ = resolve_target("jetson-xavier-nx")
    plan = trt.plan_engine(IMAGE, {"image_size": [224, 224], "patch_size": 16}, target, "int8")
    assert trt.trtexec_args(plan) == [
        "trtexec",
        "--onnx=model.onnx",
        "--saveEngine=engines/jetson-xavier-nx/model.plan",
        "--minShapes=pixel_values:1x3x224x224",
        "--optShapes=pixel_values:1x3x224x224",
        "--maxShapes=pixel_values:8x3x224x224",
        "--int8",
        "--fp16",
        "--memPoolSize=workspace:1024",
        "--timingCacheFile=engines/jetson-xavier-nx/timing.cache",
    ]


def test_profiles_cap_sequence_and_snap_images_to_patches():
    target, _ = resolve_target("gpu-hopper")  # image [224, 224, 384], sequence [1, 128, 512]
    text = trt.input_profiles(TEXT[:1], {"max_sequence": 64}, target)[0]
    assert (text.min, text.opt, text.max) == ((1, 1), (8, 64), (128, 64))
    img = trt.input_profiles(IMAGE, {"patch_size": 14}, target)[0]
    assert img.max == (128, 3, 378, 378) and img.min == (1, 3, 224, 224)  # 384 -> 27 patches of 14
    with pytest.raises(ConfigError, match="'tokens'"):
        trt.input_profiles([IOSpec("x", "int64", ("batch", "tokens"))], {}, target)


def test_sequence_profile_from_data_lengths():
    assert trt.sequence_profile([12, 30, 31, 33, 200], max_sequence=128) == (12, 31, 128)
    assert trt.sequence_profile([5]) == (5, 5, 5)
    with pytest.raises(ConfigError):
        trt.sequence_profile([])


def test_plan_round_trips_and_refuses_cpu_targets_and_bad_precisions():
    target, _ = resolve_target("gpu-ada")
    plan = trt.plan_engine(TEXT, {}, target, "fp16", sequence=(4, 48, 96))
    again = trt.EnginePlan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert again == plan and again.profiles[0].opt == (8, 48)
    with pytest.raises(ConfigError, match="ONNX Runtime"):
        trt.plan_engine(TEXT, {}, resolve_target("cpu-x86_64")[0], "fp32")
    xavier_like = resolve_target("cpu-arm64")[0]
    with pytest.raises(ConfigError, match="'fp16'"):
        xavier_like.check_precision("fp16")


@pytest.mark.skipif(_has_tensorrt(), reason="checks the message shown where TensorRT is absent")
def test_without_tensorrt_building_says_how_to_get_it():
    with pytest.raises(MissingDependencyError, match="JetPack"):
        trt.import_tensorrt()


@pytest.fixture
def tiny_bundle(tmp_path, tiny_bert_dir):
    from edgept.export import export

    return export(tiny_bert_dir, tmp_path / "tiny.edgept")


def test_compile_for_jetson_on_cpu_leaves_the_engine_to_the_device(tmp_path, tiny_bundle):
    import onnx

    from edgept.compile import CompileConfig, compile_for_target

    bundle = compile_for_target(tiny_bundle.path, tmp_path / "orin.edgept", CompileConfig(target="jetson", precision="fp32"))
    assert bundle.passes[-1]["config"]["target_note"] == "target 'jetson' resolved to jetson-orin-nano (the jetson family's default)"
    entry = bundle.manifest["engines"]["jetson-orin-nano"]
    assert entry["status"] == "to be built on device" and entry["tensorrt_range"] == "10.3"
    script = bundle.file("build_engine.sh")
    assert os.access(script, os.X_OK)
    plan = trt.EnginePlan.from_dict(entry["plan"])
    assert script.read_text() == trt.build_script(plan, "10.3")
    assert plan.profiles[0].max == (8, 64)  # the tiny model's position table caps the target's 256
    onnx.checker.check_model(str(bundle.model_path))
    # fp32: the ONNX is the exported graph itself, so parity with the fp32 bundle is exact.
    assert bundle.artifacts["model.onnx"] == tiny_bundle.artifacts["model.onnx"]
    assert bundle.passes[-1]["pass"] == "compile" and bundle.manifest["compiled"]["precision"] == "fp32"


@pytest.mark.tensorrt
@pytest.mark.skipif(not _has_tensorrt(), reason="needs the tensorrt package and a GPU")
def test_build_engine_on_this_gpu_records_version_and_compute_capability(tmp_path, tiny_bundle):
    from edgept.compile import CompileConfig, build_engines, compile_for_target
    from edgept.runtime.engines import probe_device

    compiled = compile_for_target(tiny_bundle.path, tmp_path / "gpu.edgept", CompileConfig(target="gpu-ampere", precision="fp32"))
    built = build_engines(compiled.path)
    entry = built.manifest["engines"]["gpu-ampere"]
    facts = probe_device()
    assert entry["status"] == "built"
    assert (entry["tensorrt"], entry["compute_capability"]) == (facts.tensorrt, facts.compute_capability)
    assert built.file(entry["file"]).stat().st_size > 0
    # The runtime and bench use the engine just built, and it agrees with ONNX Runtime fp32.
    import numpy as np

    from edgept.runtime import load

    session = load(built.path)
    assert session.backend.startswith(f"tensorrt {facts.tensorrt} (")
    ids = np.random.default_rng(0).integers(1, 20, size=(2, 12), dtype=np.int64)
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    np.testing.assert_allclose(session.run(feeds)["logits"], load(tiny_bundle).run(feeds)["logits"], atol=1e-3, rtol=0)
