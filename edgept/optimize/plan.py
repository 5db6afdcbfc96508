"""The plan: an ordered list of candidates (a torch model recipe x a precision), with time estimates.

Candidates are ordered cheapest first, so a tight time budget still ends with the teacher's own
bundles and the shallow students measured. Estimates scale from one teacher training step timed here on
real batches; they are for planning (--dry-run, the time budget), never reported as measurements.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from edgept.optimize.config import OptimizeConfig


@dataclass(frozen=True)
class ModelRecipe:
    """How one torch model is made: the teacher itself, or a student distilled from it."""

    name: str
    layers: int | None = None  # None: the teacher
    embedding_size: int | None = None
    ffn_keep: float | None = None  # the model `base` names, FFNs pruned to this share and recovered
    heads_keep: float | None = None  # ... and/or its attention heads pruned to this share
    base: str | None = None

    def describe(self) -> str:
        what = "the teacher" if self.layers is None else f"{self.layers}-layer student"
        if self.embedding_size:
            what += f", embeddings factorized to E={self.embedding_size}"
        cuts = [f"{part} pruned to {100 * keep:g}%" for part, keep in (("FFNs", self.ffn_keep), ("heads", self.heads_keep)) if keep]
        return what + (f", {' and '.join(cuts)} and recovered" if cuts else "")


@dataclass(frozen=True)
class Candidate:
    """One bundle the plan builds: a model compiled at one precision for the target."""

    model: ModelRecipe
    precision: str

    @property
    def name(self) -> str:
        return f"{self.model.name}-{self.precision}"


def recipes(config: OptimizeConfig, teacher_layers: int) -> list[ModelRecipe]:
    """The teacher, then each student depth shallowest first, each plain then factorized; the
    teacher and each plain student are followed by their pruned variants (made from them): one per
    FFN share, then one per heads share with the FFNs at `heads_ffn_keep` (head pruning pays where
    the FFNs are cut deep too: attention is then most of what is left)."""

    def with_pruned(recipe: ModelRecipe) -> list[ModelRecipe]:
        def cut(ffn: float | None, heads: float | None) -> ModelRecipe:
            name = recipe.name + (f"-ffn{round(100 * ffn)}" if ffn else "") + (f"-h{round(100 * heads)}" if heads else "")
            return ModelRecipe(name, recipe.layers, ffn_keep=ffn, heads_keep=heads, base=recipe.name)

        ffn = config.heads_ffn_keep if config.heads_ffn_keep < 1.0 else None
        return [recipe, *(cut(k, None) for k in config.ffn_keeps), *(cut(ffn, h) for h in config.heads_keeps)]

    out = with_pruned(ModelRecipe("teacher"))
    for depth in sorted({d for d in config.depths if d < teacher_layers}):
        out += with_pruned(ModelRecipe(f"s{depth}", depth))
        out += [ModelRecipe(f"s{depth}-e{e}", depth, e) for e in config.embedding_sizes]
    return out


def candidates(config: OptimizeConfig, teacher_layers: int, precisions: tuple[str, ...]) -> list[Candidate]:
    return [Candidate(r, p) for r in recipes(config, teacher_layers) for p in precisions]


def teacher_step_seconds(source: Any, splits: Any, config: OptimizeConfig, steps: int = 3) -> float:
    """Seconds of one training step (forward + backward) of the teacher on real batches of the train
    split, timed here after a warm-up step: what the estimates scale from."""
    import torch

    from edgept.data import collate_for
    from edgept.models.hf import load_model

    net = load_model(source)
    net.train()
    collate = collate_for(source, net.config, splits.kind, max_length=config.max_length)
    rng = torch.Generator().manual_seed(config.seed)
    times = []
    for _ in range(steps + 1):
        pick = torch.randint(0, len(splits.train), (config.batch_size,), generator=rng).tolist()
        batch = collate([splits.train[i] for i in pick])
        batch.pop("labels")
        start = time.perf_counter()
        out = net(**batch)
        (out.logits if out.logits is not None else out.last_hidden_state).float().pow(2).mean().backward()
        times.append(time.perf_counter() - start)
    return sorted(times[1:])[len(times[1:]) // 2]


def estimate_seconds(
    recipe: ModelRecipe, teacher_layers: int, config: OptimizeConfig, train_examples: int, step: float,
    finetune_teacher: bool,
) -> float:
    """Training seconds for `recipe` (0 for a teacher that needs no fine-tuning), from the teacher's
    measured step time `step`: a forward is about a third of a step, a student's step scales with its
    depth plus the teacher's forward, and augmentation is about one teacher forward per new text. A
    pruned model recovers in two stages from its unpruned base, each a step of the base's size plus
    the base's forward (a heads-pruned one on augmented copies, labelled by the base)."""
    forward = step / 3
    augment = config.steps["augment_copies"] * train_examples / config.batch_size * forward
    if recipe.base is not None:
        share = (recipe.layers or teacher_layers) / teacher_layers
        if recipe.heads_keep is None:
            return 2 * config.steps["prune_steps"] * share * (step + forward)
        return 2 * config.steps["heads_prune_steps"] * share * (step + forward) + share * augment
    if recipe.layers is None:
        return config.teacher_epochs(train_examples) * train_examples / config.batch_size * step if finetune_teacher else 0.0
    student_step = step * recipe.layers / teacher_layers + forward
    return config.steps["distill_steps"] * student_step + augment


def paced_estimate(recipe: ModelRecipe, estimate: float, finished: list[tuple[ModelRecipe, float, float]]) -> float:
    """`estimate` scaled by how long the finished models of the same kind (pruned or distilled) took
    against their own estimates: the step-time model is coarse (on a 6-class task a pruned teacher's
    recovery took 1626 s, about 0.6 of what the formula gave from a step timed while the machine
    was busy), and the time budget should skip only what will not fit."""
    same = [(e, took) for r, e, took in finished if (r.base is None) == (recipe.base is None) and e > 0]
    return estimate * sum(t for _, t in same) / sum(e for e, _ in same) if same else estimate


__all__ = ["Candidate", "ModelRecipe", "candidates", "estimate_seconds", "paced_estimate", "recipes",
           "teacher_step_seconds"]
