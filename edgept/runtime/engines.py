"""Engine preflight: use a bundle's TensorRT engine only if it was built for this machine, else fall back.

A TensorRT engine runs only with the TensorRT version and on the GPU (compute capability) it was
built for. Loading a mismatched one fails deep inside TensorRT, or worse, an app would rebuild it
silently for minutes on first inference. So before opening a session, `preflight` compares the
manifest's `engines` entries with this machine's facts: TensorRT version from package metadata and
compute capability from the CUDA driver via ctypes, both without importing tensorrt, torch or
initialising much (well under a second), and otherwise falls back to ONNX Runtime with a warning
naming both versions. It never builds an engine: that is `edgept build-engine`, run on purpose.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.metadata
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# pip wheels and JetPack's python3-libnvinfer register TensorRT's version under one of these names.
_TENSORRT_DISTS = ("tensorrt", "tensorrt-cu13", "tensorrt-cu12", "tensorrt-cu11", "tensorrt_lean")
_CU_ATTR_CC_MAJOR, _CU_ATTR_CC_MINOR = 75, 76  # CUdevice_attribute values in cuda.h


class EngineFallbackWarning(RuntimeWarning):
    """A bundle's engine cannot run here; the session runs ONNX Runtime instead."""


@dataclass(frozen=True)
class DeviceFacts:
    """What decides whether an engine runs here. None = not present."""

    tensorrt: str | None
    compute_capability: str | None
    gpu: str | None = None


def tensorrt_version() -> str | None:
    """The installed TensorRT's version from package metadata (no import), or None."""
    for dist in _TENSORRT_DISTS:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def cuda_device() -> tuple[str | None, str | None]:
    """(compute capability "8.7", GPU name) of CUDA device 0 from the driver library, or (None, None)."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None, None
    dev, major, minor = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
    name = ctypes.create_string_buffer(256)
    if (
        cuda.cuInit(0) != 0
        or cuda.cuDeviceGet(ctypes.byref(dev), 0) != 0
        or cuda.cuDeviceGetAttribute(ctypes.byref(major), _CU_ATTR_CC_MAJOR, dev) != 0
        or cuda.cuDeviceGetAttribute(ctypes.byref(minor), _CU_ATTR_CC_MINOR, dev) != 0
    ):
        return None, None
    gpu = name.value.decode() if cuda.cuDeviceGetName(name, 256, dev) == 0 else None
    return f"{major.value}.{minor.value}", gpu


@functools.cache
def probe_device() -> DeviceFacts:
    """This machine's TensorRT version and GPU (cached: the answer does not change within a process)."""
    cc, gpu = cuda_device()
    return DeviceFacts(tensorrt=tensorrt_version(), compute_capability=cc, gpu=gpu)


def _release(version: str) -> tuple[str, ...]:
    # An engine needs the same TensorRT release (major.minor.patch); the build number does not matter.
    return tuple(version.split(".")[:3])


def mismatch(entry: Mapping[str, Any], facts: DeviceFacts) -> str | None:
    """Why the engine described by a manifest `engines` entry cannot run here; None when it can."""
    if entry.get("status") != "built":
        return f"its engine is {entry.get('status', 'not built')!r}: run `edgept build-engine` on the device"
    built_trt, built_cc = entry.get("tensorrt"), entry.get("compute_capability")
    if facts.tensorrt is None:
        return f"the engine needs TensorRT {built_trt}, which is not installed here"
    if _release(str(built_trt)) != _release(facts.tensorrt):
        return f"the engine was built with TensorRT {built_trt} but this machine has TensorRT {facts.tensorrt}"
    if facts.compute_capability is None:
        return f"the engine needs a GPU of compute capability {built_cc}, and no CUDA GPU was found"
    if str(built_cc) != facts.compute_capability:
        return (
            f"the engine was built for compute capability {built_cc} but this GPU"
            f"{f' ({facts.gpu})' if facts.gpu else ''} is {facts.compute_capability}"
        )
    return None


@dataclass(frozen=True)
class EngineChoice:
    """What a session runs: `backend` "tensorrt" with the bundle's `engine` file, or "onnxruntime"
    with `providers` instead of the bundle's engines; `note` says why."""

    backend: str
    providers: tuple[str, ...]
    note: str
    engine: str | None = None


def fallback_providers(available: Sequence[str]) -> tuple[str, ...]:
    """CUDA (then CPU) when this onnxruntime has the CUDA provider, else CPU alone."""
    if "CUDAExecutionProvider" in available:
        return ("CUDAExecutionProvider", "CPUExecutionProvider")
    return ("CPUExecutionProvider",)


def preflight(
    path: Path,
    manifest: Mapping[str, Any],
    probe: Callable[[], DeviceFacts] | None = None,
    available: Callable[[], Sequence[str]] | None = None,
) -> EngineChoice | None:
    """Check the manifest's `engines` against this machine; None when the bundle has none.

    The first engine built for this TensorRT release and GPU is chosen. Otherwise the mismatch is
    a warning (EngineFallbackWarning) naming both versions, and the choice falls back to ONNX
    Runtime. `probe` and `available` (ORT providers) are injectable for tests.
    """
    engines = manifest.get("engines") or {}
    if not engines:
        return None
    facts = (probe or probe_device)()
    reasons = []
    for target, entry in sorted(engines.items()):
        why = mismatch(entry, facts)
        if why is None:
            note = f"{path}: running the TensorRT {facts.tensorrt} engine {entry['file']} ({target}, {facts.gpu or 'GPU'})"
            return EngineChoice("tensorrt", (), note, engine=str(entry["file"]))
        reasons.append(f"{target}: {why}")
    return fall_back(path, "; ".join(reasons), available)


def fall_back(path: Path, why: str, available: Callable[[], Sequence[str]] | None = None) -> EngineChoice:
    """ONNX Runtime instead of the bundle's engines, with an EngineFallbackWarning saying `why`."""
    if available is None:
        from edgept.runtime.ort import available_providers as available
    providers = fallback_providers(available())
    note = f"{path}: not using a TensorRT engine ({why}); running ONNX Runtime with {providers[0]} instead"
    warnings.warn(note, EngineFallbackWarning, stacklevel=3)
    return EngineChoice("onnxruntime", providers, note)


__all__ = [
    "DeviceFacts",
    "EngineChoice",
    "EngineFallbackWarning",
    "cuda_device",
    "fall_back",
    "fallback_providers",
    "mismatch",
    "preflight",
    "probe_device",
    "tensorrt_version",
]
