"""`edgept prune MODEL --data D --ffn-keep 0.5 [--heads-keep 0.5] -o DIR`: structured FFN-neuron and
attention-head pruning by Taylor importance on the task, optionally followed by recovery
distillation from the unpruned model (`--recover`)."""

from __future__ import annotations

from pathlib import Path

import typer

from edgept.cli.console import out, working
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
    RECOVER_AUGMENT,
    RESUME,
    TEXT_COLUMN,
    WARMUP,
    augment_config,
)


def register(app: typer.Typer) -> None:
    app.command("prune")(prune_cmd)


def prune_cmd(
    model: str = typer.Argument(..., help="A classifier checkpoint directory (BERT, ALBERT or ViT), e.g. a fine-tuned teacher."),
    data: str = typer.Option(..., "--data", help=f"The task's data: importance is scored on its train split, accuracy on dev. {DATA_HELP}"),
    output: Path = typer.Option(
        ..., "-o", "--output",
        help="Directory for the pruned checkpoint; with --recover, for model/ (the checkpoint), checkpoints/, train_log.jsonl, metrics.json.",
    ),  # fmt: skip
    ffn_keep: float = typer.Option(0.5, "--ffn-keep", help="Share of every FFN's neurons kept, in (0, 1]; rounded to a multiple of 8."),
    heads_keep: float = typer.Option(
        1.0, "--heads-keep", help="Share of every layer's attention heads kept, in (0, 1]; below 1 the checkpoint is in edgept's own layout.",
    ),  # fmt: skip
    examples: int = typer.Option(512, "--examples", help="Train examples the neurons' and heads' importance is summed over."),
    text_column: str = TEXT_COLUMN,
    label_column: str = LABEL_COLUMN,
    force: bool = typer.Option(False, "--force", help="Replace an existing directory at --output."),
    recover: bool = typer.Option(
        False, "--recover",
        help="Then distill from MODEL on --data (TinyBERT losses, identity layer map): intermediate then prediction stage.",
    ),  # fmt: skip
    epochs: float = EPOCHS,
    max_steps: int = MAX_STEPS,
    lr: float = LR,
    warmup: float = WARMUP,
    batch_size: int = BATCH_SIZE,
    max_length: int = MAX_LENGTH,
    augment: int = RECOVER_AUGMENT,
    seed: int = typer.Option(0, help="Seed for the scored examples' draw and --recover's shuffling and dropout."),
    nproc: int = NPROC,
    precision: str = PRECISION,
    resume: bool = RESUME,
    quiet: bool = QUIET,
) -> None:
    """Prune FFN neurons and attention heads by their importance on the task: a smaller, dense checkpoint.

    Every FFN keeps its most important neurons (and, with --heads-keep, every layer its most
    important heads); the checkpoint (tokenizer copied, prune_report.json beside it) exports and
    quantizes like any other, and with only FFNs cut it loads in transformers. Without --recover
    the dev accuracy before and after is reported; pruning alone usually costs accuracy that
    --recover wins back.
    """
    from edgept.compress.prune import PruneConfig, prune_checkpoint
    from edgept.data import DataConfig
    from edgept.errors import ConfigError
    from edgept.zoo import resolve

    if resume and not recover:
        raise ConfigError("--resume continues a --recover run; add --recover")
    if augment and not recover:
        raise ConfigError("--augment adds copies to --recover's training data; add --recover")
    config = PruneConfig(ffn_keep=ffn_keep, heads_keep=heads_keep, examples=examples, max_length=max_length, seed=seed)
    data_config = DataConfig(source=data, text_column=text_column, label_column=label_column)
    source = resolve(model)
    if recover:
        from edgept.cli.distill import summary
        from edgept.compress.recover import prune_and_recover
        from edgept.train import TrainConfig

        train = TrainConfig(lr=lr, warmup=warmup, epochs=epochs, max_steps=max_steps, batch_size=batch_size, seed=seed, nproc=nproc, precision=precision)
        m = prune_and_recover(
            source, output, config, train, data=data_config, max_length=max_length,
            augment=augment_config(augment, seed), overwrite=force, resume=resume, progress=not quiet,
        )  # fmt: skip
        out.print(summary(m) + "; " + _line(m["prune"]))
        return
    with working(f"scoring and pruning {source}"):
        report = prune_checkpoint(source, output, config, data=data_config, overwrite=force)
    out.print(f"wrote [bold]{output}[/]: " + _line(report.to_dict()))


def _line(r: dict) -> str:
    return (
        f"FFN {r['intermediate_before']} -> {r['intermediate_after']} neurons, {r['heads_before']} -> {r['heads_after']} heads, parameters {r['params_before'] / 1e6:.2f}M -> "
        f"{r['params_after'] / 1e6:.2f}M (-{100 * r['drop']:.1f}%), dev accuracy {r['dev_accuracy_before']:.4f} -> "
        f"{r['dev_accuracy_pruned']:.4f} before recovery"
    )
