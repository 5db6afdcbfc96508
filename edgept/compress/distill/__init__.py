"""TinyBERT-style distillation (Jiao et al. 2020): a teacher checkpoint -> a smaller student.

    from edgept.compress.distill import DistillConfig, StudentShape, distill
    from edgept.data import DataConfig
    from edgept.train import TrainConfig

    distill("teacher/model", "out/student", DistillConfig(student=StudentShape(num_layers=3)),
            TrainConfig(epochs=3), data=DataConfig(source="rt-polarity"))

Pieces: `losses` (the four TinyBERT losses), `layer_map` (g(m), validated), `student` (shape and
init from the teacher), `objective` (`DistillObjective` for `edgept.train.fit`), `augment`
(TinyBERT's word replacement, batched), `config` (`DistillConfig`) and `distill` (the whole command).
"""

from __future__ import annotations

from edgept.compress.distill.augment import AugmentConfig, WordAugmenter
from edgept.compress.distill.config import DistillConfig
from edgept.compress.distill.distill import distill, read_corpus
from edgept.compress.distill.layer_map import (
    check_layer_map,
    parse_layer_map,
    resolve_layer_map,
    uniform_layer_map,
)
from edgept.compress.distill.objective import DistillObjective
from edgept.compress.distill.student import StudentShape, build_student

__all__ = [
    "AugmentConfig",
    "DistillConfig",
    "DistillObjective",
    "StudentShape",
    "WordAugmenter",
    "build_student",
    "check_layer_map",
    "distill",
    "parse_layer_map",
    "read_corpus",
    "resolve_layer_map",
    "uniform_layer_map",
]
