"""The compile stage: a bundle (or a model, exported first) made into what a target device runs.

    from edgept.compile import CompileConfig, compile_for_target
    bundle = compile_for_target("model.edgept", "model.cpu.edgept", CompileConfig(target="cpu"))

Quantizes for the target's precision (edgept.quantize), then hands the graph to the target's
backend (edgept.backends: ONNX Runtime's offline graph, or a TensorRT engine plan).
"""

from __future__ import annotations

from edgept.compile.compile import (
    available_precisions,
    build_engines,
    choose_precision,
    compile_for_target,
    quantize_config,
)
from edgept.compile.config import CompileConfig

__all__ = [
    "CompileConfig", "available_precisions", "build_engines", "choose_precision", "compile_for_target",
    "quantize_config",
]
