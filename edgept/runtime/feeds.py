"""Feeds for a bundle's declared inputs: checked before onnxruntime sees them (`validate_feeds`),
and made up, seeded, for parity checks and benchmarks (`make_feeds`).

ORT's own errors name graph internals (or, for an out-of-range token id, read out of bounds on some
providers); these checks name the input, the offending value and what the model allows instead.

Dtype policy: the only automatic conversion is int32 -> int64 (lossless, and what numpy gives for
integer lists on some platforms). Everything else (float64 -> float32, bool -> int64, ...) is a
FeedError, because a silent cast can hide a wrong tensor.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from edgept.bundle import IOSpec
from edgept.errors import ConfigError, FeedError

# Input name -> the io.limits key bounding its values (token id tables).
_ID_LIMITS = {"input_ids": "vocab_size", "token_type_ids": "type_vocab_size"}


def _names(specs: list[IOSpec]) -> str:
    return ", ".join(s.name for s in specs)


def _as_array(name: str, value: Any, spec: IOSpec) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except ValueError as e:  # ragged nested lists
        raise FeedError(f"input {name!r} is not a rectangular array ({e}); pad rows to one length") from None
    want = np.dtype(spec.dtype)
    if arr.dtype == want:
        return arr
    if arr.dtype == np.int32 and want == np.int64:
        return arr.astype(np.int64)
    raise FeedError(
        f"input {name!r} has dtype {arr.dtype}; expected {want} (only int32 -> int64 is converted for you; "
        f"use x.astype(np.{want}))"
    )


def _check_range(name: str, arr: np.ndarray, limit: int, key: str) -> None:
    if arr.size == 0:
        return
    bad = (arr < 0) | (arr >= limit)
    if bad.any():
        pos = tuple(int(i) for i in np.argwhere(bad)[0])
        raise FeedError(
            f"input {name!r} has value {int(arr[pos])} at {pos} outside [0, {limit}) ({key}={limit}); "
            f"encode text with the bundle's tokenizer.json"
        )


def validate_feeds(
    feeds: Mapping[str, Any], inputs: list[IOSpec], required: set[str], limits: Mapping[str, Any]
) -> dict[str, np.ndarray]:
    """Return `feeds` as arrays of the declared dtypes, or raise a one-line FeedError naming the input.

    `inputs` are the manifest's io.inputs; `required` the names the ONNX graph consumes (a declared
    input the graph dropped, like an unused token_type_ids, may be left out).
    """
    if not isinstance(feeds, Mapping):
        raise FeedError(
            f"feeds must be a dict of input name -> array, got {type(feeds).__name__}; inputs: {_names(inputs)}"
        )
    specs = {s.name: s for s in inputs}
    for name in feeds:
        if name not in specs:
            raise FeedError(f"unknown input {name!r}; this model's inputs are: {_names(inputs)}")
    for s in inputs:
        if s.name in required and s.name not in feeds:
            raise FeedError(
                f"missing input {s.name!r}; this model needs: {', '.join(n for n in specs if n in required)}"
            )

    arrays: dict[str, np.ndarray] = {}
    seen: dict[str, tuple[str, int]] = {}  # symbolic dim -> (first input that set it, its value)
    for name, value in feeds.items():
        spec = specs[name]
        arr = arrays[name] = _as_array(name, value, spec)
        if arr.ndim != len(spec.dims):
            raise FeedError(
                f"input {name!r} has rank {arr.ndim} (shape {arr.shape}); expected rank {len(spec.dims)} "
                f"with dims {list(spec.dims)}"
            )
        for axis, (n, dim) in enumerate(zip(arr.shape, spec.dims, strict=True)):
            if isinstance(dim, int):
                if n != dim:
                    raise FeedError(
                        f"input {name!r} axis {axis} is {n}; the model needs {dim} (dims {list(spec.dims)})"
                    )
            elif dim in seen and seen[dim][1] != n:
                other, m = seen[dim]
                raise FeedError(
                    f"input {name!r} has {dim}={n} but input {other!r} has {dim}={m}; all inputs must agree on {dim}"
                )
            else:
                seen.setdefault(dim, (name, n))

    _check_limits(arrays, specs, limits)
    return arrays


def _check_limits(arrays: dict[str, np.ndarray], specs: dict[str, IOSpec], limits: Mapping[str, Any]) -> None:
    max_seq = limits.get("max_sequence")
    for name, arr in arrays.items():
        dims = specs[name].dims
        if max_seq is not None and "sequence" in dims:
            n = arr.shape[dims.index("sequence")]
            if n > max_seq:
                raise FeedError(
                    f"input {name!r}: sequence length {n} exceeds the model's maximum {max_seq}; "
                    f"truncate with max_length≤{max_seq}"
                )
        key = _ID_LIMITS.get(name)
        if key is not None and limits.get(key) is not None:
            _check_range(name, arr, int(limits[key]), key)
        # NCHW image input: channels and size must match what the model was built for.
        if arr.ndim == 4 and np.issubdtype(arr.dtype, np.floating):
            channels, size = limits.get("channels"), limits.get("image_size")
            if channels is not None and arr.shape[1] != channels:
                raise FeedError(
                    f"input {name!r} has {arr.shape[1]} channels (shape {arr.shape}); the model takes {channels}"
                )
            patch = limits.get("patch_size")
            if patch and all(isinstance(d, str) for d in dims[2:]):
                # Symbolic height/width: the graph interpolates its position embeddings to any
                # whole number of patches, so only the patch grid constrains the size.
                if arr.shape[2] % patch or arr.shape[3] % patch or min(arr.shape[2:]) < patch:
                    raise FeedError(
                        f"input {name!r} is {arr.shape[2]}x{arr.shape[3]} (HxW); height and width must be "
                        f"positive multiples of the patch size {patch} (trained at {size[0]}x{size[1]})"
                    )
            elif size is not None and list(arr.shape[2:]) != list(size):
                raise FeedError(
                    f"input {name!r} is {arr.shape[2]}x{arr.shape[3]} (HxW); the model takes {size[0]}x{size[1]} "
                    f"images; resize with the bundle's preprocessing"
                )


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
    *,
    varied: bool = False,
) -> dict[str, np.ndarray]:
    """Build one feed per declared input, shaped for `batch` x `seq` (text) or the image size in `limits`.

    `inputs_spec` holds objects with `.name`, `.dtype` and `.dims` (the bundle's IOSpec). Text gets random
    token ids in [1, vocab_size), an all-ones attention mask and zero token types, so every position is
    real work (no padding to skip). Images get float32 standard-normal pixels. `seq` is ignored for images.
    `varied` (parity checks): random token types, and the last row's second half padded (id 0, mask 0),
    so a check also exercises the mask and the type embeddings.
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
    if varied:
        _vary(feeds, limits, rng)
    return feeds


def _vary(feeds: dict[str, np.ndarray], limits: Mapping[str, Any], rng: np.random.Generator) -> None:
    if "token_type_ids" in feeds:
        types = feeds["token_type_ids"]
        types[...] = rng.integers(0, int(limits.get("type_vocab_size", 1)), size=types.shape)
    mask = feeds.get("attention_mask")
    if mask is not None and mask.shape[0] > 1 and mask.shape[1] > 2:
        half = mask.shape[1] // 2
        mask[-1, half:] = 0
        if "input_ids" in feeds:
            feeds["input_ids"][-1, half:] = 0


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
