"""`edgept run BUNDLE INPUT...`: predict from the command line with the embeddable runtime."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from edgept.cli.console import out
from edgept.errors import InputError


def register(app: typer.Typer) -> None:
    app.command("run")(run_cmd)


def _read_inputs(inputs: list[str], file: Path | None) -> list[str]:
    items = list(inputs)
    if file is not None:
        try:
            items += [line for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
        except FileNotFoundError:
            raise InputError(f"{file}: no such file; --file takes a text file with one input per line") from None
        except UnicodeDecodeError as e:
            raise InputError(f"{file}: not UTF-8 text (byte {e.start}); save it as UTF-8") from None
    if not items:
        raise InputError("nothing to run: give inputs as arguments or --file FILE (one per line)")
    return items


def run_cmd(
    bundle: Path = typer.Argument(..., help="Bundle directory (from export, quantize or compile)."),
    inputs: list[str] = typer.Argument(None, help="Texts, or image paths for an image bundle."),
    file: Path = typer.Option(None, "--file", "-f", help="Read inputs from a file, one per line."),
    threads: int = typer.Option(None, help="ONNX Runtime intra-op threads (default: one per core)."),
    json_out: Path = typer.Option(None, "--json", help="Also write the results as JSON to this path."),
) -> None:
    """Classify inputs with a classification bundle, or embed texts (and compare them) with an encoder bundle."""
    from rich.table import Table

    from edgept.fileio import atomic_write_text
    from edgept.runtime import load

    items = _read_inputs(inputs or [], file)
    session = load(bundle, threads=threads)
    if session.bundle.labels:
        preds = session.predict(items)
        table = Table(title=f"{session.bundle.path.name}: {session.bundle.task}")
        for col in ("input", "label", "score"):
            table.add_column(col, overflow="fold")
        for item, p in zip(items, preds, strict=True):
            table.add_row(item, p.label, f"{p.score:.3f}")
        out.print(table)
        result = [{"input": i, "label": p.label, "score": p.score, "probs": p.probs} for i, p in zip(items, preds, strict=True)]
    else:
        vectors = session.embed(items)
        sims = vectors @ vectors.T  # embed() returns L2-normalised rows, so this is cosine similarity
        table = Table(title=f"{session.bundle.path.name}: {vectors.shape[1]}-d embeddings, cosine similarity")
        table.add_column("input", overflow="fold")
        for j in range(len(items)):
            table.add_column(f"#{j + 1}", justify="right")
        for i, item in enumerate(items):
            table.add_row(f"#{i + 1} {item}", *(f"{s:.3f}" for s in sims[i]))
        out.print(table)
        result = [{"input": i, "embedding": v.tolist()} for i, v in zip(items, vectors, strict=True)]
    if json_out is not None:
        atomic_write_text(json_out, json.dumps(result, indent=2))
        out.print(f"wrote {json_out}")
