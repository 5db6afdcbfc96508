"""torch -> ONNX bundle: `from edgept.export import export; export(model_or_checkpoint, "model.edgept")`."""

from __future__ import annotations

from edgept.export.config import ExportConfig
from edgept.export.export import export, parity
from edgept.export.onnx_export import to_onnx

__all__ = ["ExportConfig", "export", "parity", "to_onnx"]
