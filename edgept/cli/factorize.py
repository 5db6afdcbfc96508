"""`edgept factorize MODEL -o DIR`: ALBERT-style embedding factorization and layer sharing."""

from __future__ import annotations

from pathlib import Path

import typer

from edgept.cli.console import err, out


def register(app: typer.Typer) -> None:
    app.command("factorize")(factorize_cmd)


def factorize_cmd(
    model: str = typer.Argument(..., help="A BERT checkpoint directory, or a shipped model name (minilm)."),
    output: Path = typer.Option(..., "-o", "--output", help="Directory for the HF ALBERT checkpoint."),
    embedding_size: int | None = typer.Option(
        None, "--embedding-size", help="ALBERT's E: word embeddings V×H -> V×E + E×H (2 <= E < hidden size)."
    ),
    embedding_energy: float | None = typer.Option(
        None, "--embedding-energy", help="Pick the smallest E keeping this fraction (0, 1] of the embeddings' energy."
    ),
    share: str = typer.Option("none", "--share", help="Cross-layer sharing: none, all, or groups:N (N divides the layers)."),
    share_init: str | None = typer.Option(
        None, "--share-init", help="How a group's weights start: mean, first or middle layer (default: the measured best)."
    ),
    force: bool = typer.Option(False, "--force", help="Replace an existing directory at --output."),
) -> None:
    """Factorize a BERT into an ALBERT checkpoint (tokenizer copied, factorize_report.json beside it).

    Deterministic: every weight comes from the model by SVD or averaging, so there is no --seed.
    """
    from edgept.compress.factorize import FactorizeConfig, factorize_checkpoint
    from edgept.zoo import resolve

    extra = {} if share_init is None else {"share_init": share_init}
    config = FactorizeConfig(embedding_size=embedding_size, embedding_energy=embedding_energy, share=share, **extra)
    source = resolve(model)
    with err.status(f"factorizing {source} ..."):
        report = factorize_checkpoint(source, output, config, overwrite=force)
    parts = []
    if report.embedding_size is not None:
        parts.append(f"E={report.embedding_size} (energy kept {report.embedding_energy:.3f})")
    if report.groups is not None:
        parts.append(f"{report.groups} weight group(s), {report.share_init} init")
    out.print(
        f"wrote [bold]{output}[/]: parameters {report.params_before / 1e6:.2f}M -> {report.params_after / 1e6:.2f}M "
        f"(-{100 * report.drop:.1f}%)" + (f"; {', '.join(parts)}" if parts else "")
    )
