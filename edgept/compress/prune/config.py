"""`PruneConfig`: what share of each FFN's neurons structured pruning keeps, and what it scores them on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from edgept.configs import DictConfig
from edgept.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class PruneConfig(DictConfig):
    """ffn_keep: the share of every FFN's intermediate neurons kept (1.0 keeps all: the exact model),
    rounded to a multiple of 8 (whole SIMD lanes); the same width in every layer, so the result is a
    standard BERT/ViT (a smaller `intermediate_size`) that transformers loads. examples: train-split
    examples the importance is summed over, drawn with `seed`, in batches of `batch_size`, texts cut
    to `max_length` tokens."""

    kind: ClassVar[str] = "prune config"

    ffn_keep: float = 0.5
    examples: int = 512
    batch_size: int = 32
    max_length: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        if not (isinstance(self.ffn_keep, int | float) and 0.0 < self.ffn_keep <= 1.0):
            raise ConfigError(f"--ffn-keep is the share of FFN neurons kept, in (0, 1] (e.g. 0.5), got {self.ffn_keep}")
        for name, low in (("examples", 1), ("batch_size", 1), ("max_length", 2)):
            if getattr(self, name) < low:
                raise ConfigError(f"{name} must be >= {low}, got {getattr(self, name)}")
