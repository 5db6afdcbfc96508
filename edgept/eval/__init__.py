"""`evaluate(model_or_bundle, DataConfig(...), split="test")`: accuracy and macro-F1 on the shared split."""

from __future__ import annotations

from edgept.eval.evaluate import TorchEvaluator, evaluate, is_bundle
from edgept.eval.metrics import classification_metrics

__all__ = ["TorchEvaluator", "classification_metrics", "evaluate", "is_bundle"]
