"""Static INT8: calibrate activation ranges, freeze them, rank nodes by sensitivity, meet a budget.

Every candidate graph is scored the same way: the output cosine (per example, or whole-tensor for
logits) against the fp32 fused graph on the calibration feeds (`edgept.parity`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from edgept.parity import Feeds, real_rows, summarize
from edgept.quantize import graph
from edgept.quantize.bias import channel_means, correct_bias, matmul_outputs
from edgept.quantize.config import Int8Static
from edgept.quantize.gptq import apply_gptq, gram_matrices
from edgept.quantize.ranges import METHODS, TensorStats, tensor_range, uint8_params

Progress = Callable[[str], None]
# A candidate graph -> (within the budget?, the scores that decided it).
Budget = Callable[[onnx.ModelProto], tuple[bool, dict[str, Any]]]


def collect_stats(fused: onnx.ModelProto, tensors: Sequence[str], batches: Sequence[Feeds]) -> dict[str, TensorStats]:
    """Min/max (pass 1) and |x| histograms (pass 2) of `tensors` in the fp32 graph over `batches`."""
    sess = graph.session(fused, outputs=tensors)
    stats = {t: TensorStats() for t in tensors}
    for observe in (TensorStats.observe_range, TensorStats.observe_hist):
        for feeds, outs in zip(batches, graph.run_batches(sess, batches), strict=True):
            for t in tensors:
                observe(stats[t], real_rows(outs[t], feeds))
    return stats


def activation_params(
    stats: Mapping[str, TensorStats], method: str, config: Int8Static
) -> tuple[dict[str, tuple[float, int]], dict[str, list[float]]]:
    """(tensor -> (scale, zero point), tensor -> [lo, hi]) for `method`."""
    params, ranges = {}, {}
    for name, s in stats.items():
        lo, hi = tensor_range(s, method, config.percentile)
        params[name] = uint8_params(lo, hi, config.symmetric)
        ranges[name] = [lo, hi]
    return params, ranges


def outputs(proto: onnx.ModelProto, batches: Sequence[Feeds]) -> list[np.ndarray]:
    """The primary (first) output of `proto` on each batch."""
    sess = graph.session(proto)
    first = sess.get_outputs()[0].name
    return [o[first] for o in graph.run_batches(sess, batches)]


@dataclass
class Int8Plan:
    """A fused fp32 graph, its calibration feeds and fp32 outputs, and the activation statistics."""

    fused: onnx.ModelProto
    batches: Sequence[Feeds]
    config: Int8Static
    refs: list[np.ndarray] = field(init=False)
    stats: dict[str, TensorStats] = field(init=False)
    nodes: list[str] = field(init=False)
    # The last build's bias corrections (edgept.quantize.bias), and the fp32 means they aim at.
    corrections: list[dict[str, Any]] = field(init=False, default_factory=list)
    _fp32_means: dict[str, np.ndarray] | None = field(init=False, default=None)
    # GPTQ (config.gptq): each weight's calibration Gram matrix, its integers once rounded (every
    # build of the plan reuses them), and the last build's report row per weight.
    _grams: dict[str, np.ndarray] = field(init=False, default_factory=dict)
    _rounded: dict[tuple[Any, ...], Any] = field(init=False, default_factory=dict)
    rounding: list[dict[str, Any]] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.refs = outputs(self.fused, self.batches)
        self.nodes = graph.quantizable_nodes(self.fused)
        tensors = graph.dynamic_inputs(self._weights(()))
        self.stats = collect_stats(self.fused, tensors, self.batches)

    def _weights(self, keep_float: Sequence[str]) -> onnx.ModelProto:
        c = self.config
        proto = graph.quantize_weights(
            self.fused,
            keep_float=[*c.keep_float, *keep_float],
            per_channel=c.per_channel,
            reduce_range=c.seven_bit,
            embedding_bits=c.embedding_bits,
            unsigned=c.unsigned_weights,
        )
        if not c.gptq:
            return proto
        if not self._grams:
            self._grams = gram_matrices(self.fused, [n for n in self.nodes if n not in c.keep_float], self.batches)
        proto, self.rounding = apply_gptq(proto, self.fused, self._grams, c.seven_bit, self._rounded)
        return proto

    def build(self, method: str, keep_float: Sequence[str] = (), correct: bool = True) -> onnx.ModelProto:
        """The static INT8 graph with `method`'s ranges, `keep_float` nodes left in fp32, and (with
        `correct` and the config's `bias_correction`) its biases corrected on the calibration feeds."""
        params, _ = activation_params(self.stats, method, self.config)
        proto = graph.fuse_integer_matmuls(graph.freeze_scales(self._weights(keep_float), params))
        if self.config.per_token:
            # The median row's range sets the zero point; where the median row has no negatives but
            # some row has, a tiny negative keeps Z at 1 so those rows scale to fit instead of clipping.
            rows = {t: (min(s.median_row_min, -1e-12 if s.lo < 0 else 0.0), s.median_row_max) for t, s in self.stats.items()}
            proto = graph.quantize_per_token(proto, rows, every=self.config.per_token_scope == "all")
        if correct and self.config.bias_correction:
            if self._fp32_means is None:
                self._fp32_means = channel_means(self.fused, matmul_outputs(self.fused), self.batches)
            proto, self.corrections = correct_bias(proto, self._fp32_means, self.batches)
        return proto

    def score(self, proto: onnx.ModelProto, limit: int | None = None) -> dict[str, float]:
        """Output agreement with fp32 on the calibration feeds (the first `limit` batches)."""
        batches = self.batches[:limit] if limit else self.batches
        return summarize(self.refs[: len(batches)], outputs(proto, batches), batches)

    def sensitivity(self, method: str, progress: Progress | None = None) -> list[dict[str, Any]]:
        """Each quantizable node's output error (1 - cosine) when it alone is INT8, worst first."""
        limit = max(1, self.config.sensitivity_examples // self.config.batch_size)
        rows = []
        for node in self.nodes:
            if node in self.config.keep_float:
                continue
            if progress:
                progress(f"sensitivity {node}")
            others = [n for n in self.nodes if n != node]
            # Uncorrected: the ranking is of each node's own error, and a correction per trial costs a pass per node.
            s = self.score(self.build(method, others, correct=False), limit)
            rows.append({"node": node, "error": 1.0 - s["cosine"], "max_abs_diff": s["max_abs_diff"]})
        return sorted(rows, key=lambda r: -r["error"])

    def best_method(self) -> tuple[str, dict[str, dict[str, float]]]:
        """The calibration method whose all-INT8 graph agrees best with fp32, and every method's score."""
        scores = {m: self.score(self.build(m)) for m in METHODS}
        return max(scores, key=lambda m: scores[m]["cosine"]), scores

    def meet_budget(
        self, method: str, ranked: Sequence[str], meets: Budget, progress: Progress | None = None
    ) -> tuple[list[str], dict[str, Any], list[dict[str, Any]]]:
        """The fewest most-sensitive nodes (a prefix of `ranked`) to keep in float so `meets(graph)`
        says (True, score); binary search, assuming more float never hurts. Returns (kept, score, trials)."""
        trials: list[dict[str, Any]] = []

        def trial(k: int) -> tuple[bool, dict[str, Any]]:
            if progress:
                progress(f"budget: {k} node(s) in float")
            ok, s = meets(self.build(method, ranked[:k]))
            trials.append({"float_nodes": k, "met": ok, **s})
            return ok, s

        ok, s0 = trial(0)
        if ok:
            return [], s0, trials
        lo, hi, best = 0, len(ranked), None  # lo fails; hi (all float) meets it by construction
        while hi - lo > 1:
            mid = (lo + hi) // 2
            ok, s = trial(mid)
            if ok:
                hi, best = mid, s
            else:
                lo = mid
        if best is None:
            best = trial(hi)[1]
        return list(ranked[:hi]), best, trials
