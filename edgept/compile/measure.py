"""Precision by measurement: on the machine at hand, keep INT8 only where it is measured faster.

INT8's pay-off is a property of the CPU, not of the model: with AVX-512 VNNI the integer GEMMs run
several times faster than fp32, on AVX2 alone they gain < 2x (shared/DESIGN.md), and on a small
model the quantize/dequantize around them can cost more than they save. So for `precision="auto"`
on a CPU target both candidates are compiled, timed side by side in one interleaved run
(`edgept.bench`) at the target's optimisation shape, and INT8 is kept only when its median is at
least `min_speedup` times fp32's and it passed the fidelity gate. The choice, the timings and the
CPU's flags go in the compile pass.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgept.bench import BenchConfig, bench
from edgept.bundle import Bundle
from edgept.compile.config import CompileConfig
from edgept.targets import MachineFacts, Target

# The flags that decide what INT8 buys on x86 (and NEON dot products on ARM).
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp")


def cpu_facts() -> dict[str, Any]:
    """This machine's architecture and which of CPU_FLAGS it has."""
    facts = MachineFacts.probe()
    return {"arch": facts.arch, "flags": {f: f in facts.cpu_flags for f in CPU_FLAGS}}


def measures(target: Target, config: CompileConfig, available: tuple[str, ...]) -> bool:
    """Whether compile times INT8 against fp32 for this target and config."""
    allowed = set(target.build.precisions) & set(available)
    return (config.precision == "auto" and config.measure and target.device.accelerator == "cpu"
            and {"int8", "fp32"} <= allowed)


def choose(built: dict[str, Path], rejected: dict[str, str], target: Target, config: CompileConfig) -> dict[str, Any]:
    """The precision to ship among the compiled candidates `built` (precision -> bundle), with why.

    `rejected`: candidates that failed to build or missed the fidelity gate, and the reason."""
    report: dict[str, Any] = {"rule": f"int8 when its p50 is >= {config.min_speedup:g}x fp32's and it passes the fidelity gate",
                              "cpu": cpu_facts(), "rejected": rejected}
    if "int8" not in built:
        return {**report, "chosen": "fp32", "why": f"int8 was rejected: {rejected.get('int8')}"}
    # The target's optimisation shape, within what the model takes (a 64-position model is timed at 64).
    limit = (Bundle.open(built["fp32"]).manifest.get("io", {}).get("limits") or {}).get("max_sequence")
    batch, seq = target.shapes.batch[1], min(target.shapes.sequence[1], limit or target.shapes.sequence[1])
    bench_config = BenchConfig(batches=(batch,), seqs=(seq,), warmup=config.measure_runs // 4,
                               runs=config.measure_runs, rounds=5, threads=target.bench.threads or None, seed=config.seed)
    timed = bench([built["fp32"], built["int8"]], config=bench_config, memory=False, progress=False)
    name = {v["path"]: v["name"] for v in timed.variants}
    by_name = {r.variant: r.p50_ms for r in timed.results}
    p50 = {precision: by_name[name[str(path)]] for precision, path in built.items()}
    speedup = p50["fp32"] / p50["int8"]
    chosen = "int8" if speedup >= config.min_speedup else "fp32"
    return {**report, "chosen": chosen, "shape": {"batch": batch, "seq": seq}, "p50_ms": p50,
            "int8_speedup": speedup, "threads": timed.method.get("threads"),
            "why": f"int8 measured {speedup:.2f}x fp32 at batch {batch}, seq {seq} "
                   f"({'>=' if chosen == 'int8' else '<'} {config.min_speedup:g}x)"}


__all__ = ["CPU_FLAGS", "choose", "cpu_facts", "measures"]
