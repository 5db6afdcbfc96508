"""Structured FFN pruning: the intermediate neurons that matter least to the task, removed.

Each neuron's importance is the first-order Taylor estimate of the loss change if it were zeroed,
|a * dL/da| summed over the tokens of task examples (Molchanov et al. 2017; Michel et al. 2019 score
heads the same way), where `a` is its activation after the nonlinearity. Every layer keeps the same
number of neurons (its most important ones), so the result is a *dense*, standard model with a
smaller `intermediate_size`: it exports, quantizes and loads in transformers like any other, and the
FLOPs it saves are real ones, unlike unstructured sparsity, which dense CPU kernels cannot skip. A
block shared by several layers (ALBERT) has its importance summed over its uses and is cut once,
so it stays one set of weights. `edgept.compress.recover.prune_and_recover` then wins back what
the cut cost by distilling from the unpruned model.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgept.compress.output import check_output, write_checkpoint_with_report
from edgept.compress.prune.config import PruneConfig
from edgept.errors import ConfigError

REPORT_FILE = "prune_report.json"


@dataclass(frozen=True)
class PruneReport:
    """What `load_pruned` did: FFN width and unique parameters before/after, dev accuracy of the
    model before and of the pruned one (before any recovery), and how many examples scored it."""

    intermediate_before: int
    intermediate_after: int
    params_before: int
    params_after: int
    dev_accuracy_before: float
    dev_accuracy_pruned: float
    examples: int

    @property
    def drop(self) -> float:
        """Fraction of the parameters removed."""
        return 1.0 - self.params_after / self.params_before

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "drop": self.drop}


def kept_width(intermediate: int, keep: float) -> int:
    """`keep` of `intermediate` neurons, rounded to a multiple of 8 and at least 8 (never more than all)."""
    return min(intermediate, max(8, round(intermediate * keep / 8) * 8))


def ffn_importance(model: nn.Module, batches: list[dict[str, torch.Tensor]]) -> list[torch.Tensor]:
    """Per weight block, each FFN neuron's |activation x gradient| of the classification loss,
    summed over every token of `batches` (and over every layer that runs the block)."""
    import torch.nn.functional as F

    blocks = list(model.encoder.blocks)
    scores = [torch.zeros(b.ffn.up.out_features, dtype=torch.float64) for b in blocks]
    outputs: list[tuple[int, torch.Tensor]] = []

    def keep(i: int):
        def hook(_module, _inputs, out):
            out.retain_grad()
            outputs.append((i, out))

        return hook

    handles = [b.ffn.act.register_forward_hook(keep(i)) for i, b in enumerate(blocks)]
    was_training = model.training
    model.eval()  # no dropout: the importance in the network that will run
    try:
        for batch in batches:
            outputs.clear()
            inputs = {k: v for k, v in batch.items() if k != "labels"}
            F.cross_entropy(model(**inputs).logits, batch["labels"]).backward()
            for i, a in outputs:  # padding carries no gradient, so it adds nothing
                scores[i] += (a * a.grad).abs().sum(dim=tuple(range(a.dim() - 1))).double()
            model.zero_grad(set_to_none=True)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return scores


def prune_ffn(model: nn.Module, keep: list[torch.Tensor]) -> nn.Module:
    """A copy of `model` whose weight block i keeps the FFN neurons `keep[i]` (one count for all)."""
    from edgept.models import build_model

    widths = {len(k) for k in keep}
    if len(widths) != 1 or len(keep) != len(model.encoder.blocks):
        raise ValueError(f"need one index list per block, all of one length; got lengths {[len(k) for k in keep]}")
    pruned = build_model(model.config.replace(intermediate_size=widths.pop()))
    state = model.state_dict()
    for i, idx in enumerate(keep):
        p = f"encoder.blocks.{i}.ffn."
        state[p + "up.weight"] = state[p + "up.weight"][idx]
        state[p + "up.bias"] = state[p + "up.bias"][idx]
        state[p + "down.weight"] = state[p + "down.weight"][:, idx]
    pruned.load_state_dict(state)
    return pruned.train(model.training)


def load_pruned(source: str | os.PathLike, config: PruneConfig, *, data: Any) -> tuple[nn.Module, PruneReport]:
    """The classifier checkpoint `source` with its FFNs pruned by importance on `data`'s train split
    (a DataConfig), and the report; accuracies are on its dev split (test is never looked at)."""
    from edgept.data import collate_for, load_splits
    from edgept.eval import TorchEvaluator
    from edgept.models import parameter_breakdown
    from edgept.models.hf import load_model

    model = load_model(source)
    cfg = model.config
    if not cfg.task.endswith("classification"):
        raise ConfigError(f"{source} is a {cfg.task} model; pruning scores neurons by a classifier's loss: fine-tune it first")
    if cfg.ffn_rank is not None:
        raise ConfigError(f"{source} has low-rank FFNs (ffn_rank {cfg.ffn_rank}); prune the dense model, then factorize")
    splits = load_splits(data)
    collate = collate_for(source, cfg, splits.kind, max_length=config.max_length)
    g = torch.Generator().manual_seed(config.seed)
    pick = torch.randperm(len(splits.train), generator=g)[: config.examples].tolist()
    batches = [collate([splits.train[i] for i in pick[s : s + config.batch_size]]) for s in range(0, len(pick), config.batch_size)]
    scores = ffn_importance(model, batches)
    width = kept_width(cfg.intermediate_size, config.ffn_keep)
    # topk breaks ties by position only in practice; a stable sort of the scores makes it a rule.
    keep = [torch.sort(torch.argsort(s, descending=True, stable=True)[:width]).values for s in scores]
    pruned = prune_ffn(model, keep).eval()
    dev = TorchEvaluator(splits.dev, collate)
    report = PruneReport(
        intermediate_before=cfg.intermediate_size, intermediate_after=width,
        params_before=parameter_breakdown(model)["total"], params_after=parameter_breakdown(pruned)["total"],
        dev_accuracy_before=dev(model)["accuracy"], dev_accuracy_pruned=dev(pruned)["accuracy"], examples=len(pick),
    )  # fmt: skip
    return pruned, report


def report_json(config: PruneConfig, report: PruneReport) -> str:
    """The prune_report.json written beside a pruned checkpoint."""
    return json.dumps({"config": config.to_dict(), **report.to_dict()}, indent=2, sort_keys=True) + "\n"


def prune_checkpoint(
    source: str | os.PathLike, dest: str | os.PathLike, config: PruneConfig, *, data: Any, overwrite: bool = False
) -> PruneReport:
    """Prune the classifier checkpoint `source` into `dest` (a standard checkpoint, its tokenizer
    copied, prune_report.json beside it), written atomically."""
    source, dest = Path(source), Path(dest)
    check_output(dest, overwrite)
    model, report = load_pruned(source, config, data=data)
    write_checkpoint_with_report(model, source, dest, REPORT_FILE, report_json(config, report))
    return report


__all__ = ["REPORT_FILE", "PruneReport", "ffn_importance", "kept_width", "load_pruned", "prune_checkpoint", "prune_ffn", "report_json"]
