"""`BenchConfig`: the shapes to time, how many calls, how many threads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from edgept.configs import DictConfig
from edgept.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class BenchConfig(DictConfig):
    """How to measure.

    batches, seqs: the shapes, every batch with every sequence length (images ignore seqs).
    warmup: untimed calls per variant per shape before timing (lets allocators and caches settle).
    runs: timed calls per variant per shape. rounds: how many interleaved rounds those runs are split into.
    threads: intra-op threads for every backend alike; None = the CPUs this process may use.
    seed: for the synthetic inputs.
    """

    kind: ClassVar[str] = "bench config"

    batches: tuple[int, ...] = (1, 8)
    seqs: tuple[int, ...] = (128,)
    warmup: int = 10
    runs: int = 100
    rounds: int = 10
    threads: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("batches", "seqs"):
            values = getattr(self, name)
            values = (values,) if isinstance(values, int) else tuple(values)
            if not values or any(not _is_int(v) or v < 1 for v in values):
                raise ConfigError(f"{name} must be positive integers, got {list(values)}; e.g. {name}=(1, 8)")
            object.__setattr__(self, name, values)
        for name, low in (("warmup", 0), ("runs", 1), ("rounds", 1), ("seed", 0)):
            value = getattr(self, name)
            if not _is_int(value) or value < low:
                raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
        if self.rounds > self.runs:
            raise ConfigError(
                f"rounds ({self.rounds}) cannot exceed runs ({self.runs}): every round needs at least one "
                f"call per variant; lower rounds or raise runs"
            )
        if self.threads is not None and (not _is_int(self.threads) or self.threads < 1):
            raise ConfigError(f"threads must be a positive integer or None, got {self.threads!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
