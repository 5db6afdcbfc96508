"""`edgept bench BUNDLE... [--baseline torch]`: latency side by side, honestly measured."""

from __future__ import annotations

from pathlib import Path

import typer

from edgept.cli.console import out, parse_ints


def register(app: typer.Typer) -> None:
    app.command("bench")(bench_cmd)


def bench_cmd(
    bundles: list[Path] = typer.Argument(..., help="Bundles (or .onnx files) to compare; speed-ups are against the first."),
    baseline: str = typer.Option(None, help="Add the first bundle's source model run in 'torch' eager as the reference."),
    batch: str = typer.Option("1,8", help="Batch sizes, comma-separated."),
    seq: str = typer.Option("128", help="Sequence lengths for text models, comma-separated."),
    threads: int = typer.Option(None, help="Intra-op threads for every backend alike (default: all usable CPUs)."),
    warmup: int = typer.Option(10, help="Untimed calls per variant and shape."),
    runs: int = typer.Option(100, help="Timed calls per variant and shape."),
    rounds: int = typer.Option(10, help="Interleaved rounds the timed calls are split into."),
    seed: int = typer.Option(0, help="Seed for the synthetic inputs."),
    memory: bool = typer.Option(True, "--memory/--no-memory", help="Measure peak memory (one subprocess per variant)."),
    json_out: Path = typer.Option(None, "--json", help="Write the report (results and method) as JSON."),
    plot_out: Path = typer.Option(None, "--plot", help="Write a PNG chart of latency and throughput."),
) -> None:
    """Benchmark bundles side by side: p50/p90/p99 latency, throughput, peak memory, speed-up."""
    from edgept.bench import BenchConfig, bench, plot, render_table

    config = BenchConfig(
        batches=parse_ints(batch, "--batch"),
        seqs=parse_ints(seq, "--seq"),
        warmup=warmup,
        runs=runs,
        rounds=rounds,
        threads=threads,
        seed=seed,
    )
    report = bench(bundles, baseline=baseline, config=config, memory=memory)
    out.print(render_table(report))
    if json_out is not None:
        report.to_json(json_out)
        out.print(f"wrote {json_out}")
    if plot_out is not None:
        plot(report, plot_out)
        out.print(f"wrote {plot_out}")
