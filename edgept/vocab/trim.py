"""`trim_vocab(bundle, dest, TrimConfig(vocab_size=8000), data=...)`: a bundle whose word table keeps
only the rows a task uses.

A BERT's word table is most of a small model's bytes (MiniLM: 30522 x 384 of 22.7M parameters), and
a task reads a fraction of it. The trimmed graph keeps the original tokenizer and input ids: an int32
map (half an int64 one's bytes) from every original id to its row in the smaller table (a dropped
token to its nearest kept row, or [UNK]'s) is gathered first, `Gather(kept_rows, Gather(id_map, input_ids))`, so apps, `edgept run` and the
runtime's input checks see the same vocabulary as before, and a kept token's output is exactly the
untrimmed bundle's. No retraining: the rows kept are the original rows. Trim the fp32 bundle, then
quantize (the int8 embedding pass then stores the smaller table).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgept.bundle import Bundle, BundleWriter
from edgept.errors import ConfigError
from edgept.vocab.config import TrimConfig

ID_MAP = "vocab/id_map"
SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


@dataclass(frozen=True)
class TrimResult:
    bundle: Bundle
    kept: int
    original: int
    coverage: dict[str, float]  # split -> share of its real tokens kept (not mapped to [UNK])
    accuracy: dict[str, dict[str, float]] | None  # split -> {"before", "after"}


def word_gather(proto: onnx.ModelProto) -> onnx.NodeProto:
    """The Gather that reads the word table by `input_ids`; a one-line ConfigError when there is none
    or the table is read by anything else too (a tied masked-LM decoder predicts over all of it)."""
    inits = {i.name: i for i in proto.graph.initializer}
    found = [n for n in proto.graph.node if n.op_type == "Gather" and n.input[1] == "input_ids" and n.input[0] in inits]
    if len(found) != 1:
        raise ConfigError("trim-vocab needs a text bundle whose graph gathers one word table by input_ids "
                          "(an exported fp32 BERT bundle); trim before quantizing")
    table = found[0].input[0]
    readers = [n for n in proto.graph.node if table in n.input]
    if len(readers) > 1:
        raise ConfigError(f"the word table {table} is also read by {readers[1].op_type} {readers[1].name!r} "
                          "(a masked-LM decoder predicts over the whole vocabulary): trim a classifier or encoder")
    return found[0]


def token_counts(bundle: Bundle, texts: list[str]) -> Counter:
    """How often each id occurs among the real tokens of `texts` through the bundle's own tokenizer."""
    from edgept.preprocess import from_manifest

    pre = from_manifest(bundle.preprocess, bundle.path)
    counts: Counter = Counter()
    for start in range(0, len(texts), 256):
        feeds = pre(texts[start:start + 256])
        ids = feeds["input_ids"][feeds["attention_mask"].astype(bool)]
        counts.update(ids.tolist())
    return counts


def kept_ids(vocab: dict[str, int], counts: Counter, size: int | None) -> list[int]:
    """The original ids to keep, in their new order (see TrimConfig)."""
    special = [vocab[t] for t in SPECIAL if t in vocab]
    ranked = special + [i for i, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if i not in special]
    if size is None:
        return ranked
    if size < len(special) + 1:
        raise ConfigError(f"--vocab-size {size} leaves no room beside the {len(special)} special tokens")
    if size >= len(vocab):
        raise ConfigError(f"--vocab-size {size} is not smaller than the vocabulary ({len(vocab)}); nothing to trim")
    chosen = set(ranked)
    by_id = sorted((i for t, i in vocab.items() if i not in chosen and not t.startswith("[unused")))
    return (ranked + by_id)[:size]


def nearest_rows(weights: np.ndarray, keep: list[int], chunk: int = 4096) -> np.ndarray:
    """For every original id, the new row of the kept embedding closest to it in cosine (a kept id: itself)."""
    kept = weights[keep]
    unit = kept / np.maximum(np.linalg.norm(kept, axis=1, keepdims=True), 1e-12)
    out = np.empty(weights.shape[0], dtype=np.int32)
    for start in range(0, weights.shape[0], chunk):
        rows = weights[start:start + chunk]
        rows = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
        out[start:start + chunk] = (rows @ unit.T).argmax(1)
    out[np.asarray(keep)] = np.arange(len(keep))
    return out


