"""Recovery: win a cut model's accuracy back by distilling from the model it was cut from
(TinyBERT's losses and `edgept.train.fit`, through `distill`). `factorize_and_recover` and
`prune_and_recover` cut a checkpoint (factorized embeddings / layer sharing / low-rank FFNs, or
pruned FFN neurons and attention heads) and recover it.

The cut student has the teacher's depth and width, so the layer map is the identity and no
projection is learned: student layer m learns from teacher layer m. A classifier teacher gets
TinyBERT's two task stages (embedding/attention/hidden-state losses, then soft cross-entropy on
the logits); an encoder teacher, which has no logits, the first stage only.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgept.data import DataConfig
from edgept.fileio import atomic_write_text
from edgept.train.config import TrainConfig


def recovery_stage(task: str) -> str:
    """The distillation stage(s) that recover a model of this task (module doc)."""
    return "both" if task.endswith("classification") else "intermediate"


def recover(
    source: str | os.PathLike,
    dest: str | os.PathLike,
    cut: Callable[[Path], tuple[Any, str, dict[str, Any]]],
    train: TrainConfig,
    *,
    data: DataConfig,
    max_length: int = 128,
    augment: Any = None,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Cut the checkpoint `source` with `cut(source) -> (student, name, report)`, then train the
    student against `source` on `data` (each stage as `train` says; a report's `head_map` pairs the
    attention loss with the teacher heads a pruned student kept), writing the layout of
    `edgept distill` into `dest`: dest/model (the checkpoint, with <name>_report.json),
    checkpoints/, train_log.jsonl, intermediate/ (classifiers) and metrics.json. `augment` (an
    AugmentConfig) trains both stages on TinyBERT's augmented copies of `data`, as `distill` does.

    Returns the metrics: `distill`'s (teacher and recovered parameters, bytes, dev/test accuracy)
    plus `report` under `name`. `overwrite` replaces an existing `dest`; `resume` continues the
    run in it (the cut is deterministic, so it is redone).
    """
    from edgept.compress.distill import DistillConfig, distill
    from edgept.compress.distill.distill import METRICS_FILE
    from edgept.compress.output import check_output
    from edgept.train.loop import MODEL_DIR
    from edgept.zoo import resolve

    source, dest = resolve(source), Path(dest)
    if not resume:
        check_output(dest, overwrite)
    student, name, report = cut(source)
    depth = student.config.num_layers
    head_map = report.get("head_map")  # pruned heads learn from the heads they were
    config = DistillConfig(
        stage=recovery_stage(student.config.task), layer_map=tuple(range(1, depth + 1)), max_length=max_length,
        head_map=None if head_map is None else tuple(tuple(h) for h in head_map), augment=augment,
    )  # fmt: skip
    if overwrite and not resume:
        shutil.rmtree(dest, ignore_errors=True)  # an old run's checkpoints would otherwise be refused
    metrics = distill(source, dest, config, train, data=data, resume=resume, progress=progress, student=student.train())
    atomic_write_text(dest / MODEL_DIR / f"{name}_report.json", json.dumps(report, indent=2, sort_keys=True) + "\n")
    metrics[name] = report
    atomic_write_text(dest / METRICS_FILE, json.dumps(metrics, indent=2) + "\n")
    return metrics


def factorize_and_recover(
    source: str | os.PathLike, dest: str | os.PathLike, config: Any, train: TrainConfig, *, data: DataConfig, **kw: Any
) -> dict[str, Any]:
    """`recover` a factorization (`config`: a FactorizeConfig); the report is under "factorize"."""
    from edgept.compress.factorize import load_factorized

    def cut(path: Path) -> tuple[Any, str, dict[str, Any]]:
        student, report = load_factorized(path, config)
        return student, "factorize", {"config": config.to_dict(), **report.to_dict()}

    return recover(source, dest, cut, train, data=data, **kw)


def prune_and_recover(
    source: str | os.PathLike, dest: str | os.PathLike, config: Any, train: TrainConfig, *, data: DataConfig, **kw: Any
) -> dict[str, Any]:
    """`recover` a pruning (`config`: a PruneConfig, scored on `data`); the report is under "prune"."""
    from edgept.compress.prune import load_pruned

    def cut(path: Path) -> tuple[Any, str, dict[str, Any]]:
        student, report = load_pruned(path, config, data=data)
        return student, "prune", {"config": config.to_dict(), **report.to_dict()}

    return recover(source, dest, cut, train, data=data, **kw)
