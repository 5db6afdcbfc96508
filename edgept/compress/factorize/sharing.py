"""ALBERT's cross-layer sharing for a trained encoder: layers of a group run one set of weights.

Groups are contiguous, as ALBERT's (and edgept's) `layer * groups // layers` mapping makes them.
The group's weights start from its layers in one of three ways:
- "mean": every parameter averaged over the group's layers;
- "first": the group's first layer;
- "middle": the group's middle layer (the later one of the two middles).

Measured on all-MiniLM-L6-v2 (`scripts/benchmarks/factorize_choices.py`: mean cosine of the last
hidden states to the unshared model on 64 real sentences):

    groups (layers each)   mean            first           middle      (token / sentence cosine)
    3 (2)                  0.398 / 0.243   0.517 / 0.387   0.453 / 0.391
    2 (3)                  0.372 / 0.186   0.416 / 0.272   0.365 / 0.209
    1 (6)                  0.363 / 0.153   0.222 / 0.101   0.281 / 0.182

"first" is the default: clearly best for partial sharing (3 and 2 groups), where a group's
later layers are refinements of its first and averaging blurs them; with all 6 layers in one
group the mean does better, so `share_init="mean"` is there for that case. Sharing alone, before
recovery, costs far more than embedding factorization at any E: it needs recovery training.
"""

from __future__ import annotations

import re

import torch
from torch import Tensor

SHARE_INITS = ("mean", "first", "middle")
DEFAULT_SHARE_INIT = "first"  # measured best for partial sharing (module doc)

_BLOCK = re.compile(r"^encoder\.blocks\.(\d+)\.(.+)$")


def members(num_layers: int, groups: int) -> list[list[int]]:
    """The layers each group runs, by edgept's (and transformers') ALBERT mapping."""
    out: list[list[int]] = [[] for _ in range(groups)]
    for layer in range(num_layers):
        out[layer * groups // num_layers].append(layer)
    return out


def _pick(tensors: list[Tensor], init: str) -> Tensor:
    if init == "mean":
        return torch.stack([t.to(torch.float64) for t in tensors]).mean(0).to(tensors[0].dtype)
    return tensors[0 if init == "first" else len(tensors) // 2].clone()


def share_layers(state: dict[str, Tensor], num_layers: int, groups: int, init: str) -> None:
    """Replace the per-layer blocks in `state` (in place) by `groups` shared ones, started by `init`."""
    per_layer: dict[str, dict[int, Tensor]] = {}
    for name in [n for n in state if _BLOCK.match(n)]:
        m = _BLOCK.match(name)
        assert m is not None
        per_layer.setdefault(m[2], {})[int(m[1])] = state.pop(name)
    for suffix, layers in per_layer.items():
        for g, group in enumerate(members(num_layers, groups)):
            state[f"encoder.blocks.{g}.{suffix}"] = _pick([layers[i] for i in group], init)
