"""`finetune`: train a classification head (and the encoder) on a data set, making a teacher."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import torch

from edgept.data import DataConfig, collate_for, load_splits
from edgept.eval import TorchEvaluator
from edgept.fileio import atomic_write_text
from edgept.train.config import TrainConfig
from edgept.train.loop import MODEL_DIR, fit
from edgept.train.objectives import ClassificationObjective

METRICS_FILE = "metrics.json"
_TASK = {"bert": "sequence-classification", "vit": "image-classification"}


def finetune(
    model: str | os.PathLike,
    data: DataConfig,
    out_dir: str | os.PathLike,
    config: TrainConfig,
    *,
    max_length: int = 128,
    resume: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Fine-tune `model` (a checkpoint dir or a shipped name) for classification on `data`.

    The head is fresh (seeded by `config.seed`) with the data's labels, unless the checkpoint
    already classifies exactly those labels. Trains on the train split with `fit`, keeps the best
    dev accuracy, and writes out_dir/model (an HF checkpoint dir with the source's tokenizer) and
    out_dir/metrics.json (dev and test accuracy and macro-F1, the data split and the settings),
    which it also returns.
    """
    from edgept.models.hf import load_model, read_config
    from edgept.zoo import resolve

    started = time.perf_counter()
    source = resolve(model)
    splits = load_splits(data)
    arch = read_config(source).arch
    torch.manual_seed(config.seed)  # the fresh head's initial weights
    net = load_model(source, task=_TASK[arch], labels=splits.labels)
    collate = collate_for(source, net.config, splits.kind, max_length=max_length)
    dev = TorchEvaluator(splits.dev, collate)
    out = Path(out_dir)
    result = fit(
        ClassificationObjective(net),
        splits.train,
        config,
        out,
        collate=collate,
        evaluate=dev,
        resume=resume,
        progress=progress,
        source=source,
    )
    metrics = {
        "model": str(source),
        "output": str(out / MODEL_DIR),
        "data": splits.describe(),
        "train": config.to_dict(),
        "max_length": getattr(collate, "max_length", None),
        "steps": result.steps,
        "best_step": result.best_step,
        "dev": dev(net),
        "test": TorchEvaluator(splits.test, collate)(net),
        "seconds": round(time.perf_counter() - started, 1),
    }
    atomic_write_text(out / METRICS_FILE, json.dumps(metrics, indent=2) + "\n")
    return metrics
