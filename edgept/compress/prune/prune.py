"""Structured pruning: the FFN neurons and attention heads that matter least to the task, removed.

Each neuron's importance is the first-order Taylor estimate of the loss change if it were zeroed,
|a * dL/da| summed over the tokens of task examples (Molchanov et al. 2017), where `a` is its
activation after the nonlinearity. A head's is Michel et al.'s (2019): |dL/dg| for a gate g = 1
on its output, i.e. |sum of ctx * dL/dctx| over the head's context vectors, per example, summed
over examples. Every layer keeps the same number of neurons and of heads (its most important
ones), so the result is a *dense* model (a smaller `intermediate_size`, fewer heads of the same
width) whose saved FLOPs are real ones, unlike unstructured sparsity, which dense CPU kernels
cannot skip. A model with only its FFNs cut is a standard BERT/ViT that transformers loads; pruned
heads make the query/key/value projections narrower than the hidden size, which only edgept's
own layout holds. A block shared by several layers (ALBERT) has its importance summed over its
uses and is cut once, so it stays one set of weights. `edgept.compress.recover.prune_and_recover`
then wins back what the cut cost by distilling from the unpruned model.
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
    """What `load_pruned` did: FFN width, heads per layer and unique parameters before/after, dev
    accuracy of the model before and of the pruned one (before any recovery), and how many
    examples scored it."""

    intermediate_before: int
    intermediate_after: int
    heads_before: int
    heads_after: int
    head_map: tuple[tuple[int, ...], ...]  # per layer, the original heads it kept (recovery pairs them up)
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


def kept_heads(num_heads: int, keep: float) -> int:
    """`keep` of `num_heads` heads, rounded, and at least one."""
    return max(1, round(num_heads * keep))


@dataclass(frozen=True)
class Importance:
    """Per weight block (summed over every layer that runs it): each FFN neuron's and each
    attention head's Taylor importance (module doc)."""

    ffn: list[torch.Tensor]
    heads: list[torch.Tensor]


def importance(model: nn.Module, batches: list[dict[str, torch.Tensor]]) -> Importance:
    """The Taylor importance of the classification loss on `batches` (module doc)."""
    import torch.nn.functional as F

    blocks = list(model.encoder.blocks)
    ffn = [torch.zeros(b.ffn.up.out_features, dtype=torch.float64) for b in blocks]
    heads = [torch.zeros(b.attn.num_heads, dtype=torch.float64) for b in blocks]
    acts: list[tuple[int, torch.Tensor]] = []
    contexts: list[tuple[int, torch.Tensor]] = []

    def tap(i: int, into: list[tuple[int, torch.Tensor]]):
        def keep(t: torch.Tensor) -> None:
            t.retain_grad()
            into.append((i, t))

        return keep

    handles = [
        h
        for i, b in enumerate(blocks)
        for h in (
            b.ffn.act.register_forward_hook(lambda _m, _i, out, keep=tap(i, acts): keep(out)),
            b.attn.o.register_forward_pre_hook(lambda _m, inputs, keep=tap(i, contexts): keep(inputs[0])),
        )
    ]
    was_training = model.training
    model.eval()  # no dropout: the importance in the network that will run
    try:
        for batch in batches:
            acts.clear()
            contexts.clear()
            inputs = {k: v for k, v in batch.items() if k != "labels"}
            F.cross_entropy(model(**inputs).logits, batch["labels"]).backward()
            for i, a in acts:  # padding carries no gradient, so it adds nothing
                ffn[i] += (a * a.grad).abs().sum(dim=tuple(range(a.dim() - 1))).double()
            # A shared block has one gate per head for all its uses: sum the uses, then take |.|.
            gates = [torch.zeros(len(batch["labels"]), len(h), dtype=torch.float64) for h in heads]
            for i, c in contexts:
                n = blocks[i].attn.num_heads
                gates[i] += (c * c.grad).unflatten(-1, (n, -1)).sum(dim=(1, 3)).double()
            for i, g in enumerate(gates):
                heads[i] += g.abs().sum(dim=0)
            model.zero_grad(set_to_none=True)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return Importance(ffn=ffn, heads=heads)


