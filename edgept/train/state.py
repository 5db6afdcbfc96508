"""Training checkpoints: everything needed to continue a run bit for bit.

`checkpoints/step-N/state.pt` holds the objective's weights, the optimizer and scheduler
states, every process's torch/numpy/python RNG states, the step (which fixes the position in the
epoch's shuffled order), the early-stopping bookkeeping and the log so far. It contains tensors
and plain containers only, so it loads with `torch.load(weights_only=True)`. Each step-N
directory appears atomically (temp dir + rename); older ones beyond `KEEP` are removed.
"""

from __future__ import annotations

import os
import random
import re
import secrets
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgept.errors import InputError

STATE_FILE = "state.pt"
KEEP = 2  # checkpoints kept: the newest can be mid-write when a machine dies, the one before is whole
_STEP_DIR = re.compile(r"^step-(\d+)$")


def capture_rng() -> dict[str, Any]:
    """This process's RNG states (torch CPU and CUDA, numpy's global, python's) as tensors/plain data."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": _to_lists(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Undo `capture_rng`: the next random numbers are the ones the captured process would have drawn."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    random.setstate(_to_tuples(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_lists(x: Any) -> Any:
    return [_to_lists(v) for v in x] if isinstance(x, tuple | list) else x


def _to_tuples(x: Any) -> Any:
    return tuple(_to_tuples(v) for v in x) if isinstance(x, list) else x


def save_state(checkpoints: Path, step: int, state: dict[str, Any]) -> Path:
    """Write `state` as checkpoints/step-<step>/state.pt atomically; keep the newest `KEEP`."""
    checkpoints.mkdir(parents=True, exist_ok=True)
    target = checkpoints / f"step-{step}"
    tmp = checkpoints / f".step-{step}.tmp-{secrets.token_hex(4)}"
    try:
        tmp.mkdir()
        with open(tmp / STATE_FILE, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        if target.exists():  # a resumed run re-reaching a step it had saved before the crash
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for old in _step_dirs(checkpoints)[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def _step_dirs(checkpoints: Path) -> list[Path]:
    if not checkpoints.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in checkpoints.iterdir() if (m := _STEP_DIR.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def load_latest(checkpoints: Path) -> dict[str, Any] | None:
    """The newest readable checkpoint's state, or None when there is none."""
    for directory in reversed(_step_dirs(checkpoints)):
        path = directory / STATE_FILE
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001  (a truncated file: fall back to the one before)
            last_error = f"{path}: {' '.join(str(e).split())[:200]}"
    if _step_dirs(checkpoints):
        raise InputError(f"no readable checkpoint in {checkpoints} (last error: {last_error}); start without --resume")
    return None
