"""Benchmark variants: what gets timed, built from a small JSON-able spec so another process can rebuild it.

Backends are registered in `BACKENDS` by kind:
  ort    an edgept bundle, run through `edgept.runtime` (what an app embeds);
  onnx   a bare .onnx file, run through onnxruntime directly (no manifest, no feed validation);
  torch  a source checkpoint in PyTorch eager, the usual baseline.
Heavy libraries are imported inside the builders: `import edgept.bench` never imports torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgept.bench.harness import Variant
from edgept.errors import BundleError, ConfigError
from edgept.registry import Registry


@dataclass(frozen=True, kw_only=True)
class VariantSpec:
    """Everything needed to rebuild a variant: backend kind, file or directory, threads, display name."""

    kind: str
    path: str
    threads: int
    name: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VariantSpec:
        return cls(**data)


@dataclass(frozen=True)
class Backend:
    """A variant builder plus the modules it needs, so a memory probe can import them before its baseline."""

    build: Callable[[VariantSpec], Variant]
    imports: tuple[str, ...]


BACKENDS: Registry[Backend] = Registry("bench backend")


def build_variant(spec: VariantSpec) -> Variant:
    """Build the variant `spec` describes, with the backend registered for `spec.kind`."""
    return BACKENDS.get(spec.kind).build(spec)


def ort_variant(bundle_path: str | Path, threads: int, name: str | None = None) -> Variant:
    """An edgept bundle run with `edgept.runtime.load(bundle, threads=threads)`; times `session.run`."""
    path = Path(bundle_path)
    return build_variant(
        VariantSpec(kind="ort", path=str(path), threads=threads, name=name or default_name(path))
    )


def onnx_variant(onnx_path: str | Path, threads: int, name: str | None = None) -> Variant:
    """A bare ONNX file in an onnxruntime CPU session with `threads` intra-op threads."""
    path = Path(onnx_path)
    return build_variant(
        VariantSpec(kind="onnx", path=str(path), threads=threads, name=name or default_name(path))
    )


def torch_variant(source_checkpoint_path: str | Path, threads: int, name: str = "torch eager") -> Variant:
    """The source checkpoint via `edgept.models.load_model`, in eval mode under `torch.inference_mode`."""
    spec = VariantSpec(kind="torch", path=str(source_checkpoint_path), threads=threads, name=name)
    return build_variant(spec)


def source_path(bundle_path: str | Path) -> Path:
    """The checkpoint a bundle was exported from (`model.source.path` in its manifest)."""
    from edgept.bundle import Bundle

    bundle = Bundle.open(bundle_path)
    path = (bundle.manifest.get("model", {}).get("source") or {}).get("path")
    if not path:
        raise BundleError(
            f"{bundle_path}: manifest has no model.source.path, so there is no source model for "
            "--baseline torch; re-export it with edgept, or drop --baseline"
        )
    if not Path(path).exists():
        raise BundleError(
            f"{bundle_path}: its source checkpoint {path} no longer exists; restore it there or drop --baseline"
        )
    return Path(path)


def default_name(path: Path) -> str:
    """A variant's display name: the file or directory name without .edgept/.onnx ("minilm.int8")."""
    return path.name.removesuffix(".edgept").removesuffix(".onnx") or str(path)


def _build_ort(spec: VariantSpec) -> Variant:
    from edgept.bundle import Bundle
    from edgept.runtime import load

    bundle = Bundle.open(spec.path)  # verifies artifact hashes once; load() reuses the opened bundle
    session = load(bundle, threads=spec.threads, spinning=False)
    names = [i.name for i in bundle.inputs]

    def factory(feeds: Mapping[str, np.ndarray]) -> Callable[[], object]:
        mine = {n: feeds[n] for n in names}
        return lambda: session.run(mine)

    return Variant(
        name=spec.name,
        factory=factory,
        inputs=tuple(bundle.inputs),
        limits=dict(bundle.limits or {}),
        backend=session.backend,  # which engine/provider ran: the preflight may have fallen back
        precision=_precision(bundle.manifest),
        file_bytes=Path(bundle.model_path).stat().st_size,
        spec=spec,
    )


def _precision(manifest: Mapping[str, Any]) -> str:
    """Best-effort label from the latest precision-changing pass in the manifest; fp32 if none."""
    for entry in reversed(manifest.get("passes", [])):
        if not str(entry.get("pass", "")).startswith(("quantize", "fp16")):
            continue
        config = entry.get("config") or {}
        for key in ("precision", "dtype", "mode", "preset"):
            if config.get(key):
                return str(config[key])
        return str(entry["pass"])
    return "fp32"


def _build_onnx(spec: VariantSpec) -> Variant:
    from edgept.runtime import ort

    path = Path(spec.path)
    if not path.is_file():
        raise ConfigError(f"ONNX file {path} does not exist")
    # As for bundles: idle sessions must not busy-wait on the cores the timed variant needs.
    session = ort.open_session(path, threads=spec.threads, spinning=False)
    inputs = ort.input_specs(session)

    def factory(feeds: Mapping[str, np.ndarray]) -> Callable[[], object]:
        mine = {i.name: feeds[i.name] for i in inputs}
        return lambda: session.run(None, mine)

    return Variant(
        name=spec.name,
        factory=factory,
        inputs=inputs,
        backend="onnxruntime",
        precision="",
        file_bytes=path.stat().st_size,
        spec=spec,
    )


# Same labels as the bundles' passes use, so a table column compares like with like.
_TORCH_PRECISION = {"torch.float32": "fp32", "torch.float16": "fp16", "torch.bfloat16": "bf16"}


def _build_torch(spec: VariantSpec) -> Variant:
    import torch

    from edgept.models import load_model

    torch.set_num_threads(spec.threads)
    model = load_model(spec.path).eval()

    def factory(feeds: Mapping[str, np.ndarray]) -> Callable[[], object]:
        # Converted once per shape: the numpy -> tensor copy is input preparation, not inference.
        tensors = {name: torch.from_numpy(array) for name, array in feeds.items()}

        def call() -> object:
            with torch.inference_mode():
                return model(**tensors)

        return call

    return Variant(
        name=spec.name,
        factory=factory,
        backend=f"torch {torch.__version__} eager",
        precision=_TORCH_PRECISION.get(str(next(model.parameters()).dtype), "?"),
        spec=spec,
    )


BACKENDS.add("ort", Backend(_build_ort, ("onnxruntime", "edgept.runtime", "edgept.bundle")))
BACKENDS.add("onnx", Backend(_build_onnx, ("onnxruntime",)))
BACKENDS.add("torch", Backend(_build_torch, ("torch", "edgept.models")))


def preload(kind: str) -> None:
    """Import the modules a backend needs (used by the memory probe before it takes its baseline)."""
    for module in BACKENDS.get(kind).imports:
        importlib.import_module(module)
