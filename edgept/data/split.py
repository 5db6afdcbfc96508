"""The one train/dev/test split every command shares: stratified, seeded, recorded in outputs.

`finetune`, `distill` and `eval` all call `load_splits(DataConfig(...))`, so the test examples a
model is scored on are never ones it trained on, whatever command made it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edgept.configs import DictConfig
from edgept.data.dataset import ClassificationData
from edgept.data.images import read_image_folder
from edgept.data.shipped import SHIPPED
from edgept.data.tabular import read_text_table
from edgept.errors import ConfigError, InputError

SPLITS = ("train", "dev", "test")


@dataclass(frozen=True, kw_only=True)
class DataConfig(DictConfig):
    """Where the examples come from and how they are split.

    `source`: a shipped set's name (rt-polarity, fashion-mnist), a .jsonl/.csv/.tsv file, or an
    image folder (one subfolder per class). `dev`/`test`: fractions of each class held out, drawn
    with `seed` (a set with an official test split, like fashion-mnist, keeps it and carves only
    dev from its training part). The split depends on the data and these fields alone, never on
    a training seed, so every command sees the same split.
    """

    kind: ClassVar[str] = "data config"

    source: str
    text_column: str = "text"
    label_column: str = "label"
    dev: float = 0.1
    test: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.source, str) or not self.source:
            raise ConfigError(f"data source must be a shipped set name or a path, got {self.source!r}")
        for name in ("dev", "test"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and 0 < v < 0.5):
                raise ConfigError(f"{name} fraction must be in (0, 0.5), got {v!r}")
        if not self.text_column or not self.label_column:
            raise ConfigError("text_column and label_column must be non-empty column names")


@dataclass(frozen=True)
class Splits:
    """train/dev/test views of one data set, sharing its label names."""

    train: ClassificationData
    dev: ClassificationData
    test: ClassificationData
    config: DataConfig

    @property
    def labels(self) -> tuple[str, ...]:
        return self.train.labels

    @property
    def kind(self) -> str:
        return self.train.kind

    def get(self, name: str) -> ClassificationData:
        """One split by name (train, dev or test)."""
        if name not in SPLITS:
            raise ConfigError(f"split {name!r} is not one of {', '.join(SPLITS)}")
        return getattr(self, name)

    def describe(self) -> dict[str, Any]:
        """What outputs record about the data: its config, labels and split sizes."""
        return {**self.config.to_dict(), "labels": list(self.labels), "sizes": {s: len(self.get(s)) for s in SPLITS}}


def stratified_split(targets: np.ndarray, fractions: tuple[float, ...], seed: int) -> list[np.ndarray]:
    """Indices for the held-out parts (`fractions` of each class, rounded) and, last, the rest.

    Each class is shuffled with its own generator seeded by (seed, class), so adding a class or
    rows of another class leaves a class's split unchanged. Each part's indices are sorted.
    """
    parts: list[list[np.ndarray]] = [[] for _ in range(len(fractions) + 1)]
    for c in np.unique(targets):
        idx = np.flatnonzero(targets == c)
        idx = idx[np.random.default_rng([seed, int(c)]).permutation(len(idx))]
        start = 0
        for k, frac in enumerate(fractions):
            n = int(round(frac * len(idx)))
            parts[k].append(idx[start : start + n])
            start += n
        parts[-1].append(idx[start:])
    return [np.sort(np.concatenate(p)) for p in parts]


def load_data(config: DataConfig) -> tuple[ClassificationData, ClassificationData | None]:
    """All examples of `config.source`, and its official test set when it has one."""
    if config.source in SHIPPED:
        return SHIPPED[config.source].load()
    path = Path(config.source)
    if path.is_dir():
        return read_image_folder(path), None
    if not path.exists():
        raise InputError(
            f"{config.source}: no such file or directory, and not a shipped data set (known: {', '.join(SHIPPED)})"
        )
    return read_text_table(path, config.text_column, config.label_column), None


def load_splits(config: DataConfig) -> Splits:
    """Read `config.source` (every row checked now) and split it; see `DataConfig`."""
    data, official_test = load_data(config)
    if official_test is None:
        test, dev, train = stratified_split(data.targets, (config.test, config.dev), config.seed)
        splits = Splits(data.subset(train), data.subset(dev), data.subset(test), config)
    else:
        dev, train = stratified_split(data.targets, (config.dev,), config.seed)
        splits = Splits(data.subset(train), data.subset(dev), official_test, config)
    for name in SPLITS:
        if len(splits.get(name)) == 0:
            raise InputError(
                f"{data.where}: {len(data)} examples leave the {name} split empty "
                f"(dev {config.dev:g}, test {config.test:g} of each class); add examples"
            )
    return splits
