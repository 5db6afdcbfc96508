"""`edgept optimize MODEL --data D --target T --max-drop 1.0 -o DIR`: the fastest bundle within an
accuracy budget, with the report of every candidate tried."""

from __future__ import annotations

from pathlib import Path

import typer

from edgept.cli.console import out, working


def register(app: typer.Typer) -> None:
    app.command("optimize")(optimize_cmd)


def optimize_cmd(
    model: str = typer.Argument(..., help="A checkpoint directory or a shipped model name (minilm); fine-tuned first when it has no head for --data's labels."),
    data: str = typer.Option(..., help="Labelled data: a shipped set (rt-polarity) or a .jsonl/.csv/.tsv file; choices use its dev split only."),
    target: str = typer.Option(..., "--target", "-t", help="A target (edgept targets list), a family (cpu, gpu, jetson) or a .toml path."),
    output: Path = typer.Option(..., "-o", "--output", help="Run directory: best.edgept, report.md/json, pareto.png, and the resumable work."),
    max_drop: float = typer.Option(1.0, help="Accuracy budget: at most this many dev-accuracy points below the teacher."),
    time_budget: str = typer.Option(None, help="Wall-clock budget for the whole run, e.g. 3h or 90m; candidates that would not fit are skipped."),
    depths: str = typer.Option("3,2", help="Layer counts of the distilled students."),
    embedding_sizes: str = typer.Option("128", help="For each depth, also a student with factorized embeddings of these widths ('' for none)."),
    prune_ffn: str = typer.Option("50,25", "--prune-ffn", help="For the teacher and each plain student, also one with its FFNs pruned to these percents of their neurons and recovered ('' for none)."),
    prune_heads: str = typer.Option("25", "--prune-heads", help="For each of those, also one with its attention heads pruned to these percents (FFNs to --prune-heads-ffn) and recovered longer, on augmented copies ('' for none)."),
    prune_heads_ffn: float = typer.Option(12.5, "--prune-heads-ffn", help="Percent of FFN neurons the heads-pruned candidates keep (100: FFNs whole)."),
    schedule: str = typer.Option("default", help="default (the measured recipe) | short (minutes; what `make demo` runs)."),
    max_length: int = typer.Option(64, help="Tokens per text."),
    seed: int = typer.Option(0, help="Seed of every training run and measurement input."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan with estimated training times and stop."),
) -> None:
    """Distil, factorize, prune and quantize a model for a target; keep the fastest bundle within --max-drop."""
    from edgept.cli.console import parse_ints
    from edgept.optimize import OptimizeConfig, optimize, parse_duration

    config = OptimizeConfig(
        target=target, max_drop=max_drop, time_budget=parse_duration(time_budget) if time_budget else None,
        depths=parse_ints(depths, "--depths"), embedding_sizes=parse_ints(embedding_sizes, "--embedding-sizes") if embedding_sizes else (),
        ffn_keeps=tuple(p / 100 for p in parse_ints(prune_ffn, "--prune-ffn")) if prune_ffn else (),
        heads_keeps=tuple(p / 100 for p in parse_ints(prune_heads, "--prune-heads")) if prune_heads else (),
        heads_ffn_keep=prune_heads_ffn / 100,
        schedule=schedule, max_length=max_length, seed=seed,
    )
    if dry_run:
        plan = optimize(model, data, output, config, dry_run=True)
        total = sum(p["train_seconds_estimate"] for p in plan)
        for p in plan:
            out.print(f"  {p['candidate']:<22} {p['model']:<48} train ~{p['train_seconds_estimate'] / 60:6.1f} min")
        out.print(f"{len(plan)} candidates; training ~{total / 60:.0f} min (estimate), plus compiling, scoring and one bench run")
        return
    with working(f"optimizing {model} for {target}", log_steps=True) as say:
        result = optimize(model, data, output, config, progress=say)
    report = result.report
    out.print(f"chose [bold]{report['chosen']}[/]: {report['why']}")
    out.print(f"wrote {result.best.path}, {output / 'report.md'}, {output / 'pareto.png'}")
