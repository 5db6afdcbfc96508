"""`edgept factorize MODEL -o DIR`: ALBERT-style embedding factorization and layer sharing,
optionally followed by recovery distillation from the original (`--recover --data ...`)."""

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
    app.command("factorize")(factorize_cmd)


def factorize_cmd(
    model: str = typer.Argument(..., help="A BERT checkpoint directory, or a shipped model name (minilm)."),
    output: Path = typer.Option(
        ..., "-o", "--output",
        help="Directory for the HF ALBERT checkpoint; with --recover, for model/ (the checkpoint), checkpoints/, train_log.jsonl, metrics.json.",
    ),  # fmt: skip
    embedding_size: int | None = typer.Option(
        None, "--embedding-size", help="ALBERT's E: word embeddings V×H -> V×E + E×H (2 <= E < hidden size)."
    ),
    embedding_energy: float | None = typer.Option(
        None, "--embedding-energy", help="Pick the smallest E keeping this fraction (0, 1] of the embeddings' energy."
    ),
    ffn_rank: int | None = typer.Option(
        None, "--ffn-rank", help="Low-rank (SVD) feed-forward matrices of this rank. No Hugging Face class has them: saved in edgept's own layout.",
    ),
    ffn_energy: float | None = typer.Option(
        None, "--ffn-energy", help="Pick the smallest FFN rank keeping this fraction (0, 1] of every FFN matrix's energy."
    ),
    share: str = typer.Option("none", "--share", help="Cross-layer sharing: none, all, or groups:N (N divides the layers)."),
    share_init: str | None = typer.Option(
        None, "--share-init", help="How a group's weights start: mean, first or middle layer (default: the measured best)."
    ),
    force: bool = typer.Option(False, "--force", help="Replace an existing directory at --output."),
    recover: bool = typer.Option(
        False, "--recover",
        help="Then distill from MODEL on --data (TinyBERT losses, identity layer map): intermediate then prediction stage for a classifier, intermediate only for an encoder.",
    ),  # fmt: skip
    data: str = typer.Option(None, "--data", help=f"Training data for --recover. {DATA_HELP}"),
    text_column: str = TEXT_COLUMN,
    label_column: str = LABEL_COLUMN,
    epochs: float = EPOCHS,
    max_steps: int = MAX_STEPS,
    lr: float = LR,
    warmup: float = WARMUP,
    batch_size: int = BATCH_SIZE,
    max_length: int = MAX_LENGTH,
    augment: int = RECOVER_AUGMENT,
    seed: int = typer.Option(0, help="Seed for --recover's shuffling and dropout (the factorization itself is deterministic)."),
    nproc: int = NPROC,
    precision: str = PRECISION,
    resume: bool = RESUME,
    quiet: bool = QUIET,
) -> None:
    """Factorize a BERT into an ALBERT checkpoint (tokenizer copied, factorize_report.json beside it);
    with --ffn-rank, into edgept's own checkpoint layout (no Hugging Face class has low-rank FFNs).

    Without --recover it is deterministic: every weight comes from the model by SVD or averaging.
    """
    from edgept.compress.factorize import FactorizeConfig, factorize_checkpoint
    from edgept.errors import ConfigError
    from edgept.zoo import resolve

    if recover != (data is not None):
        raise ConfigError("--recover trains on --data: give both (e.g. --recover --data rt-polarity) or neither")
    if resume and not recover:
        raise ConfigError("--resume continues a --recover run; add --recover --data ...")
    if augment and not recover:
        raise ConfigError("--augment adds copies to --recover's training data; add --recover --data ...")
    extra = {} if share_init is None else {"share_init": share_init}
    config = FactorizeConfig(embedding_size=embedding_size, embedding_energy=embedding_energy, share=share,
                             ffn_rank=ffn_rank, ffn_energy=ffn_energy, **extra)
    source = resolve(model)
    if recover:
        from edgept.cli.distill import summary
        from edgept.compress.recover import factorize_and_recover
        from edgept.data import DataConfig
        from edgept.train import TrainConfig

        train = TrainConfig(lr=lr, warmup=warmup, epochs=epochs, max_steps=max_steps, batch_size=batch_size, seed=seed, nproc=nproc, precision=precision)
        data_config = DataConfig(source=data, text_column=text_column, label_column=label_column)
        m = factorize_and_recover(
            source, output, config, train, data=data_config, max_length=max_length,
            augment=augment_config(augment, seed), overwrite=force, resume=resume, progress=not quiet,
        )  # fmt: skip
        out.print(summary(m) + f"; -{100 * m['factorize']['drop']:.1f}% parameters, {_parts(m['factorize'])}")
        return
    with working(f"factorizing {source}"):
        report = factorize_checkpoint(source, output, config, overwrite=force)
    out.print(
        f"wrote [bold]{output}[/]: parameters {report.params_before / 1e6:.2f}M -> {report.params_after / 1e6:.2f}M "
        f"(-{100 * report.drop:.1f}%); {_parts(report.to_dict())}"
    )


def _parts(report: dict) -> str:
    parts = []
    if report.get("embedding_size") is not None:
        parts.append(f"E={report['embedding_size']} (energy kept {report['embedding_energy']:.3f})")
    if report.get("groups") is not None:
        parts.append(f"{report['groups']} weight group(s), {report['share_init']} init")
    if report.get("ffn_rank") is not None:
        parts.append(f"FFN rank {report['ffn_rank']} (energy kept >= {report['ffn_energy']:.3f}; edgept checkpoint layout)")
    return ", ".join(parts) or "nothing factorized"
