"""What apps embed: `edgept.runtime.load(bundle) -> Session` with `run`, `predict` and `embed`.

Needs only numpy and onnxruntime (+ tokenizers for text, Pillow for resizing images); never torch or onnx.
"""

from __future__ import annotations

from edgept.runtime.session import Prediction, Session, load

__all__ = ["Prediction", "Session", "load"]