def trim_graph(proto: onnx.ModelProto, keep: list[int], unk: int, fallback: str = "nearest") -> onnx.ModelProto:
    """A copy of `proto` whose word table holds rows `keep` (in that order), read through the id map;
    a dropped id reads the nearest kept row (`fallback="nearest"`) or [UNK]'s (`"unk"`)."""
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    node = word_gather(out)
    table = next(i for i in out.graph.initializer if i.name == node.input[0])
    weights = numpy_helper.to_array(table)
    if fallback == "nearest":
        id_map = nearest_rows(weights, keep)
    else:
        id_map = np.full(weights.shape[0], keep.index(unk), dtype=np.int32)
        id_map[np.asarray(keep)] = np.arange(len(keep))
    table.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(weights[keep]), table.name))
    out.graph.initializer.append(numpy_helper.from_array(id_map, ID_MAP))
    remap = helper.make_node("Gather", [ID_MAP, "input_ids"], ["input_ids/trimmed"], name="vocab/remap")
    node.input[1] = "input_ids/trimmed"
    position = list(out.graph.node).index(node)
    out.graph.node.insert(position, remap)
    return out


def trim_vocab(
    bundle: Bundle | str | os.PathLike,
    dest: str | os.PathLike,
    config: TrimConfig,
    *,
    data: str,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
) -> TrimResult:
    """Trim `bundle`'s word table to the tokens `data`'s train split uses (see the module docstring);
    report coverage on every split and, for a classifier, accuracy before and after on dev and test."""
    from edgept.data import DataConfig, load_splits
    from edgept.preprocess import from_manifest

    src = bundle if isinstance(bundle, Bundle) else Bundle.open(bundle)
    if any(p.get("pass") in ("quantize", "trim-vocab") for p in src.passes):
        raise ConfigError(f"{src.path} is already quantized or trimmed; trim the exported fp32 bundle")
    if (src.preprocess or {}).get("kind") != "text":
        raise ConfigError(f"{src.path} is not a text bundle; trim-vocab trims a tokenizer's word table")
    proto = onnx.load(str(src.model_path))
    word_gather(proto)
    data_config = DataConfig(source=data)
    splits = load_splits(data_config)
    if progress:
        progress("counting the train split's tokens")
    vocab = from_manifest(src.preprocess, src.path).tokenizer.get_vocab()
    counts = {s: token_counts(src, list(splits.get(s).items)) for s in ("train", "dev", "test")}
    if "[UNK]" not in vocab:
        raise ConfigError(f"{src.path}'s tokenizer has no [UNK] token for the dropped ids to map to")
    keep = kept_ids(vocab, counts["train"], config.vocab_size)
    kept = set(keep)
    coverage = {s: sum(n for i, n in c.items() if i in kept) / max(1, sum(c.values())) for s, c in counts.items()}
    trimmed = trim_graph(proto, keep, vocab["[UNK]"], config.fallback)
    check = _kept_token_check(proto, trimmed, keep)
    if not check <= 1e-5:
        raise ConfigError(f"the trimmed graph differs from the original on kept tokens by {check:.3g}; please report it")
    metrics: dict[str, Any] = {"original_rows": len(vocab), "kept_rows": len(keep), "coverage": coverage,
                               "kept_token_max_abs_diff": check, "data": splits.describe()}
    with BundleWriter(dest, overwrite=overwrite, base=src) as w:
        onnx.save(trimmed, str(w.path("model.onnx")))
        w.add_pass("trim-vocab", config.to_dict(), metrics)
    accuracy = None
    if src.task and src.task.endswith("classification"):
        from edgept.eval import evaluate

        if progress:
            progress("scoring before and after on dev and test")
        accuracy = {split: {"before": evaluate(src.path, data_config, split)["accuracy"],
                            "after": evaluate(dest, data_config, split)["accuracy"]} for split in ("dev", "test")}
        with BundleWriter(dest, overwrite=True, base=Bundle.open(dest)) as w:  # atomically, with the scores
            w.manifest["passes"][-1]["metrics"]["accuracy"] = accuracy
    return TrimResult(Bundle.open(dest), len(keep), len(vocab), coverage, accuracy)


def _kept_token_check(original: onnx.ModelProto, trimmed: onnx.ModelProto, keep: list[int], seed: int = 0) -> float:
    """Max |trimmed - original| over every output, on fresh random sequences of kept tokens."""
    from edgept.parity import graph_parity

    rng = np.random.default_rng(seed)
    ids = rng.choice(np.asarray(keep), size=(3, 17))
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    return graph_parity(original.SerializeToString(), trimmed.SerializeToString(), feeds)


__all__ = ["ID_MAP", "TrimConfig", "TrimResult", "kept_ids", "trim_graph", "trim_vocab", "word_gather"]
