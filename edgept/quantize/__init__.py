"""ONNX -> ONNX quantization: INT8 (dynamic, calibrated static, sensitivity-guided), FP16 with an overflow guard.

    bundle = edgept.quantize("model.edgept", "model.int8.edgept",
                             QuantizeConfig(mode="auto"), calibration="calibration/rt-polarity-256")

onnx and onnxruntime are imported by the submodules, which this package loads on first use.
"""

from __future__ import annotations

from edgept.quantize.config import MODES, QuantizeConfig


def quantize(*args, **kwargs):
    """See `edgept.quantize.api.quantize`."""
    from edgept.quantize.api import quantize as _quantize

    return _quantize(*args, **kwargs)


__all__ = ["MODES", "QuantizeConfig", "quantize"]
