"""ONNX Runtime for a target: session options, and the graph optimised offline so a bundle loads fast.

ONNX Runtime fuses a BERT graph (Attention, SkipLayerNorm, Gelu, ...) every time a session opens.
Saving the optimised graph once (`SessionOptions.optimized_model_filepath`) moves that work to
compile time. The saved graph uses the EXTENDED level, not ALL: ALL adds layout transforms that
ONNX Runtime documents as specific to the machine that made them, and a bundle travels.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgept.errors import ConfigError
from edgept.targets import Target

OFFLINE_LEVEL = "ORT_ENABLE_EXTENDED"


def providers_for(target: Target, available: Sequence[str]) -> list[str]:
    """The target's ORT providers that this onnxruntime has, in the target's order (CPU at least)."""
    chosen = [p for p in target.backend.ort_providers if p in available]
    if not chosen:
        raise ConfigError(
            f"none of target {target.name}'s providers ({', '.join(target.backend.ort_providers)}) is in this "
            f"onnxruntime ({', '.join(available)}); install the onnxruntime build that has them"
        )
    return chosen


def session_options(
    target: Target, threads: int | None = None, optimized_path: Path | None = None, level: str = "ORT_ENABLE_ALL"
) -> Any:
    """`ort.SessionOptions` for `target`: graph optimisation `level`, intra-op threads (argument, else
    the target's [bench] threads, 0 = onnxruntime's default), and where to save the optimised graph."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    threads = threads if threads is not None else target.bench.threads
    if threads:
        opts.intra_op_num_threads = threads
    if optimized_path is not None:
        opts.optimized_model_filepath = str(optimized_path)
    return opts


def optimize_offline(src: Path, dst: Path, target: Target) -> dict[str, Any]:
    """Write `src` optimised for `target` to `dst`; return what was done (level, providers, seconds)."""
    import onnxruntime as ort

    # The saved graph may only contain what every provider of the target can run: CPU kernels.
    providers = ["CPUExecutionProvider"]
    start = time.perf_counter()
    ort.InferenceSession(
        str(src), sess_options=session_options(target, 1, dst, OFFLINE_LEVEL), providers=providers
    )
    return {
        "level": OFFLINE_LEVEL,
        "providers": providers,
        "seconds": round(time.perf_counter() - start, 3),
    }


def load_seconds(model: Path, target: Target, repeats: int = 3) -> float:
    """Best-of-`repeats` time to open an InferenceSession on `model` the way the runtime does."""
    import onnxruntime as ort

    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        ort.InferenceSession(str(model), sess_options=session_options(target), providers=["CPUExecutionProvider"])
        best = min(best, time.perf_counter() - start)
    return round(best, 4)


__all__ = ["OFFLINE_LEVEL", "load_seconds", "optimize_offline", "providers_for", "session_options"]
