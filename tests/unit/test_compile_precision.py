"""`edgept compile` with int8/fp16: the target's preset through edgept.quantize, then the ORT or TensorRT path."""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest

from edgept.backends import trt
from edgept.compile import CompileConfig, compile_for_target, quantize_config
from edgept.errors import ConfigError
from edgept.quantize.presets import PRESETS, STANDARD_OP_MODES
from edgept.targets import resolve_target, shipped_targets
from tests.cli.test_cli import assert_one_line_error, edgept
from tests.unit.test_quantize import encoder_config, pooled_cosine, run, tiny, token_feeds  # noqa: F401  (fixtures)

pytestmark = pytest.mark.filterwarnings("ignore::edgept.runtime.engines.EngineFallbackWarning")  # no engine here


def test_every_shipped_target_maps_int8_to_a_real_preset():
    for name in shipped_targets():
        target, _ = resolve_target(name)
        assert target.quantize.preset in PRESETS, name
        mode = quantize_config(target, "int8").mode
        # TensorRT parses standard ops only; ORT targets get ORT's fused int8 kernels.
        assert (mode in STANDARD_OP_MODES) == target.uses_tensorrt, (name, mode)
        if "fp16" in target.build.precisions:
            assert quantize_config(target, "fp16").mode == "fp16"
    assert quantize_config(resolve_target("cpu-x86_64")[0], "fp32") is None
    cpu = resolve_target("cpu-x86_64")[0]
    assert quantize_config(cpu, "int8").embeddings == "int8" and quantize_config(cpu, "int8", embeddings="int4").embeddings == "int4"
    with pytest.raises(ConfigError, match="--embeddings"):
        CompileConfig(target="cpu", embeddings="int2")


def test_jetson_int8_bundle_is_qdq_onnx_with_a_strongly_typed_script(tiny, tmp_path):  # noqa: F811
    bundle, cal = tiny
    out = compile_for_target(
        bundle.path, tmp_path / "orin.edgept", CompileConfig(target="jetson-orin-nano", precision="int8"), calibration=cal
    )
    entry = out.manifest["engines"]["jetson-orin-nano"]
    assert entry["status"] == "to be built on device" and entry["plan"]["precision"] == "int8"
    script = out.file("build_engine.sh")
    assert os.access(script, os.X_OK) and "--stronglyTyped" in script.read_text()
    assert "--int8" not in script.read_text()  # precision is in the ONNX, not in builder flags
    assert script.read_text() == trt.build_script(trt.EnginePlan.from_dict(entry["plan"]), "10.3")
    proto = onnx.load(str(out.model_path))
    onnx.checker.check_model(proto, full_check=True)
    assert "QuantizeLinear" in {n.op_type for n in proto.graph.node}
    assert {n.domain for n in proto.graph.node} <= {"", "ai.onnx"}
    vs = out.passes[-1]["metrics"]["vs_fp32"]
    assert vs["mode"] == "int8-qdq" and vs["fresh_random"]["cosine"] >= vs["min_cosine"] == 0.95
    feeds = token_feeds(seed=41, n=3, seq=11)
    ref, got = run(bundle, feeds)["last_hidden_state"], run(out, feeds)["last_hidden_state"]  # ORT CPU runs it
    assert pooled_cosine(ref, got, feeds["attention_mask"]).min() > 0.999


def test_gpu_fp16_bundle_ships_the_fp32_reference_only_when_asked(tiny, tmp_path):  # noqa: F811
    bundle, cal = tiny
    lean = compile_for_target(
        bundle.path, tmp_path / "lean.edgept", CompileConfig(target="gpu-turing", precision="fp16"), calibration=cal
    )
    assert "model.fp32.onnx" not in lean.artifacts
    reference = next(p for p in lean.passes if p["pass"] == "quantize")["metrics"]["reference"]
    assert reference["sha256"] == bundle.artifacts["model.onnx"]["sha256"] and reference["file"] is None
    config = CompileConfig(target="gpu-turing", precision="fp16", keep_reference=True)
    out = compile_for_target(bundle.path, tmp_path / "t4.edgept", config, calibration=cal)
    assert "model.fp32.onnx" in out.artifacts and out.manifest["compiled"]["precision"] == "fp16"
    feeds = token_feeds(seed=42, n=2, seq=7)
    ref, got = run(bundle, feeds)["last_hidden_state"], run(out, feeds)["last_hidden_state"]
    assert np.abs(ref - got).max() < 5e-3


