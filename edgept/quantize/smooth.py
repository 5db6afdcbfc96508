"""SmoothQuant-style smoothing: move per-channel activation outliers into the INT8 weights, exactly.

A MatMul `y = x W` equals `(x / s) (diag(s) W)` for any positive per-input-channel `s`. Choosing
`s_j = amax(x_j)^alpha / amax(W_j)^(1 - alpha)` (Xiao et al. 2023, SmoothQuant) flattens the few
channels of `x` that are 10-100x wider than the rest — which a single per-tensor activation scale
cannot represent — and hands that width to the weight rows, which are quantized per output column
anyway. ONNX Runtime's integer GEMMs take one activation scale per tensor, so this is the way to
get per-channel activation precision and keep the fused QAttention/MatMulInteger kernels.

Where `1/s` goes: folding it into the producing LayerNorm's gamma/beta is exact only when that
LayerNorm output feeds nothing else; in a post-LN encoder (BERT, MiniLM) every LayerNorm output is
also the next residual, and the FFN down-projection reads GELU's output (a nonlinearity: no fold).
So `1/s` is one broadcast `Mul` on the quantized branch only, which costs ~S*H multiplies next to
the GEMM's S*H*N multiply-adds. Nodes that share a weight (ALBERT) or an input share one `s`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgept.parity import real_rows
from edgept.quantize import graph

# Smoothing is applied where SmoothQuant applies it: to inputs a LayerNorm produces (QKV, FFN up).
# Measured on MiniLM: smoothing the FFN down-projection's input (GELU output) makes that node's
# INT8 error 6x worse (1.7e-3 -> 9.7e-3 cosine, block 0 alone): its outliers are per token, not
# per channel, and the scaled weight rows cost the other rows their precision.
NORM_OPS = ("LayerNormalization", "SkipLayerNormalization", "SimplifiedLayerNormalization")
_S_RANGE = (1e-4, 1e4)  # keeps s finite for dead channels (amax 0) and degenerate weights


def _components(nodes: Sequence[onnx.NodeProto], weight_key: Mapping[str, str]) -> list[list[onnx.NodeProto]]:
    """Group quantizable nodes linked by a shared input tensor or a shared weight (union-find).
    Weights are keyed by content: fusion gives each layer its own QKV copy of a shared weight."""
    parent = list(range(len(nodes)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[str, int] = {}
    for i, node in enumerate(nodes):
        for key in (f"x:{node.input[0]}", f"w:{weight_key[node.input[1]]}"):
            if key in first:
                parent[root(i)] = root(first[key])
            else:
                first[key] = i
    groups: dict[int, list[onnx.NodeProto]] = {}
    for i, node in enumerate(nodes):
        groups.setdefault(root(i), []).append(node)
    return list(groups.values())


def channel_amax(
    fused: onnx.ModelProto, tensors: Sequence[str], batches: Sequence[Mapping[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """Per-channel (last axis) max |x| of each of `tensors` over the real tokens of `batches`."""
    sess = graph.session(fused, outputs=tensors)
    amax: dict[str, np.ndarray] = {}
    for feeds, outs in zip(batches, graph.run_batches(sess, batches), strict=True):
        for t in tensors:
            x = np.abs(real_rows(outs[t], feeds)).reshape(-1, outs[t].shape[-1]).max(0)
            amax[t] = np.maximum(amax[t], x) if t in amax else x
    return amax


def _digest(init: onnx.TensorProto) -> str:
    arr = numpy_helper.to_array(init)
    return f"{arr.dtype}{arr.shape}" + hashlib.sha256(arr.tobytes()).hexdigest()


def smoothing_scales(act_amax: np.ndarray, weight_amax: np.ndarray, alpha: float) -> np.ndarray:
    """SmoothQuant's per-channel s = amax(x)^alpha / amax(W row)^(1 - alpha), clipped to a sane range."""
    a = np.maximum(act_amax.astype(np.float64), 1e-8)
    w = np.maximum(weight_amax.astype(np.float64), 1e-8)
    return np.clip(a**alpha / w ** (1.0 - alpha), *_S_RANGE)


def smooth(
    fused: onnx.ModelProto,
    batches: Sequence[Mapping[str, np.ndarray]],
    alpha: float,
    skip: Sequence[str] = (),
) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """`fused` with every quantizable MatMul/Attention that reads a LayerNorm output (but `skip`)
    smoothed: its input divided by
    s in a new Mul and its weight rows multiplied by s. The fp32 function is unchanged up to
    rounding; the report gives each group's s range and largest activation channel ratio."""
    out = onnx.ModelProto()
    out.CopyFrom(fused)
    names = set(graph.quantizable_nodes(out)) - set(skip)
    made_by = {o: n.op_type for n in out.graph.node for o in n.output}
    nodes = [n for n in out.graph.node if n.name in names and made_by.get(n.input[0]) in NORM_OPS]
    inits = {i.name: i for i in out.graph.initializer}
    amax = channel_amax(out, sorted({n.input[0] for n in nodes}), batches)
    weight_key = {n.input[1]: _digest(inits[n.input[1]]) for n in nodes}
    new_nodes: dict[str, onnx.NodeProto] = {}  # x -> its Mul, inserted right after x's producer
    report = []
    for group in _components(nodes, weight_key):
        xs = sorted({n.input[0] for n in group})
        ws = sorted({n.input[1] for n in group})
        a = np.max([amax[x] for x in xs], axis=0)
        w = np.max([np.abs(numpy_helper.to_array(inits[name])).max(1) for name in ws], axis=0)
        s = smoothing_scales(a, w, alpha)
        for name in ws:
            arr = numpy_helper.to_array(inits[name]).astype(np.float64) * s[:, None]
            inits[name].CopyFrom(numpy_helper.from_array(arr.astype(np.float32), name))
        inv = f"{ws[0]}/smooth_inv_s"
        out.graph.initializer.append(numpy_helper.from_array((1.0 / s).astype(np.float32), inv))
        for x in xs:
            smoothed = f"{x}/smoothed"
            new_nodes[x] = helper.make_node("Mul", [x, inv], [smoothed], name=f"{x}/smooth")
            for n in group:
                if n.input[0] == x:
                    n.input[0] = smoothed
        report.append({"nodes": [n.name for n in group], "s_min": float(s.min()), "s_max": float(s.max()),
                       "channel_ratio": float(a.max() / max(np.median(a), 1e-12))})
    _insert_after_producers(out, new_nodes)
    return out, {"alpha": alpha, "groups": report}


def _insert_after_producers(proto: onnx.ModelProto, muls: Mapping[str, onnx.NodeProto]) -> None:
    """Keep the node list topologically sorted: each new Mul goes right after the node making its input."""
    ordered: list[onnx.NodeProto] = [muls[x] for x in muls if x in {i.name for i in proto.graph.input}]
    for node in proto.graph.node:
        ordered.append(node)
        ordered.extend(muls[o] for o in node.output if o in muls)
    del proto.graph.node[:]
    proto.graph.node.extend(ordered)
