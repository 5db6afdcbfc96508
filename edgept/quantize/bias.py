"""Empirical bias correction: take out the mean shift INT8 adds to each GEMM's output channels.

Rounding and clipping do not average out to zero per output channel: a clipped activation tail, a
zero point that is not a level of the data, or 7-bit weights each move E[y_j] of a quantized
GEMM by a constant per channel, and a constant shift is exactly what a bias absorbs (Nagel et al.
2019, "Data-free quantization through weight equalization and bias correction", section 4.2,
in its empirical form; Finkelstein et al. 2019, "Fighting quantization bias with bias"). On a
classifier that shift moves the decision boundary, so examples near it flip even while the output
cosine stays high.

For each quantized GEMM in graph order, the INT8 graph (with every earlier correction in place,
so each one also absorbs what the layers before it left) and the fp32 graph run on the
calibration feeds; the per-channel mean of the difference over real tokens is subtracted from the
bias that the GEMM's output meets next: the Add of a bias vector, BiasGelu's bias, or the bias Add
after a residual Add (the unfused SkipLayerNormalization). Nothing is added to the graph, so the
corrected graph runs exactly as fast; a shared bias (ALBERT) is copied for the node it corrects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from edgept.parity import Feeds, real_rows
from edgept.quantize import graph


def matmul_outputs(proto: onnx.ModelProto) -> list[str]:
    """The output tensors of `proto`'s MatMul nodes with a weight (initializer) operand: what bias
    correction compares, by name. Activation products (unfused attention's Q K^T, whose last axis
    is the sequence) have no per-channel bias to correct."""
    inits = {i.name for i in proto.graph.initializer}
    return [n.output[0] for n in proto.graph.node if n.op_type == "MatMul" and len(n.input) > 1 and n.input[1] in inits]


def channel_means(proto: onnx.ModelProto, tensors: Sequence[str], batches: Sequence[Feeds]) -> dict[str, np.ndarray]:
    """Each tensor's per-channel (last axis) mean over the real tokens of all batches, in float64."""
    sess = graph.session(proto, outputs=tensors)
    sums = {t: 0.0 for t in tensors}
    count = {t: 0 for t in tensors}
    for feeds, outs in zip(batches, graph.run_batches(sess, batches), strict=True):
        for t in tensors:
            x = real_rows(outs[t], feeds)
            x = x.reshape(-1, x.shape[-1]).astype(np.float64)
            sums[t] = sums[t] + x.sum(0)
            count[t] += len(x)
    return {t: sums[t] / max(count[t], 1) for t in tensors}


def correct_bias(
    quantized: onnx.ModelProto,
    fp32_means: Mapping[str, np.ndarray],
    batches: Sequence[Feeds],
) -> tuple[onnx.ModelProto, list[dict[str, Any]]]:
    """`quantized` with each quantized MatMul's mean output shift on `batches` folded into the bias it
    meets next, and a report row per corrected tensor. `fp32_means` holds the fp32 graph's
    `channel_means` of its MatMul outputs on the same batches (`matmul_outputs`): a MatMul's output
    keeps its name through quantization (MatMulIntegerToFloat, or a per-token GEMM's rescale Mul,
    writes it), and one still written by a MatMul was kept in float and is left alone."""
    out = onnx.ModelProto()
    out.CopyFrom(quantized)
    targets = [n.output[0] for n in out.graph.node if n.output[0] in fp32_means and n.op_type != "MatMul"]
    report = []
    for tensor in targets:
        bias = _downstream_bias(out, tensor)
        if bias is None:
            report.append({"tensor": tensor, "bias": None, "reason": "no bias vector follows it"})
            continue
        shift = channel_means(out, [tensor], batches)[tensor] - fp32_means[tensor]
        node, index = bias
        value = numpy_helper.to_array(next(i for i in out.graph.initializer if i.name == node.input[index])).astype(np.float64)
        if value.shape != shift.shape:
            report.append({"tensor": tensor, "bias": node.input[index], "reason": f"bias shape {value.shape} is not {shift.shape}"})
            continue
        init = _own_initializer(out, node, index)
        init.CopyFrom(numpy_helper.from_array((value - shift).astype(np.float32), init.name))
        report.append({"tensor": tensor, "bias": init.name, "mean_abs_shift": float(np.abs(shift).mean()),
                       "max_abs_shift": float(np.abs(shift).max())})  # fmt: skip
    return out, report


def _downstream_bias(proto: onnx.ModelProto, tensor: str) -> tuple[onnx.NodeProto, int] | None:
    """(node, input index) of the bias vector `tensor` meets next through a chain of Adds, or None.

    Adding a constant anywhere along y -> Add(y, skip) -> Add(., b) is the same sum, so the walk
    passes residual Adds; it stops at any other op, a fork, or a graph output."""
    inits = {i.name for i in proto.graph.initializer}
    graph_outputs = {o.name for o in proto.graph.output}
    readers: dict[str, list[onnx.NodeProto]] = {}
    for n in proto.graph.node:
        for name in n.input:
            readers.setdefault(name, []).append(n)
    while tensor not in graph_outputs and len(readers.get(tensor, [])) == 1:
        node = readers[tensor][0]
        if node.op_type == "BiasGelu" and node.input[0] == tensor and node.input[1] in inits:
            return node, 1
        if node.op_type != "Add" or len(node.input) != 2:
            return None
        other = 1 if node.input[0] == tensor else 0
        if node.input[other] in inits:
            return node, other
        tensor = node.output[0]
    return None


def _own_initializer(proto: onnx.ModelProto, node: onnx.NodeProto, index: int) -> onnx.TensorProto:
    """The initializer `node` reads at `index`, copied under a new name first when another node
    reads it too (a shared ALBERT bias gets one correction per use)."""
    name = node.input[index]
    init = next(i for i in proto.graph.initializer if i.name == name)
    if sum(name in n.input for n in proto.graph.node) == 1:
        return init
    copy = proto.graph.initializer.add()
    copy.CopyFrom(init)
    copy.name = f"{name}/bias_corrected/{node.name}"
    node.input[index] = copy.name
    return copy
