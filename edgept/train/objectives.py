"""What `fit` trains: an Objective turns a batch into a loss (and numbers to log)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgept.errors import ConfigError


class Objective(nn.Module):
    """forward(batch) -> (loss, logs). Trainable parameters are everything in it with
    requires_grad (a student plus, e.g., distillation projections); `.model` is the module whose
    weights are the result, saved with edgept.models.hf.save_model.

    The loss must be a mean over the batch's examples: with nproc > 1, `fit` weights each
    process's loss by its share of the global batch so the averaged gradient is the global mean's.
    """

    model: nn.Module

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        raise NotImplementedError


def model_inputs(batch: dict[str, Tensor]) -> dict[str, Tensor]:
    """The batch minus `labels`: what an edgept Bert (input_ids, ...) or ViT (pixel_values) takes."""
    return {k: v for k, v in batch.items() if k != "labels"}


class ClassificationObjective(Objective):
    """Cross-entropy of the model's logits against `batch["labels"]` (sequence or image classification)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        task = getattr(getattr(model, "config", None), "task", "")
        if not task.endswith("classification"):
            raise ConfigError(f"ClassificationObjective needs a classification model, got task {task!r}")
        self.model = model

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        logits = self.model(**model_inputs(batch)).logits
        labels = batch["labels"]
        loss = F.cross_entropy(logits, labels)
        with torch.no_grad():
            accuracy = (logits.argmax(-1) == labels).float().mean().item()
        return loss, {"accuracy": accuracy}
