"""Explicit-precision ONNX for TensorRT (int8 Q/DQ, fp16 casts): standard ops, placement, parity with fp32."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edgept.errors import ConfigError
from edgept.quantize import Fp16, Qdq, config_for, quantize
from edgept.quantize.qdq import INT8_MAX, quantize_weight
from tests.unit.test_quantize import encoder_config, pooled_cosine, run, tiny, token_feeds  # noqa: F401  (fixtures)

STANDARD_DOMAINS = ("", "ai.onnx")
FLOAT_ONLY = ("LayerNormalization", "Softmax")


def explicit(tiny, tmp_path, config):  # noqa: F811
    bundle, cal = tiny
    out = quantize(bundle, tmp_path / f"{config.mode}.edgept", config, calibration=cal)
    proto = onnx.load(str(out.model_path))
    onnx.checker.check_model(proto, full_check=True)  # also: nodes topologically sorted, types infer
    assert {n.domain for n in proto.graph.node} <= set(STANDARD_DOMAINS), {n.op_type for n in proto.graph.node if n.domain}
    return bundle, out, proto


def parity(bundle, out):
    feeds = token_feeds(seed=99, n=6, seq=9)  # fresh: a seed and shape the calibration never saw
    ref, got = run(bundle, feeds)["last_hidden_state"], run(out, feeds)["last_hidden_state"]
    return pooled_cosine(ref, got, feeds["attention_mask"]), float(np.abs(ref - got).max())


def test_int8_qdq_is_standard_and_matches_fp32(tiny, tmp_path):  # noqa: F811
    bundle, out, proto = explicit(tiny, tmp_path, Qdq(method="percentile"))
    ops = {n.op_type for n in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "MatMul", "LayerNormalization", "Softmax"} <= ops
    assert not ops & {"QAttention", "MatMulInteger", "DynamicQuantizeLinear", "SkipLayerNormalization"}
    cos, diff = parity(bundle, out)
    # int8 tolerance for a random 2-layer, 32-wide encoder (measured: cosine 0.999998, max diff 0.008)
    assert cos.min() > 0.999 and diff < 0.05, (cos, diff)


def test_qdq_placement_follows_tensorrt_rules(tiny, tmp_path):  # noqa: F811
    _, _, proto = explicit(tiny, tmp_path, Qdq(method="percentile"))
    producer = {o: n for n in proto.graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in proto.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    weighted = [n for n in proto.graph.node if n.op_type == "MatMul" and producer.get(n.input[1]) is not None
                and producer[n.input[1]].op_type == "DequantizeLinear" and producer[n.input[1]].input[0] in inits]
    assert len(weighted) == 2 * 6  # 2 layers x (q, k, v, o, up, down)
    for mm in weighted:
        wdq = producer[mm.input[1]]
        w, scale, zp = (inits[i] for i in wdq.input)
        axis = {a.name: a.i for a in wdq.attribute}["axis"]
        assert w.dtype == np.int8 and axis == 1 and scale.shape == (w.shape[1],)  # per output channel
        assert zp.dtype == np.int8 and not zp.any()  # symmetric
        adq = producer[mm.input[0]]  # the activation: per-tensor symmetric Q -> DQ
        q = producer[adq.input[0]]
        assert (adq.op_type, q.op_type) == ("DequantizeLinear", "QuantizeLinear")
        assert inits[q.input[1]].shape == () and inits[q.input[2]].dtype == np.int8 and inits[q.input[2]] == 0
    # Every MatMul that reads a weight initializer reads it through a DQ: no float weight is left.
    for n in proto.graph.node:
        if n.op_type == "MatMul":
            assert n.input[1] not in inits
    # LayerNorm and Softmax run in float: no DQ feeds them, no Q reads Softmax; a Q may read a LayerNorm
    # output only as the quantized input of weighted MatMuls (TensorRT fuses that into the LayerNorm).
    for n in proto.graph.node:
        if n.op_type in FLOAT_ONLY:
            assert all(producer.get(i) is None or producer[i].op_type != "DequantizeLinear" for i in n.input), n.name
        if n.op_type == "Softmax":
            assert all(c.op_type != "QuantizeLinear" for c in consumers[n.output[0]])
        if n.op_type == "QuantizeLinear":
            for dq in consumers[n.output[0]]:
                assert dq.op_type == "DequantizeLinear"
                assert {c.op_type for c in consumers[dq.output[0]]} == {"MatMul"}


def test_fp16_is_standard_casts_with_layernorm_and_softmax_in_fp32(tiny, tmp_path):  # noqa: F811
    bundle, out, proto = explicit(tiny, tmp_path, Fp16())
    assert "Cast" in {n.op_type for n in proto.graph.node}
    fp16_weights = [i for i in proto.graph.initializer if i.data_type == onnx.TensorProto.FLOAT16]
    assert fp16_weights
    typed = onnx.shape_inference.infer_shapes(proto)
    dtype = {v.name: v.type.tensor_type.elem_type for v in [*typed.graph.value_info, *typed.graph.input]}
    for n in proto.graph.node:
        if n.op_type in FLOAT_ONLY:
            assert dtype[n.input[0]] == onnx.TensorProto.FLOAT, n.name
    cos, diff = parity(bundle, out)
    assert cos.min() > 0.99999 and diff < 5e-3, (cos, diff)  # fp16: ~1e-3 on unit-scale activations


def test_weight_quantization_is_symmetric_per_channel_and_exact_at_the_grid():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(8, 5)).astype(np.float32) * np.array([1, 10, 0.1, 3, 0], np.float32)
    q, scale = quantize_weight(w, axis=1)
    assert q.dtype == np.int8 and scale.shape == (5,)
    assert np.abs(q).max(axis=0)[:4].tolist() == [INT8_MAX] * 4  # each channel's max hits 127
    err = np.abs(q * scale - w)
    assert (err <= scale / 2 + 1e-7).all()  # round to nearest: at most half a step per element
    q1, s1 = quantize_weight(w, axis=None)
    assert s1.shape == () and np.abs(q1).max() == INT8_MAX


@pytest.mark.parametrize("change", [{"reduce_range": True}, {"smooth": 0.5}, {"min_cosine": 0.99}, {"weight_type": "uint8"}])
def test_qdq_refuses_what_tensorrt_qdq_cannot_mean(change):
    with pytest.raises(ConfigError, match=r"applies to --mode .*; drop it or change --mode \(got --mode int8-qdq\)") as e:
        config_for("int8-qdq", **change)
    assert "\n" not in str(e.value)
