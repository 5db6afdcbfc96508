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
