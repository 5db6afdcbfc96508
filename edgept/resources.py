"""Where the shipped target profiles and calibration sets are, installed or in a checkout.

They live at the top of the repository (targets/, calibration/); edgept/_shipped/ holds links to
them, which a wheel turns into copies, so one lookup through the package serves both.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from edgept.errors import MissingDependencyError

KINDS = ("targets", "calibration")


def shipped(kind: str) -> Path:
    """The directory of shipped `kind` (one of KINDS)."""
    if kind not in KINDS:
        raise ValueError(f"unknown shipped kind {kind!r}; known: {', '.join(KINDS)}")
    path = Path(str(files("edgept") / "_shipped" / kind))
    if not path.is_dir():
        raise MissingDependencyError(
            f"this edgept install has no shipped {kind}/ ({path} is missing); reinstall edgept from its wheel or checkout"
        )
    return path


__all__ = ["KINDS", "shipped"]
