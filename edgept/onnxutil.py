"""ONNX graph helpers that export and quantize share. onnx + numpy only: no torch."""

from __future__ import annotations

import hashlib

import onnx
from onnx import numpy_helper


def dedupe_initializers(proto: onnx.ModelProto) -> int:
    """Merge initializers with identical dtype, shape and bytes into one; return how many went.

    Constant folding gives every use of a tied or shared weight its own folded copy (a transposed
    decoder matrix, say); ALBERT exports are ~7x their parameter bytes for that reason
    (transformers#8869). One copy per distinct tensor keeps the file at its parameter size.
    """
    keep: dict[tuple, str] = {}
    rename: dict[str, str] = {}
    survivors = []
    for init in proto.graph.initializer:
        arr = numpy_helper.to_array(init)
        key = (init.data_type, arr.shape, hashlib.sha256(arr.tobytes()).hexdigest())
        if key in keep:
            rename[init.name] = keep[key]
        else:
            keep[key] = init.name
            survivors.append(init)
    if not rename:
        return 0
    del proto.graph.initializer[:]
    proto.graph.initializer.extend(survivors)
    for node in proto.graph.node:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    return len(rename)


def topological_sort(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Reorder `proto`'s top-level nodes so each comes after the producers of its inputs (ONNX requires
    it; onnxruntime tolerates disorder, TensorRT's parser and onnx.checker do not). Stable: nodes
    already in order keep their order. Raises ValueError on a cycle or an input nobody produces."""
    nodes = list(proto.graph.node)
    ready = {i.name for i in proto.graph.input} | {i.name for i in proto.graph.initializer} | {""}
    ordered: list[onnx.NodeProto] = []
    while nodes:
        rest = []
        for node in nodes:
            if all(i in ready for i in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(nodes):
            missing = sorted({i for n in rest for i in n.input if i not in ready})
            raise ValueError(f"graph has a cycle or unproduced inputs: {', '.join(missing[:3])}")
        nodes = rest
    del proto.graph.node[:]
    proto.graph.node.extend(ordered)
    return proto
