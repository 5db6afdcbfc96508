"""ONNX graph work for quantization: fuse, quantize weights, freeze activation scales, capture tensors.

The INT8 graph is built so ONNX Runtime keeps its fused transformer kernels: the fp32 graph is first
fused by ORT's transformer optimizer (Attention, SkipLayerNormalization, BiasGelu), then ORT's
weight quantizer turns Attention into QAttention and MatMul into MatMulInteger (per-channel int8
weights), leaving LayerNorm, Softmax (inside Attention) and GELU in float. `freeze_scales` then swaps
each per-call `DynamicQuantizeLinear` for a `QuantizeLinear` with calibrated constants: the
activation min/max pass disappears at run time and the ranges come from the calibration method.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

# Ops whose weights edgept quantizes; Gather (embeddings) is opt-in through `embeddings`.
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

    opt = optimize_model(
        str(path), model_type=model_type, num_heads=int(config["num_heads"]), hidden_size=int(config["hidden_size"])
    )
    return name_nodes(opt.model)


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
    embeddings: bool = False,
) -> onnx.ModelProto:
    """ORT's weight quantization (int8, per output channel) of `proto`'s MatMul/Attention nodes,
    except `keep_float`; activations are quantized per call (DynamicQuantizeLinear) until frozen."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    ops = [*QUANT_OPS, "Gather"] if embeddings else list(QUANT_OPS)
    with tempfile.TemporaryDirectory(prefix="edgept-q-") as tmp:
        src, dst = Path(tmp) / "in.onnx", Path(tmp) / "out.onnx"
        onnx.save(proto, str(src))
        quantize_dynamic(
            str(src),
            str(dst),
            op_types_to_quantize=ops,
            per_channel=per_channel,
            reduce_range=reduce_range,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=list(keep_float),
            # Fused contrib ops have no type info ORT's quantizer can read (DESIGN: measured fix).
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
        return onnx.load(str(dst))


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


def session(proto: onnx.ModelProto, threads: int = 1, outputs: Iterable[str] = ()) -> Any:
    """An onnxruntime CPU session of `proto`, with extra graph `outputs` exposed (for tensor capture)."""
    import onnxruntime as ort

    extra = [o for o in outputs if o not in {v.name for v in proto.graph.output}]
    if extra:
        model = onnx.ModelProto()
        model.CopyFrom(proto)
        model.graph.output.extend(onnx.ValueInfoProto(name=o) for o in extra)
        proto = model
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def run_batches(sess: Any, batches: Iterable[Mapping[str, np.ndarray]]) -> Iterator[dict[str, np.ndarray]]:
    """Run `sess` on each feed dict (inputs the graph does not take are dropped); yield outputs by name."""
    wanted = {i.name for i in sess.get_inputs()}
    names = [o.name for o in sess.get_outputs()]
    for feeds in batches:
        outs = sess.run(None, {k: v for k, v in feeds.items() if k in wanted})
        yield dict(zip(names, outs, strict=True))
