"""Backends of the compile stage, by the name a target's `[backend] name` gives: each `build(bundle,
writer, target, precision, **options)` writes what that runtime needs into the new bundle and
returns the metrics the compile pass records."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edgept.backends import ort, trt
from edgept.registry import Registry

BACKENDS: Registry[Callable[..., dict[str, Any]]] = Registry("backend")
BACKENDS.add("ort", ort.build)
BACKENDS.add("trt", trt.build)

__all__ = ["BACKENDS"]
