"""Score a PyTorch checkpoint or a bundle on one split of a data set: accuracy and macro-F1.

A checkpoint runs in PyTorch with the collate training uses; a bundle runs through the runtime
(`Session.predict`, numpy + onnxruntime), so the two numbers compare the deployed model with its
source on exactly the same examples.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from edgept.data import ClassificationData, DataConfig, load_splits
from edgept.errors import ConfigError
from edgept.eval.metrics import classification_metrics


class TorchEvaluator:
    """`evaluate(model) -> {"accuracy", "macro_f1"}` on fixed examples: what `fit` calls on dev.

    A plain class (not a closure) so it pickles into data-parallel workers.
    """

    def __init__(self, data: ClassificationData, collate: Any, batch_size: int = 64):
        self.data, self.collate, self.batch_size = data, collate, batch_size

    def predictions(self, model: Any) -> np.ndarray:
        """Argmax label ids of `model` over every example, in order."""
        return self.logits(model).argmax(-1)

    def logits(self, model: Any) -> np.ndarray:
        """(examples, classes) logits of `model` (eval mode, no gradients) over every example, in order."""
        import torch

        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        out = []
        with torch.no_grad():
            for start in range(0, len(self.data), self.batch_size):
                examples = [self.data[i] for i in range(start, min(start + self.batch_size, len(self.data)))]
                batch = {k: v.to(device) for k, v in self.collate(examples).items() if k != "labels"}
                out.append(model(**batch).logits.float().cpu().numpy())
        model.train(was_training)
        return np.concatenate(out)

    def __call__(self, model: Any) -> dict[str, float]:
        preds = self.predictions(model)
        return classification_metrics(self.data.targets, preds, len(self.data.labels))


def _require_classifier(task: str | None, where: Any) -> None:
    if not (task or "").endswith("classification"):
        raise ConfigError(
            f"{where} is a {task} model; eval needs a classifier (make one with `edgept finetune {where} --data ...`)"
        )


def is_bundle(path: str | os.PathLike) -> bool:
    return (Path(path) / "manifest.json").is_file()


def evaluate(
    model: str | os.PathLike,
    data: DataConfig,
    split: str = "test",
    *,
    max_length: int = 128,
    batch_size: int = 64,
) -> dict[str, Any]:
    """Accuracy and macro-F1 of `model` (a checkpoint dir, a shipped name or a bundle dir) on
    `split` of `data`. Labels are matched by name to the model's; a label the model does not
    know is an InputError naming the row. `max_length` applies to checkpoints; a bundle uses the
    length it was exported with.

    Returns {model, format ("checkpoint"|"bundle"), data (config, labels, sizes), split,
    examples, accuracy, macro_f1}.
    """
    splits = load_splits(data)
    part = splits.get(split)
    if is_bundle(model):
        from edgept.runtime import load

        session = load(model)
        _require_classifier(session.bundle.task, model)
        part = part.relabel(session.bundle.labels or ())
        preds = np.array([p.index for p in session.predict(list(part.items), batch_size=batch_size)], dtype=np.int64)
        fmt = "bundle"
    else:
        from edgept.data import collate_for
        from edgept.models.hf import load_model
        from edgept.zoo import resolve

        source = resolve(model)
        net = load_model(source)
        _require_classifier(net.config.task, source)
        part = part.relabel(net.config.labels)
        collate = collate_for(source, net.config, part.kind, max_length=max_length)
        preds = TorchEvaluator(part, collate, batch_size).predictions(net)
        fmt = "checkpoint"
    metrics = classification_metrics(part.targets, preds, len(part.labels))
    return {
        "model": str(model),
        "format": fmt,
        "data": splits.describe(),
        "split": split,
        "examples": len(part),
        **metrics,
    }
