"""`load(bundle) -> Session`: run a bundle with onnxruntime, or with the TensorRT engine it holds
for this machine; predict labels or embed sentences.

Imports only numpy at module level; onnxruntime, tensorrt, tokenizers and Pillow are imported when
a session is opened or an input needs them, so `import edgept.runtime` is cheap and torch-free.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgept.bundle import Bundle, IOSpec
from edgept.errors import BundleError, ConfigError
from edgept.preprocess import ImagePreprocessor, TextPreprocessor, from_manifest
from edgept.runtime import ort
from edgept.runtime.engines import EngineChoice, preflight
from edgept.runtime.feeds import validate_feeds

CLASSIFICATION_TASKS = ("sequence-classification", "image-classification")


@dataclass(frozen=True)
class Prediction:
    """One classification result: the top label, its index and probability, and every label's probability."""

    label: str
    index: int
    score: float
    probs: dict[str, float]


def load(
    bundle: Bundle | str | os.PathLike,
    threads: int | None = None,
    providers: Sequence[str] | None = None,
    verify: bool = True,
    spinning: bool = True,
) -> Session:
    """Open a bundle (verifying its hashes unless `verify=False`) in an onnxruntime session.

    `threads` sets intra-op threads (None: onnxruntime's default, one per physical core);
    `providers` defaults to ["CPUExecutionProvider"]. Without `providers`, a bundle that holds TensorRT
    engines goes through `engines.preflight`, which never builds one: an engine built for this
    machine's TensorRT release and GPU runs the model (`Session.backend` says which); otherwise ONNX
    Runtime does (CUDA if present), with an EngineFallbackWarning naming both versions.
    `spinning=False` stops ONNX Runtime's worker threads busy-waiting after each call: slightly
    slower alone, but fair to other work in the process (several sessions, or torch, side by side).
    """
    b = bundle if isinstance(bundle, Bundle) else Bundle.open(bundle, verify=verify)
    return Session(b, threads=threads, providers=providers, spinning=spinning)


class _OrtExecutor:
    """An onnxruntime InferenceSession with the interface Session runs: input_dtypes, output_names, run."""

    def __init__(self, bundle: Bundle, threads: int | None, providers: Sequence[str], spinning: bool):
        available = ort.available_providers()
        unknown = [p for p in providers if p not in available]
        if unknown or not providers:
            raise ConfigError(
                f"execution provider(s) {unknown or providers} not available; this onnxruntime has: {', '.join(available)}"
            )
        try:
            self._sess = ort.open_session(bundle.model_path, providers=providers, threads=threads, spinning=spinning)
        except Exception as e:  # ORT raises its own pybind classes (InvalidProtobuf, Fail, ...)
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise BundleError(
                f"onnxruntime cannot load {bundle.model_path} ({first}); re-create the bundle with `edgept export`"
            ) from None
        self.input_types = {g.name: g.type for g in self._sess.get_inputs()}
        self.input_dtypes = {name: ort.ORT_DTYPES.get(t) for name, t in self.input_types.items()}
        self.output_names = [o.name for o in self._sess.get_outputs()]
        self.providers = self._sess.get_providers()
        self.backend = f"onnxruntime {self.providers[0]}"

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return self._sess.run(None, dict(feeds))


def _open_engine(bundle: Bundle, choice: EngineChoice) -> tuple[Any, EngineChoice]:
    """(the bundle's TensorRT engine in an executor, `choice`), or (None, an ONNX Runtime fallback
    with its warning) when the engine will not open here."""
    from edgept.errors import EdgeptError
    from edgept.runtime.engines import fall_back
    from edgept.runtime.tensorrt import TensorRTExecutor

    try:
        return TensorRTExecutor(bundle.file(str(choice.engine)), label=choice.engine), choice
    except EdgeptError as e:
        return None, fall_back(bundle.path, str(e))


