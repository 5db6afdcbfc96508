"""Hugging Face checkpoint directories on disk: find the files, read them safely, write them atomically.

Nothing here knows about model layouts (see `mapping.py`). Reading never unpickles arbitrary
objects: safetensors is parsed by the safetensors library, a legacy `pytorch_model.bin` goes
through `torch.load(weights_only=True)`, which only rebuilds tensors and plain containers.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from edgept.errors import InputError
from edgept.fileio import read_json, replace_dir

# In the order transformers prefers them: safetensors first, the pickle-based .bin last.
WEIGHT_FILES = (
    ("model.safetensors", "safetensors", False),
    ("model.safetensors.index.json", "safetensors", True),
    ("pytorch_model.bin", "bin", False),
    ("pytorch_model.bin.index.json", "bin", True),
)
# Tokenizer and image-preprocessing files that travel with a checkpoint (`save_model(source=...)`).
# spiece.model: ALBERT's SentencePiece vocabulary; vocab.json/merges.txt: BPE tokenizers.
TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "spiece.model",
    "vocab.json",
    "merges.txt",
    "preprocessor_config.json",
)


def one_line(text: object) -> str:
    """Collapse a (library's) multi-line message to one line, for edgept's one-line errors."""
    return " ".join(str(text).split())


@dataclass(frozen=True)
class CheckpointFiles:
    """The files of one checkpoint directory: config.json, the weight files (every shard of a
    sharded checkpoint), their format, and the tokenizer/preprocessor files beside them."""

    root: Path
    config: Path
    weights: tuple[Path, ...]
    format: str  # "safetensors" | "bin"
    index: Path | None = None
    extras: tuple[Path, ...] = ()

    def sizes(self) -> dict[str, int]:
        """Bytes of every file above, by file name."""
        files = [self.config, *([self.index] if self.index else []), *self.weights, *self.extras]
        return {f.name: f.stat().st_size for f in files}


def checkpoint_files(path: str | os.PathLike) -> CheckpointFiles:
    """Locate config.json and the weight files of the checkpoint directory `path`.

    Raises `InputError` when the directory, its config.json or every weight file is missing.
    """
    root = Path(path)
    if not root.exists():
        raise InputError(
            f"checkpoint directory {root} does not exist; pass a directory holding config.json and model.safetensors"
        )
    if not root.is_dir():
        raise InputError(
            f"{root} is a file, not a checkpoint directory; pass the directory that holds it ({root.parent})"
        )
    present = sorted(p.name for p in root.iterdir())
    config = root / "config.json"
    if not config.is_file():
        raise InputError(
            f"no config.json in {root} (found: {_listing(present)}); a Hugging Face checkpoint directory "
            "needs config.json next to its weights (save it with save_pretrained)"
        )
    extras = tuple(root / n for n in TOKENIZER_FILES if (root / n).is_file())
    for name, fmt, sharded in WEIGHT_FILES:
        if (root / name).is_file():
            if not sharded:
                return CheckpointFiles(root, config, (root / name,), fmt, None, extras)
            shards = sorted(set(read_index(root / name).values()))
            return CheckpointFiles(root, config, tuple(root / s for s in shards), fmt, root / name, extras)
    expected = ", ".join(n for n, _, _ in WEIGHT_FILES)
    raise InputError(f"no weights in {root}: expected one of {expected} (found: {_listing(present)})")


def _listing(names: list[str], limit: int = 8) -> str:
    if not names:
        return "nothing"
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def read_index(path: Path) -> dict[str, str]:
    """The `weight_map` (tensor name -> shard file) of a sharded checkpoint's index.json."""
    weight_map = read_json(path).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise InputError(f"{path} has no 'weight_map' object; re-save the checkpoint")
    for shard in set(weight_map.values()):
        # Shards live beside the index; a path elsewhere is a broken (or hostile) index.
        if not isinstance(shard, str) or Path(shard).name != shard or not (path.parent / shard).is_file():
            raise InputError(
                f"{path} names shard {shard!r}, which is not a file in {path.parent}; re-download the checkpoint"
            )
    return weight_map


def tensor_shapes(files: CheckpointFiles) -> dict[str, list[int]]:
    """Name -> shape of every tensor, from the safetensors headers alone (a .bin must be loaded)."""
    if files.format == "safetensors":
        shapes: dict[str, list[int]] = {}
        for f in files.weights:
            shapes.update(_safetensors(f, shapes_only=True))
        return shapes
    return {k: list(v.shape) for k, v in read_tensors(files).items()}


def read_tensors(files: CheckpointFiles) -> dict[str, Tensor]:
    """Every tensor of the checkpoint (all shards), on the CPU, in the dtype it was stored in."""
    read = _safetensors if files.format == "safetensors" else _torch_bin
    tensors: dict[str, Tensor] = {}
    for f in files.weights:
        for name, t in read(f).items():
            if name in tensors:
                raise InputError(
                    f"tensor {name!r} appears in more than one shard of {files.root}; re-save the checkpoint"
                )
            tensors[name] = t
    return tensors


def _safetensors(path: Path, shapes_only: bool = False) -> dict[str, Any]:
    from safetensors import safe_open

    # Any failure here is the file's (truncated download, not safetensors at all): the library
    # raises SafetensorError, OSError or ValueError depending on where parsing stops.
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            if shapes_only:
                return {k: list(f.get_slice(k).get_shape()) for k in f.keys()}
            return {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # noqa: BLE001
        raise InputError(
            f"{path} is not a readable safetensors file ({one_line(e)}); it is truncated or corrupt: re-download or re-save it"
        ) from None


def _torch_bin(path: Path) -> dict[str, Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001  (zip, pickle and EOF errors alike mean a bad file)
        text = str(e)
        if "Unsupported global" in text:  # weights_only refused to rebuild some Python class
            raise InputError(
                f"{path} holds Python objects besides tensors; edgept loads weights only (torch.load weights_only=True): "
                "convert it to model.safetensors with a trusted tool"
            ) from None
        # torch's message is a paragraph about weights_only; the cause is after "WeightsUnpickler error:".
        reason = (
            one_line(text.split("WeightsUnpickler error:")[-1].split("Check the documentation")[0])
            .split(". ")[0]
            .rstrip(".")
        )
        raise InputError(
            f"{path} is not a readable PyTorch weights file ({reason}); re-download or re-save it"
        ) from None
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()
    ):
        raise InputError(f"{path} is not a flat name -> tensor state dict; re-save it with save_pretrained")
    return dict(state)


def write_checkpoint(
    path: str | os.PathLike,
    config: dict[str, Any],
    tensors: dict[str, Tensor],
    *,
    copy_files: Iterable[Path] = (),
    overwrite: bool = False,
) -> Path:
    """Write config.json, model.safetensors and `copy_files` as the directory `path`, atomically.

    Everything goes to a temp directory beside `path` that is renamed into place at the end, so
    a crash leaves either no directory or the previous one, never half a checkpoint.
    """
    from safetensors.torch import save_file

    target = Path(path)
    if target.exists() and not overwrite:
        raise InputError(f"{target} already exists; pass overwrite=True to replace it or choose another path")
    if target.exists() and not target.is_dir():
        raise InputError(f"{target} is a file, not a checkpoint directory; remove it or choose another path")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{secrets.token_hex(4)}")
    try:
        tmp.mkdir()
        # metadata format=pt: transformers refuses safetensors files without it.
        save_file(
            {k: v.contiguous() for k, v in tensors.items()},
            str(tmp / "model.safetensors"),
            metadata={"format": "pt"},
        )
        (tmp / "config.json").write_text(
            json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
        for f in copy_files:
            shutil.copyfile(f, tmp / f.name)
        for f in tmp.iterdir():  # durable before the rename makes them visible
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        replace_dir(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
