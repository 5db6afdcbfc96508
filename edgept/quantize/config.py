"""Quantization configs, one frozen type per mode, each holding only its own fields.

    edgept.quantize.quantize("model.edgept", "model.int8.edgept", Int8Static(smooth=0.5), calibration=...)
    config_for("int8-static", smooth=0.5)   # the same, from a mode name (the CLI)

The class is the mode: `quantize` looks its handler up by `mode` (edgept.quantize.quantize.HANDLERS), so
a field a mode cannot honour does not exist on it. The manifest's quantize pass records `mode` and
the fields (`to_dict`); `QuantizeConfig.from_dict` reads either back into the right class.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from edgept.configs import DictConfig
from edgept.errors import ConfigError
from edgept.quantize.ranges import METHODS
from edgept.registry import Registry

WEIGHT_TYPES = ("int8", "uint8")
EMBEDDINGS = ("int8", "int4", "fp32")
PER_TOKEN_SCOPES = ("ffn-down", "all")
# The alphas `smooth="auto"` tries (SmoothQuant's range; its paper picks alpha per model on calibration data).
SMOOTH_GRID = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


@dataclass(frozen=True, kw_only=True)
class QuantizeConfig(DictConfig):
    """What every mode shares. Not a mode itself: use one of the subclasses (or `config_for`).

    keep_float: node names to keep in float whatever the analysis says.
    keep_reference: also ship the fp32 graph as `model.fp32.onnx` (for later comparisons); by
      default the bundle holds only what runs, and the manifest keeps the reference's sha256,
      bytes and source bundle.
    batch_size: calibration batch size. seed: of the fresh random parity check.
    """

    kind: ClassVar[str] = "quantize config"
    mode: ClassVar[str]
    # Whether `quantize` refuses to run without a calibration set.
    needs_calibration: ClassVar[bool] = True

    keep_float: tuple[str, ...] = ()
    keep_reference: bool = False
    batch_size: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        if type(self) is QuantizeConfig or not hasattr(self, "mode"):
            raise ConfigError(f"QuantizeConfig is the base of the mode configs; use one of: {', '.join(MODES)}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        object.__setattr__(self, "keep_float", tuple(self.keep_float))

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, **super().to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Self:
        """The config `d` (a `to_dict`, or a manifest's recorded config without its extra keys)
        describes; on the base class its `mode` picks the class."""
        d = dict(d)
        mode = d.pop("mode", getattr(cls, "mode", None))
        target = MODES.get(str(mode)) if cls is QuantizeConfig else cls
        if mode != target.mode:
            raise ConfigError(f"a {target.__name__} config has mode {target.mode!r}, got {mode!r}")
        return super(QuantizeConfig, target).from_dict(d)


@dataclass(frozen=True, kw_only=True)
class _Int8(QuantizeConfig):
    """Fields of every INT8 mode.

    per_channel: one weight scale per output channel (else one per tensor).
    embeddings: how the embedding tables (word, position, token type) are stored: "int8" with one
      scale per row, read by Gather then dequantized in standard ops (edgept.quantize.embeddings);
      "int4" the same in half the bytes (two values a byte, unpacked after the Gather; most of a
      small student's file is its word table); "fp32" keeps them float. True/False read as
      "int8"/"fp32" (what earlier manifests recorded).
    """

    per_channel: bool = True
    embeddings: str = "int8"

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.embeddings, bool):
            object.__setattr__(self, "embeddings", "int8" if self.embeddings else "fp32")
        if self.embeddings not in EMBEDDINGS:
            raise ConfigError(f"--embeddings {self.embeddings!r} is not one of: {', '.join(EMBEDDINGS)}")

    @property
    def embedding_bits(self) -> int | None:
        """Bits per stored embedding value; None: fp32 tables."""
        return {"int8": 8, "int4": 4}.get(self.embeddings)


@dataclass(frozen=True, kw_only=True)
class _OrtInt8(_Int8):
    """Fields of the modes that run ONNX Runtime's integer kernels on its fused graph.

    reduce_range: 7-bit weights, avoiding int16 saturation in AVX2 u8s8 kernels without VNNI;
      None: the mode's default (8-bit; Int8Static: 7-bit when smoothing or per token).
    weight_type: int8 (ORT's u8s8 kernels, the fast path) or uint8 (u8u8 kernels: no int16
      saturation on AVX2 without VNNI, so 8-bit weights whatever the smoothing; measured slower
      here, docs/quantize.md).
    """

    reduce_range: bool | None = None
    weight_type: str = "int8"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.weight_type not in WEIGHT_TYPES:
            raise ConfigError(f"--weight-type {self.weight_type!r} is not one of: {', '.join(WEIGHT_TYPES)}")

    @property
    def seven_bit(self) -> bool:
        """Whether weights are quantized to 7 bits."""
        return bool(self.reduce_range)

    @property
    def unsigned_weights(self) -> bool:
        return self.weight_type == "uint8"


def _check_method(method: str, percentile: float) -> None:
    if method not in METHODS:
        raise ConfigError(f"--method {method!r} is not one of: {', '.join(METHODS)}")
    if not 50.0 < percentile <= 100.0:
        raise ConfigError(f"--percentile must be in (50, 100], got {percentile}")


@dataclass(frozen=True, kw_only=True)
class Int8Dynamic(_OrtInt8):
    """int8-dynamic: int8 weights, activation ranges measured by ONNX Runtime on every call
    (DynamicQuantizeLinear). Needs no calibration set (one given is only scored)."""

    mode: ClassVar[str] = "int8-dynamic"
    needs_calibration: ClassVar[bool] = False


@dataclass(frozen=True, kw_only=True)
class Int8Static(_OrtInt8):
    """int8-static: calibrated activation ranges frozen into ONNX Runtime's fused graph.

    method: activation range method: minmax, entropy (KL) or percentile. minmax is the default
      because every measured result in docs/results used it: on MiniLM, percentile 99.99 clips its
      outlier channels (fresh-input cosine 0.786 vs 0.984 with minmax).
    percentile: the |x| percentile the percentile method keeps (99.99 clips the top 0.01%).
    symmetric: symmetric activation ranges (zero point 128) instead of asymmetric.
    reduce_range: None (the default) means 7-bit exactly when smoothing, which fills the int8
      weight range (measured: a smoothed LayerNorm->MatMul has 24% output error with 8-bit weights
      on AVX2, 1.5% with 7-bit; docs/quantize.md), or per token, which fills the uint8 activation
      range of every row (tests/unit/test_quantize_per_token.py: 0.8% off its formula with 8-bit
      weights, exact with 7-bit).
    smooth: SmoothQuant migration strength alpha in [0, 1] (0.5 is the paper's default), or None:
      divide each quantized input channel by s and fold s into the weight rows (exact in fp32);
      or "auto": build the all-INT8 graph at each alpha of SMOOTH_GRID and keep the one whose output
      is closest to fp32 (cosine) on the dev split of `data` when given, else on the calibration set
      (which GPTQ and bias correction are fitted to, so it judges less fairly); about one
      calibrated build per alpha.
    per_token: give the FFN down-projections (inputs a GELU produces, whose outliers are per token)
      one activation scale per token computed at run time, around the same integer GEMM
      (edgept.quantize.graph.quantize_per_token).
    per_token_scope: which integer GEMMs `per_token` covers: ffn-down (the GELU-fed ones) or all
      (every MatMul outside the fused attention: also the attention output and FFN up-projections);
      measured on the fine-tuned MiniLM teacher (docs/quantize.md), all takes the logit error's
      standard deviation on the test split from 0.095 to 0.084 for ~6% of the speed.
    bias_correction: fold each quantized MatMul's mean output shift on the calibration set into
      the bias it meets next (edgept.quantize.bias): no run-time cost; measured on MiniLM's
      held-out sentence embeddings, per-token 1 - cosine 0.00249 -> 0.00193.
    gptq: choose the weight integers by GPTQ against each GEMM's calibration inputs instead of
      rounding to nearest (edgept.quantize.gptq): same scales, graph and speed; measured on the
      fine-tuned MiniLM teacher, 7-bit weights' logit-margin error 0.082 -> 0.046.
    min_cosine: accuracy budget (output cosine vs fp32 on the calibration set, edgept.parity); when
      set, the most sensitive nodes are kept in float until it is met.
    max_drop: accuracy budget in points (0.5 = half a percentage point) of task accuracy on the dev
      split of the data passed as `data=` (--data), against the fp32 graph; with `min_cosine` both hold.
    sensitivity_examples: how many calibration examples the per-node sensitivity analysis runs
      (the budget check uses them all).
    """

    mode: ClassVar[str] = "int8-static"

    method: str = "minmax"
    percentile: float = 99.99
    symmetric: bool = False
    smooth: float | str | None = None
    per_token: bool = False
    per_token_scope: str = "ffn-down"
    bias_correction: bool = True
    gptq: bool = True
    min_cosine: float | None = None
    max_drop: float | None = None
    sensitivity_examples: int = 64

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_method(self.method, self.percentile)
        if self.per_token_scope not in PER_TOKEN_SCOPES:
            raise ConfigError(f"--per-token-scope {self.per_token_scope!r} is not one of: {', '.join(PER_TOKEN_SCOPES)}")
        if self.smooth is not None and self.smooth != "auto" and not (isinstance(self.smooth, float | int) and 0.0 <= self.smooth <= 1.0):
            raise ConfigError(f"--smooth is SmoothQuant's alpha in [0, 1] (e.g. 0.5) or auto, got {self.smooth!r}")
        if self.min_cosine is not None and not -1.0 <= self.min_cosine <= 1.0:
            raise ConfigError(f"--min-cosine must be in [-1, 1] (e.g. 0.999), got {self.min_cosine}")
        if self.max_drop is not None and not 0.0 <= self.max_drop <= 100.0:
            raise ConfigError(f"--max-drop is in accuracy points in [0, 100] (e.g. 0.3), got {self.max_drop}")
        if self.sensitivity_examples < 1:
            raise ConfigError(f"sensitivity_examples must be >= 1, got {self.sensitivity_examples}")

    @property
    def seven_bit(self) -> bool:
        """`reduce_range`, or by default 7 bits when int8 weights meet smoothing or per-token scales
        (both fill the ranges that saturate u8s8 pair sums)."""
        if self.reduce_range is not None:
            return self.reduce_range
        return self.weight_type == "int8" and (self.smooth is not None or self.per_token)

    @property
    def budget(self) -> float | None:
        """The cosine budget in force."""
        return self.min_cosine


@dataclass(frozen=True, kw_only=True)
class Auto(Int8Static):
    """auto: int8-static with the calibration method that scores best (`method` is then only what
    `smooth="auto"` judges alphas with), per-token scales when all-INT8 misses the budget, then
    the fewest nodes kept in float that meet it; without `min_cosine` or `max_drop` the budget is
    an output cosine of 0.999."""

    mode: ClassVar[str] = "auto"

    @property
    def budget(self) -> float | None:
        if self.min_cosine is None and self.max_drop is None:
            return 0.999
        return self.min_cosine


@dataclass(frozen=True, kw_only=True)
class Qdq(_Int8):
    """int8-qdq: explicit-precision ONNX for TensorRT: standard QuantizeLinear/DequantizeLinear
    pairs on the unfused graph, symmetric int8 activations per tensor and weights per channel
    (edgept.quantize.qdq). `method` and `percentile` as for Int8Static."""

    mode: ClassVar[str] = "int8-qdq"

    method: str = "minmax"
    percentile: float = 99.99

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_method(self.method, self.percentile)


@dataclass(frozen=True, kw_only=True)
class Fp16(QuantizeConfig):
    """fp16 with an overflow guard (edgept.quantize.fp16). fp16_tolerance: largest relative error
    per node output that fp16 may add before the node is kept in fp32."""

    mode: ClassVar[str] = "fp16"

    fp16_tolerance: float = 1e-2

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.fp16_tolerance > 0:
            raise ConfigError(f"--fp16-tolerance must be positive, got {self.fp16_tolerance}")


MODES: Registry[type[QuantizeConfig]] = Registry("quantize mode")
for _cls in (Int8Dynamic, Int8Static, Fp16, Auto, Qdq):
    MODES.add(_cls.mode, _cls)


def config_for(mode: str, **options: Any) -> QuantizeConfig:
    """The config of `mode` with `options` (field names) set; an option the mode does not take is a
    one-line ConfigError naming the modes that take it."""
    cls = MODES.get(mode)
    own = {f.name for f in dataclasses.fields(cls)}
    for name in options:
        if name not in own:
            takers = [m for m in MODES if name in {f.name for f in dataclasses.fields(MODES.get(m))}]
            flag = "--" + name.replace("_", "-")
            if not takers:
                raise ConfigError(f"{flag} is not a quantize option; allowed for --mode {mode}: {', '.join(sorted(own))}")
            raise ConfigError(f"{flag} applies to --mode {' or '.join(takers)}; drop it or change --mode (got --mode {mode})")
    return cls(**options)


__all__ = [
    "MODES", "PER_TOKEN_SCOPES", "SMOOTH_GRID", "WEIGHT_TYPES", "Auto", "Fp16", "Int8Dynamic", "Int8Static", "Qdq",
    "QuantizeConfig", "config_for",
]
