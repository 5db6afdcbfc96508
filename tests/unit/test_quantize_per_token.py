"""Per-token activation scales for the FFN down-projection: the same integer GEMM, a scale per row."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgept.errors import ConfigError
from edgept.quantize import Auto, Int8Static, config_for, graph, quantize
from edgept.quantize.int8 import Int8Plan
from tests.unit.test_quantize import (
    export_tiny,
    outlier_in_block1_ffn,
    pooled_cosine,
    run,
    token_feeds,
    write_npz_set,
)


def gelu_matmul_graph(ffn: int = 64, out: int = 24, gelu: bool = True) -> onnx.ModelProto:
    """x -> GELU -> MatMul: the FFN down-projection alone, so its INT8 error is the output error
    (without `gelu`, x -> MatMul: a GEMM whose input no GELU makes)."""
    w = np.random.default_rng(0).normal(0, 0.05, (ffn, out)).astype(np.float32)
    act = [helper.make_node("Gelu", ["x"], ["h"], name="act", domain="com.microsoft")] if gelu else []
    g = helper.make_graph(
        [*act, helper.make_node("MatMul", ["h" if gelu else "x", "w"], ["y"], name="down")],
        "gelu_matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "s", ffn])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", "s", out])],
        [numpy_helper.from_array(w, "w")],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    return helper.make_model(g, opset_imports=opsets, ir_version=8)


def tokens_of_many_widths(rng: np.random.Generator, n: int, seq: int, ffn: int = 64) -> dict[str, np.ndarray]:
    """Rows whose scale spans 100x (log-uniform 0.3..30), as the GELU outputs of [CLS]/[SEP] and
    ordinary tokens do in BERT: one per-tensor range is set by the widest row and starves the rest."""
    width = np.exp(rng.uniform(np.log(0.3), np.log(30.0), (n, seq, 1)))
    return {"x": (rng.normal(0, 1, (n, seq, ffn)) * width).astype(np.float32)}


def _relative_rows_error(got: np.ndarray, ref: np.ndarray) -> float:
    """The median over rows of each row's relative error: what a narrow token suffers."""
    return float(np.median(np.linalg.norm(got - ref, axis=-1) / np.linalg.norm(ref, axis=-1)))


def test_per_token_scales_rescue_narrow_rows_and_keep_the_integer_gemm():
    proto = gelu_matmul_graph()
    rng = np.random.default_rng(1)
    cal = [tokens_of_many_widths(rng, 4, 10) for _ in range(4)]
    fresh = tokens_of_many_widths(np.random.default_rng(2), 3, 7)  # new seed and shape
    ref = graph.session(proto).run(None, fresh)[0]
    errors, plans = {}, {}
    for per_token in (False, True):
        q = Int8Plan(proto, cal, Int8Static(method="minmax", per_token=per_token)).build("minmax")
        ops = [n.op_type for n in q.graph.node]
        assert "MatMulIntegerToFloat" in ops and "DynamicQuantizeLinear" not in ops and "MatMul" not in ops
        errors[per_token] = _relative_rows_error(graph.session(q).run(None, fresh)[0], ref)
        plans[per_token] = ops
    assert "ReduceMax" in plans[True] and "ReduceMax" not in plans[False]
    # Each with its default weights: 8-bit per tensor, 7-bit per token (no u8s8 saturation).
    # Measured: median row error 0.056 per tensor, 0.014 per token.
    assert errors[True] < 0.02 and errors[True] < errors[False] / 3, errors


