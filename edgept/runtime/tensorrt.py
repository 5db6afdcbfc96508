"""Run a bundle's serialized TensorRT engine: numpy feeds in, numpy outputs out, no torch.

Device memory and copies go through the CUDA runtime library by ctypes (`CudaRuntime`), as
Polygraphy's own `cuda` wrapper does, so an app on a Jetson needs nothing beyond JetPack's
TensorRT Python bindings. `tensorrt` is imported when an engine is opened, never at module import.
Written against TensorRT 10's name-based I/O API (`set_input_shape`, `set_tensor_address`,
`execute_async_v3`), the API of JetPack 6 and of TensorRT 11.
"""

from __future__ import annotations

import ctypes
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgept.errors import EdgeptError, FeedError, MissingDependencyError

_H2D, _D2H = 1, 2  # cudaMemcpyKind
_INSTALL = (
    "TensorRT is not installed: on a Jetson it comes with JetPack (`sudo apt install nvidia-jetpack`); "
    "on a desktop GPU `pip install tensorrt` (its libraries download from NVIDIA's index)"
)
_CUDART = ("libcudart.so", "libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0")


def import_tensorrt() -> Any:
    """`import tensorrt`, or a MissingDependencyError saying how to get it."""
    try:
        import tensorrt
    except ImportError:
        raise MissingDependencyError(_INSTALL) from None
    return tensorrt


class CudaRuntime:
    """The few CUDA runtime calls an engine needs: malloc/free, async copies, one stream."""

    def __init__(self) -> None:
        for name in _CUDART:
            try:
                self._lib = ctypes.CDLL(name)
                break
            except OSError:
                continue
        else:
            raise EdgeptError(f"no CUDA runtime library ({', '.join(_CUDART)}) on this machine; TensorRT engines need one")
        self._lib.cudaGetErrorString.restype = ctypes.c_char_p
        stream = ctypes.c_void_p()
        self._check(self._lib.cudaStreamCreate(ctypes.byref(stream)), "cudaStreamCreate")
        self.stream = stream.value or 0

    def _check(self, status: int, call: str) -> None:
        if status != 0:
            raise EdgeptError(f"CUDA {call} failed: {self._lib.cudaGetErrorString(status).decode()}")

    def malloc(self, nbytes: int) -> int:
        ptr = ctypes.c_void_p()
        self._check(self._lib.cudaMalloc(ctypes.byref(ptr), ctypes.c_size_t(max(nbytes, 1))), f"cudaMalloc({nbytes})")
        return int(ptr.value)

    def free(self, ptr: int) -> None:
        self._check(self._lib.cudaFree(ctypes.c_void_p(ptr)), "cudaFree")

    def to_device(self, ptr: int, host: np.ndarray) -> None:
        self._copy(ptr, host.ctypes.data, host.nbytes, _H2D)

    def to_host(self, host: np.ndarray, ptr: int) -> None:
        self._copy(host.ctypes.data, ptr, host.nbytes, _D2H)

    def _copy(self, dst: int, src: int, nbytes: int, kind: int) -> None:
        status = self._lib.cudaMemcpyAsync(
            ctypes.c_void_p(dst), ctypes.c_void_p(src), ctypes.c_size_t(nbytes), kind, ctypes.c_void_p(self.stream)
        )
        self._check(status, "cudaMemcpyAsync")

    def synchronize(self) -> None:
        self._check(self._lib.cudaStreamSynchronize(ctypes.c_void_p(self.stream)), "cudaStreamSynchronize")


class TensorRTExecutor:
    """A deserialized engine with one execution context, run on numpy arrays.

    Feeds are cast to the engine's input dtypes (an engine may take int32 ids where the ONNX took
    int64) and checked against its optimization profile: a shape outside it is a one-line FeedError
    naming the profile's bounds, not a TensorRT error. Device buffers are kept and grown on demand,
    so steady-state calls allocate nothing. `label` names the engine in `backend` (default: its
    file name). `trt` and `cuda` are injectable for tests.
    """

    providers = ("TensorRT",)

    def __init__(self, engine_path: str | Path, label: str | None = None, trt: Any = None, cuda: Any = None):
        if trt is None:
            trt = import_tensorrt()
        self._trt = trt
        self.path = Path(engine_path)
        logger = trt.Logger(trt.Logger.WARNING)
        self._engine = trt.Runtime(logger).deserialize_cuda_engine(self.path.read_bytes())
        if self._engine is None:
            raise EdgeptError(
                f"TensorRT {trt.__version__} cannot deserialize {self.path}; rebuild it here with `edgept build-engine`"
            )
        self._context = self._engine.create_execution_context()
        self._cuda = cuda or CudaRuntime()
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        inputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.input_dtypes = {n: np.dtype(trt.nptype(self._engine.get_tensor_dtype(n))) for n in inputs}
        self.output_names = [n for n in names if n not in self.input_dtypes]
        self._buffers: dict[str, tuple[int, int]] = {}  # name -> (device pointer, capacity in bytes)
        self.version = str(trt.__version__)
        self.backend = f"tensorrt {self.version} ({label or self.path.name})"

    def profile(self, name: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(min, max) shape of input `name` in the engine's first optimization profile."""
        low, _, high = self._engine.get_tensor_profile_shape(name, 0)
        return tuple(low), tuple(high)

    def _buffer(self, name: str, nbytes: int) -> int:
        ptr, capacity = self._buffers.get(name, (0, 0))
        if nbytes > capacity:
            if ptr:
                self._cuda.free(ptr)
            ptr, capacity = self._cuda.malloc(nbytes), nbytes
            self._buffers[name] = (ptr, capacity)
            self._context.set_tensor_address(name, ptr)
        return ptr

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Outputs in `output_names` order for `feeds` (every engine input, by name)."""
        for name, dtype in self.input_dtypes.items():
            array = np.ascontiguousarray(feeds[name], dtype=dtype)
            low, high = self.profile(name)
            if len(array.shape) != len(low) or any(not lo <= d <= hi for d, lo, hi in zip(array.shape, low, high, strict=True)):
                raise FeedError(
                    f"input {name!r} has shape {list(array.shape)}, outside the engine's profile {list(low)}..{list(high)}; "
                    "feed a shape inside it, or rebuild the engine with wider [shapes] in the target"
                )
            self._context.set_input_shape(name, array.shape)
            self._cuda.to_device(self._buffer(name, array.nbytes), array)
        outputs = []
        for name in self.output_names:
            dtype = np.dtype(self._trt.nptype(self._engine.get_tensor_dtype(name)))
            host = np.empty(tuple(self._context.get_tensor_shape(name)), dtype=dtype)
            self._buffer(name, host.nbytes)
            outputs.append(host)
        if not self._context.execute_async_v3(self._cuda.stream):
            raise EdgeptError(f"TensorRT could not run {self.path} (see its log above)")
        for name, host in zip(self.output_names, outputs, strict=True):
            self._cuda.to_host(host, self._buffers[name][0])
        self._cuda.synchronize()
        return outputs

    def close(self) -> None:
        for ptr, _ in self._buffers.values():
            self._cuda.free(ptr)
        self._buffers.clear()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown may have unloaded the CUDA library already
            pass
