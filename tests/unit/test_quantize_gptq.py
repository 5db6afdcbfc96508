"""GPTQ weight rounding: RTN's grid and integers where inputs are uncorrelated, a smaller GEMM
output error where they are correlated, one rounding per shared weight."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgept.quantize import Int8Static, graph, quantize
from edgept.quantize.gptq import gptq_round
from edgept.quantize.int8 import Int8Plan
from tests.unit.test_quantize import (
    VOCAB,
    distinct,
    export_tiny,
    shared_config,
    token_feeds,
    weight_storage,
    write_npz_set,
)

IN, OUT = 64, 48


def linear_graph(seed: int = 0) -> onnx.ModelProto:
    """y = x W, W in ONNX MatMul layout (in x out)."""
    w = np.random.default_rng(seed).normal(0, 0.2, (IN, OUT)).astype(np.float32)
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "s", IN])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", "s", OUT])],
        [numpy_helper.from_array(w, "w")],
    )  # fmt: skip
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def correlated(seed: int, n: int, seq: int) -> dict[str, np.ndarray]:
    """Inputs on a few shared directions plus a little noise, as a transformer's hidden states
    are: rounding errors in the weight rows along those directions add up instead of averaging out."""
    mix = np.random.default_rng(99).normal(0, 1, (8, IN))  # the same directions for every seed
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (n, seq, 8)) @ mix + rng.normal(0, 0.1, (n, seq, IN))
    return {"x": x.astype(np.float32)}


def _ints(proto: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}


def test_a_diagonal_gram_gives_onnxruntimes_own_round_to_nearest_integers():
    proto = linear_graph()
    rtn = _ints(graph.quantize_weights(proto, per_channel=True))
    w = numpy_helper.to_array(proto.graph.initializer[0])
    scale, zero = rtn["w_scale"], rtn["w_zero_point"]
    # Uncorrelated inputs of unequal power: no error is worth moving to another row.
    gram = np.diag(np.random.default_rng(1).uniform(0.1, 10.0, IN))
    got = gptq_round(w, gram, scale, zero, (-127, 127))
    np.testing.assert_array_equal(got.astype(np.int8), rtn["w_quantized"])


def test_gptq_lowers_the_gemm_output_error_on_fresh_correlated_inputs():
    proto = linear_graph()
    w = numpy_helper.to_array(proto.graph.initializer[0]).astype(np.float64)
    cal = [correlated(s, 8, 16) for s in range(4)]
    x = correlated(7, 6, 11)["x"].astype(np.float64)  # new seed and shape
    config = Int8Static(method="minmax", bias_correction=False)
    errors, ints = {}, {}
    for gptq in (False, True):
        plan = Int8Plan(proto, cal, config.replace(gptq=gptq))
        stored = _ints(plan._weights(()))
        ints[gptq] = stored["w_quantized"].astype(int)
        # The weight alone: x W_q against x W, activations in float.
        w_q = (ints[gptq] - stored["w_zero_point"]) * stored["w_scale"].astype(np.float64)
        errors[gptq] = float(np.linalg.norm(x @ w_q - x @ w) / np.linalg.norm(x @ w))
    moved = np.abs(ints[True] - ints[False])
    assert moved.any() and moved.max() <= 2  # the same grid, integers nudged
    # Measured: relative error 0.0062 (nearest) -> 0.0019 (GPTQ).
    assert errors[True] < errors[False] / 2, errors
    assert [r["weight"] for r in plan.rounding] == ["w"] and plan.rounding[0]["gptq_error"] < plan.rounding[0]["rtn_error"] / 2


def test_a_shared_weight_is_rounded_once_and_stays_one_initializer(tmp_path, tiny_bert_config):
    config = tiny_bert_config(task="feature-extraction", labels=(), vocab_size=VOCAB)
    bundle = export_tiny(tmp_path, shared_config(config, factorized=False))
    cal = write_npz_set(tmp_path / "cal", token_feeds(0))
    results = {}
    for gptq in (False, True):
        out = quantize(bundle, tmp_path / f"q-{gptq}.edgept", Int8Static(gptq=gptq), calibration=cal)
        int8, _ = weight_storage(onnx.load(str(out.model_path)))
        assert len(int8) == distinct(int8) == 4  # 4 layers share QKV, out, up, down: one int8 copy each
        results[gptq] = (int8, out.passes[-1]["metrics"])
    rows = results[True][1]["gptq"]
    assert "gptq" not in results[False][1]
    assert len({r["weight"] for r in rows}) == len(rows) and rows
    # Each layer's fused QKV copy is rounded against the same summed Gram matrix, so all copies agree.
    assert len({(round(r["rtn_error"], 12), round(r["gptq_error"], 12)) for r in rows}) == 4
    assert all(r["gptq_error"] <= r["rtn_error"] for r in rows)
    assert sorted(a.tobytes() for a in results[True][0]) != sorted(a.tobytes() for a in results[False][0])
