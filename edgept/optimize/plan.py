"""The plan: an ordered list of candidates (a torch model recipe x a precision), with time estimates.

Candidates are ordered cheapest first, so a tight time budget still ends with the teacher's own
bundles and the shallow students measured. Estimates come from the FLOPs of each training step and
this machine's measured matmul rate; they are for planning (--dry-run, the time budget), never
reported as measurements.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from edgept.optimize.config import OptimizeConfig

# Share of the matmul rate a training step reaches on a CPU (attention, softmax, optimizer, data):
# measured ~0.3 here for MiniLM fine-tuning at batch 32, seq 64 (docs/results/distill.md timings).
TRAIN_EFFICIENCY = 0.3


@dataclass(frozen=True)
class ModelRecipe:
    """How one torch model is made: the teacher itself, or a student distilled from it."""

    name: str
    layers: int | None = None  # None: the teacher
    embedding_size: int | None = None

    def describe(self) -> str:
        if self.layers is None:
            return "the teacher"
        return f"{self.layers}-layer student" + (f", embeddings factorized to E={self.embedding_size}" if self.embedding_size else "")


@dataclass(frozen=True)
class Candidate:
    """One bundle the plan builds: a model compiled at one precision for the target."""

    model: ModelRecipe
    precision: str

    @property
    def name(self) -> str:
        return f"{self.model.name}-{self.precision}"


def recipes(config: OptimizeConfig, teacher_layers: int) -> list[ModelRecipe]:
    """The teacher, then each student depth shallowest first, each plain then factorized."""
    out = [ModelRecipe("teacher")]
    for depth in sorted({d for d in config.depths if d < teacher_layers}):
        out.append(ModelRecipe(f"s{depth}", depth))
        out += [ModelRecipe(f"s{depth}-e{e}", depth, e) for e in config.embedding_sizes]
    return out


def candidates(config: OptimizeConfig, teacher_layers: int, precisions: tuple[str, ...]) -> list[Candidate]:
    return [Candidate(r, p) for r in recipes(config, teacher_layers) for p in precisions]


def matmul_rate(seconds: float = 0.2) -> float:
    """This machine's fp32 matmul FLOP/s (torch, all its threads), measured for `seconds`."""
    import torch

    a = torch.randn(512, 512)
    a @ a  # warm-up
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ a
        n += 1
    return 2 * 512**3 * n / (time.perf_counter() - start)


def estimate_seconds(
    recipe: ModelRecipe, teacher: dict[str, Any], config: OptimizeConfig, train_examples: int, rate: float,
    finetune_teacher: bool,
) -> float:
    """Training seconds for `recipe` (0 for a teacher that needs no fine-tuning). `teacher` holds its
    `layers` and `encoder_params`; a student's encoder scales with its depth."""
    tokens = config.batch_size * config.max_length
    per_layer = teacher["encoder_params"] / teacher["layers"]
    if recipe.layers is None:
        if not finetune_teacher:
            return 0.0
        steps = config.steps["teacher_epochs"] * train_examples / config.batch_size
        flops = 6 * teacher["encoder_params"] * tokens
    else:
        steps = config.steps["distill_steps"]
        # A student step: its own forward + backward, and the teacher's forward.
        flops = (6 * recipe.layers * per_layer + 2 * teacher["encoder_params"]) * tokens
        # Augmentation: about one teacher forward per augmented copy of each training text.
        augment = config.steps["augment_copies"] * train_examples * 2 * teacher["encoder_params"] * config.max_length
        return (steps * flops + augment) / (rate * TRAIN_EFFICIENCY)
    return steps * flops / (rate * TRAIN_EFFICIENCY)


__all__ = ["Candidate", "ModelRecipe", "candidates", "estimate_seconds", "matmul_rate", "recipes"]