def _one_count(keep: list[torch.Tensor], model: nn.Module, what: str) -> int:
    counts = {len(k) for k in keep}
    if len(counts) != 1 or len(keep) != len(model.encoder.blocks):
        raise ValueError(f"need one {what} index list per block, all of one length; got lengths {[len(k) for k in keep]}")
    return counts.pop()


def prune_model(model: nn.Module, *, ffn: list[torch.Tensor] | None = None, heads: list[torch.Tensor] | None = None) -> nn.Module:
    """A copy of `model` whose weight block i keeps the FFN neurons `ffn[i]` and the attention
    heads `heads[i]` (one count per kind for all blocks; None keeps them all)."""
    from edgept.models import build_model

    cfg = model.config
    changes: dict[str, int | None] = {}
    if ffn is not None:
        changes["intermediate_size"] = _one_count(ffn, model, "FFN neuron")
    if heads is not None:
        n = _one_count(heads, model, "head")
        # Heads keep their width; only a model with all of them left spans hidden_size again.
        changes |= {"num_heads": n, "attention_head_size": None if n * cfg.head_dim == cfg.hidden_size else cfg.head_dim}
    pruned = build_model(cfg.replace(**changes))
    state = model.state_dict()
    for i in range(len(model.encoder.blocks)):
        p = f"encoder.blocks.{i}."
        if ffn is not None:
            idx = ffn[i]
            state[p + "ffn.up.weight"] = state[p + "ffn.up.weight"][idx]
            state[p + "ffn.up.bias"] = state[p + "ffn.up.bias"][idx]
            state[p + "ffn.down.weight"] = state[p + "ffn.down.weight"][:, idx]
        if heads is not None:
            d = cfg.head_dim
            idx = (heads[i][:, None] * d + torch.arange(d)).flatten()  # the rows of the kept heads
            for proj in ("q", "k", "v"):
                for t in ("weight", "bias"):
                    if p + f"attn.{proj}.{t}" in state:
                        state[p + f"attn.{proj}.{t}"] = state[p + f"attn.{proj}.{t}"][idx]
            state[p + "attn.o.weight"] = state[p + "attn.o.weight"][:, idx]
    pruned.load_state_dict(state)
    return pruned.train(model.training)


def _top(scores: torch.Tensor, count: int) -> torch.Tensor:
    # topk breaks ties by position only in practice; a stable sort of the scores makes it a rule.
    return torch.sort(torch.argsort(scores, descending=True, stable=True)[:count]).values


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
    scores = importance(model, batches)
    width, n_heads = kept_width(cfg.intermediate_size, config.ffn_keep), kept_heads(cfg.num_heads, config.heads_keep)
    heads = [_top(s, n_heads) for s in scores.heads]
    pruned = prune_model(model, ffn=[_top(s, width) for s in scores.ffn], heads=heads).eval()
    dev = TorchEvaluator(splits.dev, collate)
    report = PruneReport(
        intermediate_before=cfg.intermediate_size, intermediate_after=width, heads_before=cfg.num_heads, heads_after=n_heads,
        head_map=tuple(tuple(heads[cfg.group_of(layer)].tolist()) for layer in range(cfg.num_layers)),
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
    """Prune the classifier checkpoint `source` into `dest` (its tokenizer copied, prune_report.json
    beside it; a standard checkpoint unless heads were cut), written atomically."""
    source, dest = Path(source), Path(dest)
    check_output(dest, overwrite)
    model, report = load_pruned(source, config, data=data)
    write_checkpoint_with_report(model, source, dest, REPORT_FILE, report_json(config, report))
    return report


__all__ = [
    "REPORT_FILE", "Importance", "PruneReport", "importance", "kept_heads", "kept_width", "load_pruned", "prune_checkpoint",
    "prune_model", "report_json",
]  # fmt: skip
