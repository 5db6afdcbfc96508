"""Honest latency measurement: warm-up, interleaved timed rounds, percentiles, speed-ups, peak memory.

    from edgept.bench import bench, BenchConfig, render_table
    report = bench(["minilm.edgept", "minilm.int8.edgept"], baseline="torch",
                   config=BenchConfig(batches=(1, 8), seqs=(128,), threads=2))
    rich.print(render_table(report)); report.to_json("bench.json")

Importing this package does not import torch; only a torch baseline does.
"""

from __future__ import annotations

from edgept.bench.bench import BASELINES, bench
from edgept.bench.config import BenchConfig
from edgept.bench.harness import Result, Shape, Variant, measure
from edgept.bench.plot import plot
from edgept.bench.report import BenchReport, render_table
from edgept.bench.variants import BACKENDS, VariantSpec, build_variant

__all__ = [
    "BACKENDS",
    "BASELINES",
    "BenchConfig",
    "BenchReport",
    "Result",
    "Shape",
    "Variant",
    "VariantSpec",
    "bench",
    "build_variant",
    "measure",
    "plot",
    "render_table",
]
