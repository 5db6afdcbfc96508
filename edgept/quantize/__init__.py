"""ONNX -> ONNX quantization: INT8 (dynamic, calibrated static, sensitivity-guided, Q/DQ for TensorRT),
FP16 with an overflow guard. One config type per mode:

    from edgept.quantize import Auto, quantize
    bundle = quantize("model.edgept", "model.int8.edgept", Auto(), calibration="calibration/rt-polarity-256")

Importing the package imports onnx (its verb lives in `quantize.py`, re-exported here: a lazy
wrapper would be replaced by that submodule the moment anything imported it); `edgept.quantize.config`
alone is what the CLI needs to parse options, and it imports no graph library.
"""

from __future__ import annotations

from edgept.quantize.config import MODES, Auto, Fp16, Int8Dynamic, Int8Static, Qdq, QuantizeConfig, config_for
from edgept.quantize.quantize import quantize

__all__ = ["MODES", "Auto", "Fp16", "Int8Dynamic", "Int8Static", "Qdq", "QuantizeConfig", "config_for", "quantize"]
