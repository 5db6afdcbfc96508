"""Synthetic, seeded model inputs for benchmarking: the cost of a forward pass depends on shapes, not values."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from edgept.errors import ConfigError, FeedError

TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
IMAGE_INPUTS = ("pixel_values",)

# Without a declared vocab (a bare .onnx file), ids stay below 100: inside any real BERT vocab,
# and an embedding gather costs the same whichever rows it reads.
_FALLBACK_VOCAB = 100
_DEFAULT_IMAGE_SIZE = (224, 224)
_DEFAULT_CHANNELS = 3


def is_image(inputs: Iterable[Any]) -> bool:
    """True when the declared inputs are an image model's (`pixel_values`), False for text."""
    return any(spec.name in IMAGE_INPUTS for spec in inputs)


def make_feeds(
    inputs_spec: Iterable[Any],
    limits: Mapping[str, Any],
    batch: int,
    seq: int | None,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Build one feed per declared input, shaped for `batch` x `seq` (text) or the image size in `limits`.

    `inputs_spec` holds objects with `.name`, `.dtype` and `.dims` (the bundle's IOSpec). Text gets random
    token ids in [1, vocab_size), an all-ones attention mask and zero token types, so every position is
    real work (no padding to skip). Images get float32 standard-normal pixels. `seq` is ignored for images.
    """
    feeds: dict[str, np.ndarray] = {}
    for spec in inputs_spec:
        shape = _resolve_shape(spec, limits, batch, seq)
        dtype = np.dtype(spec.dtype)
        if spec.name == "input_ids":
            high = int(limits.get("vocab_size", _FALLBACK_VOCAB))
            feeds[spec.name] = rng.integers(1, high, size=shape).astype(dtype)
        elif spec.name == "attention_mask":
            feeds[spec.name] = np.ones(shape, dtype=dtype)
        elif spec.name == "token_type_ids":
            feeds[spec.name] = np.zeros(shape, dtype=dtype)
        elif spec.name == "pixel_values":
            feeds[spec.name] = rng.standard_normal(size=shape).astype(dtype)
        else:
            known = ", ".join(TEXT_INPUTS + IMAGE_INPUTS)
            raise FeedError(
                f"cannot synthesise benchmark input {spec.name!r}: edgept bench knows {known}; "
                "export the model with edgept so its inputs use these names"
            )
    return feeds


def _resolve_shape(spec: Any, limits: Mapping[str, Any], batch: int, seq: int | None) -> tuple[int, ...]:
    """Turn declared dims (ints fixed, strings symbolic) into a concrete shape.

    Symbolic dims are resolved by position rather than by name, because exporters name them freely
    ("batch", "batch_size", "N"): the first is the batch; for text the second is the sequence; for
    images the layout is NCHW with C, H, W from `limits`.
    """
    dims = list(spec.dims)
    if spec.name in IMAGE_INPUTS:
        height, width = limits.get("image_size", _DEFAULT_IMAGE_SIZE)
        wanted = [batch, int(limits.get("channels", _DEFAULT_CHANNELS)), int(height), int(width)]
    else:
        if seq is None:
            raise ConfigError(
                f"text input {spec.name!r} needs a sequence length; pass seqs=(128,) or --seq 128"
            )
        max_seq = limits.get("max_sequence")
        if max_seq is not None and seq > int(max_seq):
            raise ConfigError(
                f"sequence length {seq} exceeds the model's max_sequence {max_seq}; use --seq {max_seq} or less"
            )
        wanted = [batch, seq]
    if len(dims) != len(wanted):
        raise FeedError(f"input {spec.name!r} has dims {dims}; edgept bench expects {len(wanted)} dims")
    shape = []
    for axis, (declared, value) in enumerate(zip(dims, wanted, strict=True)):
        if not (isinstance(declared, int) and declared > 0):
            shape.append(value)
        elif declared == value or (spec.name in IMAGE_INPUTS and axis > 0):
            # An image's fixed C/H/W are the truth even when the bundle declares no limits.
            shape.append(declared)
        else:
            what = "batch" if axis == 0 else "sequence length"
            raise ConfigError(
                f"input {spec.name!r} is fixed to {what} {declared}, cannot bench it at {value}; "
                f"use {declared} or re-export with a dynamic {what}"
            )
    return tuple(shape)
