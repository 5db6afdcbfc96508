"""Small file helpers every stage shares: content hashes and crash-safe writes."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

from edgept.errors import InputError

_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike) -> str:
    """Return the hex sha256 of a file's bytes, read in 1 MiB chunks so large models stay out of memory."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` so that readers see either the old file or the complete new one.

    The bytes go to a temp file in the same directory (a rename is only atomic within one
    filesystem), are flushed to disk, and replace `path` with `os.replace`. Replacing also gives
    `path` a fresh inode, so a file hard-linked from another bundle is never modified in place.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """`atomic_write_bytes` for text, encoded as UTF-8 (never the platform's default encoding)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def replace_dir(tmp: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Move the finished directory `tmp` (beside `target`) into place as `target`. An existing
    `target` is moved aside first, put back if the move fails, and deleted only once the new one
    stands, so readers see the old directory or the complete new one."""
    tmp, target = Path(tmp), Path(target)
    if not target.exists():
        os.replace(tmp, target)
        return target
    old = target.with_name(f".{target.name}.old-{secrets.token_hex(4)}")
    os.replace(target, old)
    try:
        os.replace(tmp, target)
    except BaseException:
        os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return target


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    """A JSON object from `path` (config.json, tokenizer_config.json, ...); anything else is a
    one-line InputError, naming the line and column of a syntax error."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InputError(f"{path} is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}; fix or re-save it") from None
    except (OSError, UnicodeDecodeError) as e:
        reason = " ".join(str(e).split())
        raise InputError(f"cannot read {path}: {reason}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path} must hold a JSON object, got {type(data).__name__}; fix or re-save it")
    return data