@pytest.mark.parametrize("target", ["cpu-x86_64", "cpu-x86_64-vnni"])
def test_cpu_int8_compile_is_optimised_offline_loads_and_matches(tiny, tmp_path, target):  # noqa: F811
    bundle, cal = tiny
    out = compile_for_target(bundle.path, tmp_path / f"{target}.edgept", CompileConfig(target=target, precision="int8"), calibration=cal)
    metrics = out.passes[-1]["metrics"]
    assert out.manifest["compiled"]["precision"] == "int8"  # auto: the target's first precision
    assert metrics["max_abs_diff"] <= 1e-4 and metrics["load_seconds"] < 1.0
    ops = {n.op_type for n in onnx.load(str(out.model_path)).graph.node}
    assert ops & {"QAttention", "MatMulInteger", "MatMulIntegerToFloat", "DynamicQuantizeMatMul"}
    feeds = token_feeds(seed=43, n=4, seq=10)
    ref, got = run(bundle, feeds)["last_hidden_state"], run(out, feeds)["last_hidden_state"]
    assert pooled_cosine(ref, got, feeds["attention_mask"]).min() > 0.99 and np.abs(ref - got).max() < 0.5


def test_precision_the_target_does_not_support_is_one_line(tiny, tmp_path):  # noqa: F811
    bundle, _ = tiny
    with pytest.raises(ConfigError) as e:
        compile_for_target(bundle.path, tmp_path / "x.edgept", CompileConfig(target="cpu-x86_64", precision="fp16"))
    assert str(e.value) == "target cpu-x86_64 does not support precision 'fp16'; allowed: int8, fp32 (or auto)"


def test_tensorrt_target_with_an_ort_preset_is_refused(tmp_path):
    src = shipped_targets()["jetson-orin-nano"].read_text().replace('"trt-int8-qdq"', '"ort-int8-static"')
    mine = tmp_path / "mine.toml"
    mine.write_text(src)
    with pytest.raises(ConfigError, match='set preset = "trt-int8-qdq"') as e:
        quantize_config(resolve_target(mine)[0], "int8")
    assert "\n" not in str(e.value)


def test_shipped_calibration_must_fit_the_vocabulary(monkeypatch, capsys, tmp_path, tiny_bert_dir):
    # The tiny model knows 18 words: most of rt-polarity is [UNK] to it, so int8-qdq asks for a set.
    code, _, err = edgept(monkeypatch, capsys, "compile", tiny_bert_dir, "--target", "jetson-orin-nano",
                          "--precision", "int8", "-o", tmp_path / "o.edgept")
    assert_one_line_error(code, err, "pass --calibration DIR")
    assert "of its tokens are unknown to the bundle's vocabulary" in err and not (tmp_path / "o.edgept").exists()


@pytest.mark.parametrize("min_speedup", [1e-3, 1e3])
def test_auto_precision_on_a_cpu_keeps_int8_only_when_measured_faster(tiny, tmp_path, min_speedup):  # noqa: F811
    bundle, cal = tiny
    config = CompileConfig(target="cpu-x86_64", min_speedup=min_speedup, measure_runs=10)
    out = compile_for_target(bundle.path, tmp_path / "cpu.edgept", config, calibration=cal)
    choice = out.passes[-1]["metrics"]["precision_choice"]
    assert set(choice["p50_ms"]) == {"int8", "fp32"} and all(v > 0 for v in choice["p50_ms"].values())
    assert choice["int8_speedup"] == pytest.approx(choice["p50_ms"]["fp32"] / choice["p50_ms"]["int8"])
    expected = "int8" if min_speedup < 1 else "fp32"  # no tiny model is 1000x either way
    assert choice["chosen"] == out.manifest["compiled"]["precision"] == out.passes[-1]["config"]["precision"] == expected
    assert set(choice["cpu"]["flags"]) >= {"avx2", "avx512_vnni"} and choice["cpu"]["arch"]
    assert ("model.fp32.onnx" in out.artifacts) is False and out.passes[-1]["pass"] == "compile"
    feeds = token_feeds(seed=5, n=2, seq=9)
    ref, got = run(bundle, feeds)["last_hidden_state"], run(out, feeds)["last_hidden_state"]
    assert np.abs(ref - got).max() < (0.1 if expected == "int8" else 1e-4)


def test_measurement_is_off_for_an_explicit_precision_or_when_asked(tiny, tmp_path):  # noqa: F811
    bundle, cal = tiny
    for name, config in {"explicit": CompileConfig(target="cpu-x86_64", precision="int8"),
                         "off": CompileConfig(target="cpu-x86_64", measure=False)}.items():
        out = compile_for_target(bundle.path, tmp_path / f"{name}.edgept", config, calibration=cal)
        metrics = out.passes[-1]["metrics"]
        assert "precision_choice" not in metrics and out.manifest["compiled"]["precision"] == "int8"
        assert metrics["cpu"]["flags"]["avx2"] in (True, False)
    with pytest.raises(ConfigError, match="min-speedup"):
        CompileConfig(target="cpu", min_speedup=0)
