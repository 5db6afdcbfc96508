"""`PruneConfig`: what share of each FFN's neurons and attention heads structured pruning keeps, and what it scores them on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from edgept.configs import DictConfig
from edgept.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class PruneConfig(DictConfig):
    """ffn_keep: the share of every FFN's intermediate neurons kept (1.0 keeps all: the exact model),
    rounded to a multiple of 8 (whole SIMD lanes); the same width in every layer, so the result is a
    standard BERT/ViT (a smaller `intermediate_size`) that transformers loads. heads_keep: the share
    of every layer's attention heads kept (rounded, at least one; 1.0 keeps all); the heads keep
    their width, so a model with pruned heads is saved in edgept's own layout (transformers 5 has
    no class for it) and exports, quantizes and loads in edgept like any other. examples: train-split
    examples the importance is summed over, drawn with `seed`, in batches of `batch_size`, texts cut
    to `max_length` tokens."""

    kind: ClassVar[str] = "prune config"

    ffn_keep: float = 0.5
    heads_keep: float = 1.0
    examples: int = 512
    batch_size: int = 32
    max_length: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        for flag, value, what in (("--ffn-keep", self.ffn_keep, "FFN neurons"), ("--heads-keep", self.heads_keep, "attention heads")):
            if not (isinstance(value, int | float) and 0.0 < value <= 1.0):
                raise ConfigError(f"{flag} is the share of {what} kept, in (0, 1] (e.g. 0.5), got {value}")
        for name, low in (("examples", 1), ("batch_size", 1), ("max_length", 2)):
            if getattr(self, name) < low:
                raise ConfigError(f"{name} must be >= {low}, got {getattr(self, name)}")
