"""TrainConfig: every knob of the one training loop, validated on construction."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from edgept.configs import DictConfig
from edgept.errors import ConfigError

PRECISIONS = ("fp32", "bf16")


def _positive_int(name: str, v: Any, optional: bool = True) -> None:
    if v is None and optional:
        return
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ConfigError(f"{name} must be a whole number >= 1{' or None' if optional else ''}, got {v!r}")


@dataclass(frozen=True, kw_only=True)
class TrainConfig(DictConfig):
    """How `fit` trains.

    lr: peak learning rate of AdamW, reached after `warmup` (a fraction of all steps) of linear
    warm-up and decayed linearly to 0 at the last step. weight_decay applies to weight matrices
    only (not biases or LayerNorm). The run lasts `epochs` (may be fractional) or exactly
    `max_steps` optimizer steps when set. `eval_every`/`save_every` are in steps (None: evaluate
    once per epoch, checkpoint at every evaluation). `patience`: stop after that many evaluations
    without improving `metric`. `batch_size` is the global batch: with `nproc` > 1 processes each
    computes gradients on its share and the averaged update equals one process on the whole batch.
    precision: "bf16" runs the training forward pass under bfloat16 autocast (weights, optimizer
    and evaluation stay fp32); 1.65x the steps/s of "fp32" for the `mini` BERT on a 2-core CPU
    with AVX512-BF16, and the usual mixed precision on GPUs.
    """

    kind: ClassVar[str] = "train config"

    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup: float = 0.1
    epochs: float = 3.0
    max_steps: int | None = None
    batch_size: int = 32
    grad_clip: float | None = 1.0
    eval_every: int | None = None
    save_every: int | None = None
    patience: int | None = None
    metric: str = "accuracy"
    greater_is_better: bool = True
    seed: int = 0
    nproc: int = 1
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if not (isinstance(self.lr, int | float) and math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"lr must be a positive number, got {self.lr!r}")
        if not (isinstance(self.weight_decay, int | float) and self.weight_decay >= 0):
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if not (isinstance(self.warmup, int | float) and 0 <= self.warmup < 1):
            raise ConfigError(f"warmup is a fraction of all steps in [0, 1), got {self.warmup!r}")
        if not (isinstance(self.epochs, int | float) and math.isfinite(self.epochs) and self.epochs > 0):
            raise ConfigError(f"epochs must be a positive number, got {self.epochs!r}")
        if self.grad_clip is not None and not (isinstance(self.grad_clip, int | float) and self.grad_clip > 0):
            raise ConfigError(f"grad_clip must be > 0 or None (no clipping), got {self.grad_clip!r}")
        for name in ("max_steps", "eval_every", "save_every", "patience"):
            _positive_int(name, getattr(self, name))
        for name in ("batch_size", "nproc"):
            _positive_int(name, getattr(self, name), optional=False)
        if self.batch_size < self.nproc:
            raise ConfigError(
                f"batch_size {self.batch_size} is the global batch and must be >= nproc {self.nproc} (each process needs examples)"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError(f"seed must be an int, got {self.seed!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if not isinstance(self.metric, str) or not self.metric:
            raise ConfigError(f"metric must be the name of a dev metric (e.g. accuracy), got {self.metric!r}")
