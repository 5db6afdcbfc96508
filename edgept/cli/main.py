"""The `edgept` command: a thin typer shell over the Python API.

Each command module imports what it needs inside the command, so `edgept --help` stays quick and
pulls in neither torch nor onnx. User errors (`EdgeptError`) print one line and exit non-zero.
"""

from __future__ import annotations

import sys

import typer

from edgept import __version__
from edgept.cli import (
    bench,
    calibration,
    compile,
    distill,
    doctor,
    evaluate,
    export,
    factorize,
    finetune,
    info,
    optimize,
    pretrain,
    prune,
    qat,
    quantize,
    run,
    targets,
    trim_vocab,
)
from edgept.errors import EdgeptError

app = typer.Typer(
    name="edgept",
    help="Make BERT and ViT encoders small and fast, and ship them: export, quantize, compile, bench, embed.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

for module in (info, export, bench, run, doctor, finetune, factorize, prune, evaluate, targets, compile, distill, quantize, calibration, qat, pretrain, optimize, trim_vocab):
    module.register(app)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"edgept {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """edgept: compress, export, quantize, compile, benchmark and embed transformer encoders."""


def main() -> None:
    """Console entry point: run the app, turning user errors into one line on stderr."""
    try:
        app()
    except EdgeptError as e:
        from edgept.cli.console import err

        err.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        print("interrupted; nothing half-written was left behind", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
