"""ARCHITECTURE.md's layer table is the rule: every import in edgept/ is checked against it.

A module may import its own layer and those below it; a third-party package in the table's "may also
use" column is open to that layer and every layer above it. Imports inside functions count too (a
lazy import is still a dependency), so the whole source tree is read as ASTs, not imported.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "edgept"
# Third-party packages whose place matters (heavy, optional, or what the runtime must not pull in).
WATCHED = {"torch", "onnx", "onnxruntime", "tensorrt", "transformers", "matplotlib", "tokenizers", "PIL", "typer", "rich"}
_PIP_NAMES = {"pillow": "PIL"}


def layers() -> tuple[list[str], dict[str, set[str]]]:
    """(layer names bottom first, layer -> the watched packages it may use, its own and below)."""
    text = (ROOT / "ARCHITECTURE.md").read_text()
    table = re.search(r"<!-- layers: bottom first -->(.*?)<!-- /layers -->", text, re.S)
    assert table, "ARCHITECTURE.md lost its layer table markers"
    names, allowed, opened = [], {}, set()
    for row in table.group(1).strip().splitlines()[2:]:
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        names.append(cells[0].strip("`"))
        opened |= {_PIP_NAMES.get(p.strip().lower(), p.strip()) for p in cells[2].split(",") if p.strip()}
        allowed[names[-1]] = set(opened)
    return names, allowed


def component(module: str) -> str:
    """The layer a dotted edgept module belongs to: its top-level name under edgept."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "edgept"


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts[:-1]) if rel.name == "__init__" else list(rel.parts)
    return ".".join(parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in the file; `from edgept import zoo` counts as edgept.zoo.
    edgept uses absolute imports only (a relative one is reported as such)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                found.append((node.lineno, "." * node.level + (node.module or "")))
                continue
            found.append((node.lineno, node.module))
            if node.module == "edgept":
                found += [(node.lineno, f"edgept.{a.name}") for a in node.names if (PACKAGE / a.name).exists()
                          or (PACKAGE / f"{a.name}.py").exists()]
    return found


def sources() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "_shipped" not in p.parts)


def test_every_top_level_component_has_a_layer():
    names, _ = layers()
    present = {"edgept"} | {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    present |= {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert present - set(names) == set(), "add these to ARCHITECTURE.md's layer table"
    assert set(names) - present == set(), "ARCHITECTURE.md lists layers that do not exist"
    assert len(names) == len(set(names))


def violations() -> list[str]:
    names, allowed = layers()
    rank = {n: i for i, n in enumerate(names)}
    found = []
    for path in sources():
        mine = component(module_name(path))
        for line, target in imports(path):
            where = f"{path.relative_to(ROOT)}:{line}"
            top = target.split(".")[0]
            if not top:
                found.append(f"{where}: relative import {target}; edgept imports absolutely")
            elif top == "edgept":
                theirs = component(target)
                # The root package's lazy attributes load their layers on first use, not at import.
                if theirs != mine and rank[theirs] > rank[mine] and mine != "edgept":
                    found.append(f"{where}: {mine} imports {target}, a layer above it")
            elif top in WATCHED and top not in allowed[mine]:
                found.append(f"{where}: {mine} imports {top}, which ARCHITECTURE.md opens only to a higher layer")
    return found


def test_no_import_runs_up_the_layer_order():
    assert violations() == []


def test_the_checker_sees_an_upward_import():
    """The rule can fail: a runtime module importing the quantize stage or torch is caught."""
    bad = PACKAGE / "runtime" / "_architecture_probe.py"
    bad.write_text("from . import ort\n\n\ndef f():\n    from edgept.quantize import quantize\n    import torch\n")
    try:
        found = violations()
    finally:
        bad.unlink()
    assert any("runtime imports edgept.quantize" in v for v in found), found
    assert any("runtime imports torch" in v for v in found), found
    assert any("relative import" in v for v in found), found


def test_the_onnx_stages_load_without_torch():
    """Quantizing, compiling and benching a bundle is ONNX work: their modules do not pull in torch at
    import (compile exports a PyTorch source lazily; QAT is the one torch part of quantize)."""
    import json
    import subprocess
    import sys

    modules = ["edgept.quantize.quantize", "edgept.compile.compile", "edgept.backends.ort", "edgept.backends.trt",
               "edgept.bench", "edgept.parity", "edgept.runtime.ort"]
    code = ("import importlib, json, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            "print(json.dumps([m for m in ('torch', 'transformers', 'matplotlib', 'tensorrt') if m in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert json.loads(done.stdout) == []
