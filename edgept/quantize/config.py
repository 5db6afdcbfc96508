"""`QuantizeConfig`: what `edgept quantize` does, validated once, recorded in the manifest."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from edgept.configs import DictConfig
from edgept.errors import ConfigError
from edgept.quantize.ranges import METHODS

MODES = ("int8-dynamic", "int8-static", "fp16", "auto", "int8-qdq")
WEIGHT_TYPES = ("int8", "uint8")
PER_TOKEN_SCOPES = ("ffn-down", "all")
# The alphas `smooth="auto"` tries (SmoothQuant's range; its paper picks alpha per model on calibration data).
SMOOTH_GRID = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
# What int8-qdq (standard Q/DQ for TensorRT, edgept.quantize.qdq) cannot honour.
_QDQ_UNSUPPORTED = ("reduce_range", "smooth", "per_token", "embeddings", "min_cosine", "unsigned_weights")


@dataclass(frozen=True, kw_only=True)
class QuantizeConfig(DictConfig):
    """How to quantize a bundle.

    mode: int8-dynamic (ORT's per-call activation ranges), int8-static (calibrated ranges frozen into
      the graph), fp16 (with an overflow guard), auto (int8-static, the calibration method that scores
      best, per-token scales when all-INT8 misses the budget, then the fewest nodes kept in float
      that meet `min_cosine`), int8-qdq (explicit-precision
      ONNX for TensorRT: standard QuantizeLinear/DequantizeLinear pairs on the unfused graph,
      symmetric int8 activations per tensor and weights per channel; see edgept.quantize.qdq).
    method: activation range method for int8-static: minmax, entropy (KL) or percentile.
    percentile: the |x| percentile the percentile method keeps (99.99 clips the top 0.01%).
    per_channel: one weight scale per output channel (else one per tensor).
    symmetric: symmetric activation ranges (zero point 128) instead of asymmetric.
    reduce_range: 7-bit weights, avoiding int16 saturation in AVX2 u8s8 kernels without VNNI;
      None (the default) means: 7-bit exactly when smoothing, which fills the int8 weight range
      (measured: a smoothed LayerNorm->MatMul has 24% output error with 8-bit weights on AVX2,
      1.5% with 7-bit; docs/quantize.md), or per token, which fills the uint8 activation range of
      every row (tests/unit/test_quantize_per_token.py: 0.8% off its formula with 8-bit weights,
      exact with 7-bit).
    smooth: SmoothQuant migration strength alpha in [0, 1] (0.5 is the paper's default), or None:
      divide each quantized input channel by s and fold s into the weight rows (exact in fp32);
      or "auto": build the all-INT8 graph at each alpha of SMOOTH_GRID and keep the one whose output
      is closest to fp32 (cosine) on the dev split of `data` when given, else on the calibration set
      (which GPTQ and bias correction are fitted to, so it judges less fairly); about one
      calibrated build per alpha.
    weight_type: int8 (ORT's u8s8 kernels, the fast path) or uint8 (u8u8 kernels: no int16
      saturation on AVX2 without VNNI, so 8-bit weights whatever the smoothing; measured slower
      here, docs/quantize.md).
    per_token: give the FFN down-projections (inputs a GELU produces, whose outliers are per token)
      one activation scale per token computed at run time, around the same integer GEMM
      (edgept.quantize.graph.quantize_per_token).
    per_token_scope: which integer GEMMs `per_token` covers: ffn-down (the GELU-fed ones) or all
      (every MatMul outside the fused attention: also the attention output and FFN up-projections);
      measured on the fine-tuned MiniLM teacher (docs/quantize.md), all takes the logit error's
      standard deviation on the test split from 0.095 to 0.084 for ~6% of the speed.
    bias_correction: (int8-static, auto) fold each quantized MatMul's mean output shift on the
      calibration set into the bias it meets next (edgept.quantize.bias): no run-time cost; measured
      on MiniLM's held-out sentence embeddings, per-token 1 - cosine 0.00249 -> 0.00193.
    gptq: (int8-static, auto) choose the weight integers by GPTQ against each GEMM's calibration
      inputs instead of rounding to nearest (edgept.quantize.gptq): same scales, graph and speed;
      measured on the fine-tuned MiniLM teacher, 7-bit weights' logit-margin error 0.082 -> 0.046.
    embeddings: also quantize the embedding tables (Gather): smaller file, small accuracy cost.
    min_cosine: accuracy budget (output cosine vs fp32 on the calibration set, edgept.parity); when set,
      the most sensitive nodes are kept in float until it is met. auto defaults it to 0.999.
    max_drop: accuracy budget in points (0.5 = half a percentage point) of task accuracy on the dev
      split of the data passed as `data=` (--data), against the fp32 graph; with `min_cosine` both hold.
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
    reduce_range: bool | None = None
    smooth: float | str | None = None
    weight_type: str = "int8"
    per_token: bool = False
    per_token_scope: str = "ffn-down"
    bias_correction: bool = True
    gptq: bool = True
    embeddings: bool = False
    min_cosine: float | None = None
    max_drop: float | None = None
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
        if self.per_token_scope not in PER_TOKEN_SCOPES:
            raise ConfigError(f"--per-token-scope {self.per_token_scope!r} is not one of: {', '.join(PER_TOKEN_SCOPES)}")
        if self.weight_type not in WEIGHT_TYPES:
            raise ConfigError(f"--weight-type {self.weight_type!r} is not one of: {', '.join(WEIGHT_TYPES)}")
        if not 50.0 < self.percentile <= 100.0:
            raise ConfigError(f"--percentile must be in (50, 100], got {self.percentile}")
        if self.smooth is not None and self.smooth != "auto" and not (isinstance(self.smooth, float | int) and 0.0 <= self.smooth <= 1.0):
            raise ConfigError(f"--smooth is SmoothQuant's alpha in [0, 1] (e.g. 0.5) or auto, got {self.smooth!r}")
        if self.min_cosine is not None and not -1.0 <= self.min_cosine <= 1.0:
            raise ConfigError(f"--min-cosine must be in [-1, 1] (e.g. 0.999), got {self.min_cosine}")
        if self.max_drop is not None and not 0.0 <= self.max_drop <= 100.0:
            raise ConfigError(f"--max-drop is in accuracy points in [0, 100] (e.g. 0.3), got {self.max_drop}")
        if self.mode in ("int8-dynamic", "fp16") and ((self.min_cosine, self.max_drop, self.smooth) != (None, None, None) or self.per_token):
            raise ConfigError(f"--min-cosine/--max-drop/--smooth/--per-token need --mode int8-static or auto, got --mode {self.mode}")
        if not self.fp16_tolerance > 0:
            raise ConfigError(f"--fp16-tolerance must be positive, got {self.fp16_tolerance}")
        for name in ("batch_size", "sensitivity_examples"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.mode == "int8-qdq":
            # Symmetric int8 is what TensorRT's Q/DQ means, so symmetric=False is not an error here.
            for name in _QDQ_UNSUPPORTED:
                if getattr(self, name) not in (None, False):
                    raise ConfigError(
                        f"--mode int8-qdq does not support {name}={getattr(self, name)!r} (TensorRT Q/DQ: "
                        f"8-bit weights, no smoothing, embedding tables or budget search yet); drop it or use --mode int8-static"
                    )
        object.__setattr__(self, "keep_float", tuple(self.keep_float))

    @property
    def seven_bit(self) -> bool:
        """Whether weights are quantized to 7 bits: `reduce_range`, or by default when int8 weights meet
    smoothing or per-token scales (both fill the ranges that saturate u8s8 pair sums)."""
        if self.reduce_range is not None:
            return self.reduce_range
        return self.weight_type == "int8" and (self.smooth is not None or self.per_token)

    @property
    def unsigned_weights(self) -> bool:
        return self.weight_type == "uint8"

    @property
    def budget(self) -> float | None:
        """The cosine budget in force: `min_cosine`, or 0.999 for auto without `max_drop`."""
        if self.min_cosine is None and self.max_drop is None and self.mode == "auto":
            return 0.999
        return self.min_cosine

