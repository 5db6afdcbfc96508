"""Image classification data: a folder tree (one subfolder per class) and gzipped IDX files (MNIST's format)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from edgept.data.dataset import ClassificationData
from edgept.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
_IDX_MAGIC = {1: 2049, 3: 2051}  # dims -> magic number of an unsigned-byte IDX file


def read_image_folder(root: str | Path) -> ClassificationData:
    """Every image under `root/<class>/` (class = subfolder name, sorted). Each file's header is
    read now, so an unreadable image stops the command before training, naming the file."""
    from edgept.preprocess.image import _pil

    root = Path(root)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise InputError(
            f"{root}: an image folder needs at least 2 class subfolders (found: {', '.join(classes) or 'none'}); "
            "put each class's images in root/<class>/"
        )
    image = _pil()
    paths, targets = [], []
    for i, name in enumerate(classes):
        files = sorted(p for p in (root / name).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise InputError(f"{root / name}: no images ({', '.join(IMAGE_SUFFIXES)}); remove the folder or add images")
        for f in files:
            try:
                with image.open(f) as im:
                    im.verify()
            except Exception as e:  # noqa: BLE001  (Pillow raises many types for a bad file)
                raise InputError(f"{f}: not a readable image ({e}); remove or replace it") from None
            paths.append(f)
            targets.append(i)
    return ClassificationData(
        "image", paths, np.array(targets, dtype=np.int64), tuple(classes), str(root), np.arange(1, len(paths) + 1)
    )


def read_idx(path: Path, dims: int) -> np.ndarray:
    """A uint8 IDX file (gzipped): labels (dims=1, header 8 bytes) or images (dims=3, header 16)."""
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as e:
        raise InputError(f"cannot read {path} ({e}); reinstall the package that ships it") from None
    header = 4 + 4 * dims
    magic = int.from_bytes(raw[:4], "big")
    if magic != _IDX_MAGIC[dims]:
        raise InputError(f"{path}: not an IDX file of {dims}-d uint8 data (magic {magic}); reinstall the package")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    data = np.frombuffer(raw, dtype=np.uint8, offset=header)
    if data.size != int(np.prod(shape)):
        raise InputError(f"{path}: {data.size} bytes of data but the header says {shape}; the file is truncated")
    return data.reshape(shape)
