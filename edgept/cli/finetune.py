"""`edgept finetune MODEL --data NAME|PATH -o DIR`: make a classifier (a teacher) on a data set."""

from __future__ import annotations

from pathlib import Path

import typer

from edgept.cli.console import out

DATA_HELP = "A shipped set (rt-polarity, fashion-mnist), a .jsonl/.csv/.tsv file, or an image folder (one subfolder per class)."
TEXT_COLUMN = typer.Option("text", "--text-column", help="Column (or JSON key) holding the text.")
LABEL_COLUMN = typer.Option("label", "--label-column", help="Column (or JSON key) holding the label (string or integer).")


def register(app: typer.Typer) -> None:
    app.command("finetune")(finetune_cmd)


def finetune_cmd(
    model: str = typer.Argument(..., help="A Hugging Face checkpoint directory, or a shipped model name (minilm)."),
    data: str = typer.Option(..., "--data", help=DATA_HELP),
    output: Path = typer.Option(..., "-o", "--output", help="Directory for model/, checkpoints/, train_log.jsonl, metrics.json."),
    text_column: str = TEXT_COLUMN,
    label_column: str = LABEL_COLUMN,
    epochs: float = typer.Option(3.0, help="Passes over the training split (may be fractional)."),
    max_steps: int = typer.Option(None, "--max-steps", help="Stop after exactly this many optimizer steps (overrides --epochs)."),
    lr: float = typer.Option(5e-5, help="Peak learning rate (AdamW), after linear warm-up, then linear decay to 0."),
    warmup: float = typer.Option(0.1, help="Warm-up as a fraction of all steps."),
    batch_size: int = typer.Option(32, "--batch-size", help="Global batch size (split across --nproc processes)."),
    max_length: int = typer.Option(128, "--max-length", help="Truncate texts to this many tokens."),
    eval_every: int = typer.Option(None, "--eval-every", help="Evaluate on dev every N steps (default: once per epoch)."),
    save_every: int = typer.Option(None, "--save-every", help="Checkpoint every N steps (default: at each evaluation)."),
    patience: int = typer.Option(None, help="Stop after this many evaluations without a better dev accuracy."),
    seed: int = typer.Option(0, help="Seed for the head's init, shuffling and dropout: the same seed gives the same model."),
    nproc: int = typer.Option(1, help="Data-parallel processes (gloo on CPU, NCCL on GPU); or launch under torchrun."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoint in --output."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Fine-tune MODEL for classification on a data set; keep the best dev model and report test accuracy."""
    from edgept.data import DataConfig
    from edgept.train import TrainConfig
    from edgept.train.finetune import finetune

    data_config = DataConfig(source=data, text_column=text_column, label_column=label_column)
    config = TrainConfig(
        lr=lr, warmup=warmup, epochs=epochs, max_steps=max_steps, batch_size=batch_size, eval_every=eval_every,
        save_every=save_every, patience=patience, seed=seed, nproc=nproc,
    )  # fmt: skip
    m = finetune(model, data_config, output, config, max_length=max_length, resume=resume, progress=not quiet)
    out.print(
        f"wrote [bold]{m['output']}[/] (best of {m['steps']} steps at step {m['best_step']}, {m['seconds']:.0f} s): "
        f"dev accuracy {m['dev']['accuracy']:.4f}, test accuracy {m['test']['accuracy']:.4f}, "
        f"test macro-F1 {m['test']['macro_f1']:.4f}"
    )
