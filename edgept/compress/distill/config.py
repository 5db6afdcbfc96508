"""`DistillConfig`: which distillation stage, which student, which layer map (training knobs are `TrainConfig`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from edgept.compress.distill.augment import AugmentConfig
from edgept.compress.distill.student import StudentShape
from edgept.configs import DictConfig
from edgept.errors import ConfigError

STAGES = ("intermediate", "prediction", "both", "general")


@dataclass(frozen=True, kw_only=True)
class DistillConfig(DictConfig):
    """What `distill` does (the training knobs are a separate `TrainConfig`).

    stage: `intermediate` (embedding, attention and hidden-state losses), `prediction` (soft
    cross-entropy at `temperature`, plus `hard_weight` x cross-entropy with the labels), `both`
    (the two in turn, as in TinyBERT; the second starts from the first's student), or `general`
    (intermediate losses on an unlabeled corpus). layer_map: teacher layer per student layer
    (1-based), None for TinyBERT's uniform map. head_map: for each student layer, the teacher heads
    (0-based) its heads learn from, in order (a head-pruned student: the heads it kept); None pairs
    head i with head i, or averages the heads when the counts differ. augment: TinyBERT's word
    replacement on the training texts, None for none. max_length: tokens per text.
    """

    kind: ClassVar[str] = "distill config"

    stage: str = "both"
    student: StudentShape = field(default_factory=StudentShape)
    layer_map: tuple[int, ...] | None = None
    head_map: tuple[tuple[int, ...], ...] | None = None
    temperature: float = 1.0
    hard_weight: float = 0.0
    augment: AugmentConfig | None = None
    max_length: int = 128

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ConfigError(f"--stage {self.stage!r} is not one of {', '.join(STAGES)}")
        if not self.temperature > 0:
            raise ConfigError(f"--temperature must be > 0, got {self.temperature}")
        if not self.hard_weight >= 0:
            raise ConfigError(f"hard_weight must be >= 0, got {self.hard_weight}")
        if isinstance(self.max_length, bool) or not isinstance(self.max_length, int) or self.max_length < 2:
            raise ConfigError(f"--max-length must be a whole number >= 2, got {self.max_length!r}")

    @classmethod
    def _coerce(cls, d: dict[str, Any]) -> dict[str, Any]:
        return {
            **d,
            "student": StudentShape.from_dict(d.get("student") or {}),
            "augment": None if d.get("augment") is None else AugmentConfig.from_dict(d["augment"]),
            "head_map": None if d.get("head_map") is None else tuple(tuple(h) for h in d["head_map"]),
        }

    @property
    def stages(self) -> tuple[str, ...]:
        """The objective stages run in order (`both` is two runs)."""
        return ("intermediate", "prediction") if self.stage == "both" else (self.stage,)
