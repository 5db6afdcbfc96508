"""ONNX -> ONNX quantization: INT8 (dynamic, calibrated static, sensitivity-guided, Q/DQ for TensorRT),
FP16 with an overflow guard. One config type per mode:

    from edgept.quantize import Auto, quantize
    bundle = quantize("model.edgept", "model.int8.edgept", Auto(), calibration="calibration/rt-polarity-256")

onnx and onnxruntime are imported by the submodules, which this package loads on first use.
"""

from __future__ import annotations

from edgept.quantize.config import MODES, Auto, Fp16, Int8Dynamic, Int8Static, Qdq, QuantizeConfig, config_for


def quantize(*args, **kwargs):
    """See `edgept.quantize.api.quantize`."""
    from edgept.quantize.api import quantize as _quantize

    return _quantize(*args, **kwargs)


__all__ = ["MODES", "Auto", "Fp16", "Int8Dynamic", "Int8Static", "Qdq", "QuantizeConfig", "config_for", "quantize"]
