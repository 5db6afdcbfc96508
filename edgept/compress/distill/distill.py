"""`distill`: a teacher checkpoint + data -> a smaller student checkpoint and metrics.json.

Everything that can be checked without weights or data (stage, student shape, layer map,
augmentation on images) is checked first, from the teacher's config.json alone, so a bad flag
fails before anything is loaded or trained.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgept.compress.distill.augment import AugmentConfig
from edgept.compress.distill.config import DistillConfig
from edgept.compress.distill.layer_map import resolve_layer_map
from edgept.compress.distill.student import StudentShape
from edgept.data import ClassificationData, DataConfig
from edgept.errors import ConfigError, InputError
from edgept.fileio import atomic_write_text
from edgept.train.config import TrainConfig

METRICS_FILE = "metrics.json"


def distill(
    teacher: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: DistillConfig,
    train: TrainConfig,
    *,
    data: DataConfig | None = None,
    corpus: Sequence[str | os.PathLike] = (),
    resume: bool = False,
    progress: bool = True,
    student: Any = None,
) -> dict[str, Any]:
    """Distill the `teacher` checkpoint dir into a student (TinyBERT) and write out_dir/model.

    `data` (labelled, the shared split) for the task stages, `corpus` (text files, one example per
    non-empty line) for `general`. `train` is the `edgept.train.TrainConfig` of each stage's
    `fit`; with `both`, the intermediate stage trains in out_dir/intermediate. Writes and returns
    out_dir/metrics.json: teacher and student parameters, checkpoint bytes and dev/test accuracy
    and macro-F1 (labelled data), the layer map, what was copied from the teacher, augmentation
    counts and time, and each stage's steps.

    `student`: a ready-made student instead of one built from `config.student` (which must then
    be left at its default): an edgept model (trained in place, e.g. a factorized copy of the
    teacher for recovery) or a checkpoint dir (e.g. a general-distilled student; a classifier
    teacher's task and labels are put on it, see `load_student`). `copied_from_teacher` is then None.
    """
    from edgept.models.hf import describe, load_model, read_config
    from edgept.zoo import resolve

    started = time.perf_counter()
    source = resolve(teacher)
    teacher_cfg = read_config(source)
    if student is not None and config.student != StudentShape():
        raise ConfigError("give the student either as a shape (--layers/--hidden/...) or ready-made, not both")
    if isinstance(student, str | os.PathLike):
        student = resolve(student)  # loaded with the teacher, after the checks
        student_cfg = read_config(student)
    else:
        student_cfg = config.student.config_for(teacher_cfg) if student is None else student.config
    layer_map = resolve_layer_map(config.layer_map, student_cfg.num_layers, teacher_cfg.num_layers)
    _check_inputs(config, teacher_cfg, data, corpus)

    net = load_model(source)
    splits, train_set = _training_data(config, net.config, data, corpus)
    from edgept.data import collate_for

    collate = collate_for(source, net.config, train_set.kind, max_length=config.max_length)
    augmented = None
    if config.augment is not None:
        train_set, augmented = _augment(net, source, train_set, config.augment)

    from edgept.compress.distill.objective import DistillObjective
    from edgept.compress.distill.student import build_student, load_student
    from edgept.eval import TorchEvaluator
    from edgept.train import fit

    if student is None:
        student, copied = build_student(net, config.student, layer_map, seed=train.seed)
    else:
        ready = load_student(student, net.config, seed=train.seed) if isinstance(student, Path) else student
        student, copied = ready.train(), None
    out = Path(out_dir)
    runs = []
    for i, stage in enumerate(config.stages):
        stage_dir = out if i == len(config.stages) - 1 else out / stage
        objective = DistillObjective(
            net, student, stage=stage, layer_map=layer_map, head_map=config.head_map, temperature=config.temperature,
            hard_weight=config.hard_weight, seed=train.seed,
        )  # fmt: skip
        # Only the prediction stage trains the head, so only it is chosen by dev accuracy.
        dev = TorchEvaluator(splits.dev, collate) if stage == "prediction" else None
        result = fit(
            objective, train_set, train, stage_dir, collate=collate, evaluate=dev,
            resume=resume, progress=progress, source=source,
        )  # fmt: skip
        runs.append({"stage": stage, "output": str(stage_dir), "steps": result.steps, "best_step": result.best_step})

    def report(model: Any, path: Path) -> dict[str, Any]:
        info = describe(path)
        scores = {}
        if splits is not None and model.config.task.endswith("classification"):
            scores = {s: TorchEvaluator(splits.get(s), collate)(model) for s in ("dev", "test")}
        return {"path": str(path), "params": info["params"], "bytes": info["bytes"], **scores}

    metrics = {
        "teacher": report(net, source),
        "student": report(student, out / "model"),
        "data": splits.describe() if splits is not None else {"corpus": [str(p) for p in corpus], "lines": len(train_set)},
        "layer_map": list(layer_map),
        "copied_from_teacher": None if copied is None else len(copied),
        "augment": augmented,
        "stages": runs,
        "distill": config.to_dict(),
        "train": train.to_dict(),
        "seconds": round(time.perf_counter() - started, 1),
    }
    if "test" in metrics["student"]:
        t, s = metrics["teacher"]["test"]["accuracy"], metrics["student"]["test"]["accuracy"]
        metrics["test_accuracy_vs_teacher"] = s / t if t else None
    atomic_write_text(out / METRICS_FILE, json.dumps(metrics, indent=2) + "\n")
    return metrics


def _check_inputs(config: DistillConfig, teacher: Any, data: DataConfig | None, corpus: Sequence[Any]) -> None:
    """The checks that need neither weights nor data."""
    general = config.stage == "general"
    if general and (not corpus or data is not None):
        raise ConfigError("--stage general distills on unlabeled text: give --corpus FILES (and no --data)")
    if not general and (data is None or corpus):
        raise ConfigError(f"--stage {config.stage} needs labelled --data (and no --corpus; that is for --stage general)")
    if general and teacher.arch != "bert":
        raise ConfigError(f"--stage general is for text teachers; {teacher.arch} teachers distill with --data")
    if "prediction" in config.stages and not teacher.task.endswith("classification"):
        raise ConfigError(
            f"--stage {config.stage} needs a classifier teacher but this one is {teacher.task!r}; "
            "fine-tune it first (edgept finetune) or use --stage intermediate"
        )
    if config.augment is not None and teacher.arch != "bert":
        raise ConfigError("--augment replaces words, so it is for text data; drop it for image data")


def _training_data(
    config: DistillConfig, teacher: Any, data: DataConfig | None, corpus: Sequence[Any]
) -> tuple[Any, ClassificationData]:
    """(the shared split or None, the training examples), labels in the teacher's order."""
    if data is None:
        return None, read_corpus(corpus)
    from edgept.data import load_splits

    splits = load_splits(data)
    if teacher.task.endswith("classification"):
        splits = dataclasses.replace(
            splits, **{s: splits.get(s).relabel(teacher.labels) for s in ("train", "dev", "test")}
        )
    return splits, splits.train


def read_corpus(paths: Sequence[str | os.PathLike]) -> ClassificationData:
    """Unlabeled text for general distillation: every non-empty line of the files, in order."""
    items, lines, where = [], [], []
    for p in paths:
        path = Path(p)
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            line = path.read_bytes()[: e.start].count(b"\n") + 1
            raise InputError(f"{path}:{line}: not UTF-8 text ({e.reason}); re-save the file as UTF-8") from None
        except OSError as e:
            raise InputError(f"cannot read corpus file {path}: {e.strerror}; check the path") from None
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                items.append(line.strip())
                lines.append(n)
        where.append(str(path))
    if not items:
        raise InputError(f"the corpus ({', '.join(where)}) has no non-empty lines; give text files with one example per line")
    n = len(items)
    return ClassificationData("text", items, np.zeros(n, dtype=np.int64), ("text",), ", ".join(where), np.array(lines))


def _augment(net: Any, source: Path, data: ClassificationData, config: AugmentConfig) -> tuple[ClassificationData, dict]:
    from edgept.compress.distill.augment import WordAugmenter
    from edgept.preprocess import TextPreprocessor

    started = time.perf_counter()
    tokenizer = TextPreprocessor.from_checkpoint(source).tokenizer
    groups = WordAugmenter(net, tokenizer, config).augment(list(data.items))
    index = np.repeat(np.arange(len(data)), [len(g) for g in groups])
    items = [s for g in groups for s in g]
    augmented = ClassificationData(data.kind, items, data.targets[index], data.labels, data.where, data.lines[index])
    stats = {"examples": len(data), "augmented": len(items), "seconds": round(time.perf_counter() - started, 1)}
    return augmented, {**config.to_dict(), **stats}
