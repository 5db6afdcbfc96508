"""INT8 and FP16 quantization of tiny exported bundles, each checked against the fp32 graph."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from edgept.errors import ConfigError, InputError
from edgept.fileio import sha256_file
from edgept.quantize import Auto, Fp16, Int8Dynamic, Int8Static, Qdq, QuantizeConfig, config_for, quantize

VOCAB = 23


def write_npz_set(path, feeds: dict[str, np.ndarray]):
    """A calibration set in the inputs.npz format, with its card."""
    path.mkdir(parents=True)
    np.savez(path / "inputs.npz", **feeds)
    card = {"source": "test", "count": len(next(iter(feeds.values()))), "license": "test",
            "sha256": {"inputs.npz": sha256_file(path / "inputs.npz")}, "created_by": "test"}
    (path / "card.json").write_text(json.dumps(card))
    return path


def token_feeds(seed: int, n: int = 32, seq: int = 12) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    mask = np.ones((n, seq), np.int64)
    mask[: n // 2, seq - 3 :] = 0  # some padding, so masked statistics are exercised
    return {"input_ids": rng.integers(1, VOCAB, (n, seq)), "attention_mask": mask,
            "token_type_ids": np.zeros((n, seq), np.int64)}


def export_tiny(tmp_path, config, name="fp32", plant=None):
    from edgept.export import export
    from edgept.models import build_model

    torch.manual_seed(0)

    model = build_model(config).eval()
    if plant is not None:
        with torch.no_grad():
            plant(model)
    return export(model, tmp_path / f"{name}.edgept")


@pytest.fixture
def encoder_config(tiny_bert_config):
    return tiny_bert_config(task="feature-extraction", labels=(), vocab_size=VOCAB)


@pytest.fixture
def tiny(tmp_path, encoder_config):
    return export_tiny(tmp_path, encoder_config), write_npz_set(tmp_path / "cal", token_feeds(0))


def outlier_in_block1_ffn(model):
    """A 60x activation outlier in one channel of block 1's FFN hidden layer, invisible in fp32
    (its down-projection column is divided by the same factor) but fatal to a per-tensor int8 range."""
    ffn = model.encoder.blocks[1].ffn
    ffn.up.weight[3] *= 60
    ffn.up.bias[3] = 60 * ffn.up.bias[3].abs() + 60
    ffn.down.weight[:, 3] /= 60


def run(bundle, feeds):
    from edgept.runtime import load

    return load(bundle, threads=1).run(feeds)


def pooled_cosine(a, b, mask):
    m = mask[..., None]
    pa, pb = (a * m).sum(1) / m.sum(1), (b * m).sum(1) / m.sum(1)
    return (pa * pb).sum(1) / (np.linalg.norm(pa, axis=1) * np.linalg.norm(pb, axis=1))


def test_each_method_gives_its_own_ranges(tiny, tmp_path):
    bundle, cal = tiny
    files = {}
    for method in ("minmax", "entropy", "percentile"):
        out = quantize(bundle, tmp_path / f"{method}.edgept", Int8Static(method=method), calibration=cal)
        files[method] = out.artifacts["model.onnx"]["sha256"]
        assert out.passes[-1]["config"]["calibration"]["sha256"] == sha256_file(cal / "inputs.npz")
    assert len(set(files.values())) == 3, files


def test_static_int8_matches_fp32_on_fresh_inputs_and_keeps_fused_kernels(tiny, tmp_path):
    bundle, cal = tiny
    out = quantize(bundle, tmp_path / "s.edgept", Int8Static(), calibration=cal)
    ops = {n.op_type for n in onnx.load(str(out.model_path)).graph.node}
    assert {"QAttention", "MatMulIntegerToFloat", "QuantizeLinear", "LayerNormalization"} <= ops
    assert "SkipLayerNormalization" not in ops  # split: the faster pair on CPU (graph.unfuse_skip_layernorm)
    assert "DynamicQuantizeLinear" not in ops  # ranges are frozen constants
    assert "MatMulInteger" not in ops  # the int8 GEMM rescales in its epilogue (one kernel)
    feeds = token_feeds(seed=99, n=6, seq=9)  # fresh: a new seed and shape
    ref, got = run(bundle, feeds)["last_hidden_state"], run(out, feeds)["last_hidden_state"]
    cos = pooled_cosine(ref, got, feeds["attention_mask"])
    assert cos.min() > 0.99, cos  # int8 tolerance for a random 2-layer, 32-wide encoder
    assert np.abs(ref - got).max() < 0.5
    assert not (out.path / "model.fp32.onnx").exists()  # the bundle holds what runs...
    reference = out.passes[-1]["metrics"]["reference"]  # ...and says what it was made from
    assert reference["sha256"] == bundle.artifacts["model.onnx"]["sha256"] and reference["file"] is None


def test_sensitivity_ranks_planted_outlier_first_and_budget_keeps_it(tmp_path, encoder_config):
    bundle = export_tiny(tmp_path, encoder_config, plant=outlier_in_block1_ffn)
    cal = write_npz_set(tmp_path / "cal", token_feeds(0))
    # Float tables: the ranking is of the GEMMs, whose error the int8 tables' would blur.
    plain = quantize(bundle, tmp_path / "plain.edgept", Int8Static(embeddings=False), calibration=cal)
    c0 = plain.passes[-1]["metrics"]["calibration"]["cosine"]
    budget = 1 - (1 - c0) / 3  # all-INT8 misses it: something must stay in float
    out = quantize(bundle, tmp_path / "q.edgept", Int8Static(min_cosine=budget, embeddings=False), calibration=cal)
    metrics = out.passes[-1]["metrics"]
    ranked = metrics["sensitivity"]
    assert "blocks.1/ffn/down" in ranked[0]["node"], ranked[:3]
    assert ranked[0]["error"] > 5 * ranked[1]["error"]
    assert metrics["budget"]["met"] and metrics["calibration"]["cosine"] >= budget
    assert metrics["float_nodes"][0]["node"] == ranked[0]["node"]


def test_fp16_guard_keeps_a_planted_layernorm_overflow_in_fp32(tmp_path, encoder_config):
    def huge_embeddings(model):  # the embeddings LayerNorm input reaches ~1e5 > 65504 (init std 0.02)
        model.embeddings.word.weight *= 5e6

    bundle = export_tiny(tmp_path, encoder_config, plant=huge_embeddings)
    cal = write_npz_set(tmp_path / "cal", token_feeds(0))
    out = quantize(bundle, tmp_path / "h.edgept", Fp16(), calibration=cal)
    reasons = [r["reason"] for r in out.passes[-1]["metrics"]["float_nodes"]]
    assert any(r.startswith("overflow") for r in reasons), reasons
    feeds = token_feeds(seed=5, n=4, seq=10)
    ref, got = run(bundle, feeds)["last_hidden_state"], run(out, feeds)["last_hidden_state"]
    assert np.isfinite(got).all()
    assert np.abs(ref - got).max() < 0.05  # fp16 matmuls on unit-scale activations

    # The plant is real: without the guard (LayerNorm/Softmax still fp32), fp16 overflows.
    from onnxruntime.transformers.float16 import convert_float_to_float16

    from edgept.quantize.fp16 import ALWAYS_FP32
    from edgept.quantize.graph import session

    naive = convert_float_to_float16(onnx.load(str(bundle.model_path)), keep_io_types=True, op_block_list=list(ALWAYS_FP32))
    bad = session(naive).run(None, feeds)[0]
    assert not np.isfinite(bad).all() or np.abs(bad - ref).max() > 1.0


def weight_storage(proto: onnx.ModelProto) -> tuple[list[np.ndarray], list[str]]:
    """The int8 GEMM weight matrices of a quantized graph and its per-channel weight-scale vectors
    (the int8 embedding tables and their row scales are test_quantize_embeddings')."""
    from onnx import numpy_helper

    from edgept.quantize.embeddings import ROWS, SCALE

    gemm = [i for i in proto.graph.initializer if not i.name.endswith((ROWS, SCALE))]
    int8 = [numpy_helper.to_array(i) for i in gemm if i.data_type == onnx.TensorProto.INT8 and len(i.dims) == 2]
    scales = [i.name for i in gemm if i.name.endswith("_scale") and len(i.dims) == 1 and i.dims[0] > 1]
    return int8, scales


def distinct(arrays: list[np.ndarray]) -> int:
    return len({(a.shape, a.tobytes()) for a in arrays})


def shared_config(config, factorized: bool):
    """4 layers running one set of weights; factorized: ALBERT's E=8 embeddings too (edgept factorize's output)."""
    extra = {"embedding_size": 8, "embedding_projection": True} if factorized else {}
    return config.replace(num_layers=4, num_groups=1, **extra)


@pytest.mark.parametrize("mode", ["int8-static", "int8-dynamic"])
@pytest.mark.parametrize("factorized", [False, True])
def test_shared_weights_are_quantized_once(tmp_path, encoder_config, mode, factorized):
    bundle = export_tiny(tmp_path, shared_config(encoder_config, factorized))
    cal = write_npz_set(tmp_path / "cal", token_feeds(0)) if mode == "int8-static" else None
    out = quantize(bundle, tmp_path / "q.edgept", config_for(mode), calibration=cal)
    proto = onnx.load(str(out.model_path))
    int8, scales = weight_storage(proto)
    qnodes = [n for n in proto.graph.node if n.op_type in ("QAttention", "MatMulInteger", "MatMulIntegerToFloat")]
    assert distinct(int8) == len(int8)  # no weight stored twice...
    assert len(scales) == len(int8)  # ...each with one scale set
    assert {n.input[1] for n in qnodes} <= {i.name for i in proto.graph.initializer}
    if not factorized:
        assert len(qnodes) == 4 * 4  # 4 layers x (attention + out + up + down)
        assert len(int8) == 4  # ...reading one int8 copy of each shared weight
    else:  # + the E->H projection; layer 0's QKV stays unfused (ORT fuses Attention only after a LayerNorm)
        assert len(qnodes) == 4 * 4 + 3 and len(int8) == 4 + 1 + 3
    assert len({n.input[4] for n in qnodes if n.op_type == "QAttention"}) == 1
    feeds = token_feeds(seed=3, n=4, seq=8)
    cos = pooled_cosine(run(bundle, feeds)["last_hidden_state"], run(out, feeds)["last_hidden_state"], feeds["attention_mask"])
    # An int8 product over E=8 random features is coarse: 0.964 / 0.969 (dynamic / static) measured.
    assert cos.min() > (0.95 if factorized else 0.99)


def test_ort_quantize_dynamic_stores_a_copy_per_fused_use_of_a_shared_weight(tmp_path, encoder_config):
    """The contrast of onnxruntime#11701: on the fused graph edgept quantizes, ORT's own
    quantize_dynamic keeps one int8 QKV matrix and scale set per layer; edgept keeps one in all."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from edgept.quantize import graph

    bundle = export_tiny(tmp_path, shared_config(encoder_config, factorized=True))
    fused = tmp_path / "fused.onnx"
    onnx.save(graph.fuse(bundle.model_path, bundle.manifest["model"]["config"]), str(fused))
    quantize_dynamic(str(fused), str(tmp_path / "ort.onnx"), per_channel=True, weight_type=QuantType.QInt8,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})  # fmt: skip
    ort_int8, ort_scales = weight_storage(onnx.load(str(tmp_path / "ort.onnx")))
    ours = quantize(bundle, tmp_path / "q.edgept", Int8Dynamic())
    int8, scales = weight_storage(onnx.load(str(ours.model_path)))
    assert distinct(ort_int8) == distinct(int8) == len(int8)  # the same distinct weights...
    assert len(ort_int8) - len(int8) == 2  # ...but layers 2-4's fused QKV are three copies in ORT's file
    assert len(ort_scales) - len(scales) == 2  # ...with three scale sets
    # Unfused, ORT quantizes a shared initializer once: the copies come from fusion.
    quantize_dynamic(str(bundle.model_path), str(tmp_path / "plain.onnx"), per_channel=True, weight_type=QuantType.QInt8)
    plain, _ = weight_storage(onnx.load(str(tmp_path / "plain.onnx")))
    assert distinct(plain) == len(plain)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda f: {**f, "input_idz": f.pop("input_ids")}, "unknown input 'input_idz'"),
        (lambda f: {**f, "attention_mask": f["attention_mask"][:, :, None]}, "attention_mask"),
        (lambda f: {**f, "input_ids": f["input_ids"] + 1000}, "outside [0, 23)"),
        (lambda f: {**f, "input_ids": f["input_ids"].astype(np.float32)}, "dtype float32"),
    ],
)
def test_calibration_data_that_does_not_fit_the_bundle_is_one_line(tiny, tmp_path, change, match):
    bundle, _ = tiny
    cal = write_npz_set(tmp_path / "bad", change(token_feeds(0)))
    with pytest.raises(InputError) as e:
        quantize(bundle, tmp_path / "q.edgept", Int8Static(), calibration=cal)
    msg = str(e.value)
    assert match in msg and "\n" not in msg and str(cal) in msg, msg


def test_tampered_calibration_set_and_missing_set_are_one_line(tiny, tmp_path):
    bundle, cal = tiny
    np.savez(cal / "inputs.npz", **token_feeds(1))
    with pytest.raises(InputError, match="sha256"):
        quantize(bundle, tmp_path / "q.edgept", Int8Static(), calibration=cal)
    with pytest.raises(ConfigError, match="needs --calibration"):
        quantize(bundle, tmp_path / "q.edgept", Auto())


def test_quantized_bundle_is_not_quantized_again(tiny, tmp_path):
    bundle, cal = tiny
    out = quantize(bundle, tmp_path / "d.edgept", Int8Dynamic())
    assert "DynamicQuantizeLinear" in {n.op_type for n in onnx.load(str(out.model_path)).graph.node}
    with pytest.raises(ConfigError, match="already quantized"):
        quantize(out, tmp_path / "again.edgept", Int8Dynamic())


@pytest.mark.parametrize(
    "config",
    [Int8Dynamic(reduce_range=True, keep_float=("n",)), Int8Static(smooth="auto", per_token=True), Auto(keep_float=("a",), min_cosine=0.99),
     Qdq(method="entropy", per_channel=False), Fp16(fp16_tolerance=0.05, keep_reference=True)],
)
def test_each_mode_config_round_trips_through_its_dict(config):
    d = json.loads(json.dumps(config.to_dict()))  # as the manifest stores it
    assert d["mode"] == config.mode
    assert QuantizeConfig.from_dict(d) == config and type(config).from_dict(d) == config


def test_config_for_builds_the_mode_and_rejects_what_it_does_not_take():
    assert config_for("auto", min_cosine=0.99).budget == 0.99 and Auto().budget == 0.999
    assert Int8Static().budget is None and config_for("int8-static") == Int8Static()
    assert Int8Static().method == Qdq().method == "minmax"  # the one default (docs/results used it)
    with pytest.raises(ConfigError, match="known: auto, fp16, int8-dynamic, int8-qdq, int8-static"):
        config_for("int4")
    with pytest.raises(ConfigError, match="minmax, entropy, percentile"):
        Int8Static(method="mse")
    for mode, option, takers in (("fp16", "smooth", "auto or int8-static"), ("int8-dynamic", "method", "auto or int8-qdq or int8-static"),
                                 ("int8-qdq", "fp16_tolerance", "fp16")):
        with pytest.raises(ConfigError) as e:
            config_for(mode, **{option: 0.5})
        flag = "--" + option.replace("_", "-")
        assert str(e.value) == f"{flag} applies to --mode {takers}; drop it or change --mode (got --mode {mode})"
    with pytest.raises(ConfigError, match="base of the mode configs"):
        QuantizeConfig()
    with pytest.raises(ConfigError, match="has mode 'int8-static', got 'fp16'"):
        Int8Static.from_dict({"mode": "fp16"})


def test_the_verb_and_the_configs_import_without_torch_or_a_session():
    """An ONNX -> ONNX stage: importing it loads onnx (its verb module), never torch, and opens no
    ONNX Runtime until a graph is run."""
    import subprocess
    import sys

    code = ("import sys\nfrom edgept.quantize import Int8Static, config_for, quantize\nconfig_for('auto', smooth=0.5)\n"
            "print('HEAVY', [m for m in ('torch', 'onnxruntime') if m in sys.modules])\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in res.stdout, res.stdout


def test_integer_matmul_fusion_is_exact(tiny):
    """MatMulIntegerToFloat computes what MatMulInteger -> Cast -> Mul did, on fresh inputs."""
    from edgept.quantize import graph
    from edgept.quantize.int8 import Int8Plan

    bundle, cal = tiny
    from edgept.quantize.calibration import load_calibration

    fused = graph.fuse(bundle.model_path, bundle.manifest["model"]["config"])
    plan = Int8Plan(fused, load_calibration(cal, bundle).batches, Int8Static())
    from edgept.quantize.int8 import activation_params

    unfused = graph.freeze_scales(plan._weights(()), activation_params(plan.stats, "minmax", plan.config)[0])
    one = graph.fuse_integer_matmuls(unfused)
    ops = [n.op_type for n in one.graph.node]
    assert ops.count("MatMulIntegerToFloat") == [n.op_type for n in unfused.graph.node].count("MatMulInteger") > 0
    feeds = token_feeds(seed=8, n=3, seq=7)
    a, b = graph.session(unfused).run(None, feeds)[0], graph.session(one).run(None, feeds)[0]
    assert np.abs(a - b).max() <= 1e-5 * np.abs(a).max()


def test_image_calibration_set_from_a_folder_quantizes_a_vit(tmp_path, tiny_vit_config, tiny):
    from PIL import Image

    from edgept.export import export
    from edgept.models import build_model
    from edgept.models.hf import save_model
    from edgept.quantize.calibration import load_calibration, make_calibration

    rng = np.random.default_rng(0)
    for cls in ("cat", "dog", "bird"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(8):
            Image.fromarray(rng.integers(0, 255, (40, 36, 3), dtype=np.uint8)).save(tmp_path / "imgs" / cls / f"{i}.png")
    cal = make_calibration(str(tmp_path / "imgs"), tmp_path / "img-cal", n=12)
    card = json.loads((cal / "card.json").read_text())
    assert card["count"] == 12 and card["sha256"]["images.npz"] == sha256_file(cal / "images.npz")
    bundle = export(save_model(build_model(tiny_vit_config()), tmp_path / "vit"), tmp_path / "vit.edgept")
    batches = load_calibration(cal, bundle, batch_size=8).batches
    assert [b["pixel_values"].shape for b in batches] == [(8, 3, 32, 32), (4, 3, 32, 32)]  # the bundle's own resize
    out = quantize(bundle, tmp_path / "q.edgept", Int8Static(), calibration=cal)
    assert out.passes[-1]["config"]["calibration"]["sha256"] == card["sha256"]["images.npz"]
    assert out.passes[-1]["metrics"]["calibration"]["cosine"] > 0.99, out.passes[-1]["metrics"]["calibration"]
    with pytest.raises(InputError, match="holds images but bundle .* with no image preprocessor") as e:
        load_calibration(cal, tiny[0])  # a text bundle
    assert "\n" not in str(e.value)


def test_fused_graph_has_no_skip_layernorm_and_matches_the_export(tiny, tmp_path):  # noqa: F811
    from edgept.quantize import graph

    bundle, _ = tiny
    fused = graph.fuse(bundle.model_path, bundle.manifest["model"]["config"])
    ops = {n.op_type for n in fused.graph.node}
    assert "SkipLayerNormalization" not in ops and "LayerNormalization" in ops and "Attention" in ops
    from onnxruntime.transformers.optimizer import optimize_model

    cfg = bundle.manifest["model"]["config"]
    ort_fused = optimize_model(str(bundle.model_path), model_type="bert", num_heads=cfg["num_heads"], hidden_size=cfg["hidden_size"])
    assert sum(n.op_type == "SkipLayerNormalization" for n in ort_fused.model.graph.node) >= 2  # what was split
    feeds = token_feeds(5)
    ref = graph.session(onnx.load(str(bundle.model_path))).run(None, feeds)[0]
    got = graph.session(fused).run(None, feeds)[0]
    np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)
