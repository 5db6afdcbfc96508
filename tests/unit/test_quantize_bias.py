"""Bias correction: a quantized MatMul's mean output shift goes into the bias it meets next."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgept.quantize import Int8Static, graph, quantize
from edgept.quantize.bias import _downstream_bias, channel_means, correct_bias, matmul_outputs
from edgept.quantize.int8 import Int8Plan
from tests.unit.test_quantize import export_tiny, outlier_in_block1_ffn, token_feeds, write_npz_set

D = 16


def _model(nodes, inits, outputs) -> onnx.ModelProto:
    g = helper.make_graph(
        nodes, "bias", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "s", D])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, ["b", "s", D]) for o in outputs],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()],
    )  # fmt: skip
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    return helper.make_model(g, opset_imports=opsets, ir_version=8)


def linear_graph() -> onnx.ModelProto:
    """y = x W + b."""
    rng = np.random.default_rng(0)
    inits = {"w": rng.normal(0, 0.3, (D, D)), "b": rng.normal(0, 0.1, D)}
    return _model([helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"), helper.make_node("Add", ["h", "b"], ["y"], name="add")],
                  inits, ["y"])  # fmt: skip


def off_centre(seed: int, n: int, seq: int) -> dict[str, np.ndarray]:
    """Inputs with a large common mean: weight rounding error e then shifts every output row by
    mean(x) e, the same each row (a bias), on top of a zero-mean part."""
    rng = np.random.default_rng(seed)
    return {"x": (5.0 + rng.normal(0, 1, (n, seq, D))).astype(np.float32)}


def test_correction_zeroes_the_mean_shift_and_halves_the_error_on_fresh_inputs_at_no_cost():
    proto = linear_graph()
    cal = [off_centre(1, 8, 10) for _ in range(4)]
    fresh = off_centre(2, 5, 7)  # new seed and shape
    ref = graph.session(proto).run(None, fresh)[0]
    # Round-to-nearest weights: GPTQ on these off-centre inputs already removes most of the shift.
    config = Int8Static(method="minmax", per_channel=False, gptq=False)
    plain = Int8Plan(proto, cal, config.replace(bias_correction=False)).build("minmax")
    plan = Int8Plan(proto, cal, config)
    corrected = plan.build("minmax")
    assert [n.op_type for n in corrected.graph.node] == [n.op_type for n in plain.graph.node]  # no run-time cost
    assert [r["bias"] for r in plan.corrections] == ["b"]

    def mean_shift(q):
        return np.abs(channel_means(q, ["y"], cal)["y"] - channel_means(proto, ["y"], cal)["y"]).max()

    assert mean_shift(plain) > 1e-2 and mean_shift(corrected) < 1e-5, (mean_shift(plain), mean_shift(corrected))
    rms = {name: np.sqrt(np.mean((graph.session(q).run(None, fresh)[0] - ref) ** 2)) for name, q in
           (("plain", plain), ("corrected", corrected))}  # fmt: skip
    # Measured: rms 0.041 -> 0.014.
    assert rms["corrected"] < rms["plain"] / 2, rms


def test_the_bias_is_found_past_a_residual_add_and_in_bias_gelu_and_a_shared_one_is_copied():
    rng = np.random.default_rng(0)
    inits = {"w1": rng.normal(0, 0.3, (D, D)), "w2": rng.normal(0, 0.3, (D, D)), "w3": rng.normal(0, 0.3, (D, D)),
             "b": rng.normal(0, 0.1, D), "b2": rng.normal(0, 0.1, D)}  # fmt: skip
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["y1"], name="mm1"),
        helper.make_node("Add", ["y1", "x"], ["res"], name="residual"),  # an unfused SkipLayerNorm's sum
        helper.make_node("Add", ["res", "b"], ["o1"], name="add_b"),
        helper.make_node("MatMul", ["x", "w2"], ["y2"], name="mm2"),
        helper.make_node("BiasGelu", ["y2", "b2"], ["g"], name="gelu", domain="com.microsoft"),
        helper.make_node("Add", ["g", "b"], ["o2"], name="add_b_again"),  # b is shared
        helper.make_node("MatMul", ["x", "w3"], ["o3"], name="mm3"),  # a graph output: no bias follows
    ]
    proto = _model(nodes, inits, ["o1", "o2", "o3"])
    assert [(n.name, i) for n, i in (_downstream_bias(proto, t) for t in ("y1", "y2"))] == [("add_b", 1), ("gelu", 1)]
    assert _downstream_bias(proto, "o3") is None
    cal = [off_centre(1, 8, 10) for _ in range(4)]
    plan = Int8Plan(proto, cal, Int8Static(method="minmax", per_channel=False))
    corrected = plan.build("minmax")
    rows = {r["tensor"]: r for r in plan.corrections}
    assert rows["y1"]["bias"] == "b/bias_corrected/add_b" and rows["y2"]["bias"] == "b2"
    assert rows["o3"]["bias"] is None and "no bias" in rows["o3"]["reason"]
    inits_after = {i.name: numpy_helper.to_array(i) for i in corrected.graph.initializer}
    np.testing.assert_array_equal(inits_after["b"], inits["b"].astype(np.float32))  # the other use keeps it
    assert not np.allclose(inits_after["b/bias_corrected/add_b"], inits["b"])
    # Through the residual sum, o1's mean now matches fp32's.
    want, got = channel_means(proto, ["o1"], cal)["o1"], channel_means(corrected, ["o1"], cal)["o1"]
    assert np.abs(got - want).max() < 1e-5


def test_quantize_corrects_every_int8_matmul_of_a_bert_and_the_held_out_error_falls(tmp_path, tiny_bert_config):
    config = tiny_bert_config(task="feature-extraction", labels=(), vocab_size=23, num_layers=2)
    # The planted FFN outlier (invisible in fp32) gives INT8 an error a budget can see.
    bundle = export_tiny(tmp_path, config, plant=outlier_in_block1_ffn)
    cal, hold = write_npz_set(tmp_path / "cal", token_feeds(0)), write_npz_set(tmp_path / "hold", token_feeds(7))
    errors = {}  # float tables: what is measured is the GEMMs' error, which bias correction removes
    for correct in (False, True):
        q = quantize(bundle, tmp_path / f"q-{correct}.edgept", Int8Static(method="minmax", bias_correction=correct, embeddings=False),
                     calibration=cal, holdout=hold)  # fmt: skip
        metrics = q.passes[-1]["metrics"]
        errors[correct] = 1 - metrics["holdout"]["cosine"]
        assert ("bias_correction" in metrics) is correct
    fused = graph.fuse(bundle.model_path, bundle.manifest["model"]["config"])
    rows = metrics["bias_correction"]
    assert {r["tensor"] for r in rows} == set(matmul_outputs(fused)) and all(r["bias"] for r in rows)
    # Measured on the held-out set: 1 - cosine 3.6e-5 -> 1.7e-6.
    assert errors[True] < errors[False] / 4, errors


def test_correct_bias_leaves_a_graph_without_quantized_matmuls_alone():
    proto = linear_graph()
    cal = [off_centre(1, 4, 5)]
    out, report = correct_bias(proto, channel_means(proto, matmul_outputs(proto), cal), cal)
    assert report == [] and out.SerializeToString() == proto.SerializeToString()


def test_activation_products_are_not_corrected():
    """An unfused attention's scores, x x^T, have the sequence as last axis: no bias, not a target."""
    proto = _model([helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 2, 1], name="t"),
                    helper.make_node("MatMul", ["x", "xt"], ["scores"], name="qk"),
                    helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")],
                   {"w": np.eye(D)}, ["y"])  # fmt: skip
    proto.graph.output.append(helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["b", "s", "s"]))
    assert matmul_outputs(proto) == ["y"]
    batches = [off_centre(1, 2, 5), off_centre(2, 2, 7)]  # two sequence lengths
    assert channel_means(proto, matmul_outputs(proto), batches)["y"].shape == (D,)
