"""`edgept eval MODEL|BUNDLE --data NAME|PATH`: accuracy and macro-F1 on the shared split."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from edgept.cli.console import out
from edgept.cli.finetune import DATA_HELP, LABEL_COLUMN, TEXT_COLUMN


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_cmd)


def eval_cmd(
    model: str = typer.Argument(..., help="A classifier checkpoint directory, or a bundle directory (runs in the runtime)."),
    data: str = typer.Option(..., "--data", help=DATA_HELP),
    split: str = typer.Option("test", help="Which split of the data: train, dev or test."),
    text_column: str = TEXT_COLUMN,
    label_column: str = LABEL_COLUMN,
    max_length: int = typer.Option(128, "--max-length", help="Truncate texts to this many tokens (checkpoints; a bundle uses its own)."),
    batch_size: int = typer.Option(64, "--batch-size", help="Examples per forward pass."),
    json_out: Path = typer.Option(None, "--json", help="Also write the results as JSON to this path."),
) -> None:
    """Score a checkpoint or a bundle on one split (the split finetune and distill use): accuracy, macro-F1."""
    from edgept.data import DataConfig
    from edgept.eval import evaluate
    from edgept.fileio import atomic_write_text

    data_config = DataConfig(source=data, text_column=text_column, label_column=label_column)
    result = evaluate(model, data_config, split, max_length=max_length, batch_size=batch_size)
    out.print(
        f"{result['model']} ({result['format']}) on {data} {split} ({result['examples']} examples): "
        f"accuracy {result['accuracy']:.4f}, macro-F1 {result['macro_f1']:.4f}"
    )
    if json_out is not None:
        atomic_write_text(json_out, json.dumps(result, indent=2) + "\n")
        out.print(f"wrote {json_out}")
