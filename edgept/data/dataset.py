"""A labelled classification dataset in memory: items (texts, image paths or uint8 arrays), integer
targets, the label names, and where each example came from (file and line) for error messages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgept.errors import InputError

KINDS = ("text", "image")


@dataclass(frozen=True)
class ClassificationData:
    """`items[i]` has label `labels[targets[i]]` and came from `where:lines[i]`.

    Indexing gives `(item, target)` pairs, the examples a collate function receives.
    """

    kind: str  # "text" | "image"
    items: Sequence[Any]  # texts, image paths, or a (N, H, W) uint8 array
    targets: np.ndarray  # int64 (N,)
    labels: tuple[str, ...]
    where: str  # the file (or directory) the rows came from
    lines: np.ndarray  # int64 (N,): 1-based line (text files) or row number (images)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind {self.kind!r} is not one of {KINDS}")
        if not (len(self.items) == len(self.targets) == len(self.lines)):
            raise ValueError("items, targets and lines must have the same length")

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        return self.items[i], int(self.targets[i])

    def subset(self, indices: Sequence[int] | np.ndarray) -> ClassificationData:
        """The examples at `indices`, in that order."""
        idx = np.asarray(indices, dtype=np.int64)
        items = self.items[idx] if isinstance(self.items, np.ndarray) else [self.items[i] for i in idx]
        return ClassificationData(self.kind, items, self.targets[idx], self.labels, self.where, self.lines[idx])

    def relabel(self, labels: Sequence[str]) -> ClassificationData:
        """The same examples with targets re-indexed into `labels` (a model's label order).

        A label the model does not know is an `InputError` naming the first row that has it.
        """
        labels = tuple(labels)
        if labels == self.labels:
            return self
        position = {name: i for i, name in enumerate(labels)}
        mapping = np.array([position.get(name, -1) for name in self.labels], dtype=np.int64)
        targets = mapping[self.targets]
        bad = np.flatnonzero(targets < 0)
        if bad.size:
            row = int(bad[0])
            raise InputError(
                f"{self.where}:{self.lines[row]}: label {self.labels[self.targets[row]]!r} is not one of the "
                f"model's labels ({', '.join(labels)}); evaluate on data with the labels the model was trained on"
            )
        return ClassificationData(self.kind, self.items, targets, labels, self.where, self.lines)

    def counts(self) -> dict[str, int]:
        """Examples per label."""
        n = np.bincount(self.targets, minlength=len(self.labels))
        return {name: int(c) for name, c in zip(self.labels, n, strict=True)}


def sorted_labels(names: set[str]) -> tuple[str, ...]:
    """A stable label order: numerically when every label is an integer ("2" before "10"), else
    alphabetically, so the same file always gives the same label ids."""
    if all(_is_int(n) for n in names):
        return tuple(sorted(names, key=int))
    return tuple(sorted(names))


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True
