"""`ExportConfig`: how `export` traces a model and how strictly it checks the graph against PyTorch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from edgept.configs import DictConfig
from edgept.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class ExportConfig(DictConfig):
    """How to export. `tolerance` is the largest |onnx - torch| accepted on fresh random inputs
    (fp32 vs fp32, so only kernel reordering separates them: 1e-4 leaves ~100x headroom)."""

    kind: ClassVar[str] = "export config"

    opset: int = 17
    tolerance: float = 1e-4
    max_length: int = 128  # the tokenizer's default truncation length recorded for `predict`
    check_batch: int = 3
    check_length: int = 37  # deliberately unlike the trace shape, so a baked-in dim shows up
    seed: int = 0

    def __post_init__(self) -> None:
        if self.tolerance <= 0:
            raise ConfigError(f"tolerance must be positive, got {self.tolerance}")
        if self.max_length <= 0:
            raise ConfigError(f"max_length must be positive, got {self.max_length}")
