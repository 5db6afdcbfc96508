"""Batches for training and evaluation: a list of (item, target) examples -> a dict of tensors.

Text is tokenized with the model's own tokenizer (padded to the batch's longest row, truncated
at max_length), images go through the model's ImagePreprocessor (so 28x28 grayscale becomes the
model's channels and size). Both are plain classes so that they pickle into spawned workers.
"""

from __future__ import annotations

import os
from typing import Any

from edgept.errors import ConfigError
from edgept.preprocess import ImagePreprocessor, TextPreprocessor


class TextCollate:
    """(text, target) examples -> input_ids, attention_mask, token_type_ids, labels (int64 tensors)."""

    def __init__(self, preprocessor: TextPreprocessor, max_length: int | None = None):
        self.pre = preprocessor
        self.max_length = max_length or preprocessor.max_length

    def __call__(self, examples: list[tuple[Any, int]]) -> dict[str, Any]:
        import torch

        enc = self.pre([text for text, _ in examples], max_length=self.max_length, pad_to="longest")
        batch = {k: torch.from_numpy(v) for k, v in enc.items()}
        batch["labels"] = torch.tensor([t for _, t in examples], dtype=torch.long)
        return batch


class ImageCollate:
    """(image, target) examples (paths or uint8 arrays) -> pixel_values (float32 NCHW), labels."""

    def __init__(self, preprocessor: ImagePreprocessor):
        self.pre = preprocessor

    def __call__(self, examples: list[tuple[Any, int]]) -> dict[str, Any]:
        import torch

        pixels = self.pre([image for image, _ in examples])
        return {
            "pixel_values": torch.from_numpy(pixels),
            "labels": torch.tensor([t for _, t in examples], dtype=torch.long),
        }


def collate_for(model_dir: str | os.PathLike, config: Any, kind: str, max_length: int = 128) -> TextCollate | ImageCollate:
    """The collate for a model (its checkpoint dir and edgept config) and a data kind ("text"/"image").

    A text set on an image model, or the reverse, is a `ConfigError` naming both.
    """
    model_kind = "text" if config.arch == "bert" else "image"
    if model_kind != kind:
        raise ConfigError(
            f"{model_dir} is a {model_kind} model ({config.arch}) but the data is {kind}; "
            f"use {'a JSONL/CSV/TSV file or rt-polarity' if model_kind == 'text' else 'an image folder or fashion-mnist'}"
        )
    if kind == "text":  # never longer than the model's position table
        return TextCollate(TextPreprocessor.from_checkpoint(model_dir, max_length=min(max_length, config.max_position)))
    return ImageCollate(ImagePreprocessor.from_checkpoint(model_dir, config))
