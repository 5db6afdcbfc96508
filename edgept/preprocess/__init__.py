"""Torch-free pre-processing shared by the torch side (training, export parity) and the runtime.

Text goes through a `tokenizers.Tokenizer`; images through Pillow (resize) and numpy (crop,
rescale, normalize) with the numerics of HF's ViTImageProcessor. Both round-trip through the
bundle manifest's `preprocess` section with `to_dict`/`from_dict`. Only numpy is imported at
import time; tokenizers and Pillow are imported where they are used.
"""

from __future__ import annotations

import os
from typing import Any

from edgept.errors import ConfigError
from edgept.preprocess.image import RESAMPLE, ImagePreprocessor
from edgept.preprocess.text import PAD_TO, TextPreprocessor

__all__ = ["PAD_TO", "RESAMPLE", "ImagePreprocessor", "TextPreprocessor", "from_manifest"]


def from_manifest(section: dict[str, Any], root: str | os.PathLike) -> TextPreprocessor | ImagePreprocessor:
    """Build the pre-processor a manifest's `preprocess` section describes (`root`: the bundle dir)."""
    kind = section.get("kind") if isinstance(section, dict) else None
    if kind == "text":
        return TextPreprocessor.from_dict(section, root)
    if kind == "image":
        return ImagePreprocessor.from_dict(section)
    raise ConfigError(f"preprocess kind {kind!r} is not one of: text, image")
