"""A benchmark report: the numbers together with how they were measured, as JSON and as a rich table."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich import box
from rich.table import Table

from edgept.bench.config import BenchConfig
from edgept.bench.harness import Result, Variant
from edgept.errors import InputError
from edgept.fileio import atomic_write_text

SCHEMA = 1
TIMED = "session.run on pre-built numpy feeds, excluding tokenization; ORT thread spinning off"


@dataclass(frozen=True, kw_only=True)
class BenchReport:
    """Results of one benchmark run.

    method: warm-up, runs, rounds, threads, seed, what is timed, timer, statistics, memory method, CPU
    model and library versions (no hostname). variants: one dict per variant (name, kind, path, backend,
    precision, file_bytes), the first being the speed-up reference. results: one row per (variant, shape).
    """

    method: Mapping[str, Any]
    variants: tuple[Mapping[str, Any], ...]
    results: tuple[Result, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "method": dict(self.method),
            "variants": [dict(v) for v in self.variants],
            "results": [asdict(r) for r in self.results],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BenchReport:
        if data.get("schema", 0) > SCHEMA:
            raise InputError(
                f"bench report schema {data.get('schema')} is newer than {SCHEMA}; upgrade edgept"
            )
        return cls(
            method=data["method"],
            variants=tuple(data["variants"]),
            results=tuple(Result(**r) for r in data["results"]),
        )

    def to_json(self, path: str | Path) -> Path:
        """Write the report as JSON, atomically (a crash never leaves half a file). Returns the path."""
        path = Path(path)
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def from_json(cls, path: str | Path) -> BenchReport:
        """Read a report written by `to_json`."""
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise InputError(f"cannot read bench report {path}: {e}") from e


def describe_method(
    config: BenchConfig, variants: Sequence[Variant], memory_method: str | None
) -> dict[str, Any]:
    """The method block of a report: enough to reproduce or to distrust the numbers."""
    packages = ["numpy", "onnxruntime"]
    if any(v.spec is not None and v.spec.kind == "torch" for v in variants):
        packages.append("torch")
    return {
        "warmup": config.warmup,
        "runs": config.runs,
        "rounds": config.rounds,
        "threads": config.threads,
        "seed": config.seed,
        "timed": TIMED,
        "timer": "time.perf_counter_ns around each call, garbage collector paused",
        "order": "interleaved: each round runs every variant runs/rounds times, order rotated each round",
        "statistics": "percentiles by linear interpolation; speed-up = reference p50 / variant p50; "
        "throughput = batch / mean latency",
        "memory": memory_method,
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "platform": f"{platform.system()}-{platform.machine()}",
        "python": platform.python_version(),
        "versions": _versions(["edgept", *packages]),
    }


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo, else what `platform` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _versions(packages: Iterable[str]) -> dict[str, str]:
    versions = {}
    for name in packages:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            if name == "edgept":  # running from a source tree that is not pip-installed
                from edgept import __version__

                versions[name] = __version__
    return versions


def method_caption(report: BenchReport) -> str:
    """The method in one line, for table captions and plot footers."""
    m = report.method
    reference = report.variants[0]["name"] if report.variants else "?"
    return (
        f"{m['runs']} timed calls per row after {m['warmup']} warm-up, {m['rounds']} interleaved rounds, "
        f"{m['threads']} threads, {m['cpu']}; timed: {m['timed']}; speed-up = p50 vs {reference}"
    )


def render_table(report: BenchReport) -> Table:
    """A rich table: one row per (shape, variant), shapes separated, with the method as caption."""
    table = Table(
        caption=method_caption(report),
        caption_justify="left",
        title="edgept bench",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("variant", overflow="fold", min_width=8)
    # Numbers never wrap; two-line headers keep the table inside 80 columns, and on a narrower
    # terminal the variant name folds instead.
    for name in ("batch", "seq", "p50\nms", "p90\nms", "p99\nms", "samples\nper s", "peak\nMB", "speed-\nup"):
        table.add_column(name, justify="right", no_wrap=True)
    previous = None
    for r in sorted(report.results, key=_shape_key):
        if previous is not None and _shape_key(r) != previous:
            table.add_section()
        previous = _shape_key(r)
        table.add_row(
            r.variant,
            str(r.batch),
            "-" if r.seq is None else str(r.seq),
            _ms(r.p50_ms),
            _ms(r.p90_ms),
            _ms(r.p99_ms),
            f"{r.throughput:,.0f}" if r.throughput >= 100 else f"{r.throughput:.1f}",
            "-" if r.peak_mb is None else f"{r.peak_mb:,.0f}",
            f"{r.speedup:.2f}×",
        )
    return table


def _ms(value: float) -> str:
    # Sub-millisecond latencies keep three decimals so small models do not all read "0.02".
    return f"{value:.2f}" if value >= 1 else f"{value:.3f}"


def _shape_key(result: Result) -> tuple[int, int]:
    return (result.batch, result.seq or 0)
