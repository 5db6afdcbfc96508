"""`CompileConfig`: which target, which precision, and how strictly a compiled bundle is checked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from edgept.configs import DictConfig
from edgept.errors import ConfigError
from edgept.quantize.config import EMBEDDINGS
from edgept.targets import PRECISIONS


@dataclass(frozen=True, kw_only=True)
class CompileConfig(DictConfig):
    """How to compile. `target`: a shipped name, a family (`jetson`, `gpu`, `cpu`) or a TOML path.
    `precision`: auto (the target's most preferred one this edgept can produce) or an explicit one.
    `sequence`: (min, opt, max) for the TensorRT profile, e.g. from `trt.sequence_profile(lengths)`;
    None uses the target's [shapes]. `tolerance`: max |optimised - unoptimised| graph on fresh random
    inputs (CPU targets). `min_cosine`: least output cosine (edgept.parity) of an int8/fp16 bundle vs fp32
    on fresh random inputs (None: MIN_COSINE for the precision). `keep_reference`: an int8/fp16
    bundle also ships the fp32 graph as `model.fp32.onnx` (by default only what runs; its sha256 stays
    in the manifest). `measure`: with precision auto on a CPU target, compile int8 and fp32, time
    them here side by side (`measure_runs` calls each at the target's optimisation shape) and keep
    int8 only when it is at least `min_speedup` times faster (edgept.compile.measure); False takes
    the target's first allowed precision untimed. `embeddings`: how an int8 bundle stores its
    embedding tables (int8, int4 or fp32; edgept.quantize's `embeddings`), None: the preset's (int8)."""

    kind: ClassVar[str] = "compile config"

    target: str
    precision: str = "auto"
    sequence: tuple[int, int, int] | None = None
    tolerance: float = 1e-4
    min_cosine: float | None = None
    keep_reference: bool = False
    measure: bool = True
    min_speedup: float = 1.1
    measure_runs: int = 40
    embeddings: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        allowed = ("auto", *PRECISIONS)
        if self.precision not in allowed:
            raise ConfigError(f"precision {self.precision!r} is not one of: {', '.join(allowed)}")
        if not self.tolerance > 0:
            raise ConfigError(f"tolerance must be positive, got {self.tolerance}")
        if not self.min_speedup > 0:
            raise ConfigError(f"--min-speedup must be positive (e.g. 1.1), got {self.min_speedup}")
        if self.measure_runs < 5:
            raise ConfigError(f"measure_runs must be >= 5, got {self.measure_runs}")
        if self.embeddings is not None and self.embeddings not in EMBEDDINGS:
            raise ConfigError(f"--embeddings {self.embeddings!r} is not one of: {', '.join(EMBEDDINGS)}")
        if self.min_cosine is not None and not -1.0 <= self.min_cosine <= 1.0:
            raise ConfigError(f"--min-cosine must be in [-1, 1] (e.g. 0.98), got {self.min_cosine}")
        if self.sequence is not None:
            object.__setattr__(self, "sequence", tuple(int(s) for s in self.sequence))
            if len(self.sequence) != 3 or not 1 <= self.sequence[0] <= self.sequence[1] <= self.sequence[2]:
                raise ConfigError(f"sequence must be (min, opt, max) with 1 <= min <= opt <= max, got {self.sequence}")
