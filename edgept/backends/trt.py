"""TensorRT engines: one `EnginePlan` drives both the Python-API build and the `build_engine.sh` trtexec script.

Engines are not portable across GPUs or TensorRT versions, so a bundle carries the plan and the
explicit-precision ONNX, and the engine is built on the device itself (`edgept build-engine`).
Precision comes from the ONNX (Q/DQ for int8, casts for fp16): a strongly typed network on
TensorRT >= 10 (TensorRT 11 removed the FP16/INT8 builder flags and the calibrator), builder flags
only for older TensorRT (Jetson Xavier's 8.5). `tensorrt` is imported only inside the functions
that build, so planning and the script are plain Python, tested on machines without a GPU.
"""

from __future__ import annotations

import logging
import shlex
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgept.bundle import Bundle, BundleWriter, IOSpec
from edgept.errors import ConfigError, EdgeptError
from edgept.fileio import atomic_write_bytes, atomic_write_text
from edgept.runtime.tensorrt import import_tensorrt
from edgept.targets import Target

log = logging.getLogger(__name__)

ENGINE_FILE = "model.plan"
TIMING_CACHE_FILE = "timing.cache"
SCRIPT = "build_engine.sh"
TO_BUILD = "to be built on device"
@dataclass(frozen=True, kw_only=True)
class InputProfile:
    """min/opt/max shapes of one engine input (an optimization profile entry)."""

    name: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]


