"""`edgept targets list` and `edgept targets show NAME`: the device profiles in targets/*.toml."""

from __future__ import annotations

import typer

from edgept.cli.console import err, out

targets_app = typer.Typer(help="Device profiles (targets/*.toml) that `edgept compile --target` accepts.",
                          no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(targets_app, name="targets")


@targets_app.command("list")
def list_cmd() -> None:
    """List the shipped target profiles and what the family names (cpu, gpu, jetson) resolve to here."""
    from rich.table import Table

    from edgept.targets import FAMILY_DEFAULTS, load_target, resolve_target, shipped_targets

    table = Table(title="edgept targets")
    for col in ("name", "backend", "precisions", "description"):
        table.add_column(col)
    for name, path in shipped_targets().items():
        t = load_target(path)
        table.add_row(name, t.backend.name, ", ".join(t.build.precisions), t.description)
    out.print(table)
    for family in ("cpu", *FAMILY_DEFAULTS):
        out.print(resolve_target(family)[1], highlight=False)


@targets_app.command("show")
def show_cmd(name: str = typer.Argument(..., help="A target name, a family (cpu, gpu, jetson) or a .toml path.")) -> None:
    """Show one target profile, section by section, as edgept parsed it."""
    from edgept.targets import resolve_target

    target, note = resolve_target(name)
    if note:
        err.print(note, highlight=False)
    data = target.to_dict()
    out.print(f"[bold]{target.name}[/]: {target.description} (family {target.family}; {target.source})")
    for section in ("device", "backend", "build", "quantize", "shapes", "bench"):
        out.print(f"[{section}]", markup=False)
        for key, value in data[section].items():
            if value is not None:
                out.print(f"  {key} = {value}", highlight=False, markup=False)
