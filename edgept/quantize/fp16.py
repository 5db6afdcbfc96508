"""FP16 with an overflow guard: what overflows or drifts stays in fp32, found on calibration data.

Transformer FP16 engines fail mostly in two ways: an activation past fp16's 65504 (the residual
stream before a LayerNorm, NVIDIA/TensorRT#2564) and reductions that lose precision (LayerNorm,
Softmax). The guard keeps LayerNorm and Softmax in fp32 always, measures every node output in fp32
on the calibration set and keeps any node in fp32 whose output (or an input) passes `FP16_LIMIT`,
then compares each node's fp16 output with fp32 and keeps in fp32 those past the tolerance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx

from edgept.onnxutil import topological_sort
from edgept.quantize import graph
from edgept.quantize.config import Fp16

FP16_LIMIT = 65504.0 / 2  # half of fp16's max: headroom for inputs a little wider than calibration's
ALWAYS_FP32 = ("LayerNormalization", "SkipLayerNormalization", "Softmax")


def _float_outputs(proto: onnx.ModelProto) -> dict[str, str]:
    """Tensor name -> producing node name, for every node output."""
    return {o: n.name for n in proto.graph.node for o in n.output if o}


def _max_abs(proto: onnx.ModelProto, tensors: Sequence[str], batches: Sequence[Mapping[str, np.ndarray]]) -> dict[str, float]:
    sess = graph.session(proto, outputs=tensors)
    peak = dict.fromkeys(tensors, 0.0)
    for outs in graph.run_batches(sess, batches):
        for t in tensors:
            x = outs[t]
            if np.issubdtype(x.dtype, np.floating) and x.size:
                peak[t] = max(peak[t], float(np.max(np.abs(x.astype(np.float32)))))
    return peak


def _convert(proto: onnx.ModelProto, keep: set[str]) -> onnx.ModelProto:
    from onnxruntime.transformers.float16 import convert_float_to_float16

    converted = convert_float_to_float16(
        proto, keep_io_types=True, op_block_list=list(ALWAYS_FP32), node_block_list=sorted(keep)
    )
    # The converter appends some Casts after their consumers; ONNX (and TensorRT's parser) need order.
    return topological_sort(_drop_round_trips(converted))


def _drop_round_trips(proto: onnx.ModelProto) -> onnx.ModelProto:
    """The converter routes every fp32 -> fp32 edge between two kept nodes through fp16
    (Cast to fp16, then back), which overflows exactly the tensors the guard kept in fp32;
    rewire such consumers to the fp32 tensor and drop the casts nobody reads any more."""
    to = {n.output[0]: (n.input[0], n.attribute[0].i) for n in proto.graph.node if n.op_type == "Cast"}
    fp16, fp32 = onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT
    bypass = {
        out: to[src][0]
        for out, (src, dtype) in to.items()
        if dtype == fp32 and src in to and to[src][1] == fp16
    }
    for node in proto.graph.node:
        for i, name in enumerate(node.input):
            if name in bypass:
                node.input[i] = bypass[name]
    while True:
        used = {i for n in proto.graph.node for i in n.input} | {o.name for o in proto.graph.output}
        dead = [n for n in proto.graph.node if n.op_type == "Cast" and n.output[0] not in used]
        if not dead:
            return proto
        for n in dead:
            proto.graph.node.remove(n)


def _drift(
    fp32: onnx.ModelProto, fp16: onnx.ModelProto, tensors: dict[str, str], batches: Sequence[Mapping[str, np.ndarray]]
) -> dict[str, float]:
    """Per node output: max |fp16 - fp32| relative to max |fp32|, over the batches (tensors the
    fp16 graph no longer has under their name, the kept nodes' round trips, are skipped)."""
    present = _float_outputs(fp16)
    names = [t for t in tensors if t in present]
    s32, s16 = graph.session(fp32, outputs=names), graph.session(fp16, outputs=names)
    drift = dict.fromkeys(names, 0.0)
    for a, b in zip(graph.run_batches(s32, batches), graph.run_batches(s16, batches), strict=True):
        for t in names:
            x, y = a[t], b[t]
            if not np.issubdtype(x.dtype, np.floating) or x.size == 0:
                continue
            err = float(np.max(np.abs(x.astype(np.float32) - y.astype(np.float32))))
            drift[t] = max(drift[t], err / (float(np.max(np.abs(x))) + 1e-6))
    return drift


def to_fp16(
    proto: onnx.ModelProto, batches: Sequence[Mapping[str, np.ndarray]], config: Fp16
) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """The fp16 graph of `proto` with the guard applied; the report names every node kept in fp32 and why."""
    proto = graph.name_nodes(proto)
    producers = _float_outputs(proto)
    peak = _max_abs(proto, list(producers), batches)
    keep: dict[str, str] = {n: "user --keep-float" for n in config.keep_float}
    hot = {t for t, v in peak.items() if not np.isfinite(v) or v > FP16_LIMIT}
    for node in proto.graph.node:
        over = [t for t in node.output if t in hot]
        fed = [t for t in node.input if t in hot]
        if over:
            keep.setdefault(node.name, f"overflow: output max |x| = {peak[over[0]]:.4g} > {FP16_LIMIT:g}")
        elif fed:
            keep.setdefault(node.name, f"overflow: input {fed[0]} max |x| = {peak[fed[0]]:.4g} > {FP16_LIMIT:g}")
    converted = _convert(proto, set(keep))
    drift = _drift(proto, converted, producers, batches)
    drifted = {
        producers[t]: f"drift: fp16 relative error {d:.3g} > {config.fp16_tolerance:g}"
        for t, d in drift.items()
        if d > config.fp16_tolerance and producers[t] not in keep
    }
    if drifted:
        keep.update(drifted)
        converted = _convert(proto, set(keep))
    float_nodes = [{"node": n.name, "reason": f"{n.op_type} always fp32"} for n in proto.graph.node if n.op_type in ALWAYS_FP32]
    float_nodes += [{"node": n, "reason": r} for n, r in keep.items()]
    return converted, {"method": "fp16 with overflow/drift guard", "float_nodes": float_nodes, "fp16_limit": FP16_LIMIT}
