"""The runtime's TensorRT path: a bundle's engine built for this machine is what runs.

TensorRT and a GPU are absent here, so `tensorrt` and the CUDA runtime are stood in for by fakes
that keep their contracts: the engine is a byte string the fake deserializes into an ONNX Runtime
session of the same model (so outputs can be compared), device memory is host bytes reached only
through malloc/copy calls, and the engine takes int32 ids with a bounded optimization profile.
What the fakes check is edgept's side: engine selection, dtype casts, shape and address binding,
profile errors, buffer reuse and fallback. The real engine test is marked `tensorrt`.
"""

from __future__ import annotations

import sys
import types
import warnings

import numpy as np
import pytest

from edgept.errors import FeedError
from edgept.runtime import engines
from edgept.runtime.engines import DeviceFacts, EngineFallbackWarning

ENGINE = "engines/jetson-orin-nano/model.plan"
BUILT = {"status": "built", "file": ENGINE, "tensorrt": "10.3.0.30", "compute_capability": "8.7"}
PROFILE = ((1, 1), (2, 8), (4, 16))  # min/opt/max of every (batch, sequence) input


class FakeCuda:
    """Device memory as host bytes, reachable only through these calls (as real device memory is)."""

    stream = 7

    def __init__(self) -> None:
        self.memory: dict[int, bytearray] = {}
        self.mallocs = 0

    def malloc(self, nbytes: int) -> int:
        self.mallocs += 1
        ptr = 4096 * (len(self.memory) + 1)
        self.memory[ptr] = bytearray(nbytes)
        return ptr

    def free(self, ptr: int) -> None:
        del self.memory[ptr]

    def to_device(self, ptr: int, host: np.ndarray) -> None:
        self.memory[ptr][: host.nbytes] = host.tobytes()

    def to_host(self, host: np.ndarray, ptr: int) -> None:
        host[...] = np.frombuffer(bytes(self.memory[ptr][: host.nbytes]), host.dtype).reshape(host.shape)

    def synchronize(self) -> None:
        pass


def fake_tensorrt(onnx_path: str, cuda: FakeCuda) -> types.ModuleType:
    """A `tensorrt` module whose engines run `onnx_path` in ONNX Runtime, reading and writing `cuda`."""
    import onnxruntime as ort

    trt = types.ModuleType("tensorrt")
    trt.__version__ = "10.3.0.30"
    trt.TensorIOMode = types.SimpleNamespace(INPUT="input", OUTPUT="output")
    trt.nptype = np.dtype

    class Logger:
        WARNING = 2

        def __init__(self, severity: int) -> None:
            pass

    class Context:
        def __init__(self, engine: Engine) -> None:
            self.engine, self.shapes, self.addresses = engine, {}, {}

        def set_input_shape(self, name, shape):
            self.shapes[name] = tuple(shape)

        def set_tensor_address(self, name, ptr):
            self.addresses[name] = ptr

        def get_tensor_shape(self, name):
            return (self.shapes["input_ids"][0], 2)

        def execute_async_v3(self, stream):
            assert stream == cuda.stream
            feeds = {}
            for name in self.engine.inputs:
                n = int(np.prod(self.shapes[name])) * 4
                raw = np.frombuffer(bytes(cuda.memory[self.addresses[name]][:n]), np.int32)
                feeds[name] = raw.reshape(self.shapes[name]).astype(np.int64)
            (logits,) = self.engine.session.run(None, feeds)
            cuda.memory[self.addresses["logits"]][: logits.nbytes] = logits.astype(np.float32).tobytes()
            return True

    class Engine:
        inputs = ("input_ids", "attention_mask", "token_type_ids")

        def __init__(self) -> None:
            self.session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
            self.names = [*self.inputs, "logits"]
            self.num_io_tensors = len(self.names)

        def get_tensor_name(self, i):
            return self.names[i]

        def get_tensor_mode(self, name):
            return "input" if name in self.inputs else "output"

        def get_tensor_dtype(self, name):
            return "int32" if name in self.inputs else "float32"

        def get_tensor_profile_shape(self, name, index):
            assert index == 0
            return [list(s) for s in PROFILE]

        def create_execution_context(self):
            return Context(self)

    class Runtime:
        def __init__(self, logger) -> None:
            pass

        def deserialize_cuda_engine(self, data: bytes):
            return Engine() if data == b"engine for the tiny model" else None

    trt.Logger, trt.Runtime = Logger, Runtime
    return trt


