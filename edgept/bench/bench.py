"""`bench(bundles, config=BenchConfig(...))`: build each variant, time them interleaved, probe memory."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from edgept.bench.config import BenchConfig
from edgept.bench.harness import Shape, measure, merged_io, resolve_threads
from edgept.bench.memprobe import DEFAULT_CALLS, probe_memory
from edgept.bench.memprobe import METHOD as MEMORY_METHOD
from edgept.bench.report import BenchReport, describe_method
from edgept.bench.variants import VariantSpec, build_variant, default_name, source_path
from edgept.errors import ConfigError, InputError
from edgept.runtime.feeds import is_image, make_feeds

BASELINES = ("torch",)


def bench(
    bundles: Sequence[str | Path],
    *,
    baseline: str | None = None,
    config: BenchConfig = BenchConfig(),
    memory: bool = True,
    progress: bool = True,
) -> BenchReport:
    """Benchmark bundles (or bare .onnx files) side by side and return a `BenchReport`.

    baseline="torch" adds the first bundle's source checkpoint (manifest `model.source.path`) in PyTorch
    eager as the first variant, so speed-ups are relative to it; otherwise they are relative to the first
    bundle. Every backend gets the same intra-op thread count (`config.threads`, default all usable CPUs).
    memory=True measures each variant's peak memory in its own subprocess (slower: one process each).
    progress=True shows a progress bar on stderr.
    """
    if not bundles:
        raise ConfigError("give at least one bundle to benchmark")
    if baseline is not None and baseline not in BASELINES:
        raise ConfigError(f"unknown baseline {baseline!r}; known: {', '.join(BASELINES)}")
    config = dataclasses.replace(config, threads=resolve_threads(config.threads))
    specs = _specs([Path(b) for b in bundles], baseline, config.threads)

    with _progress_bar(progress) as update:
        variants = [build_variant(spec) for spec in specs]
        inputs, limits = merged_io(variants)
        if is_image(inputs):
            shapes = [Shape(b) for b in config.batches]
        else:
            shapes = [Shape(b, s) for b in config.batches for s in config.seqs]
        results = measure(variants, shapes, config, progress=update)
        if memory:
            largest = max(shapes, key=lambda s: s.batch * (s.seq or 1))
            feeds = make_feeds(inputs, limits, largest.batch, largest.seq, np.random.default_rng(config.seed))
            for i, variant in enumerate(variants):
                update(i, len(variants), f"peak memory of {variant.name} (own process)")
                peak = probe_memory(variant.spec, feeds)
                results = [
                    dataclasses.replace(r, peak_mb=peak)
                    if (r.variant, r.batch, r.seq) == (variant.name, largest.batch, largest.seq)
                    else r
                    for r in results
                ]

    variant_info = tuple(
        {
            "name": v.name,
            "kind": v.spec.kind,
            "path": v.spec.path,
            "backend": v.backend,
            "precision": v.precision,
            "file_bytes": v.file_bytes,
        }
        for v in variants
    )
    method = describe_method(config, variants, MEMORY_METHOD.format(calls=DEFAULT_CALLS) if memory else None)
    return BenchReport(method=method, variants=variant_info, results=tuple(results))


def _specs(paths: list[Path], baseline: str | None, threads: int) -> list[VariantSpec]:
    """One spec per input, baseline first, with unique display names."""
    specs: list[VariantSpec] = []
    if baseline == "torch":
        if not paths[0].is_dir():
            raise ConfigError(
                f"--baseline torch needs a bundle first (its manifest names the source), got {paths[0]}"
            )
        specs.append(
            VariantSpec(kind="torch", path=str(source_path(paths[0])), threads=threads, name="torch eager")
        )
    for path in paths:
        if path.is_dir():
            kind = "ort"
        elif path.is_file() and path.suffix == ".onnx":
            kind = "onnx"
        else:
            raise InputError(f"{path}: not a bundle directory or an .onnx file; pass a *.edgept/ directory")
        name = default_name(path)
        taken = {s.name for s in specs}
        unique, n = name, 2
        while unique in taken:
            # Two "model.edgept" from different folders: keep both, told apart by a suffix.
            unique, n = f"{name}#{n}", n + 1
        specs.append(VariantSpec(kind=kind, path=str(path), threads=threads, name=unique))
    return specs


@contextlib.contextmanager
def _progress_bar(enabled: bool) -> Iterator[Callable[[int, int, str], None]]:
    """A `progress(done, total, label)` callback drawing a rich bar on stderr, or a no-op."""
    if not enabled:
        yield lambda done, total, label: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("loading", total=None)

        def update(done: int, total: int, label: str) -> None:
            bar.update(task, completed=done, total=total, description=label)

        yield update
