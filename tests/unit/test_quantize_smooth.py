"""SmoothQuant-style smoothing: exact in fp32, and it rescues a planted per-channel outlier in INT8."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from edgept.errors import ConfigError
from edgept.quantize import Int8Static, graph, quantize
from edgept.quantize.smooth import smooth
from tests.unit.test_quantize import (
    export_tiny,
    pooled_cosine,
    run,
    token_feeds,
    weight_storage,
    write_npz_set,
)


def outlier_dimension_in_block1_ln(model):
    """BERT's outlier dimensions (Kovaleva et al. 2021): one LayerNorm gamma/beta channel 40x the
    rest, so the FFN input has a channel no per-tensor int8 range serves; the up-projection reads
    it back at the usual scale (its column divided by 40), as a trained model learns to."""
    blk = model.encoder.blocks[1]
    blk.attn_norm.weight[3] *= 40
    blk.attn_norm.bias[3] = 40 * blk.attn_norm.bias[3].abs() + 40
    blk.ffn.up.weight[:, 3] /= 40


@pytest.fixture
def planted(tmp_path, tiny_bert_config):
    config = tiny_bert_config(task="feature-extraction", labels=(), vocab_size=23)
    bundle = export_tiny(tmp_path, config, plant=outlier_dimension_in_block1_ln)
    return bundle, write_npz_set(tmp_path / "cal", token_feeds(0))


def _fused(bundle):
    return graph.fuse(bundle.model_path, bundle.manifest["model"]["config"])


def test_smoothing_alone_leaves_fp32_outputs_unchanged(planted):
    bundle, _ = planted
    fused = _fused(bundle)
    cal = [token_feeds(0, n=8)]
    smoothed, report = smooth(fused, cal, alpha=0.5)
    # Not a no-op: the planted 60x channel gets a large s, weights really changed.
    assert max(g["s_max"] / g["s_min"] for g in report["groups"]) > 20, report
    assert sum(n.op_type == "Mul" and n.name.endswith("/smooth") for n in smoothed.graph.node) == len(report["groups"])
    feeds = token_feeds(seed=7, n=5, seq=11)  # fresh seed and shape
    ref = graph.session(fused).run(None, feeds)[0]
    got = graph.session(smoothed).run(None, feeds)[0]
    assert np.abs(ref - got).max() <= 1e-5 * max(1.0, np.abs(ref).max()), np.abs(ref - got).max()


def ln_matmul_graph(hidden: int = 32, out: int = 48, outlier: float = 40.0) -> onnx.ModelProto:
    """x -> LayerNorm (channel 3's gamma/beta `outlier` x the rest) -> MatMul: the FFN-up pattern,
    alone, so the INT8 error of that one node is the output error."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    gamma, beta = np.ones(hidden, np.float32), rng.normal(0, 0.1, hidden).astype(np.float32)
    gamma[3], beta[3] = outlier, outlier
    w = rng.normal(0, 0.05, (hidden, out)).astype(np.float32)
    w[3] /= outlier  # the next layer reads the wide channel back at the usual scale
    g = helper.make_graph(
        [helper.make_node("LayerNormalization", ["x", "gamma", "beta"], ["h"], axis=-1, name="ln"),
         helper.make_node("MatMul", ["h", "w"], ["y"], name="up")],
        "ln_matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "s", hidden])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", "s", out])],
        [numpy_helper.from_array(a, n) for a, n in ((gamma, "gamma"), (beta, "beta"), (w, "w"))],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_smoothing_rescues_a_planted_outlier_channel_in_int8():
    from edgept.quantize.int8 import Int8Plan

    proto = ln_matmul_graph()
    rng = np.random.default_rng(1)
    cal = [{"x": rng.normal(0, 1, (4, 10, 32)).astype(np.float32)} for _ in range(4)]
    fresh = [{"x": rng.normal(0, 1, (3, 7, 32)).astype(np.float32)}]  # new seed and shape
    ref = graph.session(proto).run(None, fresh[0])[0]
    errors = {}
    for alpha, seven in ((None, False), (None, True), (0.5, False), (0.5, True)):
        g = smooth(proto, cal, alpha)[0] if alpha is not None else proto
        config = Int8Static(method="minmax", smooth=alpha, reduce_range=seven)
        q = Int8Plan(g, cal, config).build("minmax")
        assert "MatMulIntegerToFloat" in {n.op_type for n in q.graph.node}  # the fused int8 kernel stays
        errors[alpha, seven] = np.abs(graph.session(q).run(None, fresh[0])[0] - ref).max() / np.abs(ref).max()
    best_plain = min(errors[None, False], errors[None, True])
    assert errors[0.5, True] < best_plain / 4, errors  # measured: 0.015 vs 0.26 / 0.32
    # Smoothing fills the int8 weight range; AVX2 u8s8 GEMMs without VNNI then saturate their int16
    # pair sums (measured 0.24 here), hence 7-bit weights by default with smoothing.
    assert Int8Static(smooth=0.5).seven_bit and not Int8Static().seven_bit


def test_smoothing_is_recorded_in_the_manifest(planted, tmp_path):
    bundle, cal = planted
    q = quantize(bundle, tmp_path / "s.edgept", Int8Static(smooth=0.5), calibration=cal)
    smoothing = q.passes[-1]["metrics"]["smoothing"]
    assert smoothing["alpha"] == 0.5 and smoothing["groups"]
    assert all("ffn/down" not in n for g in smoothing["groups"] for n in g["nodes"])  # LayerNorm outputs only


def test_smoothing_keeps_shared_weights_shared(tmp_path, tiny_bert_config):
    config = tiny_bert_config(task="feature-extraction", labels=(), vocab_size=23, num_layers=4, num_groups=1)
    bundle = export_tiny(tmp_path, config)
    cal = write_npz_set(tmp_path / "cal", token_feeds(0))
    out = quantize(bundle, tmp_path / "q.edgept", Int8Static(smooth=0.5), calibration=cal)
    proto = onnx.load(str(out.model_path))
    int8, _ = weight_storage(proto)
    assert len(int8) == 4  # one s per shared weight: its int8 copy is still one
    feeds = token_feeds(seed=3, n=4, seq=8)
    cos = pooled_cosine(run(bundle, feeds)["last_hidden_state"], run(out, feeds)["last_hidden_state"], feeds["attention_mask"])
    assert cos.min() > 0.99


def test_smooth_alpha_is_validated():
    with pytest.raises(ConfigError, match=r"alpha in \[0, 1\]"):
        Int8Static(smooth=1.5)