@pytest.fixture
def engine_bundle(tmp_path, tiny_bert_dir):
    from edgept.bundle import BundleWriter
    from edgept.export import export

    fp32 = export(tiny_bert_dir, tmp_path / "tiny.edgept")
    for name, blob in (("orin", b"engine for the tiny model"), ("corrupt", b"truncated")):
        with BundleWriter(tmp_path / f"{name}.edgept", base=fp32) as w:
            w.path(ENGINE).write_bytes(blob)
            w.manifest["engines"] = {"jetson-orin-nano": BUILT}
    return tmp_path, fp32


@pytest.fixture
def orin(monkeypatch, engine_bundle):
    """This machine made an Orin with TensorRT 10.3.0 (fake module and CUDA)."""
    from edgept.runtime import tensorrt as runtime_trt

    cuda = FakeCuda()
    monkeypatch.setattr(engines, "probe_device", lambda: DeviceFacts("10.3.0.26", "8.7", "Orin"))
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(str(engine_bundle[1].model_path), cuda))
    monkeypatch.setattr(runtime_trt, "CudaRuntime", lambda: cuda)
    return cuda


def _feeds(batch: int, seq: int, seed: int = 0) -> dict[str, np.ndarray]:
    ids = np.random.default_rng(seed).integers(1, 20, size=(batch, seq), dtype=np.int64)
    return {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}


def test_a_matching_engine_runs_the_model_and_reuses_its_buffers(orin, engine_bundle):
    from edgept.runtime import load

    tmp, fp32 = engine_bundle
    with warnings.catch_warnings():
        warnings.simplefilter("error", EngineFallbackWarning)
        session = load(tmp / "orin.edgept")
    assert session.backend == f"tensorrt 10.3.0.30 ({ENGINE})" and session.providers == ["TensorRT"]
    reference = load(fp32)
    for batch, seq in ((4, 16), (2, 9), (1, 1)):
        feeds = _feeds(batch, seq, seed=seq)
        np.testing.assert_allclose(session.run(feeds)["logits"], reference.run(feeds)["logits"], atol=1e-6, rtol=0)
    assert orin.mallocs == 4  # three inputs and the output, sized by the first (largest) call
    assert session.predict("the film was good")[0].label == reference.predict("the film was good")[0].label


def test_a_shape_outside_the_engine_profile_is_one_line(orin, engine_bundle):
    from edgept.runtime import load

    session = load(engine_bundle[0] / "orin.edgept")
    with pytest.raises(FeedError, match=r"input 'input_ids' has shape \[5, 8\], outside the engine's profile \[1, 1\]..\[4, 16\]"):
        session.run(_feeds(5, 8))


def test_an_engine_that_will_not_deserialize_falls_back_to_onnx_runtime(orin, engine_bundle):
    from edgept.runtime import load

    tmp, fp32 = engine_bundle
    with pytest.warns(EngineFallbackWarning, match="cannot deserialize"):
        session = load(tmp / "corrupt.edgept")
    assert session.backend == "onnxruntime CPUExecutionProvider (engine fallback)"
    feeds = _feeds(2, 5)
    np.testing.assert_array_equal(session.run(feeds)["logits"], load(fp32).run(feeds)["logits"])


def test_bench_records_the_engine_that_ran(orin, engine_bundle):
    from edgept.bench import BenchConfig, bench

    report = bench([engine_bundle[0] / "orin.edgept"], config=BenchConfig(batches=(1,), seqs=(8,), runs=2, rounds=1),
                   memory=False, progress=False)  # fmt: skip
    assert report.variants[0]["backend"] == f"tensorrt 10.3.0.30 ({ENGINE})"
