"""`edgept finetune MODEL --data NAME|PATH -o DIR`: make a classifier (a teacher) on a data set."""

from __future__ import annotations

from pathlib import Path

import typer

from edgept.cli.console import out
from edgept.cli.train_options import (
    BATCH_SIZE,
    DATA_HELP,
    EPOCHS,
    LABEL_COLUMN,
    LR,
    MAX_LENGTH,
    MAX_STEPS,
    NPROC,
    PRECISION,
    QUIET,
    RESUME,
    TEXT_COLUMN,
    WARMUP,
)


def register(app: typer.Typer) -> None:
    app.command("finetune")(finetune_cmd)


def finetune_cmd(
    model: str = typer.Argument(..., help="A Hugging Face checkpoint directory, or a shipped model name (minilm)."),
    data: str = typer.Option(..., "--data", help=DATA_HELP),
    output: Path = typer.Option(..., "-o", "--output", help="Directory for model/, checkpoints/, train_log.jsonl, metrics.json."),
    text_column: str = TEXT_COLUMN,
    label_column: str = LABEL_COLUMN,
    epochs: float = EPOCHS,
    max_steps: int = MAX_STEPS,
    lr: float = LR,
    warmup: float = WARMUP,
    batch_size: int = BATCH_SIZE,
    max_length: int = MAX_LENGTH,
    eval_every: int = typer.Option(None, "--eval-every", help="Evaluate on dev every N steps (default: once per epoch)."),
    save_every: int = typer.Option(None, "--save-every", help="Checkpoint every N steps (default: at each evaluation)."),
    patience: int = typer.Option(None, help="Stop after this many evaluations without a better dev accuracy."),
    seed: int = typer.Option(0, help="Seed for the head's init, shuffling and dropout: the same seed gives the same model."),
    nproc: int = NPROC,
    precision: str = PRECISION,
    resume: bool = RESUME,
    quiet: bool = QUIET,
) -> None:
    """Fine-tune MODEL for classification on a data set; keep the best dev model and report test accuracy."""
    from edgept.data import DataConfig
    from edgept.train import TrainConfig
    from edgept.train.finetune import finetune

    data_config = DataConfig(source=data, text_column=text_column, label_column=label_column)
    config = TrainConfig(
        lr=lr, warmup=warmup, epochs=epochs, max_steps=max_steps, batch_size=batch_size, eval_every=eval_every,
        save_every=save_every, patience=patience, seed=seed, nproc=nproc, precision=precision,
    )  # fmt: skip
    m = finetune(model, data_config, output, config, max_length=max_length, resume=resume, progress=not quiet)
    out.print(
        f"wrote [bold]{m['output']}[/] (best of {m['steps']} steps at step {m['best_step']}, {m['seconds']:.0f} s): "
        f"dev accuracy {m['dev']['accuracy']:.4f}, test accuracy {m['test']['accuracy']:.4f}, "
        f"test macro-F1 {m['test']['macro_f1']:.4f}"
    )
