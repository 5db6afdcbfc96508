"""Task accuracy of candidate graphs on a data set's dev split: what `--max-drop` budgets.

The dev split (edgept.data's shared seeded split) is tokenized once with the bundle's own
pre-processing; each candidate graph runs on those feeds and its argmax is scored against the
labels, matched by name to the bundle's label order (as edgept.eval does for bundles).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from edgept.bundle import Bundle
from edgept.errors import ConfigError, InputError
from edgept.quantize.int8 import outputs


@dataclass(frozen=True)
class TaskSet:
    """Feeds and targets of one split, ready for a bundle's graphs."""

    data: str
    split: str
    batches: tuple[dict[str, np.ndarray], ...]
    targets: np.ndarray

    def accuracy(self, proto: onnx.ModelProto) -> float:
        """Fraction of examples whose argmax of `proto`'s primary output is the target."""
        preds = np.concatenate([o.argmax(-1) for o in outputs(proto, self.batches)])
        return float((preds == self.targets).mean())

    def describe(self) -> dict[str, Any]:
        return {"data": self.data, "split": self.split, "examples": int(len(self.targets))}


def load_task(data: str, bundle: Bundle, split: str = "dev", batch_size: int = 32) -> TaskSet:
    """The `split` of `data` (a shipped set name or a .jsonl/.csv/.tsv path) as feeds for `bundle`."""
    from edgept.data import DataConfig, load_splits
    from edgept.preprocess import from_manifest

    if not (bundle.task or "").endswith("classification"):
        raise ConfigError(
            f"--max-drop/--data score task accuracy, but {bundle.path} is a {bundle.task} model; "
            "use --min-cosine for encoders without a classifier head"
        )
    part = load_splits(DataConfig(source=data)).get(split).relabel(bundle.labels or ())
    if part.kind != "text" or not bundle.preprocess:
        raise InputError(f"--data {data} is an {part.kind} set; --max-drop scores text classifiers (use --min-cosine)")
    pre = from_manifest(bundle.preprocess, bundle.path)
    items = list(part.items)
    batches = tuple(pre(items[i : i + batch_size]) for i in range(0, len(items), batch_size))
    return TaskSet(data=data, split=split, batches=batches, targets=np.asarray(part.targets))
