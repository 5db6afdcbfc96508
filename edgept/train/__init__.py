"""The one training loop of edgept: `fit(objective, train, TrainConfig(...), out_dir, collate=...)`.

finetune, distill, factorize --recover and pretrain all train through `fit`: AdamW with linear
warm-up and decay, gradient clipping, evaluation on dev with early stopping, atomic checkpoints
that `resume=True` continues bit for bit, and data parallelism over processes (`nproc`).
"""

from __future__ import annotations

from edgept.train.config import TrainConfig
from edgept.train.loop import FitResult, fit
from edgept.train.objectives import ClassificationObjective, Objective

__all__ = ["ClassificationObjective", "FitResult", "Objective", "TrainConfig", "fit"]
