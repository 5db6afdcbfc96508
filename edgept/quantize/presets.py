"""Named quantization presets: what a target's `[quantize] preset` means (targets/README.md).

A device difference is data: a target names a preset, the preset is a mode config. The ORT
presets make graphs with ONNX Runtime's fused int8 kernels (contrib ops), which only ONNX Runtime
runs; the TensorRT preset makes standard Q/DQ ONNX, which is all TensorRT 10/11 accept.
"""

from __future__ import annotations

from edgept.errors import ConfigError
from edgept.quantize.config import Fp16, Int8Dynamic, Int8Static, Qdq, QuantizeConfig

PRESETS: dict[str, QuantizeConfig] = {
    # ORT's per-call activation ranges, per-channel int8 weights: no calibration needed.
    "ort-int8-dynamic": Int8Dynamic(),
    # Calibrated ranges frozen into the fused graph (QAttention/MatMulInteger): no per-call range pass.
    # minmax (the configs' default) for both calibrated presets: on MiniLM, percentile 99.99 clips its
    # outlier channels (fresh-input cosine 0.786 static / 0.822 Q/DQ vs 0.984 / 0.968 with minmax; Q/DQ
    # on rt-polarity: minmax 0.980, percentile 0.949, entropy 0.922).
    "ort-int8-static": Int8Static(),
    # Standard QuantizeLinear/DequantizeLinear on the unfused graph: TensorRT's explicit precision.
    "trt-int8-qdq": Qdq(),
}
FP16 = Fp16()
# Modes whose graphs hold standard ONNX ops only (what TensorRT's parser reads).
STANDARD_OP_MODES = (Qdq.mode, Fp16.mode)


def preset(name: str) -> QuantizeConfig:
    """The config a preset name stands for; an unknown name is a one-line ConfigError."""
    if name not in PRESETS:
        raise ConfigError(f"unknown quantize preset {name!r}; known: {', '.join(PRESETS)} (targets/README.md)")
    return PRESETS[name]


__all__ = ["FP16", "PRESETS", "STANDARD_OP_MODES", "preset"]
