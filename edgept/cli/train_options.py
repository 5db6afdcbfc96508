"""Flags every training command shares (finetune, distill, and later pretrain and factorize --recover),
declared once so their names, defaults and help stay the same everywhere."""

from __future__ import annotations

from typing import Any

import typer

DATA_HELP = "A shipped set (rt-polarity, fashion-mnist), a .jsonl/.csv/.tsv file, or an image folder (one subfolder per class)."
TEXT_COLUMN = typer.Option("text", "--text-column", help="Column (or JSON key) holding the text.")
LABEL_COLUMN = typer.Option("label", "--label-column", help="Column (or JSON key) holding the label (string or integer).")
EPOCHS = typer.Option(3.0, help="Passes over the training data (per stage where there are stages; may be fractional).")
MAX_STEPS = typer.Option(None, "--max-steps", help="Stop after exactly this many optimizer steps (overrides --epochs).")
LR = typer.Option(5e-5, help="Peak learning rate (AdamW), after linear warm-up, then linear decay to 0.")
WARMUP = typer.Option(0.1, help="Warm-up as a fraction of all steps.")
BATCH_SIZE = typer.Option(32, "--batch-size", help="Global batch size (split across --nproc processes).")
MAX_LENGTH = typer.Option(128, "--max-length", help="Truncate texts to this many tokens.")
NPROC = typer.Option(1, help="Data-parallel processes (gloo on CPU, NCCL on GPU); or launch under torchrun.")
PRECISION = typer.Option(
    "fp32", help="fp32, or bf16: the training forward pass under bfloat16 autocast (faster on GPUs and on CPUs with AVX512-BF16 or AMX; weights and evaluation stay fp32)."
)
RESUME = typer.Option(False, "--resume", help="Continue from the newest checkpoint in --output.")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bar.")
AUGMENT_HELP = "TinyBERT augmentation: N word-replaced copies of each training text (0: none; the paper uses 20)."
RECOVER_AUGMENT = typer.Option(0, "--augment", help=f"With --recover: {AUGMENT_HELP}")


def augment_config(copies: int, seed: int) -> Any:
    """The AugmentConfig for `--augment N` (None for 0), drawn with the run's seed."""
    from edgept.compress.distill import AugmentConfig

    return AugmentConfig(copies=copies, seed=seed) if copies else None
