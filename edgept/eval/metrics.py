"""Classification metrics in numpy (no torch): used for PyTorch checkpoints and bundles alike."""

from __future__ import annotations

import numpy as np


def classification_metrics(targets: np.ndarray, predictions: np.ndarray, num_labels: int) -> dict[str, float]:
    """accuracy, and macro-F1: the unweighted mean of per-label F1 over the labels that occur in
    `targets` or `predictions` (scikit-learn's default; a label never seen nor predicted is left
    out, a precision or recall of 0/0 counts as 0)."""
    t = np.asarray(targets, dtype=np.int64)
    p = np.asarray(predictions, dtype=np.int64)
    if t.shape != p.shape or t.ndim != 1 or t.size == 0:
        raise ValueError(f"targets and predictions must be equal-length non-empty 1-d arrays, got {t.shape} and {p.shape}")
    confusion = np.bincount(t * num_labels + p, minlength=num_labels * num_labels).reshape(num_labels, num_labels)
    tp = np.diag(confusion).astype(np.float64)
    true_n, pred_n = confusion.sum(axis=1), confusion.sum(axis=0)
    present = (true_n + pred_n) > 0
    # F1 = 2 tp / (|true| + |predicted|): the harmonic mean of precision and recall, 0 when tp is 0.
    f1 = np.divide(2 * tp, true_n + pred_n, out=np.zeros(num_labels), where=present)
    return {"accuracy": float((t == p).mean()), "macro_f1": float(f1[present].mean())}
