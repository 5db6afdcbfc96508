"""ONNX graph work for quantization: fuse, quantize weights, freeze activation scales, capture tensors.

The INT8 graph is built so ONNX Runtime keeps its fused transformer kernels: the fp32 graph is first
fused by ORT's transformer optimizer (Attention, BiasGelu; its SkipLayerNormalization is split
back into Add + LayerNormalization, the faster pair on CPU: `unfuse_skip_layernorm`), then ORT's
weight quantizer turns Attention into QAttention and MatMul into MatMulInteger (per-channel int8
weights), leaving LayerNorm, Softmax (inside Attention) and GELU in float. `freeze_scales` then swaps
each per-call `DynamicQuantizeLinear` for a `QuantizeLinear` with calibrated constants: the
activation min/max pass disappears at run time and the ranges come from the calibration method.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgept.runtime import ort

# Ops whose weights ORT's quantizer quantizes; embedding tables (Gather) are edgept's own (edgept.quantize.embeddings).
QUANT_OPS = ("MatMul", "Attention")
# ORT's optimizer model types per edgept arch (ALBERT is a BERT graph with shared weights).
_FUSION_TYPES = {"bert": "bert", "vit": "vit"}


def name_nodes(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Give every unnamed node a stable unique name (nodes_to_exclude and reports refer to names)."""
    seen: set[str] = set()
    for i, node in enumerate(proto.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{i}"
        seen.add(node.name)
    return proto


def fuse(path: str | Path, model_config: Mapping[str, Any] | None) -> onnx.ModelProto:
    """ORT's transformer fusion of an fp32 graph (unchanged apart from names when the arch is unknown)."""
    config = model_config or {}
    model_type = _FUSION_TYPES.get(str(config.get("arch")))
    if model_type is None or not config.get("num_heads") or not config.get("hidden_size"):
        return name_nodes(onnx.load(str(path)))
    from onnxruntime.transformers.optimizer import optimize_model

    # ORT's hidden_size is the query/key/value width, which pruned heads make narrower than the model's.
    width = int(config["num_heads"]) * int(config.get("attention_head_size") or int(config["hidden_size"]) // int(config["num_heads"]))
    opt = optimize_model(str(path), model_type=model_type, num_heads=int(config["num_heads"]), hidden_size=width)
    return name_nodes(unfuse_skip_layernorm(opt.model))


def unfuse_skip_layernorm(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Each com.microsoft SkipLayerNormalization(x, skip, gamma, beta[, bias]) of the transformer
    optimizer back to Add (+ Add bias) + LayerNormalization (opset >= 17 only; nodes that also
    output mean/inv_std are left alone).

    On the CPU execution provider the fused kernel is the slower one: measured on the fine-tuned
    MiniLM's static INT8 graph (1 thread, batch 1, seq 128, onnxruntime 1.31.1), 285 us per
    SkipLayerNormalization against 37 us per LayerNormalization, 3.2 ms of a 53 ms inference over
    13 nodes; unfused, the graph went from 0.95x to 1.08x the speed of ORT's own dynamic INT8 in
    one interleaved run. ORT's CPU session does not fuse the pair back. Exact in fp32 up to the
    order of the additions."""
    if not any(o.domain in ("", "ai.onnx") and o.version >= 17 for o in proto.opset_import):
        return proto
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    nodes = []
    for n in out.graph.node:
        extra_outputs = [o for o in n.output[1:] if o]
        if n.op_type != "SkipLayerNormalization" or n.domain != "com.microsoft" or extra_outputs:
            nodes.append(n)
            continue
        x, skip, gamma, beta = n.input[:4]
        bias = n.input[4] if len(n.input) > 4 and n.input[4] else None
        eps = next((a.f for a in n.attribute if a.name == "epsilon"), 1e-12)
        total = f"{n.name}/sum"
        nodes.append(helper.make_node("Add", [x, skip], [total], name=f"{n.name}/add"))
        if bias:
            nodes.append(helper.make_node("Add", [total, bias], [f"{total}_bias"], name=f"{n.name}/add_bias"))
            total = f"{total}_bias"
        nodes.append(helper.make_node("LayerNormalization", [total, gamma, beta], [n.output[0]], name=n.name, axis=-1, epsilon=eps))
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    return out


def _weight_name(node: onnx.NodeProto) -> str | None:
    return node.input[1] if len(node.input) > 1 else None


def quantizable_nodes(proto: onnx.ModelProto) -> list[str]:
    """Names of the nodes whose weight (second input) is an initializer: what INT8 quantizes, in graph order."""
    inits = {i.name for i in proto.graph.initializer}
    return [n.name for n in proto.graph.node if n.op_type in QUANT_OPS and _weight_name(n) in inits]


def quantize_weights(
    proto: onnx.ModelProto,
    *,
    keep_float: Iterable[str] = (),
    per_channel: bool = True,
    reduce_range: bool = False,
    embedding_bits: int | None = None,
    unsigned: bool = False,
) -> onnx.ModelProto:
    """ORT's weight quantization (int8, or uint8 when `unsigned`; per output channel) of `proto`'s
    MatMul/Attention nodes, except `keep_float`; activations are quantized per call
    (DynamicQuantizeLinear) until frozen. With `embedding_bits` (8 or 4), the embedding tables are
    stored per row in that many bits too (edgept.quantize.embeddings)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from edgept.quantize.embeddings import ort_int8_columns, quantize_embeddings

    with tempfile.TemporaryDirectory(prefix="edgept-q-") as tmp:
        src, dst = Path(tmp) / "in.onnx", Path(tmp) / "out.onnx"
        onnx.save(proto, str(src))
        with _without_preprocessing_advice():
            quantize_dynamic(
                str(src),
                str(dst),
                op_types_to_quantize=list(QUANT_OPS),
                per_channel=per_channel,
                reduce_range=reduce_range,
                weight_type=QuantType.QUInt8 if unsigned else QuantType.QInt8,
                nodes_to_exclude=list(keep_float),
                # Fused contrib ops have no type info ORT's quantizer can read (DESIGN: measured fix).
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
        out = onnx.load(str(dst))
    if embedding_bits is None:
        return out
    return quantize_embeddings(out, skip=keep_float, int8_columns=ort_int8_columns(out), bits=embedding_bits)


@contextlib.contextmanager
def _without_preprocessing_advice() -> Iterator[None]:
    """Drop the root-logger warning ORT's quantizer prints on every call, advising its shape-inference
    pre-processing: the graph edgept hands it is already fused and typed, so the advice is noise."""

    def keep(record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()

    root = logging.getLogger()
    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)


def dynamic_inputs(proto: onnx.ModelProto) -> list[str]:
    """The float tensors a quantized graph quantizes per call: the inputs of its DynamicQuantizeLinear nodes."""
    return [n.input[0] for n in proto.graph.node if n.op_type == "DynamicQuantizeLinear"]


def freeze_scales(proto: onnx.ModelProto, params: Mapping[str, tuple[float, int]]) -> onnx.ModelProto:
    """Replace each DynamicQuantizeLinear(x) with QuantizeLinear(x, scale, zero_point) from `params`
    (float tensor name -> (scale, uint8 zero point)); the scale/zero-point outputs become constants
    under their old names, so QAttention and MatMulInteger's scale products read them unchanged."""
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    nodes = []
    for node in out.graph.node:
        if node.op_type != "DynamicQuantizeLinear":
            nodes.append(node)
            continue
        x = node.input[0]
        if x not in params:
            raise KeyError(f"no calibrated range for {x!r}")
        scale, zp = params[x]
        q, scale_name, zp_name = node.output
        out.graph.initializer.extend(
            [
                numpy_helper.from_array(np.array(scale, dtype=np.float32), scale_name),
                numpy_helper.from_array(np.array(zp, dtype=np.uint8), zp_name),
            ]
        )
        nodes.append(helper.make_node("QuantizeLinear", [x, scale_name, zp_name], [q], name=node.name))
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    return out


def fuse_integer_matmuls(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Rewrite each MatMulInteger -> Cast -> Mul(Mul(a_scale, b_scale)) chain as one
    com.microsoft MatMulIntegerToFloat: the int8 GEMM with the rescale in its epilogue.

    ORT fuses that chain itself only when a_scale comes from a DynamicQuantizeLinear; once the
    scale is a frozen constant the product is folded and the fusion no longer matches, leaving
    three kernels (and two passes over the output) where dynamic quantization has one (measured
    on MiniLM: 18 MatMulInteger + 18 Cast + 18 Mul vs 18 DynamicQuantizeMatMul)."""
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    made_by = {o: n for n in out.graph.node for o in n.output}
    readers: dict[str, list[onnx.NodeProto]] = {}
    for n in out.graph.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    graph_outputs = {o.name for o in out.graph.output}
    drop: set[int] = set()
    replace: dict[int, onnx.NodeProto] = {}
    for m in out.graph.node:
        if m.op_type != "MatMulInteger" or len(m.input) != 4:
            continue
        cast = _only_reader(readers, m.output[0], "Cast", graph_outputs)
        mul = cast and _only_reader(readers, cast.output[0], "Mul", graph_outputs)
        if mul is None:
            continue
        scales = made_by.get(next((i for i in mul.input if i != cast.output[0]), ""))
        if scales is None or scales.op_type != "Mul" or len(readers[scales.output[0]]) != 1:
            continue
        # The A scale is QuantizeLinear's; which of the product's inputs it is, the producer of A says.
        quant = made_by.get(m.input[0])
        a_scale = quant.input[1] if quant is not None and quant.op_type == "QuantizeLinear" else None
        if a_scale not in scales.input:
            continue
        b_scale = next(i for i in scales.input if i != a_scale) if scales.input[0] != scales.input[1] else a_scale
        fused = helper.make_node(
            "MatMulIntegerToFloat", [m.input[0], m.input[1], a_scale, b_scale, m.input[2], m.input[3]],
            [mul.output[0]], name=m.name, domain="com.microsoft",
        )
        replace[id(m)] = fused
        drop.update({id(cast), id(mul), id(scales)})
    nodes = [replace.get(id(n), n) for n in out.graph.node if id(n) not in drop]
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    if replace and not any(o.domain == "com.microsoft" for o in out.opset_import):
        out.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return out


def _only_reader(
    readers: Mapping[str, list[onnx.NodeProto]], tensor: str, op_type: str, graph_outputs: set[str]
) -> onnx.NodeProto | None:
    found = readers.get(tensor, [])
    if len(found) == 1 and found[0].op_type == op_type and tensor not in graph_outputs:
        return found[0]
    return None


def session(proto: onnx.ModelProto, threads: int = 1, outputs: Iterable[str] = ()) -> Any:
    """An onnxruntime CPU session of `proto`, with extra graph `outputs` exposed (for tensor capture)."""
    extra = [o for o in outputs if o not in {v.name for v in proto.graph.output}]
    if extra:
        model = onnx.ModelProto()
        model.CopyFrom(proto)
        model.graph.output.extend(onnx.ValueInfoProto(name=o) for o in extra)
        proto = model
    return ort.open_session(proto.SerializeToString(), threads=threads, quiet=True)


def run_batches(sess: Any, batches: Iterable[Mapping[str, np.ndarray]]) -> Iterator[dict[str, np.ndarray]]:
    """Run `sess` on each feed dict (inputs the graph does not take are dropped); yield outputs by name."""
    names = [o.name for o in sess.get_outputs()]
    for feeds in batches:
        yield dict(zip(names, ort.run(sess, feeds), strict=True))


# Producers whose outputs get per-token scales under `per_token`: the FFN down-projection reads a
# GELU output, whose outliers are per token (no per-channel smoothing reaches them, edgept.quantize.smooth).
PER_TOKEN_PRODUCERS = ("Gelu", "BiasGelu", "FastGelu")


def per_token_zero_point(low: float, median_row_max: float) -> int:
    """The fixed uint8 zero point of a per-token quantized input whose median row spans
    [`low`, `median_row_max`]: the share of the 255 levels its negative side takes."""
    c = max(0.0, -low)
    return 0 if c == 0.0 else int(np.clip(np.ceil(255.0 * c / (c + max(median_row_max, 0.0))), 1, 254))


def quantize_per_token(
    proto: onnx.ModelProto, stats: Mapping[str, tuple[float, float]], every: bool = False
) -> onnx.ModelProto:
    """Give each MatMulIntegerToFloat that reads a GELU output (with `every`: any input) through its
    QuantizeLinear a per-token (per row) activation scale computed at run time, keeping the integer GEMM: a row scale commutes
    with the product, `(diag(s) Q) W = diag(s) (Q W)`, so the GEMM takes scale 1 and its output rows
    are rescaled after.

    `stats[x]` is (median row minimum, median row maximum) of input x. With Z =
    `per_token_zero_point` (the median row's share of negatives: small for a GELU output, whose
    minimum is about -0.17; about 128 for a LayerNorm output):
        s = max(rowmax(x) / (255 - Z), -rowmin(x) / Z);  q = uint8(round(x / s) + Z);  y = s * ((q - Z) W)
    so every row fits its own range on the side that binds, and the zero point stays one constant
    (ORT's integer GEMMs take a scalar one). With Z = 0 (no negatives seen) negatives clip to 0.
    Cost: four elementwise passes over the input and one over the output, next to a GEMM of F*H
    multiply-adds per row."""
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    opset = next(o.version for o in out.opset_import if o.domain in ("", "ai.onnx"))
    made_by = {o: n for n in out.graph.node for o in n.output}
    added: list[onnx.TensorProto] = []

    def const(name: str, value: float, dtype: type = np.float32) -> str:
        added.append(numpy_helper.from_array(np.array(value, dtype=dtype), name))
        return name

    one = const("per_token/one", 1.0)
    prologue: dict[str, tuple[str, str, str]] = {}  # x -> (q, its row scales, its zero point)
    nodes_out = []
    for node in out.graph.node:
        quant = made_by.get(node.input[0]) if node.op_type == "MatMulIntegerToFloat" else None
        if quant is None or quant.op_type != "QuantizeLinear":
            nodes_out.append(node)
            continue
        source = made_by.get(quant.input[0])
        if not every and (source is None or source.op_type not in PER_TOKEN_PRODUCERS):
            nodes_out.append(node)
            continue
        x = quant.input[0]
        if x not in prologue:
            low, median_row_max = stats[x]
            z = per_token_zero_point(low, median_row_max)
            q, scale, zp = f"{x}/per_token_q", f"{x}/per_token_scale", const(f"{x}/per_token_zp", z, np.uint8)
            axes = {"axes": [-1]} if opset < 18 else {}
            axes_input = [] if opset < 18 else [const(f"{x}/per_token_axes", np.array([-1]), np.int64)]
            steps = [
                helper.make_node("ReduceMax", [x, *axes_input], [f"{x}/per_token_max"], keepdims=1, **axes),
                helper.make_node("Mul", [f"{x}/per_token_max", const(f"{x}/per_token_levels", 1.0 / (255 - z))],
                                 [f"{x}/per_token_fit"]),
            ]
            fits = [f"{x}/per_token_fit", const(f"{x}/per_token_floor", 1e-12)]  # the floor: an all-zero row
            if z:
                steps += [
                    helper.make_node("ReduceMin", [x, *axes_input], [f"{x}/per_token_min"], keepdims=1, **axes),
                    helper.make_node("Mul", [f"{x}/per_token_min", const(f"{x}/per_token_negative_levels", -1.0 / z)],
                                     [f"{x}/per_token_fit_negative"]),
                ]
                fits.append(f"{x}/per_token_fit_negative")
            steps += [
                helper.make_node("Max", fits, [scale]),
                helper.make_node("Reciprocal", [scale], [f"{x}/per_token_inv"]),
                helper.make_node("Mul", [x, f"{x}/per_token_inv"], [f"{x}/per_token_unit"]),
                helper.make_node("QuantizeLinear", [f"{x}/per_token_unit", one, zp], [q]),
            ]
            for i, step in enumerate(steps):
                step.name = f"{x}/per_token_{i}"
            nodes_out.extend(steps)
            prologue[x] = (q, scale, zp)
        q, scale, zp = prologue[x]
        y = node.output[0]
        nodes_out.append(helper.make_node(
            "MatMulIntegerToFloat", [q, node.input[1], one, node.input[3], zp, node.input[5]], [f"{y}/per_token_gemm"],
            name=node.name, domain="com.microsoft",
        ))
        nodes_out.append(helper.make_node("Mul", [f"{y}/per_token_gemm", scale], [y], name=f"{node.name}/per_token_rescale"))
    if not prologue:
        return proto
    # The static QuantizeLinear of an input only per-token GEMMs read is dead now, and so are its constants.
    read = {i for n in nodes_out for i in n.input} | {o.name for o in out.graph.output}
    dead = [n for n in nodes_out if n.op_type == "QuantizeLinear" and n.output[0] not in read]
    nodes_out = [n for n in nodes_out if all(n is not d for d in dead)]
    read = {i for n in nodes_out for i in n.input}
    unused = {i for d in dead for i in d.input[1:]} - read
    kept = [i for i in out.graph.initializer if i.name not in unused]
    del out.graph.node[:]
    out.graph.node.extend(nodes_out)
    del out.graph.initializer[:]
    out.graph.initializer.extend([*kept, *added])
    return out
