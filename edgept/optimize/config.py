"""`OptimizeConfig`: the accuracy budget, the time budget, and which candidates the plan may try."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from edgept.configs import DictConfig
from edgept.errors import ConfigError

# Named schedules: training steps (teacher fine-tune, each distillation) and bench calls. "default" is
# the recipe docs/results/distill.md measured a 3-layer student within 1 point of the teacher with
# (prediction-layer distillation at lr 1e-4 with augmentation); "short" is `make demo`'s. The teacher
# trains `teacher_epochs` but at least `teacher_min_steps`: 2 epochs are 533 steps on rt-polarity (the
# teacher every result starts from), while a task of 3000 texts got 180 steps and a teacher its own
# distilled students beat on dev (docs/results/optimize-austen.md); small sets need more steps, not
# more epochs' worth of data (Mosbach et al., 2021). fit keeps the best epoch on dev. Pruning
# recovers for `prune_steps` per stage: 400 brought MiniLM's FFN 50% / 25% + int8 to -0.09 / +0.47 test
# points of the teacher (docs/results/size.md), at 40% of the 1000 the first plan spent. A model with
# its heads pruned too is cut deeper and recovers for `heads_prune_steps` per stage on the augmented
# copies: 250 steps without them left MiniLM with FFN 12.5% + 33% of its heads 2.5 points short, 2000
# on 20 copies brought FFN 12.5% + 25% of the heads to fp32 test -0.28 (docs/results/size.md).
SCHEDULES = {
    "default": {"teacher_epochs": 2.0, "teacher_min_steps": 500, "distill_steps": 3000, "augment_copies": 20, "prune_steps": 400,
                "heads_prune_steps": 2000, "bench_runs": 100},
    "short": {"teacher_epochs": 0.25, "teacher_min_steps": 0, "distill_steps": 200, "augment_copies": 0, "prune_steps": 100,
              "heads_prune_steps": 100, "bench_runs": 30},
}


@dataclass(frozen=True, kw_only=True)
class OptimizeConfig(DictConfig):
    """What `optimize` searches and how it chooses.

    target: a target name, family or TOML path (its allowed precisions are the quantizations tried).
    max_drop: the accuracy budget, in points of dev accuracy below the teacher's (test is reported,
      never used to choose). time_budget: seconds for the whole run (None: no limit); a candidate whose
      estimate does not fit in what is left is skipped and reported as such.
    depths: the distilled students' layer counts; embedding_sizes: for each depth, also a student
      with ALBERT-factorized embeddings of this width (fewer bytes, same speed). ffn_keeps: for the
      teacher and each plain student, also that model with every FFN pruned to this share of its
      neurons (edgept.compress.prune) and recovered by distillation from it (`prune_steps` per stage);
      25% is in the default because on MiniLM it was the fastest FFN-only lever within a point (docs/results/size.md).
      heads_keeps: for each of them, also one with its attention heads pruned to this share and its
      FFNs to heads_ffn_keep (1.0: FFNs whole), recovered `heads_prune_steps` per stage on augmented
      copies. The default, a quarter of the heads and an eighth of the FFNs, made MiniLM >= 4x ORT's
      dynamic INT8 at b1 s128 within a point of its test accuracy (docs/results/size.md).
    schedule: "default" or "short" (SCHEDULES); max_length: tokens per text; seed: every random choice.
    """

    kind: ClassVar[str] = "optimize config"

    target: str
    max_drop: float = 1.0
    time_budget: float | None = None
    depths: tuple[int, ...] = (3, 2)
    embedding_sizes: tuple[int, ...] = (128,)
    ffn_keeps: tuple[float, ...] = (0.5, 0.25)
    heads_keeps: tuple[float, ...] = (0.25,)
    heads_ffn_keep: float = 0.125
    schedule: str = "default"
    max_length: int = 64
    batch_size: int = 32
    lr: float = 1e-4
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_drop <= 100.0:
            raise ConfigError(f"--max-drop is in accuracy points in [0, 100] (e.g. 1.0), got {self.max_drop}")
        if self.time_budget is not None and not self.time_budget > 0:
            raise ConfigError(f"--time-budget must be positive (e.g. 3h, 90m), got {self.time_budget}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"--schedule {self.schedule!r} is not one of: {', '.join(SCHEDULES)}")
        object.__setattr__(self, "depths", tuple(int(d) for d in self.depths))
        object.__setattr__(self, "embedding_sizes", tuple(int(e) for e in self.embedding_sizes))
        if any(d < 1 for d in self.depths) or any(e < 1 for e in self.embedding_sizes):
            raise ConfigError(f"depths and embedding sizes must be positive, got {self.depths} and {self.embedding_sizes}")
        for field, flag, what in (("ffn_keeps", "--prune-ffn", "FFN neurons"), ("heads_keeps", "--prune-heads", "attention heads")):
            keeps = tuple(float(k) for k in getattr(self, field))
            object.__setattr__(self, field, keeps)
            if any(not 0.0 < k < 1.0 for k in keeps):
                raise ConfigError(f"{flag} takes percents of {what} kept, each below 100 (e.g. 50), got {[100 * k for k in keeps]}")
        if not 0.0 < self.heads_ffn_keep <= 1.0:
            raise ConfigError(f"--prune-heads-ffn is a percent of FFN neurons kept in (0, 100], got {100 * self.heads_ffn_keep:g}")
        if self.max_length < 2:
            raise ConfigError(f"--max-length must be >= 2, got {self.max_length}")

    @property
    def steps(self) -> dict[str, float]:
        return SCHEDULES[self.schedule]

    def teacher_epochs(self, train_examples: int) -> float:
        """Epochs of the teacher's fine-tuning on a train split this size: the schedule's, or more
        where they would be fewer than its `teacher_min_steps`."""
        steps_per_epoch = max(1.0, train_examples / self.batch_size)
        return max(self.steps["teacher_epochs"], self.steps["teacher_min_steps"] / steps_per_epoch)


def parse_duration(text: str) -> float:
    """Seconds in "3h", "90m", "45s", "1h30m" or a bare number of seconds; else a one-line ConfigError."""
    import re

    t = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", t):
        return float(t)
    parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?", t)
    if not t or not parts or not any(parts.groups()):
        raise ConfigError(f"--time-budget {text!r} is not a duration; use e.g. 3h, 90m, 1h30m or 600 (seconds)")
    h, m, s = (float(g) if g else 0.0 for g in parts.groups())
    return 3600 * h + 60 * m + s


__all__ = ["SCHEDULES", "OptimizeConfig", "parse_duration"]
