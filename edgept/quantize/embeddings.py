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

`bits=4` (`--embeddings int4`) stores each row symmetric int4 (scale = max|row| / 7), two values a
byte (`pack_int4_rows`), and unpacks the gathered bytes with Cast, Div, Floor, Mul, Sub and a Concat
of the two halves: standard ops on seq x W/2 values per call. It halves the table again, which is
what a small student's file is mostly made of (3 layers, E=128: the int8 word table is 3.9 of 9.7 MB),
at twice the rounding error per element; a table a decoder also reads stays int8, stored once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgept.quantize.qdq import quantize_weight

ROWS, ROWS4, SCALE = "_rows_int8", "_rows_int4x2", "_row_scale"  # suffixes: a table's int rows, their scales
INT4_MAX, INT4_OFFSET = 7, 8
NIBBLE, OFFSET = "embeddings/sixteen", "embeddings/int4_offset"


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


def pack_int4_rows(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(packed uint8 rows, float32 row scales) of a float table of even width W: each row symmetric
    int4 (scale = max|row| / 7, values -7..7 stored offset by 8), element j in the low nibble and
    element j + W/2 in the high nibble of byte j, so unpacking is a Concat of the two halves."""
    scale = np.maximum(np.abs(table).max(axis=1), 1e-12).astype(np.float64) / INT4_MAX
    q = (np.clip(np.rint(table / scale[:, None]), -INT4_MAX, INT4_MAX) + INT4_OFFSET).astype(np.uint8)
    half = table.shape[1] // 2
    return q[:, :half] | (q[:, half:] << 4), scale.astype(np.float32)


def _dequantize(rows: str, scale_column: str, y: str, base: str, bits: int) -> list[onnx.NodeProto]:
    """Nodes making float `y` from int rows (`bits` 8: int8; 4: `pack_int4_rows`'s bytes) times
    their scales (a trailing axis of 1)."""
    cast = helper.make_node("Cast", [rows], [f"{y}/float"], name=f"{base}/cast", to=onnx.TensorProto.FLOAT)
    if bits == 8:
        return [cast, helper.make_node("Mul", [f"{y}/float", scale_column], [y], name=base)]
    # Float arithmetic, not BitShift/BitwiseAnd (opset 18): ops every opset has, each exact on 0..255.
    return [
        cast,
        helper.make_node("Div", [f"{y}/float", NIBBLE], [f"{y}/div16"], name=f"{base}/div16"),
        helper.make_node("Floor", [f"{y}/div16"], [f"{y}/high"], name=f"{base}/high"),
        helper.make_node("Mul", [f"{y}/high", NIBBLE], [f"{y}/high16"], name=f"{base}/high16"),
        helper.make_node("Sub", [f"{y}/float", f"{y}/high16"], [f"{y}/low"], name=f"{base}/low"),
        helper.make_node("Concat", [f"{y}/low", f"{y}/high"], [f"{y}/offset"], name=f"{base}/unpack", axis=-1),
        helper.make_node("Sub", [f"{y}/offset", OFFSET], [f"{y}/int"], name=f"{base}/centre"),
        helper.make_node("Mul", [f"{y}/int", scale_column], [y], name=base),
    ]


def quantize_embeddings(
    proto: onnx.ModelProto, skip: Iterable[str] = (), int8_columns: Mapping[str, tuple[str, str]] | None = None,
    bits: int = 8, int8_only: Iterable[str] = (),
) -> onnx.ModelProto:
    """A copy of `proto` with every `embedding_tables` table stored per row in `bits` (8, or 4 for a
    table of even width; see the module docstring); a table in `int8_columns` (`ort_int8_columns`)
    is read from that int8 copy instead, and one in `int8_only` (a weight the caller quantized to the
    same per-row int8, e.g. a tied decoder's) is stored int8, whatever `bits`, so it stays stored once."""
    if bits not in (4, 8):
        raise ValueError(f"embedding tables are stored in 8 or 4 bits, not {bits}")
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    tables = embedding_tables(out, skip)
    if not tables:
        return out
    inits = {i.name: i for i in out.graph.initializer}
    axes = "embeddings/unsqueeze_axes"
    added = [numpy_helper.from_array(np.array([-1], dtype=np.int64), axes)]
    prologue: list[onnx.NodeProto] = []
    rows: dict[str, tuple[str, str, int]] = {}  # table -> (int rows, row scales, bits)
    int8_only = set(int8_only)
    for name in tables:
        if name in (int8_columns or {}):
            columns, scale = int8_columns[name]
            prologue.append(helper.make_node("Transpose", [columns], [name + ROWS], name=f"{name}/rows", perm=[1, 0]))
            rows[name] = (name + ROWS, scale, 8)
            continue
        table = numpy_helper.to_array(inits[name])
        if bits == 4 and table.shape[1] % 2 == 0 and name not in int8_only:
            q, scale = pack_int4_rows(table)
            suffix, table_bits = ROWS4, 4
        else:
            (q, scale), suffix, table_bits = quantize_weight(table, axis=0), ROWS, 8
        added += [numpy_helper.from_array(q, name + suffix), numpy_helper.from_array(scale, name + SCALE)]
        rows[name] = (name + suffix, name + SCALE, table_bits)
    if any(b == 4 for *_, b in rows.values()):
        added += [numpy_helper.from_array(np.array(16.0, np.float32), NIBBLE),
                  numpy_helper.from_array(np.array(float(INT4_OFFSET), np.float32), OFFSET)]
    wanted = set(tables)
    nodes: list[onnx.NodeProto] = []
    dequantized: dict[str, None] = {}
    for node in out.graph.node:
        if _row_gather(node, inits) and node.input[0] in wanted:
            (table_rows, table_scale, b), ids, y = rows[node.input[0]], node.input[1], node.output[0]
            base = node.name or y
            nodes += [
                helper.make_node("Gather", [table_rows, ids], [f"{y}/int{b}"], name=f"{base}/int{b}"),
                helper.make_node("Gather", [table_scale, ids], [f"{y}/scale"], name=f"{base}/scale"),
                helper.make_node("Unsqueeze", [f"{y}/scale", axes], [f"{y}/scale_column"], name=f"{base}/scale_column"),
                *_dequantize(f"{y}/int{b}", f"{y}/scale_column", y, base, b),
            ]
            continue
        for i, name in enumerate(node.input):
            if name in wanted:  # any other reader (a tied decoder): the whole table, dequantized
                node.input[i] = f"{name}/dequantized"
                dequantized[name] = None
        nodes.append(node)
    for name in dequantized:
        table_rows, table_scale, b = rows[name]
        prologue += [
            helper.make_node("Unsqueeze", [table_scale, axes], [f"{name}/scale_column"], name=f"{name}/scale_column"),
            *_dequantize(table_rows, f"{name}/scale_column", f"{name}/dequantized", f"{name}/dequantize", b),
        ]
    del out.graph.node[:]
    out.graph.node.extend(prologue + nodes)
    kept = [i for i in out.graph.initializer if i.name not in wanted]
    del out.graph.initializer[:]
    out.graph.initializer.extend(kept + added)
    return out


def quantized_tables(proto: onnx.ModelProto) -> list[dict[str, Any]]:
    """What the manifest records of a graph's int tables: name, shape (rows, width), bits, and the
    largest error per element that rounding to the row's grid allows (half its scale)."""
    inits = {i.name: i for i in proto.graph.initializer}
    # A table read from ORT's transposed int8 copy has its rows made by a Transpose (quantize_embeddings).
    transposed = {n.output[0]: n.input[0] for n in proto.graph.node if n.op_type == "Transpose"}
    scales = {n.name: n.input[0] for n in proto.graph.node if n.op_type == "Gather"}
    report = []
    for node in proto.graph.node:
        rows = node.input[0] if node.op_type == "Gather" and node.input else ""
        for suffix, bits in ((ROWS, 8), (ROWS4, 4)):
            if rows.endswith(suffix) and node.name.endswith(f"/int{bits}"):
                scale = scales[node.name[: -len(f"/int{bits}")] + "/scale"]
                shape = list(inits[rows].dims) if rows in inits else list(reversed(inits[transposed[rows]].dims))
                shape[1] *= 8 // bits  # two int4 values a byte
                report.append({"table": rows[: -len(suffix)], "shape": [int(d) for d in shape], "bits": bits,
                               "max_abs_error": float(numpy_helper.to_array(inits[scale]).max() / 2)})
    return list({r["table"]: r for r in report}.values())


__all__ = ["embedding_tables", "pack_int4_rows", "quantize_embeddings", "quantized_tables"]
