"""The compile stage's ONNX Runtime backend: the graph optimised offline so a bundle loads fast,
checked against its source.

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

import numpy as np

from edgept.bundle import Bundle, BundleWriter
from edgept.errors import ConfigError, ParityError
from edgept.parity import graph_parity
from edgept.runtime import ort
from edgept.runtime.feeds import is_image, make_feeds
from edgept.targets import Target

OFFLINE_LEVEL = "extended"


def providers_for(target: Target, available: Sequence[str]) -> list[str]:
    """The target's ORT providers that this onnxruntime has, in the target's order (CPU at least)."""
    chosen = [p for p in target.backend.ort_providers if p in available]
    if not chosen:
        raise ConfigError(
            f"none of target {target.name}'s providers ({', '.join(target.backend.ort_providers)}) is in this "
            f"onnxruntime ({', '.join(available)}); install the onnxruntime build that has them"
        )
    return chosen


def optimize_offline(src: Path, dst: Path, target: Target) -> dict[str, Any]:
    """Write `src` optimised for `target` to `dst`; return what was done (level, providers, seconds)."""
    # The saved graph may only contain what every provider of the target can run: CPU kernels.
    start = time.perf_counter()
    ort.open_session(src, threads=1, level=OFFLINE_LEVEL, save_to=dst)
    return {
        "level": ort.LEVELS[OFFLINE_LEVEL],
        "providers": list(ort.CPU),
        "seconds": round(time.perf_counter() - start, 3),
    }


def load_seconds(model: Path, target: Target, repeats: int = 3) -> float:
    """Best-of-`repeats` time to open an InferenceSession on `model` the way the runtime does."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        ort.open_session(model, threads=target.bench.threads)
        best = min(best, time.perf_counter() - start)
    return round(best, 4)


def parity(reference: Path, candidate: Path, bundle: Bundle, seed: int) -> float:
    """Max |candidate - reference| over every output on seeded random inputs (padding and token
    types varied) of a shape unlike any trace: batch 2, sequence 37 or the model's maximum."""
    seq = None if is_image(bundle.inputs) else min(37, int(bundle.limits.get("max_sequence") or 37))
    feeds = make_feeds(bundle.inputs, bundle.limits, 2, seq, np.random.default_rng(seed + 7), varied=True)
    return graph_parity(reference, candidate, feeds)


def build(
    bundle: Bundle, w: BundleWriter, target: Target, precision: str, *, tolerance: float, seed: int = 0, **_: Any,
) -> dict[str, Any]:
    """The graph of `bundle` optimised offline into `w`, refused when it drifts past `tolerance`."""
    done = optimize_offline(bundle.model_path, w.path("model.onnx"), target)
    diff = parity(bundle.model_path, w.dir / "model.onnx", bundle, seed)
    if not diff <= tolerance:  # `not <=` also catches NaN
        raise ParityError(
            f"the offline-optimised graph differs from {bundle.path} by {diff:.3g} (tolerance {tolerance:g}); "
            "compile with a looser --tolerance only if you accept that"
        )
    w.manifest["compiled"] = {
        "target": target.name,
        "backend": "ort",
        "precision": precision,
        "providers": providers_for(target, ort.available_providers()),
    }
    return {
        "max_abs_diff": diff,
        "tolerance": tolerance,
        "graph_optimization": done,
        "load_seconds": load_seconds(w.dir / "model.onnx", target),
    }


__all__ = ["OFFLINE_LEVEL", "build", "load_seconds", "optimize_offline", "parity", "providers_for"]
