"""`edgept qat MODEL --data NAME|PATH --calibration DIR -o DIR`: fake-quant fine-tuning, exported as QDQ."""

from __future__ import annotations

from pathlib import Path

import typer

from edgept.cli.console import out
from edgept.cli.train_options import (
    BATCH_SIZE,
    DATA_HELP,
    LABEL_COLUMN,
    MAX_LENGTH,
    QUIET,
    TEXT_COLUMN,
    WARMUP,
)


def register(app: typer.Typer) -> None:
    app.command("qat")(qat_cmd)


def qat_cmd(
    model: str = typer.Argument(..., help="A fine-tuned classifier checkpoint directory (e.g. out/teacher-rt/model)."),
    data: str = typer.Option(..., "--data", help=DATA_HELP),
    calibration: Path = typer.Option(..., help="Calibration set (texts.jsonl) the starting ranges come from."),
    output: Path = typer.Option(..., "-o", "--output", help="Directory for model/ (checkpoint), model.edgept (QDQ bundle), metrics.json."),
    method: str = typer.Option("minmax", help="Starting activation ranges: minmax | entropy | percentile."),
    targets: str = typer.Option("fp32", help="What to fit: fp32 (the unquantized model's logits, soft cross-entropy) or labels."),
    weight_bits: int = typer.Option(7, help="7 (CPUs without VNNI: ORT's u8s8 kernels saturate with 8-bit weights) or 8 (VNNI, ARM, GPU)."),
    steps: int = typer.Option(300, help="Optimizer steps of fake-quant fine-tuning."),
    lr: float = typer.Option(1e-5, help="Peak learning rate (small: the model is already trained)."),
    warmup: float = WARMUP,
    batch_size: int = BATCH_SIZE,
    max_length: int = MAX_LENGTH,
    text_column: str = TEXT_COLUMN,
    label_column: str = LABEL_COLUMN,
    seed: int = typer.Option(0, help="Seed for shuffling and dropout."),
    quiet: bool = QUIET,
) -> None:
    """Quantization-aware fine-tuning from the PTQ ranges, for when PTQ misses the accuracy budget."""
    from edgept.data import DataConfig
    from edgept.quantize.qat import QATConfig, qat
    from edgept.train import TrainConfig

    m = qat(
        model, DataConfig(source=data, text_column=text_column, label_column=label_column), calibration, output,
        TrainConfig(lr=lr, warmup=warmup, max_steps=steps, batch_size=batch_size, seed=seed), QATConfig(method=method, targets=targets, weight_bits=weight_bits),
        max_length=max_length, progress=not quiet,
    )
    before, after = m["ptq_fake_quant"]["test"]["accuracy"], m["qat_fake_quant"]["test"]["accuracy"]
    out.print(f"wrote [bold]{m['bundle']}[/] after {m['steps']} steps: test accuracy (fake-quant) {before:.4f} -> {after:.4f}, "
              f"export parity max |diff| {m['export_parity']['max_abs_diff']:.3g}")