@pytest.mark.parametrize("weight_type", ["int8", "uint8"])
def test_per_token_graph_computes_its_stated_formula(weight_type):
    """The ONNX wiring against numpy: s = max(rowmax / (255 - Z), -rowmin / Z), q = round(x / s) + Z,
    y = s * ((q - Z) @ dequantized W); only rounding-order differences allowed. (With 8-bit int8
    weights ORT's AVX2 u8s8 kernel saturates rows that use all 255 levels: 0.8% off here; hence
    7-bit by default. uint8 weights run the u8u8 kernel, which does not saturate: 8-bit, exact.)"""
    proto = gelu_matmul_graph()
    rng = np.random.default_rng(3)
    cal = [tokens_of_many_widths(rng, 4, 10) for _ in range(2)]
    config = Int8Static(method="minmax", per_token=True, weight_type=weight_type)
    assert config.seven_bit is (weight_type == "int8")
    plan = Int8Plan(proto, cal, config)
    q = plan.build("minmax")
    fresh = tokens_of_many_widths(np.random.default_rng(4), 2, 5)
    h = graph.session(proto, outputs=["h"]).run(["h"], fresh)[0].astype(np.float64)
    inits = {i.name: numpy_helper.to_array(i) for i in q.graph.initializer}
    gemm = next(n for n in q.graph.node if n.op_type == "MatMulIntegerToFloat")
    codes = inits[gemm.input[1]].astype(np.int64)
    levels = codes.max(0) - codes.min(0)  # per output channel: 7-bit int8 spans [-64, 64], uint8 more than 7 bits (GPTQ may leave an end code unused)
    assert (levels <= 128).all() if weight_type == "int8" else (levels > 128).all(), levels
    w_int = codes - inits[gemm.input[5]]
    w = w_int * inits[gemm.input[3]].astype(np.float64)
    stats = plan.stats["h"]
    z = graph.per_token_zero_point(stats.median_row_min, stats.median_row_max)
    assert int(inits[gemm.input[4]]) == z and 0 < z < 255
    s = np.maximum(h.max(-1, keepdims=True) / (255 - z), -h.min(-1, keepdims=True) / z)
    codes = np.clip(np.rint(h / s) + z, 0, 255)
    expected = s * ((codes - z) @ w)
    got = graph.session(q).run(None, fresh)[0]
    assert np.abs(got - expected).max() <= 2e-3 * np.abs(expected).max(), np.abs(got - expected).max()


@pytest.mark.parametrize(
    ("low", "median_row_max", "expected"),
    [(0.0, 3.0, 0), (0.5, 3.0, 0), (-0.17, 2.0, 20), (-0.17, 0.0, 254), (-1.0, 1e6, 1)],
)
def test_zero_point_is_the_median_rows_share_of_negatives(low, median_row_max, expected):
    assert graph.per_token_zero_point(low, median_row_max) == expected


def test_per_token_on_a_tiny_bert_touches_only_the_ffn_down_projections(tmp_path, tiny_bert_config):
    config = tiny_bert_config(task="feature-extraction", labels=(), vocab_size=23, num_layers=3)
    bundle = export_tiny(tmp_path, config)
    cal = write_npz_set(tmp_path / "cal", token_feeds(0))
    out = quantize(bundle, tmp_path / "q.edgept", Int8Static(per_token=True), calibration=cal)
    proto = onnx.load(str(out.model_path))
    rescaled = [n.name for n in proto.graph.node if n.name.endswith("/per_token_rescale")]
    assert len(rescaled) == 3 and all("ffn/down" in n for n in rescaled), rescaled
    assert out.passes[-1]["config"]["per_token"] is True
    read = {i for n in proto.graph.node for i in n.input}
    assert not [i.name for i in proto.graph.initializer if i.name not in read]  # no dead constants left behind
    feeds = token_feeds(seed=5, n=4, seq=9)
    cos = pooled_cosine(run(bundle, feeds)["last_hidden_state"], run(out, feeds)["last_hidden_state"], feeds["attention_mask"])
    assert cos.min() > 0.99, cos


@pytest.mark.parametrize("mode", ["int8-dynamic", "fp16", "int8-qdq"])
def test_per_token_needs_a_static_mode(mode):
    with pytest.raises(ConfigError, match="--per-token applies to --mode auto or int8-static") as e:
        config_for(mode, per_token=True)
    assert "\n" not in str(e.value)