class Session:
    """A bundle's model in an onnxruntime session, or in its TensorRT engine where one was built for
    this machine, with feeds validated against the manifest."""

    def __init__(
        self, bundle: Bundle, threads: int | None = None, providers: Sequence[str] | None = None, spinning: bool = True
    ):
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ConfigError(f"threads must be an int >= 1 or None (onnxruntime's default), got {threads!r}")
        self._engine: EngineChoice | None = None
        self._exec: Any = None
        if providers is None:
            self._engine = preflight(bundle.path, bundle.manifest)
            if self._engine and self._engine.backend == "tensorrt":
                self._exec, self._engine = _open_engine(bundle, self._engine)
            providers = list(self._engine.providers) if self._engine and not self._exec else None
        if self._exec is None:
            providers = ["CPUExecutionProvider"] if providers is None else list(providers)
            self._exec = _OrtExecutor(bundle, threads, providers, spinning)
        self._bundle = bundle
        self._inputs = bundle.inputs
        self._outputs = bundle.outputs
        self._required = self._check_graph_io()
        self._output_names = list(self._exec.output_names)
        self._pre: TextPreprocessor | ImagePreprocessor | None = None

    def _check_graph_io(self) -> set[str]:
        """Cross-check manifest io against the graph (or engine); return the input names it consumes."""
        declared = {s.name: s for s in self._inputs}
        where = f"{self._bundle.path}/manifest.json io"
        ort_types = getattr(self._exec, "input_types", None)  # an engine casts feeds to its own dtypes
        for name, dtype in self._exec.input_dtypes.items():
            spec = declared.get(name)
            if spec is None:
                raise BundleError(f"model.onnx takes input {name!r} that {where} does not declare; re-create the bundle")
            if ort_types is not None and dtype != spec.dtype:
                raise BundleError(
                    f"input {name!r} is {ort_types[name]} in model.onnx but {spec.dtype} in {where}; re-create the bundle"
                )
        graph_outputs = set(self._exec.output_names)
        for spec in self._outputs:
            if spec.name not in graph_outputs:
                raise BundleError(
                    f"{where} declares output {spec.name!r} that model.onnx lacks ({', '.join(sorted(graph_outputs))})"
                )
        return set(self._exec.input_dtypes)

    @property
    def bundle(self) -> Bundle:
        """The opened bundle."""
        return self._bundle

    @property
    def manifest(self) -> dict[str, Any]:
        """The bundle's manifest."""
        return self._bundle.manifest

    @property
    def inputs(self) -> list[IOSpec]:
        """Declared inputs (manifest io.inputs), including any the graph ignores."""
        return list(self._inputs)

    @property
    def outputs(self) -> list[IOSpec]:
        """Declared outputs (manifest io.outputs)."""
        return list(self._outputs)

    @property
    def backend(self) -> str:
        """What runs the model, for reports: "onnxruntime CPUExecutionProvider" (+ " (engine fallback)"),
        or "tensorrt 10.3.0 (engines/jetson-orin-nano/model.plan)"."""
        fell_back = self._engine is not None and self._engine.backend == "onnxruntime"
        return self._exec.backend + (" (engine fallback)" if fell_back else "")

    @property
    def providers(self) -> list[str]:
        """The execution providers onnxruntime actually uses, in priority order (["TensorRT"] for an engine)."""
        return list(self._exec.providers)

    def run(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Run the model on `feeds` (input name -> array); return every output by name.

        Feeds are checked first (names, dtypes, ranks, dims, token id ranges, sequence and image
        limits) and a mismatch is a one-line FeedError. int32 is converted to int64; nothing else is cast.
        Declared inputs the graph does not consume may be given or left out; they are dropped.
        """
        arrays = validate_feeds(feeds, self._inputs, self._required, self._bundle.limits)
        outs = self._exec.run({k: v for k, v in arrays.items() if k in self._required})
        return dict(zip(self._output_names, outs, strict=True))

    def _preprocessor(self) -> TextPreprocessor | ImagePreprocessor:
        if self._pre is None:
            section = self._bundle.preprocess
            if not isinstance(section, dict):
                raise BundleError(
                    f"{self._bundle.path} has no preprocess section in its manifest; feed arrays with run()"
                )
            if section.get("kind") == "text":
                self._bundle.file(str(section.get("tokenizer")))  # must be a hash-checked artifact
            self._pre = from_manifest(section, self._bundle.path)
        return self._pre

    def _encode(self, batch: list[Any]) -> dict[str, np.ndarray]:
        pre = self._preprocessor()
        if isinstance(pre, ImagePreprocessor):
            return {self._inputs[0].name: pre(batch)}
        max_len = min(pre.max_length, self._bundle.limits.get("max_sequence") or pre.max_length)
        enc = pre(batch, max_length=max_len)
        return {s.name: enc[s.name] for s in self._inputs if s.name in enc}

    def predict(self, inputs: Any, batch_size: int = 32) -> list[Prediction]:
        """Classify texts (text bundles) or images (PIL, paths, uint8 arrays): softmax over the logits.

        One text or image gives a one-element list. Only for classification bundles; use `run()`
        (or `embed()` for sentence-embedding bundles) otherwise.
        """
        task = self._bundle.task
        if task not in CLASSIFICATION_TASKS:
            alt = "embed(texts) or run(feeds)" if self._can_embed() else "run(feeds)"
            raise BundleError(
                f"predict() needs a classification bundle ({', '.join(CLASSIFICATION_TASKS)}); "
                f"{self._bundle.path} is {task!r}: use {alt}"
            )
        logits_name = "logits" if "logits" in self._output_names else self._output_names[0]
        results: list[Prediction] = []
        for batch in _batches(inputs, batch_size):
            logits = self.run(self._encode(batch))[logits_name].astype(np.float64)
            labels = self._bundle.labels or [f"LABEL_{i}" for i in range(logits.shape[-1])]
            if len(labels) != logits.shape[-1]:
                raise BundleError(
                    f"{self._bundle.path} lists {len(labels)} labels but the model outputs {logits.shape[-1]} logits; re-create the bundle"
                )
            z = np.exp(logits - logits.max(axis=-1, keepdims=True))  # shift for a stable softmax
            probs = z / z.sum(axis=-1, keepdims=True)
            for row in probs:
                i = int(row.argmax())
                results.append(
                    Prediction(
                        labels[i],
                        i,
                        float(row[i]),
                        {lab: float(p) for lab, p in zip(labels, row, strict=True)},
                    )
                )
        return results

    def _can_embed(self) -> bool:
        outs = {o.name: o for o in self._outputs}
        pre = self._bundle.preprocess
        return (
            "last_hidden_state" in outs
            and len(outs["last_hidden_state"].dims) == 3
            and (pre or {}).get("kind") == "text"
        )

    def embed(self, texts: str | Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Sentence embeddings (all-MiniLM style): mask-aware mean of last_hidden_state, L2-normalised.

        Returns float32 (N, hidden). Needs a text bundle whose output is `last_hidden_state`.
        """
        if not self._can_embed():
            raise BundleError(
                f"embed() needs a text bundle with a last_hidden_state output; {self._bundle.path} has outputs "
                f"{', '.join(o.name for o in self._outputs)}: use predict() or run(feeds)"
            )
        chunks = []
        for batch in _batches(texts, batch_size):
            feeds = self._encode(batch)
            hidden = self.run(feeds)["last_hidden_state"].astype(np.float32)
            mask = feeds["attention_mask"][..., None].astype(np.float32)
            pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
            # Same epsilon as torch.nn.functional.normalize, so embeddings match sentence-transformers.
            chunks.append(pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None))
        if not chunks:
            width = next(o for o in self._outputs if o.name == "last_hidden_state").dims[2]
            return np.zeros((0, width if isinstance(width, int) else 0), dtype=np.float32)
        return np.concatenate(chunks).astype(np.float32)

    def __repr__(self) -> str:
        return f"Session({str(self._bundle.path)!r}, task={self._bundle.task!r}, providers={self.providers})"


def _batches(items: Any, batch_size: int) -> list[list[Any]]:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be an int >= 1, got {batch_size!r}")
    # A single text, path, array or PIL image is one item, not a sequence to iterate over.
    if isinstance(items, str | os.PathLike | np.ndarray) or type(items).__module__.startswith("PIL."):
        items = [items]
    items = list(items)
    return [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
