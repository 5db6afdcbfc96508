"""The timing core: warm up, then interleaved rounds of timed calls, then order statistics.

Variants are measured side by side in one process, each round running every variant in a rotated
order, so that slow drift on a noisy machine (thermal throttling, a neighbour's job) lands on all
variants alike instead of on whichever ran last.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgept.bench.config import BenchConfig
from edgept.errors import ConfigError
from edgept.runtime.feeds import make_feeds

Progress = Callable[[int, int, str], None]
"""progress(done, total, label): called after each warm-up and each timed block."""


def resolve_threads(threads: int | None) -> int:
    """The thread count to use and record: `threads`, or the CPUs this process is allowed to run on."""
    if threads is not None:
        return threads
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class Shape:
    """One input shape; `seq` is None for image models."""

    batch: int
    seq: int | None = None


@dataclass(frozen=True, kw_only=True)
class Variant:
    """One thing to time.

    `factory(feeds)` does any per-shape preparation (selecting inputs, converting to tensors) and returns
    the zero-argument callable that is timed. `inputs` and `limits` describe what it consumes so the
    harness can synthesise feeds; a variant that takes whatever it is given (torch eager) leaves them empty.
    """

    name: str
    factory: Callable[[Mapping[str, np.ndarray]], Callable[[], object]]
    inputs: tuple[Any, ...] = ()
    limits: Mapping[str, Any] = field(default_factory=dict)
    backend: str = ""
    precision: str = ""
    file_bytes: int | None = None
    spec: Any = None  # the VariantSpec it was built from, so a memory probe can rebuild it elsewhere


@dataclass(frozen=True, kw_only=True)
class Result:
    """Statistics for one (variant, shape). Latencies in milliseconds; throughput in samples per second."""

    variant: str
    batch: int
    seq: int | None
    runs: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    std_ms: float
    throughput: float
    speedup: float
    peak_mb: float | None = None


def latency_stats(times_ns: Sequence[int] | np.ndarray) -> dict[str, float]:
    """p50/p90/p99/mean/std in milliseconds of per-call times in nanoseconds.

    Percentiles use linear interpolation between order statistics (numpy's default, Hyndman-Fan type 7);
    std is the sample standard deviation (ddof=1), 0 for a single call.
    """
    ms = np.asarray(times_ns, dtype=np.float64) / 1e6
    if ms.ndim != 1 or ms.size == 0:
        raise ValueError(f"need a non-empty 1-D array of times, got shape {ms.shape}")
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {
        "p50_ms": float(p50),
        "p90_ms": float(p90),
        "p99_ms": float(p99),
        "mean_ms": float(ms.mean()),
        "std_ms": float(ms.std(ddof=1)) if ms.size > 1 else 0.0,
    }


def summarize(timings: Mapping[str, np.ndarray], shape: Shape) -> list[Result]:
    """Results for every variant at one shape, in the mapping's order; speed-up is relative to the first.

    speed-up = p50 of the first variant / p50 of this one (the median resists the outliers a noisy
    machine produces); throughput = batch / mean latency, since sustained rate is what the mean measures.
    """
    stats = {name: latency_stats(times) for name, times in timings.items()}
    reference = next(iter(stats.values()))["p50_ms"]
    return [
        Result(
            variant=name,
            batch=shape.batch,
            seq=shape.seq,
            runs=len(timings[name]),
            throughput=shape.batch / (s["mean_ms"] / 1e3),
            speedup=reference / s["p50_ms"],
            **s,
        )
        for name, s in stats.items()
    ]


def round_plan(n_variants: int, runs: int, rounds: int) -> list[tuple[list[int], int]]:
    """For each round: the variant order (rotated by one each round) and the calls per variant.

    `runs` is split as evenly as possible; the first `runs % rounds` rounds get one extra call.
    """
    base, extra = divmod(runs, rounds)
    plan = []
    for r in range(rounds):
        shift = r % n_variants
        order = list(range(shift, n_variants)) + list(range(shift))
        plan.append((order, base + (1 if r < extra else 0)))
    return plan


def measure(
    variants: Sequence[Variant],
    shapes: Iterable[Shape],
    config: BenchConfig,
    progress: Progress | None = None,
) -> list[Result]:
    """Time every variant at every shape, interleaved, and return one `Result` per (variant, shape).

    Per shape: feeds are built once (seeded) and shared; each variant is prepared and warmed up; then
    `config.rounds` rounds run, each calling every variant `runs/rounds` times in a rotated order. Each
    call is timed alone with `time.perf_counter_ns`; the garbage collector is paused during timed rounds
    so that a collection triggered by one variant is not billed to another.
    """
    if not variants:
        raise ConfigError("nothing to benchmark: give at least one variant")
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise ConfigError(f"variant names must be unique, got {names}")
    shapes = list(shapes)
    torch = sys.modules.get("torch")
    torch_threads = torch.get_num_threads() if torch else None
    try:
        if torch and config.threads is not None:
            # Same intra-op thread count for torch as for ORT, or the comparison measures thread counts.
            torch.set_num_threads(config.threads)
        return _measure(variants, shapes, config, progress)
    finally:
        if torch:
            torch.set_num_threads(torch_threads)  # leave the caller's process as we found it


def _measure(
    variants: Sequence[Variant], shapes: list[Shape], config: BenchConfig, progress: Progress | None
) -> list[Result]:
    inputs, limits = merged_io(variants)
    plan = round_plan(len(variants), config.runs, config.rounds)
    total = len(shapes) * len(variants) * (1 + len(plan))
    done = 0
    results: list[Result] = []
    for shape in shapes:
        label = f"batch {shape.batch}" + (f", seq {shape.seq}" if shape.seq is not None else "")
        feeds = make_feeds(inputs, limits, shape.batch, shape.seq, np.random.default_rng(config.seed))
        calls = []
        for variant in variants:
            call = variant.factory(feeds)
            for _ in range(config.warmup):
                call()
            calls.append(call)
            done += 1
            if progress:
                progress(done, total, f"warm-up {variant.name}, {label}")
        times = [np.empty(config.runs, dtype=np.int64) for _ in variants]
        filled = [0] * len(variants)
        clock = time.perf_counter_ns
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            for order, n in plan:
                for i in order:
                    call, out, k = calls[i], times[i], filled[i]
                    for j in range(k, k + n):
                        t0 = clock()
                        call()
                        out[j] = clock() - t0
                    filled[i] = k + n
                    done += 1
                    if progress:
                        progress(done, total, f"timing {label}")
        finally:
            if gc_was_enabled:
                gc.enable()
        results.extend(summarize(dict(zip([v.name for v in variants], times, strict=True)), shape))
    return results


def merged_io(variants: Sequence[Variant]) -> tuple[list[Any], dict[str, Any]]:
    """Union of the variants' declared inputs (first declaration of a name wins) and their limits."""
    inputs: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    for variant in variants:
        for spec in variant.inputs:
            inputs.setdefault(spec.name, spec)
        for key, value in variant.limits.items():
            limits.setdefault(key, value)
    return list(inputs.values()), limits
