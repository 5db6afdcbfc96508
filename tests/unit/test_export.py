"""Export: ONNX Runtime output equals PyTorch fp32 on fresh inputs, shared weights stored once."""

from __future__ import annotations

import importlib

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from edgept.bundle import Bundle
from edgept.errors import ConfigError, ParityError
from edgept.export import ExportConfig, export
from edgept.export.onnx_export import example_inputs, signature
from edgept.models import build_model
from edgept.onnxutil import dedupe_initializers
from edgept.runtime import load

TOL = 1e-4  # fp32 vs fp32: only kernel order separates ONNX Runtime from PyTorch


def _torch_out(model, feeds, names):
    model.eval()
    with torch.inference_mode():
        out = model(*(torch.from_numpy(feeds[n]) for n in names))
    return (out.logits if out.logits is not None else out.last_hidden_state).numpy()


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"task": "feature-extraction", "labels": ()},
        {"task": "masked-lm", "labels": ()},
        {"embedding_size": 16, "num_groups": 1, "num_layers": 4},
        {"hidden_act": "gelu_new", "type_vocab_size": 1},
    ],
    ids=["classifier", "encoder", "mlm", "albert", "gelu_new"],
)
def test_text_export_matches_torch_on_new_shapes(tmp_path, tiny_bert_config, changes):
    cfg = tiny_bert_config(**changes)
    torch.manual_seed(1)
    model = build_model(cfg)
    bundle = export(model, tmp_path / "m.edgept")
    metrics = bundle.passes[0]["metrics"]
    assert bundle.passes[0]["pass"] == "export"
    assert 0 <= metrics["max_abs_diff"] <= TOL
    session = load(bundle)
    names = [s.name for s in bundle.inputs]
    for batch, length in ((1, 5), (4, 29), (2, cfg.max_position)):  # dynamic batch and sequence
        feeds = example_inputs(signature(cfg), cfg, batch, length, seed=batch * 100 + length)
        got = session.run(feeds)[bundle.outputs[0].name]
        np.testing.assert_allclose(got, _torch_out(model, feeds, names), atol=TOL, rtol=0)


def test_vit_export_runs_at_other_image_sizes(tmp_path, tiny_vit_config):
    cfg = tiny_vit_config(layerscale_init=0.5, distillation_token=True, head_pooling="cls+mean")
    torch.manual_seed(2)
    model = build_model(cfg)
    bundle = export(model, tmp_path / "v.edgept")
    session = load(bundle)
    for side in (32, 48, 16):  # trained at 32: position embeddings are interpolated in the graph
        feeds = example_inputs(signature(cfg), cfg, 2, side, seed=side)
        got = session.run(feeds)["logits"]
        np.testing.assert_allclose(got, _torch_out(model, feeds, ["pixel_values"]), atol=TOL, rtol=0)


def test_export_restores_training_mode(tmp_path, tiny_bert_config):
    model = build_model(tiny_bert_config()).train()
    export(model, tmp_path / "m.edgept")
    assert model.training and all(m.training for m in model.modules())


def test_shared_weights_are_stored_once(tmp_path, tiny_bert_config):
    """12 layers running one set of weights export at about their parameter bytes, not 12x."""
    # Wide enough that weights, not the 12 layers' graph structure (~140 kB), dominate the file.
    cfg = tiny_bert_config(num_layers=12, num_groups=1, hidden_size=256, intermediate_size=1024, task="feature-extraction", labels=())
    shared = build_model(cfg)
    param_bytes = sum(p.numel() * p.element_size() for p in shared.parameters())
    bundle = export(shared, tmp_path / "shared.edgept")
    size = bundle.artifacts["model.onnx"]["bytes"]
    assert size <= 1.1 * param_bytes
    weights = sum(numpy_helper.to_array(i).nbytes for i in onnx.load(bundle.model_path).graph.initializer)
    assert weights <= param_bytes  # every tensor once (the unused pooler is dropped)
    unshared = export(build_model(cfg.replace(num_groups=None)), tmp_path / "unshared.edgept")
    assert unshared.artifacts["model.onnx"]["bytes"] > 5 * size  # the check can tell sharing from not


def test_dedupe_merges_identical_initializers_only():
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    inits = [
        numpy_helper.from_array(w, "a"),
        numpy_helper.from_array(w.copy(), "b"),  # same bytes: merged into "a"
        numpy_helper.from_array(w + 1, "c"),  # different: kept
    ]
    nodes = [helper.make_node("MatMul", ["x", n], [f"y{n}"]) for n in "abc"]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info(f"y{n}", TensorProto.FLOAT, [1, 3]) for n in "abc"],
        inits,
    )
    proto = helper.make_model(graph)
    assert dedupe_initializers(proto) == 1
    assert [i.name for i in proto.graph.initializer] == ["a", "c"]
    assert [list(n.input) for n in proto.graph.node] == [["x", "a"], ["x", "a"], ["x", "c"]]
    onnx.checker.check_model(proto)


def test_parity_miss_is_an_error_and_writes_nothing(tmp_path, tiny_bert_config, monkeypatch):
    cfg = tiny_bert_config()
    torch.manual_seed(3)
    model = build_model(cfg)
    torch.manual_seed(4)
    impostor = build_model(cfg)  # same graph shape, other weights: what a mistranslated op looks like
    # The module, not the package attribute `export` (the function of the same name).
    export_mod = importlib.import_module("edgept.export.export")
    real = export_mod.to_onnx
    monkeypatch.setattr(export_mod, "to_onnx", lambda m, c, **kw: real(impostor, c, **kw))
    with pytest.raises(ParityError, match=r"differs from PyTorch by .* \(tolerance 0.0001\)"):
        export(model, tmp_path / "bad.edgept")
    assert list(tmp_path.iterdir()) == []


def test_export_from_checkpoint_predicts_like_torch(tiny_bert_dir, tmp_path):
    from edgept.models.hf import load_model
    from edgept.preprocess import TextPreprocessor

    bundle = export(tiny_bert_dir, tmp_path / "c.edgept", ExportConfig(max_length=16))
    assert bundle.manifest["model"]["source"]["sha256"]
    assert bundle.labels == ["negative", "positive"]
    texts = ["the film was great", "a dull and boring plot , not fun"]
    preds = load(bundle).predict(texts)
    enc = TextPreprocessor.from_checkpoint(tiny_bert_dir, max_length=16)(texts)
    logits = _torch_out(load_model(tiny_bert_dir), enc, ["input_ids", "attention_mask", "token_type_ids"])
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    for p, row in zip(preds, probs, strict=True):
        assert p.label == ["negative", "positive"][int(row.argmax())]
        assert p.score == pytest.approx(row.max(), abs=1e-5)
    assert Bundle.open(bundle.path).preprocess["kind"] == "text"


def test_bad_export_config():
    with pytest.raises(ConfigError, match="tolerance must be positive"):
        ExportConfig(tolerance=0)
    with pytest.raises(ConfigError, match="opset 13 is too old"):
        from edgept.export import to_onnx

        to_onnx(torch.nn.Linear(1, 1), None, opset=13)
