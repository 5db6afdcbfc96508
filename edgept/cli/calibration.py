"""`edgept calibration make --data ... -n 256 -o calibration/NAME`."""

from __future__ import annotations

import shlex
from pathlib import Path

import typer

from edgept.cli.console import out

calibration_app = typer.Typer(help="Calibration sets for static quantization (format: calibration/README.md).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(calibration_app, name="calibration")


@calibration_app.command("make")
def make_cmd(
    data: str = typer.Option(..., help="A shipped set (rt-polarity, fashion-mnist), a .jsonl/.csv/.tsv file with a text column, or an image folder (one subfolder per class)."),
    n: int = typer.Option(256, "-n", help="How many examples to draw."),
    output: Path = typer.Option(..., "-o", "--output", help="Directory to write (e.g. calibration/my-set)."),
    split: str = typer.Option("train", help="Which split of edgept's shared train/dev/test split to draw from."),
    seed: int = typer.Option(0, help="Seed for the draw."),
    license: str = typer.Option(None, help="License of the data, recorded in card.json."),
) -> None:
    """Draw a seeded calibration set from a data set's train split and write it with its card."""
    from edgept.quantize.calibration import make_calibration

    command = shlex.join(["edgept", "calibration", "make", "--data", data, "-n", str(n), "--split", split,
                          "--seed", str(seed), "-o", str(output)])
    path = make_calibration(data, output, n=n, seed=seed, split=split, license=license, command=command)
    out.print(f"wrote [bold]{path}[/]: {n} examples from the {split} split of {data}")
