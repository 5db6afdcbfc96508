"""Engine preflight: a bundle's engine is checked against this machine (faked here) and never built
silently; on a mismatch the runtime falls back to ONNX Runtime and says why. Also: compile for a CPU
target gives a bundle that loads and matches its source."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from edgept.runtime import engines
from edgept.runtime.engines import DeviceFacts, EngineFallbackWarning, mismatch, preflight

BUILT = {"status": "built", "file": "engines/jetson-orin-nano/model.plan", "tensorrt": "10.3.0.30",
         "compute_capability": "8.7"}
ORIN = DeviceFacts(tensorrt="10.3.0.26", compute_capability="8.7", gpu="Orin")


def test_matching_facts_pass_and_each_mismatch_names_both_sides():
    assert mismatch(BUILT, ORIN) is None  # same 10.3.0 release; the build number does not matter
    why = mismatch(BUILT, DeviceFacts("10.7.0.23", "8.7"))
    assert "TensorRT 10.3.0.30" in why and "TensorRT 10.7.0.23" in why
    why = mismatch(BUILT, DeviceFacts("10.3.0.30", "9.0", "NVIDIA H100"))
    assert "compute capability 8.7" in why and "9.0" in why and "H100" in why
    assert "not installed" in mismatch(BUILT, DeviceFacts(None, None))
    assert "no CUDA GPU" in mismatch(BUILT, DeviceFacts("10.3.0.30", None))
    assert "edgept build-engine" in mismatch({"status": "to be built on device"}, ORIN)


def test_preflight_refuses_a_foreign_engine_and_falls_back_to_cuda_then_cpu(tmp_path):
    manifest = {"engines": {"jetson-orin-nano": BUILT}}
    hopper = lambda: DeviceFacts("10.3.0.30", "9.0", "NVIDIA H100")  # noqa: E731
    with pytest.warns(EngineFallbackWarning, match=r"8\.7.*9\.0"):
        choice = preflight(tmp_path, manifest, probe=hopper, available=lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert choice.providers == ("CUDAExecutionProvider", "CPUExecutionProvider")
    assert "CUDAExecutionProvider" in choice.note
    with pytest.warns(EngineFallbackWarning):
        choice = preflight(tmp_path, manifest, probe=hopper, available=lambda: ["CPUExecutionProvider"])
    assert choice.providers == ("CPUExecutionProvider",)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert preflight(tmp_path, {}, probe=hopper) is None  # no engines: nothing to say


def test_probe_on_a_machine_without_tensorrt_or_gpu_reports_none():
    engines.probe_device.cache_clear()
    facts = engines.probe_device()
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        assert facts.tensorrt is None
    if facts.compute_capability is not None:
        assert facts.compute_capability.count(".") == 1


@pytest.fixture
def tiny_bundle(tmp_path, tiny_bert_dir):
    from edgept.export import export

    return export(tiny_bert_dir, tmp_path / "tiny.edgept")


def test_runtime_falls_back_with_a_message_for_a_mismatched_engine(tmp_path, tiny_bundle, monkeypatch):
    from edgept.bundle import BundleWriter
    from edgept.runtime import load

    with BundleWriter(tmp_path / "orin.edgept", base=tiny_bundle) as w:
        w.path(BUILT["file"]).write_bytes(b"not a real engine")
        w.manifest["engines"] = {"jetson-orin-nano": BUILT}
    monkeypatch.setattr(engines, "probe_device", lambda: DeviceFacts("10.7.0.23", "8.9", "NVIDIA L4"))
    with pytest.warns(EngineFallbackWarning, match=r"TensorRT 10\.3\.0\.30.*TensorRT 10\.7\.0\.23"):
        session = load(tmp_path / "orin.edgept")
    assert session.backend == "onnxruntime CPUExecutionProvider (engine fallback)"
    ids = np.array([[2, 5, 6, 3]], dtype=np.int64)
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    np.testing.assert_array_equal(session.run(feeds)["logits"], load(tiny_bundle).run(feeds)["logits"])


def test_compile_for_cpu_loads_and_matches_the_source_bundle(tmp_path, tiny_bundle):
    from edgept.compile import CompileConfig, compile_for_target
    from edgept.runtime import load

    bundle = compile_for_target(tiny_bundle.path, tmp_path / "cpu.edgept", CompileConfig(target="cpu-x86_64", precision="fp32"))
    assert bundle.passes[-1]["config"]["target_note"] is None and bundle.manifest["compiled"]["backend"] == "ort"
    metrics = bundle.passes[-1]["metrics"]
    assert metrics["max_abs_diff"] <= 1e-4 and metrics["graph_optimization"]["level"] == "ORT_ENABLE_EXTENDED"
    rng = np.random.default_rng(3)
    ids = rng.integers(1, 20, size=(3, 11), dtype=np.int64)
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    got, ref = load(bundle).run(feeds)["logits"], load(tiny_bundle).run(feeds)["logits"]
    np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)
    assert json.loads((bundle.path / "manifest.json").read_text())["passes"][-1]["pass"] == "compile"


def test_compiled_ort_bundle_is_refused_as_a_tensorrt_source(tmp_path, tiny_bundle):
    from edgept.compile import CompileConfig, compile_for_target
    from edgept.errors import ConfigError

    cpu = compile_for_target(tiny_bundle.path, tmp_path / "cpu.edgept", CompileConfig(target="cpu-x86_64", precision="fp32"))
    with pytest.raises(ConfigError, match="compiled for cpu-x86_64"):
        compile_for_target(cpu.path, tmp_path / "orin.edgept", CompileConfig(target="jetson-orin-nano", precision="fp32"))
