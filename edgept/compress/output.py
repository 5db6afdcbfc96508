"""Where a compression stage's checkpoint lands: an existing directory is replaced only when asked,
and the model with its report is written to a temporary sibling first, so a crash never leaves a
half-written checkpoint at `dest`."""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path
from typing import Any

from edgept.errors import InputError
from edgept.fileio import atomic_write_text, replace_dir


def check_output(dest: Path, overwrite: bool) -> None:
    """An existing `dest` is replaced only when asked to (checked before any long work)."""
    if dest.exists() and not overwrite:
        raise InputError(f"{dest} already exists; pass --force (overwrite=True) to replace it or choose another path")


def write_checkpoint_with_report(model: Any, source: Path, dest: Path, report_file: str, report_text: str) -> None:
    """Save `model` as a checkpoint (tokenizer files copied from `source`) with `report_file` beside it."""
    from edgept.models.hf import save_model

    tmp = dest.with_name(f".{dest.name}.tmp-{secrets.token_hex(4)}")
    try:
        save_model(model, tmp, source=source)
        atomic_write_text(tmp / report_file, report_text)
        replace_dir(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
