"""`edgept info PATH`: what a checkpoint or a bundle holds, and what it costs in bytes."""

from __future__ import annotations

from pathlib import Path

import typer

from edgept.cli.console import out


def register(app: typer.Typer) -> None:
    app.command("info")(info_cmd)


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def _millions(n: int) -> str:
    return f"{n / 1e6:.2f}M"


def _checkpoint(path: Path) -> None:
    from rich.table import Table

    from edgept.models.hf import describe

    d = describe(path)
    cfg = d["config"]
    shape = f"{cfg['num_layers']} layers x {cfg['hidden_size']}, {cfg['num_heads']} heads"
    if cfg.get("embedding_size") not in (None, cfg["hidden_size"]):
        shape += f", embeddings {cfg['embedding_size']}"
    if cfg.get("num_groups") not in (None, cfg["num_layers"]):
        shape += f", {cfg['num_groups']} shared group(s)"
    out.print(f"[bold]{d['path']}[/]")
    out.print(f"{d['architecture']} ({d['model_type']} -> edgept {d['arch']}), task {d['task']}: {shape}")
    if d["labels"]:
        out.print(f"labels: {', '.join(d['labels'])}")
    params = d["params"]
    table = Table(title="parameters (shared weights counted once)")
    for col in ("part", "parameters", "share", "fp32 bytes"):
        table.add_column(col, justify="right" if col != "part" else "left")
    for part in ("embeddings", "encoder", "heads", "total"):
        n = params[part]
        table.add_row(part, _millions(n), f"{100 * n / max(params['total'], 1):.1f}%", _mib(4 * n))
    out.print(table)
    files = ", ".join(f"{name} {_mib(b)}" for name, b in d["files"].items())
    out.print(f"files ({d['format']}): {files}; total {_mib(d['bytes'])}")


def _bundle(path: Path) -> None:
    from rich.table import Table

    from edgept.bundle import Bundle

    b = Bundle.open(path)
    m = b.manifest["model"]
    out.print(f"[bold]{b.path}[/] (bundle schema {b.manifest['schema']}, edgept {b.manifest.get('edgept_version')})")
    out.print(f"{m['arch']} {m['task']}, {_millions(m['params'])} parameters" + (f", labels: {', '.join(m['labels'])}" if m.get("labels") else ""))
    for kind, specs in (("inputs", b.inputs), ("outputs", b.outputs)):
        out.print(f"{kind}: " + "; ".join(f"{s.name} {s.dtype} [{', '.join(map(str, s.dims))}]" for s in specs))
    passes = Table(title="passes")
    for col in ("pass", "metrics"):
        passes.add_column(col)
    for p in b.passes:
        metrics = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in p.get("metrics", {}).items() if not isinstance(v, dict))
        passes.add_row(p["pass"], metrics)
    out.print(passes)
    out.print("files: " + ", ".join(f"{name} {_mib(a['bytes'])}" for name, a in b.artifacts.items()))


def info_cmd(
    path: str = typer.Argument(..., help="A checkpoint directory, a shipped model name (minilm), or a bundle."),
) -> None:
    """Architecture, parameter counts (embeddings / encoder / heads) and file sizes of a model or bundle."""
    from edgept.zoo import resolve

    where = resolve(path)
    if (where / "manifest.json").exists():
        _bundle(where)
    else:
        _checkpoint(where)
