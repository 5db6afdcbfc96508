"""`edgept export MODEL -o BUNDLE`."""

from __future__ import annotations

from pathlib import Path

import typer

from edgept.cli.console import out, working


def register(app: typer.Typer) -> None:
    app.command("export")(export_cmd)


def export_cmd(
    model: str = typer.Argument(..., help="A Hugging Face checkpoint directory, or a shipped model name (minilm)."),
    output: Path = typer.Option(..., "-o", "--output", help="Bundle directory to write (e.g. model.edgept)."),
    opset: int = typer.Option(17, help="ONNX opset (>= 17)."),
    max_length: int = typer.Option(128, help="Tokenizer truncation length that `predict` uses."),
    tolerance: float = typer.Option(1e-4, help="Largest |ONNX - PyTorch| accepted on random inputs."),
    seed: int = typer.Option(0, help="Seed for the trace and parity inputs."),
    force: bool = typer.Option(False, "--force", help="Replace an existing bundle at --output."),
) -> None:
    """Export a model to an ONNX bundle, checked against PyTorch on fresh random inputs."""
    from edgept.export import ExportConfig, export
    from edgept.zoo import resolve

    config = ExportConfig(opset=opset, max_length=max_length, tolerance=tolerance, seed=seed)
    source = resolve(model)
    with working(f"exporting {source}") as say:
        bundle = export(source, output, config, overwrite=force, progress=say)
    metrics = bundle.passes[-1]["metrics"]
    size = bundle.artifacts["model.onnx"]["bytes"] / 2**20
    out.print(
        f"wrote [bold]{bundle.path}[/] ({size:.1f} MiB): {bundle.manifest['model']['arch']} {bundle.task}, "
        f"max |onnx - torch| = {metrics['max_abs_diff']:.2e} (tolerance {metrics['tolerance']:g})"
    )