@dataclass(frozen=True, kw_only=True)
class EnginePlan:
    """Everything needed to build one engine; paths are relative to the bundle directory."""

    target: str
    onnx: str
    engine: str
    precision: str
    strongly_typed: bool
    workspace_mb: int
    timing_cache: str | None
    profiles: tuple[InputProfile, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form stored in the manifest's `engines.<target>.plan`."""
        d = asdict(self)
        d["profiles"] = [{k: list(v) if isinstance(v, tuple) else v for k, v in p.items()} for p in d["profiles"]]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EnginePlan:
        """Inverse of `to_dict`."""
        profiles = tuple(
            InputProfile(name=p["name"], min=tuple(p["min"]), opt=tuple(p["opt"]), max=tuple(p["max"]))
            for p in d["profiles"]
        )
        return cls(**{**d, "profiles": profiles})


def sequence_profile(lengths: Iterable[int], max_sequence: int | None = None) -> tuple[int, int, int]:
    """(min, opt, max) sequence lengths from a data set's token counts: opt is the median, max the longest.

    TensorRT tunes kernels for `opt`, so the typical length, not the worst case, should be fast.
    """
    arr = np.asarray(list(lengths), dtype=np.int64)
    if arr.size == 0 or arr.min() < 1:
        raise ConfigError("sequence lengths must be a non-empty list of positive token counts")
    top = int(arr.max()) if max_sequence is None else min(int(arr.max()), max_sequence)
    lo = min(int(arr.min()), top)
    return lo, min(max(int(np.ceil(np.median(arr))), lo), top), top


def _snap(side: int, multiple: int) -> int:
    return max(multiple, side // multiple * multiple)


def input_profiles(
    inputs: Sequence[IOSpec],
    limits: Mapping[str, Any],
    target: Target,
    sequence: tuple[int, int, int] | None = None,
) -> tuple[InputProfile, ...]:
    """Profiles for every input: symbolic dims from the target's [shapes] (or `sequence`), fixed dims as is.

    Text sequence lengths are capped at the model's position table (`limits.max_sequence`); image sides
    are rounded down to a multiple of the patch size, since ViT needs whole patches.
    """
    seq = sequence or target.shapes.sequence
    if limits.get("max_sequence"):
        seq = tuple(min(s, int(limits["max_sequence"])) for s in seq)
    patch = int(limits.get("patch_size") or 1)
    by_name = {
        "batch": target.shapes.batch,
        "sequence": seq,
        "height": tuple(_snap(s, patch) for s in target.shapes.image),
        "width": tuple(_snap(s, patch) for s in target.shapes.image),
    }
    profiles = []
    for spec in inputs:
        corners: list[list[int]] = [[], [], []]
        for dim in spec.dims:
            if isinstance(dim, int):
                values = (dim, dim, dim)
            elif dim in by_name:
                values = by_name[dim]
            else:
                raise ConfigError(
                    f"input {spec.name!r} has symbolic dim {dim!r}; a TensorRT profile knows "
                    f"{', '.join(by_name)}: re-export the bundle with edgept"
                )
            for corner, v in zip(corners, values, strict=True):
                corner.append(int(v))
        profiles.append(InputProfile(name=spec.name, min=tuple(corners[0]), opt=tuple(corners[1]), max=tuple(corners[2])))
    return tuple(profiles)


def plan_engine(
    inputs: Sequence[IOSpec],
    limits: Mapping[str, Any],
    target: Target,
    precision: str,
    *,
    onnx: str = "model.onnx",
    sequence: tuple[int, int, int] | None = None,
) -> EnginePlan:
    """The build plan for `target` at `precision` (which the target must allow)."""
    if not target.uses_tensorrt:
        raise ConfigError(f"target {target.name} runs ONNX Runtime, not TensorRT; no engine to plan")
    target.check_precision(precision)
    folder = f"engines/{target.name}"
    return EnginePlan(
        target=target.name,
        onnx=onnx,
        engine=f"{folder}/{ENGINE_FILE}",
        precision=precision,
        strongly_typed=target.build.strongly_typed,
        workspace_mb=target.build.workspace_mb,
        timing_cache=f"{folder}/{TIMING_CACHE_FILE}" if target.build.timing_cache else None,
        profiles=input_profiles(inputs, limits, target, sequence),
    )


def _shapes(plan: EnginePlan, corner: str) -> str:
    return ",".join(f"{p.name}:{'x'.join(map(str, getattr(p, corner)))}" for p in plan.profiles)


def precision_flags(plan: EnginePlan) -> list[str]:
    """trtexec precision flags: none for a strongly typed network (the ONNX says it all)."""
    if plan.strongly_typed:
        return ["--stronglyTyped"]
    # Older TensorRT reads Q/DQ only with --int8, and lets the remaining layers run fp16 with --fp16.
    return {"int8": ["--int8", "--fp16"], "fp16": ["--fp16"], "fp32": []}[plan.precision]


def trtexec_args(plan: EnginePlan) -> list[str]:
    """The trtexec argument list equivalent to `build_engine(plan)`."""
    args = [
        "trtexec",
        f"--onnx={plan.onnx}",
        f"--saveEngine={plan.engine}",
        f"--minShapes={_shapes(plan, 'min')}",
        f"--optShapes={_shapes(plan, 'opt')}",
        f"--maxShapes={_shapes(plan, 'max')}",
        *precision_flags(plan),
        f"--memPoolSize=workspace:{plan.workspace_mb}",  # MiB
    ]
    if plan.timing_cache:
        args.append(f"--timingCacheFile={plan.timing_cache}")
    return args


def build_script(plan: EnginePlan, tensorrt_range: str) -> str:
    """`build_engine.sh`: run on the device, from anywhere; writes the engine inside the bundle."""
    args = trtexec_args(plan)
    body = " \\\n    ".join(shlex.quote(a) for a in args)
    return (
        "#!/usr/bin/env bash\n"
        f"# Build the TensorRT engine for target {plan.target} ({plan.precision}) on the device itself:\n"
        "# engines are not portable across GPUs or TensorRT versions. Needs trtexec from TensorRT "
        f"{tensorrt_range}\n"
        "# (JetPack: /usr/src/tensorrt/bin/trtexec). `edgept build-engine BUNDLE` does the same through the\n"
        "# Python API and also records the engine in manifest.json, which the runtime's preflight reads.\n"
        "set -euo pipefail\n"
        'cd "$(dirname "$0")"\n'
        f"mkdir -p {shlex.quote(str(Path(plan.engine).parent))}\n"
        f"{body}\n"
    )


def tensorrt_range(target: Target) -> str:
    """The target's TensorRT versions as the manifest and the build script state them."""
    low, high = target.backend.tensorrt_min, target.backend.tensorrt_max
    return f"{low}" if low == high else f">= {low}" + (f", <= {high}" if high else "")


def build(
    bundle: Bundle, w: BundleWriter, target: Target, precision: str, *,
    sequence: tuple[int, int, int] | None = None, **_: Any,
) -> dict[str, Any]:
    """The compile stage's TensorRT backend: the engine plan in the manifest and `build_engine.sh`
    beside the explicit-precision ONNX; the engine itself is built on the device (`build_engine`)."""
    plan = plan_engine(bundle.inputs, bundle.limits, target, precision, sequence=sequence)
    script = w.path(SCRIPT)
    atomic_write_text(script, build_script(plan, tensorrt_range(target)))
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    engines = dict(w.manifest.get("engines") or {})
    engines[target.name] = {
        "status": TO_BUILD,
        "file": plan.engine,
        "script": SCRIPT,
        "tensorrt_range": tensorrt_range(target),
        "compute_capability": target.device.compute_capability,
        "plan": plan.to_dict(),
    }
    w.manifest["engines"] = engines
    w.manifest["compiled"] = {"target": target.name, "backend": "trt", "precision": precision}
    return {"engine": TO_BUILD, "profiles": [p["name"] for p in plan.to_dict()["profiles"]]}


def _logger(trt: Any) -> Any:
    """A TensorRT logger that forwards to `logging` and keeps the errors for the failure message."""

    class Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity: Any, msg: str) -> None:
            if int(severity) <= int(trt.ILogger.Severity.ERROR):  # INTERNAL_ERROR = 0, ERROR = 1
                self.errors.append(msg)
                log.error("TensorRT: %s", msg)
            elif int(severity) <= int(trt.ILogger.Severity.WARNING):
                log.warning("TensorRT: %s", msg)

    return Logger()


def _progress_monitor(trt: Any) -> Any:
    """Logs each top-level builder phase (IProgressMonitor, TensorRT >= 10)."""

    class Progress(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            if parent_phase is None:
                log.info("TensorRT: %s (%d steps)", phase_name, num_steps)

        def step_complete(self, phase_name: str, step: int) -> bool:
            return True  # False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            log.debug("TensorRT: %s done", phase_name)

    return Progress()


def build_engine(plan: EnginePlan, bundle_dir: Path, out_dir: Path) -> dict[str, Any]:
    """Build `plan` with the TensorRT Python API: read the ONNX from `bundle_dir`, write the engine
    (and timing cache) under `out_dir`. Returns the facts the manifest records about the engine.

    Not run in this workplace (TensorRT cannot be installed here): see docs/targets.md.
    """
    trt = import_tensorrt()
    major = int(trt.__version__.split(".")[0])
    logger = _logger(trt)
    builder = trt.Builder(logger)
    # Before TensorRT 10 the ONNX parser needs an explicit-batch network; from 10 on it is the only kind.
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH) if major < 10 else 0
    if plan.strongly_typed:
        if not hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
            raise ConfigError(
                f"TensorRT {trt.__version__} has no strongly typed networks but the plan asks for one; "
                "use a target with strongly_typed = false for this device"
            )
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    onnx_path = bundle_dir / plan.onnx
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EdgeptError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, plan.workspace_mb << 20)
    if not plan.strongly_typed:  # builder flags exist only before TensorRT 11
        for flag in precision_flags(plan):
            config.set_flag(getattr(trt.BuilderFlag, flag.removeprefix("--").upper()))
    if major >= 10:
        config.progress_monitor = _progress_monitor(trt)
    profile = builder.create_optimization_profile()
    for p in plan.profiles:
        profile.set_shape(p.name, p.min, p.opt, p.max)
    config.add_optimization_profile(profile)
    cache_path = out_dir / plan.timing_cache if plan.timing_cache else None
    if cache_path is not None:
        old = (bundle_dir / plan.timing_cache).read_bytes() if (bundle_dir / plan.timing_cache).is_file() else b""
        config.set_timing_cache(config.create_timing_cache(old), False)
    log.info("TensorRT %s: building %s engine for %s", trt.__version__, plan.precision, plan.target)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        errors = " | ".join(logger.errors[-3:]) or "no error logged"
        oom = any("memory" in e.lower() for e in logger.errors)
        raise EdgeptError(
            f"TensorRT {'ran out of memory building' if oom else 'could not build'} the engine for "
            f"{plan.target} ({errors}); lower [build] workspace_mb ({plan.workspace_mb}) or the [shapes] "
            "max batch/sequence in a copy of the target TOML and pass its path as --target"
        )
    engine_path = out_dir / plan.engine
    # out_dir may hold hard links to the previous bundle's files: replace them, never write through.
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(engine_path, bytes(serialized))
    if cache_path is not None:
        atomic_write_bytes(cache_path, bytes(config.get_timing_cache().serialize()))
    return {"tensorrt": trt.__version__, "bytes": engine_path.stat().st_size}


__all__ = [
    "ENGINE_FILE",
    "SCRIPT",
    "TO_BUILD",
    "EnginePlan",
    "InputProfile",
    "build",
    "build_engine",
    "build_script",
    "input_profiles",
    "plan_engine",
    "sequence_profile",
    "tensorrt_range",
    "trtexec_args",
]
