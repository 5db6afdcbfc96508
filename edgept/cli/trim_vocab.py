"""`edgept trim-vocab BUNDLE --data D [--vocab-size N] -o BUNDLE`: keep the word-table rows a task uses."""

from __future__ import annotations

from pathlib import Path

import typer

from edgept.cli.console import out, working


def register(app: typer.Typer) -> None:
    app.command("trim-vocab")(trim_vocab_cmd)


def trim_vocab_cmd(
    bundle: Path = typer.Argument(..., help="An exported fp32 text bundle (trim before quantizing)."),
    data: str = typer.Option(..., help="The task's data (shipped name or .jsonl/.csv/.tsv): its train split's tokens are kept; dev and test are only scored."),
    output: Path = typer.Option(..., "-o", "--output", help="Bundle directory to write."),
    vocab_size: int = typer.Option(None, help="Rows to keep (default: exactly the train split's tokens); extra rows go by original id, i.e. general frequency for BERT vocabularies."),
    fallback: str = typer.Option("nearest", help="What a dropped token reads: nearest (the kept row closest to its embedding) | unk."),
    force: bool = typer.Option(False, "--force", help="Replace an existing bundle at --output."),
) -> None:
    """Trim a text bundle's vocabulary to a task (same tokenizer, ids remapped in the graph); report coverage and accuracy."""
    from edgept.vocab import TrimConfig, trim_vocab

    config = TrimConfig(vocab_size=vocab_size, fallback=fallback)
    with working(f"trimming {bundle}") as say:
        result = trim_vocab(bundle, output, config, data=data, overwrite=force, progress=say)
    size = result.bundle.artifacts["model.onnx"]["bytes"] / 2**20
    out.print(f"wrote [bold]{result.bundle.path}[/] ({size:.1f} MiB): {result.kept} of {result.original} rows kept")
    out.print("  coverage (share of real tokens kept): " + ", ".join(f"{s} {c:.2%}" for s, c in result.coverage.items()))
    for split, acc in (result.accuracy or {}).items():
        out.print(f"  {split} accuracy {acc['before']:.4f} -> {acc['after']:.4f} ({100 * (acc['after'] - acc['before']):+.2f} points)")
