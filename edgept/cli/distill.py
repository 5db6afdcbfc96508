"""`edgept distill --teacher DIR --data NAME|PATH -o DIR`: TinyBERT-style distillation into a smaller student."""

from __future__ import annotations

from pathlib import Path

import typer

from edgept.cli.console import out
from edgept.cli.train_options import (
    AUGMENT_HELP,
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
    augment_config,
)


def register(app: typer.Typer) -> None:
    app.command("distill")(distill_cmd)


def distill_cmd(
    teacher: str = typer.Option(..., "--teacher", help="The teacher: a checkpoint directory (a classifier for the task stages; see edgept finetune)."),
    output: Path = typer.Option(..., "-o", "--output", help="Directory for model/ (the student), checkpoints/, train_log.jsonl, metrics.json."),
    data: str = typer.Option(None, "--data", help=DATA_HELP),
    corpus: list[Path] = typer.Option(None, "--corpus", help="Unlabeled text files, one example per line (--stage general); repeat for more files."),
    stage: str = typer.Option("both", help="intermediate (embedding/attention/hidden losses), prediction (soft cross-entropy), both (the two in turn), general (intermediate losses on --corpus)."),
    layers: int = typer.Option(None, help="Student layers (default: the teacher's)."),
    hidden: int = typer.Option(None, help="Student hidden width (default: the teacher's; a narrower student starts fresh)."),
    heads: int = typer.Option(None, help="Student attention heads (default: the teacher's). Unequal counts compare head-averaged attention."),
    ffn: int = typer.Option(None, help="Student feed-forward width (default: the teacher's ffn/hidden ratio)."),
    student: Path = typer.Option(None, "--student", help="Start from this student checkpoint directory (e.g. the output of --stage general) instead of one built from the teacher; its shape is its own."),
    student_config: Path = typer.Option(None, "--student-config", help="JSON with any of num_layers, hidden_size, num_heads, intermediate_size (instead of the four flags)."),
    layer_map: str = typer.Option(None, "--layer-map", help="Teacher layer (1-based) for each student layer, e.g. 2,4,6 (default: uniform, TinyBERT's m*N/M)."),
    temperature: float = typer.Option(1.0, help="Softmax temperature of the prediction-layer loss."),
    hard_weight: float = typer.Option(0.0, "--hard-weight", help="Add this times the cross-entropy with the true labels to the prediction loss."),
    augment: int = typer.Option(0, help=AUGMENT_HELP),
    text_column: str = TEXT_COLUMN,
    label_column: str = LABEL_COLUMN,
    epochs: float = EPOCHS,
    max_steps: int = MAX_STEPS,
    lr: float = LR,
    warmup: float = WARMUP,
    batch_size: int = BATCH_SIZE,
    max_length: int = MAX_LENGTH,
    seed: int = typer.Option(0, help="Seed for the student's init, shuffling, dropout and augmentation."),
    nproc: int = NPROC,
    precision: str = PRECISION,
    resume: bool = RESUME,
    quiet: bool = QUIET,
) -> None:
    """Distill a teacher into a smaller student (TinyBERT); report teacher vs student accuracy and size."""
    from edgept.compress.distill import DistillConfig, StudentShape, distill, parse_layer_map
    from edgept.data import DataConfig
    from edgept.errors import ConfigError
    from edgept.train import TrainConfig

    flags = {"num_layers": layers, "hidden_size": hidden, "num_heads": heads, "intermediate_size": ffn}
    if student_config is not None and any(v is not None for v in flags.values()):
        raise ConfigError("give the student shape either as --layers/--hidden/--heads/--ffn or as --student-config, not both")
    shape = StudentShape.from_json(student_config) if student_config else StudentShape(**flags)
    config = DistillConfig(
        stage=stage, student=shape, layer_map=parse_layer_map(layer_map) if layer_map else None,
        temperature=temperature, hard_weight=hard_weight, max_length=max_length,
        augment=augment_config(augment, seed),
    )  # fmt: skip
    train = TrainConfig(lr=lr, warmup=warmup, epochs=epochs, max_steps=max_steps, batch_size=batch_size, seed=seed, nproc=nproc, precision=precision)
    data_config = DataConfig(source=data, text_column=text_column, label_column=label_column) if data else None
    m = distill(
        teacher, output, config, train, data=data_config, corpus=corpus or (), resume=resume, progress=not quiet,
        student=student,
    )  # fmt: skip
    out.print(summary(m))


def summary(m: dict) -> str:
    """One line from `distill`'s metrics: the student's size and test accuracy against the teacher's."""
    t, s = m["teacher"], m["student"]
    line = (
        f"wrote [bold]{s['path']}[/] ({m['seconds']:.0f} s): {s['params']['total'] / 1e6:.2f}M parameters, "
        f"{s['bytes'] / 2**20:.1f} MiB (teacher {t['params']['total'] / 1e6:.2f}M, {t['bytes'] / 2**20:.1f} MiB)"
    )
    if "test" in s:
        line += (
            f"; test accuracy {s['test']['accuracy']:.4f} vs teacher {t['test']['accuracy']:.4f} "
            f"({100 * m['test_accuracy_vs_teacher']:.1f}%)"
        )
    return line
