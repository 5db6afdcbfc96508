"""`factorize_and_recover`: factorize a checkpoint, then win its accuracy back by distilling from
the unfactorized original (TinyBERT's losses and `edgept.train.fit`, through `distill`).

The factorized student has the teacher's depth, width and heads, so the layer map is the
identity and no projection is learned: student layer m learns from teacher layer m. A classifier
teacher gets TinyBERT's two task stages (embedding/attention/hidden-state losses, then soft
cross-entropy on the logits); an encoder teacher, which has no logits, the first stage only.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from edgept.compress.factorize import REPORT_FILE, FactorizeConfig, check_output, load_factorized, report_json
from edgept.data import DataConfig
from edgept.fileio import atomic_write_text
from edgept.train.config import TrainConfig


def recovery_stage(task: str) -> str:
    """The distillation stage(s) that recover a model of this task (module doc)."""
    return "both" if task.endswith("classification") else "intermediate"


def factorize_and_recover(
    source: str | os.PathLike,
    dest: str | os.PathLike,
    config: FactorizeConfig,
    train: TrainConfig,
    *,
    data: DataConfig,
    max_length: int = 128,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Factorize the checkpoint `source` as `config` says, then train it against `source` on
    `data` (each stage as `train` says), writing the layout of `edgept distill` into `dest`:
    dest/model (an HF ALBERT checkpoint, with factorize_report.json), checkpoints/,
    train_log.jsonl, intermediate/ (classifiers) and metrics.json.

    Returns the metrics: `distill`'s (teacher and recovered parameters, bytes, dev/test accuracy)
    plus `factorize` (the FactorizeReport and config). `overwrite` replaces an existing `dest`;
    `resume` continues the run in it (the factorization is deterministic, so it is redone).
    """
    from edgept.compress.distill import DistillConfig, distill
    from edgept.compress.distill.distill import METRICS_FILE
    from edgept.train.loop import MODEL_DIR
    from edgept.zoo import resolve

    source, dest = resolve(source), Path(dest)
    if not resume:
        check_output(dest, overwrite)
    student, report = load_factorized(source, config)
    depth = student.config.num_layers
    recover = DistillConfig(
        stage=recovery_stage(student.config.task), layer_map=tuple(range(1, depth + 1)), max_length=max_length
    )
    if overwrite and not resume:
        shutil.rmtree(dest, ignore_errors=True)  # an old run's checkpoints would otherwise be refused
    metrics = distill(source, dest, recover, train, data=data, resume=resume, progress=progress, student=student)
    atomic_write_text(dest / MODEL_DIR / REPORT_FILE, report_json(config, report))
    metrics["factorize"] = {"config": config.to_dict(), **report.to_dict()}
    atomic_write_text(dest / METRICS_FILE, json.dumps(metrics, indent=2) + "\n")
    return metrics
