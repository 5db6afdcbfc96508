"""How far a transformed graph's outputs are from its reference, on the same feeds: the one
parity layer export, quantize, QAT and compile record their checks with.

The primary output is compared per example: a (batch, sequence, hidden) output is mean-pooled over
the real tokens (attention_mask) first, because that sentence embedding is what an encoder's user
consumes and padded positions are never read; any other output is compared row by row.

The headline `cosine` is the mean of those per-example cosines, except for a classifier's
(batch, classes) logits: there a row has as few as two values, and with two classes the logits
sit near [a, -a], so an example's cosine is about +-1 by the sign of a and says nothing about how
close the numbers are (a near-tie flips it to -1). For logits the headline is the cosine of the
whole (examples x classes) tensor, which weighs each example by its confidence, as TensorRT and
Polygraphy compare whole output tensors. The per-example mean and min are reported either way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from edgept.runtime import ort

Feeds = Mapping[str, np.ndarray]


def real_rows(x: np.ndarray, feeds: Feeds) -> np.ndarray:
    """The values of `x` at real tokens only: padding is masked out of the output, so its
    activations must not widen the ranges."""
    mask = feeds.get("attention_mask")
    if mask is not None and x.ndim >= 2 and x.shape[:2] == mask.shape:
        return x[mask.astype(bool)]
    return x


def _per_example(out: np.ndarray, feeds: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(pooled vectors (batch, d), the values that count for max |diff|)."""
    out = out.astype(np.float64)
    mask = feeds.get("attention_mask")
    if out.ndim == 3 and mask is not None and mask.shape == out.shape[:2]:
        m = mask.astype(np.float64)[..., None]
        pooled = (out * m).sum(1) / np.maximum(m.sum(1), 1)
        return pooled, out[mask.astype(bool)]
    return out.reshape(len(out), -1), out


def cosines(ref: np.ndarray, got: np.ndarray, feeds: Mapping[str, np.ndarray]) -> tuple[np.ndarray, float]:
    """Per-example cosine between reference and candidate, and the max |diff| over counted positions."""
    a, va = _per_example(ref, feeds)
    b, vb = _per_example(got, feeds)
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)
    return cos, float(np.max(np.abs(va - vb))) if va.size else 0.0


def summarize(
    refs: Sequence[np.ndarray], gots: Sequence[np.ndarray], batches: Sequence[Mapping[str, np.ndarray]]
) -> dict[str, float]:
    """The headline `cosine` (see the module doc), mean and min per-example cosine, max |diff|, and
    (2-D outputs) argmax agreement, over batches."""
    cos, diffs, agree = [], [], []
    for ref, got, feeds in zip(refs, gots, batches, strict=True):
        c, d = cosines(ref, got, feeds)
        cos.append(c)
        diffs.append(d)
        if ref.ndim == 2:
            agree.append(ref.argmax(-1) == got.argmax(-1))
    c = np.concatenate(cos)
    result = {"cosine_mean": float(c.mean()), "cosine_min": float(c.min()), "max_abs_diff": float(max(diffs))}
    result["cosine"] = result["cosine_mean"]
    if agree:
        result["argmax_agreement"] = float(np.concatenate(agree).mean())
        result["cosine"] = tensor_cosine(refs, gots)
    return result


def tensor_cosine(refs: Sequence[np.ndarray], gots: Sequence[np.ndarray]) -> float:
    """Cosine between the concatenations of `refs` and of `gots`, each flattened."""
    a = np.concatenate([r.astype(np.float64).ravel() for r in refs])
    b = np.concatenate([g.astype(np.float64).ravel() for g in gots])
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-30))


def max_abs_diff(refs: Sequence[np.ndarray], gots: Sequence[np.ndarray]) -> float:
    """Largest |got - ref| over every pair of outputs (NaN if any is NaN, so `not diff <= tol` fails)."""
    diffs = [np.max(np.abs(g.astype(np.float64) - r)) if r.size else 0.0 for r, g in zip(refs, gots, strict=True)]
    return float(np.max(diffs)) if diffs else 0.0


def graph_parity(reference: ort.Model, candidate: ort.Model, feeds: Feeds) -> float:
    """`max_abs_diff` of every output of two ONNX graphs (paths or bytes), both in ONNX Runtime's
    CPU provider, on the same `feeds`."""
    outs = [ort.run(ort.open_session(m, quiet=True), feeds) for m in (reference, candidate)]
    return max_abs_diff(*outs)
