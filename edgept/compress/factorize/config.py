"""`FactorizeConfig`: which ALBERT-style factorizations `factorize` applies, validated once."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from edgept.compress.factorize.sharing import DEFAULT_SHARE_INIT, SHARE_INITS
from edgept.configs import DictConfig
from edgept.errors import ConfigError

_GROUPS = re.compile(r"^groups:(\d+)$")


def _fraction(name: str, value: float | None) -> None:
    if value is not None and not 0.0 < value <= 1.0:
        raise ConfigError(f"{name} must be a fraction in (0, 1], got {value}")


@dataclass(frozen=True, kw_only=True)
class FactorizeConfig(DictConfig):
    """What to factorize. Each part is off by default; give at most one of each pair.

    embedding_size / embedding_energy: ALBERT's E, or the smallest E keeping that fraction of the
    energy of the embedding tables (`edgept.compress.factorize.embedding`). share: "none", "all" (one
    group) or "groups:N" (N must divide the layers); share_init: how a group's weights start
    (`edgept.compress.factorize.sharing`).
    ffn_rank / ffn_energy: rank of every FFN matrix, or the smallest rank keeping that fraction
    of every FFN matrix's energy.
    """

    embedding_size: int | None = None
    embedding_energy: float | None = None
    share: str = "none"
    share_init: str = DEFAULT_SHARE_INIT
    ffn_rank: int | None = None
    ffn_energy: float | None = None

    kind: ClassVar[str] = "factorize config"

    def __post_init__(self) -> None:
        for a, b in (("embedding_size", "embedding_energy"), ("ffn_rank", "ffn_energy")):
            if getattr(self, a) is not None and getattr(self, b) is not None:
                raise ConfigError(f"give {a} or {b}, not both (got {getattr(self, a)} and {getattr(self, b)})")
        if self.embedding_size is not None and self.embedding_size < 2:
            raise ConfigError(
                f"embedding_size must be at least 2 (LayerNorm's mean takes one of E's dimensions), got {self.embedding_size}"
            )
        if self.ffn_rank is not None and self.ffn_rank < 1:
            raise ConfigError(f"ffn_rank must be a positive integer, got {self.ffn_rank}")
        _fraction("embedding_energy", self.embedding_energy)
        _fraction("ffn_energy", self.ffn_energy)
        m = _GROUPS.match(self.share)
        if self.share not in ("none", "all") and (m is None or int(m[1]) < 1):
            raise ConfigError(f"share must be 'none', 'all' or 'groups:N' with N >= 1, got {self.share!r}")
        if self.share_init not in SHARE_INITS:
            raise ConfigError(f"share_init must be one of {', '.join(SHARE_INITS)}, got {self.share_init!r}")

    def groups(self, num_layers: int) -> int | None:
        """The number of weight groups for a model of `num_layers` layers (None: no sharing)."""
        if self.share == "none":
            return None
        if self.share == "all":
            return 1
        n = int(self.share.split(":")[1])
        if num_layers % n:
            divisors = [d for d in range(1, num_layers + 1) if num_layers % d == 0]
            raise ConfigError(
                f"share={self.share!r}: {n} groups do not divide the model's {num_layers} layers; use one of groups:{divisors}"
            )
        return n
