"""Explicit-precision INT8 for TensorRT: standard QuantizeLinear/DequantizeLinear pairs on the unfused graph.

TensorRT 10 (strongly typed) and 11 take precision from the ONNX itself, so this graph must say
it in standard ops only. `int8-static` cannot serve: it fuses with ONNX Runtime's optimizer first
and emits contrib ops (QAttention, MatMulInteger, SkipLayerNormalization) TensorRT cannot parse.
Here the exported graph is left as it is and, following TensorRT's Q/DQ placement rules:

- every MatMul/Gemm whose weight is an initializer reads it through DequantizeLinear from an int8
  copy, symmetric (zero point 0), one scale per output channel (`axis` = the output dim);
- the activation input of each such node goes through QuantizeLinear -> DequantizeLinear, int8
  per-tensor symmetric, its range calibrated with `edgept.quantize.int8.collect_stats` and
  `ranges.tensor_range` (the same statistics and methods as int8-static);
- nothing else: LayerNormalization and Softmax read float tensors, and the two activation x
  activation MatMuls of attention stay float (quantizing softmax's output would put a Q after it);
- with `embeddings`, the embedding tables int8 per row (edgept.quantize.embeddings: standard
  Gather/Cast/Mul, which TensorRT parses).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgept.quantize import graph
from edgept.quantize.config import Qdq
from edgept.quantize.int8 import collect_stats
from edgept.quantize.ranges import int8_scale, tensor_range

WEIGHT_OPS = ("MatMul", "Gemm")
INT8_MAX = 127  # symmetric: -127..127, so -128 is never used (TensorRT's convention)


def weight_axis(node: onnx.NodeProto) -> int:
    """The output-channel axis of `node`'s 2-D weight: MatMul B is [K, N]; Gemm B is [N, K] when transB."""
    if node.op_type == "Gemm" and any(a.name == "transB" and a.i for a in node.attribute):
        return 0
    return 1


def weighted_nodes(proto: onnx.ModelProto, keep_float: Iterable[str] = ()) -> list[onnx.NodeProto]:
    """MatMul/Gemm nodes whose second input is a 2-D float initializer, minus `keep_float`, in graph order."""
    skip = set(keep_float)
    weights = {
        i.name for i in proto.graph.initializer if i.data_type == onnx.TensorProto.FLOAT and len(i.dims) == 2
    }
    return [
        n for n in proto.graph.node
        if n.op_type in WEIGHT_OPS and len(n.input) > 1 and n.input[1] in weights and n.name not in skip
    ]


def quantize_weight(w: np.ndarray, axis: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(int8 weight, float32 scale): symmetric, per channel along `axis` (None: one scale)."""
    if axis is None:
        amax = np.array(np.abs(w).max(), dtype=np.float64)
        scale = np.maximum(amax, 1e-12) / INT8_MAX
        shaped = scale
    else:
        reduce = tuple(d for d in range(w.ndim) if d != axis)
        scale = np.maximum(np.abs(w).max(axis=reduce), 1e-12).astype(np.float64) / INT8_MAX
        shaped = np.expand_dims(scale, reduce)
    q = np.clip(np.rint(w / shaped), -INT8_MAX, INT8_MAX).astype(np.int8)
    return q, scale.astype(np.float32)


def _const(proto: onnx.ModelProto, name: str, value: np.ndarray) -> str:
    proto.graph.initializer.append(numpy_helper.from_array(value, name))
    return name


def insert_qdq(
    proto: onnx.ModelProto, act_scales: Mapping[str, float], nodes: Sequence[str], per_channel: bool = True
) -> onnx.ModelProto:
    """A copy of `proto` with `nodes` (weighted MatMul/Gemm names) reading int8 weights and int8
    activations through Q/DQ pairs; `act_scales` maps each node's activation input to its scale.
    A weight or activation shared by several nodes gets one pair, read by all of them."""
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    wanted = set(nodes)
    inits = {i.name: i for i in out.graph.initializer}
    done: dict[str, str] = {}  # float tensor -> its dequantized name
    new_nodes: list[onnx.NodeProto] = []
    for node in out.graph.node:
        if node.name in wanted:
            act, weight = node.input[0], node.input[1]
            if act not in done:
                scale = _const(out, f"{act}_qdq_scale", np.array(act_scales[act], dtype=np.float32))
                zp = _const(out, f"{act}_qdq_zero_point", np.array(0, dtype=np.int8))
                new_nodes += [
                    helper.make_node("QuantizeLinear", [act, scale, zp], [f"{act}_q"], name=f"{act}_Quantize"),
                    helper.make_node("DequantizeLinear", [f"{act}_q", scale, zp], [f"{act}_dq"], name=f"{act}_Dequantize"),
                ]
                done[act] = f"{act}_dq"
            if weight not in done:
                axis = weight_axis(node) if per_channel else None
                q, s = quantize_weight(numpy_helper.to_array(inits[weight]), axis)
                qname = _const(out, f"{weight}_int8", q)
                sname = _const(out, f"{weight}_scale", s)
                zname = _const(out, f"{weight}_zero_point", np.zeros(s.shape, dtype=np.int8))
                attrs = {"axis": axis} if axis is not None else {}
                new_nodes.append(
                    helper.make_node("DequantizeLinear", [qname, sname, zname], [f"{weight}_dq"], name=f"{weight}_Dequantize", **attrs)
                )
                done[weight] = f"{weight}_dq"
            node.input[0], node.input[1] = done[act], done[weight]
        new_nodes.append(node)
    del out.graph.node[:]
    out.graph.node.extend(new_nodes)
    # The float weights nobody reads any more (a keep_float node may still read a shared one).
    used = {i for n in out.graph.node for i in n.input}
    alive = [i for i in out.graph.initializer if i.name in used or i.name not in done]
    del out.graph.initializer[:]
    out.graph.initializer.extend(alive)
    return out


def to_qdq(
    proto: onnx.ModelProto, batches: Sequence[Mapping[str, np.ndarray]], config: Qdq
) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """The explicit-precision INT8 graph of the unfused fp32 `proto`, activation ranges from `batches`
    by `config.method`; the report names the float nodes and counts the Q/DQ placed."""
    proto = graph.name_nodes(proto)
    nodes = weighted_nodes(proto, config.keep_float)
    acts = list(dict.fromkeys(n.input[0] for n in nodes))
    stats = collect_stats(proto, acts, batches)
    scales = {t: int8_scale(*tensor_range(stats[t], config.method, config.percentile)) for t in acts}
    out = insert_qdq(proto, scales, [n.name for n in nodes], config.per_channel)
    if config.embedding_bits is not None:
        from edgept.quantize.embeddings import quantize_embeddings

        out = quantize_embeddings(out, skip=config.keep_float, bits=config.embedding_bits,
                                  int8_only=[n.input[1] for n in nodes])
    report = {
        "method": f"{config.method} ranges, symmetric int8 Q/DQ (explicit precision for TensorRT)",
        "float_nodes": [{"node": n, "reason": "user --keep-float"} for n in config.keep_float],
        "qdq": {"weighted_nodes": len(nodes), "activations": len(acts),
                "weights": len({n.input[1] for n in nodes}), "per_channel": config.per_channel},
    }
    return out, report


__all__ = ["INT8_MAX", "WEIGHT_OPS", "insert_qdq", "quantize_weight", "to_qdq", "weight_axis", "weighted_nodes"]
