"""INT8 embedding tables: each row stored int8 with its own scale, read through standard ops only.

A BERT's word table is most of its file (MiniLM: 30522 x 384 fp32 = 45 MiB of an 87 MiB model), and
no INT8 mode touched it: ORT's and TensorRT's integer kernels are GEMMs. Per-row symmetric int8
(`qdq.quantize_weight(table, axis=0)`: scale = max|row| / 127) costs at most scale/2 per element
and shrinks the table to a quarter. Each `Gather(table, ids)` becomes

    Cast(Gather(table_int8, ids), float) * Unsqueeze(Gather(row_scale, ids), -1)

Why this layout and not `Gather(DequantizeLinear(table_int8, row_scale, axis=0), ids)`: both keep
the file int8 and give the same numbers, but ONNX Runtime does not constant-fold DequantizeLinear,
so the second dequantizes the whole table on every call. Measured (onnxruntime 1.31, 1 thread,
a 30522 x 384 table, batch 1 x 128 ids): fp32 Gather 23 us per call; Gather -> Cast -> Mul 43 us;
DequantizeLinear -> Gather 4587 us, with 68 MiB resident against 35 MiB. A DequantizeLinear after
the Gather cannot serve either: its per-axis scale is one per column of the gathered rows, not per
row. Gather, Cast, Unsqueeze and Mul are what TensorRT's parser takes for int8 tensors too.

A table something else reads as well (an MLM decoder tied to the word embeddings, a Gemm with
transB) is still stored once. ORT's weight quantizer gives that decoder its own int8 copy, transposed
and symmetric per output channel, i.e. per table row (`ort_int8_columns`): the Gathers then read
that copy through a Transpose (constant, so folded at load) and its scales, and no second table is
stored. int8-qdq's decoder weight is the same per-row quantization as the table's, so
`dedupe_initializers` merges the two. Any other reader gets `Cast(table_int8) * row_scale`
(constant inputs, folded at load too). ALBERT's factorized E-wide tables are tables like any other; the E x H
projection after them is a weight the INT8 modes quantize as usual.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgept.quantize.qdq import quantize_weight

ROWS, SCALE = "_rows_int8", "_row_scale"  # suffixes of a table's int8 rows and their scales


def _row_gather(node: onnx.NodeProto, inits: Mapping[str, onnx.TensorProto]) -> bool:
    """Whether `node` gathers rows (axis 0) of an initializer by run-time indices."""
    axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
    return node.op_type == "Gather" and node.input[0] in inits and node.input[1] not in inits and axis == 0


def embedding_tables(proto: onnx.ModelProto, skip: Iterable[str] = ()) -> list[str]:
    """The 2-D float initializers some Gather reads rows of, in graph order; a table one of whose
    Gathers is in `skip` (node names kept in float) is left out."""
    inits = {i.name: i for i in proto.graph.initializer if i.data_type == onnx.TensorProto.FLOAT and len(i.dims) == 2}
    skip = set(skip)
    tables: dict[str, bool] = {}
    for node in proto.graph.node:
        if _row_gather(node, inits):
            tables[node.input[0]] = tables.get(node.input[0], True) and node.name not in skip
    return [t for t, ok in tables.items() if ok]


def ort_int8_columns(proto: onnx.ModelProto) -> dict[str, tuple[str, str]]:
    """table -> (its int8 transposed copy, that copy's scales) for each embedding table ORT's weight
    quantizer also quantized as a transB Gemm weight (its names: `<W>_Transposed_quantized`,
    `_scale`, `_zero_point`), when that copy is symmetric int8 with one scale per table row."""
    inits = {i.name: i for i in proto.graph.initializer}
    found = {}
    for table in embedding_tables(proto):
        q, scale, zero = (inits.get(f"{table}_Transposed_{s}") for s in ("quantized", "scale", "zero_point"))
        rows = inits[table].dims[0]
        if q is None or scale is None or zero is None or q.data_type != onnx.TensorProto.INT8 or list(scale.dims) != [rows]:
            continue
        if list(q.dims) == [inits[table].dims[1], rows] and not numpy_helper.to_array(zero).any():
            found[table] = (q.name, scale.name)
    return found


def quantize_embeddings(
    proto: onnx.ModelProto, skip: Iterable[str] = (), int8_columns: Mapping[str, tuple[str, str]] | None = None
) -> onnx.ModelProto:
    """A copy of `proto` with every `embedding_tables` table stored int8 per row (see the module
    docstring); a table in `int8_columns` (`ort_int8_columns`) is read from that copy instead."""
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    tables = embedding_tables(out, skip)
    if not tables:
        return out
    inits = {i.name: i for i in out.graph.initializer}
    axes = "embeddings/unsqueeze_axes"
    added = [numpy_helper.from_array(np.array([-1], dtype=np.int64), axes)]
    prologue: list[onnx.NodeProto] = []
    rows: dict[str, tuple[str, str]] = {}  # table -> (int8 rows, row scales)
    for name in tables:
        if name in (int8_columns or {}):
            columns, scale = int8_columns[name]
            prologue.append(helper.make_node("Transpose", [columns], [name + ROWS], name=f"{name}/rows", perm=[1, 0]))
            rows[name] = (name + ROWS, scale)
            continue
        q, scale = quantize_weight(numpy_helper.to_array(inits[name]), axis=0)
        added += [numpy_helper.from_array(q, name + ROWS), numpy_helper.from_array(scale, name + SCALE)]
        rows[name] = (name + ROWS, name + SCALE)
    wanted = set(tables)
    nodes: list[onnx.NodeProto] = []
    dequantized: dict[str, None] = {}
    for node in out.graph.node:
        if _row_gather(node, inits) and node.input[0] in wanted:
            (table_rows, table_scale), ids, y = rows[node.input[0]], node.input[1], node.output[0]
            base = node.name or y
            nodes += [
                helper.make_node("Gather", [table_rows, ids], [f"{y}/int8"], name=f"{base}/int8"),
                helper.make_node("Cast", [f"{y}/int8"], [f"{y}/float"], name=f"{base}/cast", to=onnx.TensorProto.FLOAT),
                helper.make_node("Gather", [table_scale, ids], [f"{y}/scale"], name=f"{base}/scale"),
                helper.make_node("Unsqueeze", [f"{y}/scale", axes], [f"{y}/scale_column"], name=f"{base}/scale_column"),
                helper.make_node("Mul", [f"{y}/float", f"{y}/scale_column"], [y], name=base),
            ]
            continue
        for i, name in enumerate(node.input):
            if name in wanted:  # any other reader (a tied decoder): the whole table, dequantized
                node.input[i] = f"{name}/dequantized"
                dequantized[name] = None
        nodes.append(node)
    for name in dequantized:
        prologue += [
            helper.make_node("Cast", [rows[name][0]], [f"{name}/rows_float"], name=f"{name}/cast", to=onnx.TensorProto.FLOAT),
            helper.make_node("Unsqueeze", [rows[name][1], axes], [f"{name}/scale_column"], name=f"{name}/scale_column"),
            helper.make_node("Mul", [f"{name}/rows_float", f"{name}/scale_column"], [f"{name}/dequantized"], name=f"{name}/dequantize"),
        ]
    del out.graph.node[:]
    out.graph.node.extend(prologue + nodes)
    kept = [i for i in out.graph.initializer if i.name not in wanted]
    del out.graph.initializer[:]
    out.graph.initializer.extend(kept + added)
    return out


def int8_tables(proto: onnx.ModelProto) -> list[dict[str, Any]]:
    """What the manifest records of a graph's int8 tables: name, shape (rows, width), and the
    largest error per element that rounding to the row's grid allows (half its scale)."""
    inits = {i.name: i for i in proto.graph.initializer}
    # A table read from ORT's transposed int8 copy has its rows made by a Transpose (quantize_embeddings).
    transposed = {n.output[0]: n.input[0] for n in proto.graph.node if n.op_type == "Transpose"}
    report = []
    for node in proto.graph.node:
        if node.op_type == "Gather" and node.input[0].endswith(ROWS) and node.name.endswith("/int8"):
            scale = next(n.input[0] for n in proto.graph.node if n.name == node.name[: -len("/int8")] + "/scale")
            rows = node.input[0]
            shape = list(inits[rows].dims) if rows in inits else list(reversed(inits[transposed[rows]].dims))
            report.append({"table": rows[: -len(ROWS)], "shape": [int(d) for d in shape],
                           "max_abs_error": float(numpy_helper.to_array(inits[scale]).max() / 2)})
    return list({r["table"]: r for r in report}.values())


__all__ = ["embedding_tables", "int8_tables", "quantize_embeddings"]