def test_per_token_defaults_to_seven_bit_weights():
    assert Int8Static(per_token=True).seven_bit
    assert not Int8Static(per_token=True, reduce_range=False).seven_bit


@pytest.mark.parametrize(("min_cosine", "chosen"), [(0.5, False), (0.99999, True)])
def test_auto_tries_per_token_scales_before_keeping_nodes_in_float(tmp_path, tiny_bert_config, min_cosine, chosen):
    config = tiny_bert_config(task="feature-extraction", labels=(), vocab_size=23, num_layers=2)
    # A random tiny model's all-INT8 error is ~1e-8 (onnxruntime 1.32: below any useful budget);
    # the planted outlier makes it 4e-5. Bias correction alone takes that to 2e-7, so it is off here.
    bundle = export_tiny(tmp_path, config, plant=outlier_in_block1_ffn)
    cal = write_npz_set(tmp_path / "cal", token_feeds(0))
    config = Auto(min_cosine=min_cosine, bias_correction=False)
    out = quantize(bundle, tmp_path / "q.edgept", config, calibration=cal)
    metrics = out.passes[-1]["metrics"]
    assert metrics["per_token"]["chosen"] is chosen
    assert (metrics["per_token"]["all_int8_score"]["cosine"] >= min_cosine) is not chosen
    rescaled = [n for n in onnx.load(str(out.model_path)).graph.node if n.name.endswith("/per_token_rescale")]
    # Chosen: on every down-projection still in INT8 (the budget may then keep some in float).
    down_in_float = [f for f in metrics["float_nodes"] if "ffn/down" in f["node"]]
    assert len(rescaled) + len(down_in_float) == (2 if chosen else len(down_in_float))
    assert chosen or not rescaled


def test_a_graph_without_gelu_inputs_is_left_as_it_is():
    from tests.unit.test_quantize_smooth import ln_matmul_graph

    proto = ln_matmul_graph()
    cal = [{"x": np.random.default_rng(0).normal(0, 1, (4, 10, 32)).astype(np.float32)}]
    plain = Int8Plan(proto, cal, Int8Static(reduce_range=True)).build("minmax")
    per_token = Int8Plan(proto, cal, Int8Static(per_token=True)).build("minmax")
    assert per_token.SerializeToString() == plain.SerializeToString()


def test_scope_all_scales_any_gemm_input_per_token_with_a_symmetric_zero_point():
    """A symmetric input whose rows span 100x (as LayerNorm outputs' do across tokens): Z about 128,
    each row bounded on its wider side, so narrow rows keep the precision one per-tensor range
    starves them of. The default scope leaves a GEMM no GELU feeds alone."""
    proto = gelu_matmul_graph(gelu=False)
    rng = np.random.default_rng(1)
    cal = [tokens_of_many_widths(rng, 4, 10) for _ in range(4)]
    fresh = tokens_of_many_widths(np.random.default_rng(2), 3, 7)
    ref = graph.session(proto).run(None, fresh)[0]
    errors = {}
    for scope in ("ffn-down", "all"):
        # Nearest rounding: GPTQ minimises the summed error, which the wide rows dominate, not this per-row one.
        config = Int8Static(method="minmax", per_token=True, per_token_scope=scope, bias_correction=False, gptq=False)
        q = Int8Plan(proto, cal, config).build("minmax")
        assert len([n for n in q.graph.node if n.name.endswith("/per_token_rescale")]) == (scope == "all")
        errors[scope] = _relative_rows_error(graph.session(q).run(None, fresh)[0], ref)
    zp = next(i for i in q.graph.initializer if i.name.endswith("/per_token_zp"))
    assert 118 < int(numpy_helper.to_array(zp)) < 138
    # Measured: median row error 0.079 per tensor, 0.013 per token.
    assert errors["all"] < 0.03 and errors["all"] < errors["ffn-down"] / 5, errors
