"""Every onnxruntime session edgept opens: the runtime's, the checks' (export, quantize, compile,
QAT parity), the offline optimiser's and the benchmark's all come from `open_session`, so thread,
spinning and optimisation-level settings mean the same thing everywhere.

onnxruntime is imported on first use, so importing this module costs nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgept.bundle import IOSpec

CPU = ("CPUExecutionProvider",)
# onnxruntime's names for its graph optimisation levels, by the short names edgept records.
LEVELS = {
    "disabled": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}
# onnxruntime's type strings -> the manifest's dtype names.
ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
}
Model = str | os.PathLike | bytes


def session_options(
    *, threads: int | None = None, level: str = "all", spinning: bool = True,
    save_to: str | os.PathLike | None = None, quiet: bool = False,
) -> Any:
    """`ort.SessionOptions`: optimisation `level` (a key of LEVELS), intra-op `threads` (None or 0:
    onnxruntime's default, one per physical core), `spinning=False` so idle worker threads do not
    busy-wait on cores another session or torch needs, `save_to` to write the optimised graph, and
    `quiet` to silence onnxruntime's warnings (the checks open many throwaway sessions)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, LEVELS[level])
    if threads:
        opts.intra_op_num_threads = threads
    # The sequential executor never uses the inter-op pool; one thread keeps it from being made.
    opts.inter_op_num_threads = 1
    if not spinning:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if save_to is not None:
        opts.optimized_model_filepath = str(save_to)
    if quiet:
        opts.log_severity_level = 3
    return opts


def open_session(
    model: Model, *, providers: Sequence[str] = CPU, threads: int | None = None, level: str = "all",
    spinning: bool = True, save_to: str | os.PathLike | None = None, quiet: bool = False,
) -> Any:
    """An `ort.InferenceSession` on `model` (a path, or a serialized ModelProto's bytes) with
    `session_options(...)`; CPU unless `providers` says otherwise."""
    import onnxruntime as ort

    opts = session_options(threads=threads, level=level, spinning=spinning, save_to=save_to, quiet=quiet)
    source = model if isinstance(model, bytes) else str(Path(model))
    return ort.InferenceSession(source, sess_options=opts, providers=list(providers))


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def input_specs(session: Any) -> tuple[IOSpec, ...]:
    """The session's inputs as manifest IOSpecs (symbolic dims as strings; unknown types as float32)."""
    return tuple(
        IOSpec(i.name, ORT_DTYPES.get(i.type, "float32"), tuple(d if isinstance(d, int) else str(d) for d in i.shape))
        for i in session.get_inputs()
    )


def run(session: Any, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """All outputs of `session` on `feeds`, dropping the feeds it does not take (an exporter may
    prune an unused input such as token_type_ids)."""
    wanted = {i.name for i in session.get_inputs()}
    return session.run(None, {k: v for k, v in feeds.items() if k in wanted})


__all__ = ["CPU", "LEVELS", "ORT_DTYPES", "available_providers", "input_specs", "open_session", "run", "session_options"]
