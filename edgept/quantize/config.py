"""`QuantizeConfig`: what `edgept quantize` does, validated once, recorded in the manifest."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from edgept.configs import DictConfig
from edgept.errors import ConfigError
from edgept.quantize.ranges import METHODS

MODES = ("int8-dynamic", "int8-static", "fp16", "auto")


@dataclass(frozen=True, kw_only=True)
class QuantizeConfig(DictConfig):
    """How to quantize a bundle.

    mode: int8-dynamic (ORT's per-call activation ranges), int8-static (calibrated ranges frozen into
      the graph), fp16 (with an overflow guard), auto (int8-static, the calibration method that scores
      best, then the fewest nodes kept in float that meet `min_cosine`).
    method: activation range method for int8-static: minmax, entropy (KL) or percentile.
    percentile: the |x| percentile the percentile method keeps (99.99 clips the top 0.01%).
    per_channel: one weight scale per output channel (else one per tensor).
    symmetric: symmetric activation ranges (zero point 128) instead of asymmetric.
    reduce_range: 7-bit weights, avoiding int16 saturation in AVX2 u8s8 kernels without VNNI.
    embeddings: also quantize the embedding tables (Gather): smaller file, small accuracy cost.
    min_cosine: accuracy budget (mean output cosine vs fp32 on the calibration set); when set,
      the most sensitive nodes are kept in float until it is met. auto defaults it to 0.999.
    keep_float: node names to keep in float whatever the analysis says.
    fp16_tolerance: largest relative error per node output that fp16 may add before it is kept in fp32.
    batch_size: calibration batch size; sensitivity_examples: how many calibration examples the
      per-node sensitivity analysis runs (the budget check uses them all).
    """

    kind: ClassVar[str] = "quantize config"

    mode: str = "int8-static"
    method: str = "percentile"
    percentile: float = 99.99
    per_channel: bool = True
    symmetric: bool = False
    reduce_range: bool = False
    embeddings: bool = False
    min_cosine: float | None = None
    keep_float: tuple[str, ...] = ()
    fp16_tolerance: float = 1e-2
    batch_size: int = 8
    sensitivity_examples: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"--mode {self.mode!r} is not one of: {', '.join(MODES)}")
        if self.method not in METHODS:
            raise ConfigError(f"--method {self.method!r} is not one of: {', '.join(METHODS)}")
        if not 50.0 < self.percentile <= 100.0:
            raise ConfigError(f"--percentile must be in (50, 100], got {self.percentile}")
        if self.min_cosine is not None and not -1.0 <= self.min_cosine <= 1.0:
            raise ConfigError(f"--min-cosine must be in [-1, 1] (e.g. 0.999), got {self.min_cosine}")
        if not self.fp16_tolerance > 0:
            raise ConfigError(f"--fp16-tolerance must be positive, got {self.fp16_tolerance}")
        for name in ("batch_size", "sensitivity_examples"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        object.__setattr__(self, "keep_float", tuple(self.keep_float))

    @property
    def budget(self) -> float | None:
        """The cosine budget in force: `min_cosine`, or 0.999 for auto."""
        if self.min_cosine is None and self.mode == "auto":
            return 0.999
        return self.min_cosine

