"""Check feeds against a bundle's declared inputs before onnxruntime sees them.

ORT's own errors name graph internals (or, for an out-of-range token id, read out of bounds on some
providers); these checks name the input, the offending value and what the model allows instead.

Dtype policy: the only automatic conversion is int32 -> int64 (lossless, and what numpy gives for
integer lists on some platforms). Everything else (float64 -> float32, bool -> int64, ...) is a
FeedError, because a silent cast can hide a wrong tensor.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from edgept.bundle import IOSpec
from edgept.errors import FeedError

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
