"""QAT: fake-quant fine-tuning from the PTQ ranges, exported as QDQ ONNX that ORT runs like PyTorch."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from edgept.errors import ConfigError
from edgept.quantize.qat import QDQ_TOLERANCE, FakeQuantLinear, QATConfig, prepare_qat, qat
from tests.unit.test_quantize import token_feeds

WORDS = "good bad boring fun dull great".split()


@pytest.fixture
def loud_bert_dir(tmp_path, tiny_bert_dir):
    """The tiny classifier with a 300x head: logits of order 1, so int8 noise is visible in them."""
    from edgept.models.hf import load_model, save_model

    net = load_model(tiny_bert_dir)
    with torch.no_grad():
        net.head.classifier.weight *= 300
    return save_model(net, tmp_path / "loud-bert", source=tiny_bert_dir)


@pytest.fixture
def trained(tmp_path, loud_bert_dir):
    from edgept.data import DataConfig
    from edgept.quantize.calibration import make_calibration
    from edgept.train import TrainConfig

    rows = [{"text": f"the film was {WORDS[i % 6]} and {WORDS[(i * 5) % 6]}", "label": ["negative", "positive"][i % 6 < 3]}
            for i in range(96)]
    data = tmp_path / "reviews.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cal = make_calibration(str(data), tmp_path / "cal", n=16)
    metrics = qat(loud_bert_dir, DataConfig(source=str(data)), cal, tmp_path / "qat",
                  TrainConfig(max_steps=12, batch_size=8, lr=1e-3, seed=0), progress=False)
    return metrics, tmp_path / "qat"


def _torch_fake_quant(out_dir):
    """The trained checkpoint (plain Linear layers; prepared again below with the same calibration)."""
    from edgept.models.hf import load_model

    return load_model(out_dir / "model").eval()


def test_qat_trains_exports_qdq_and_ort_matches_fake_quant_pytorch(trained, tmp_path):
    from edgept.bundle import Bundle
    from edgept.runtime import load

    metrics, out = trained
    assert metrics["steps"] == 12
    bundle = Bundle.open(out / "model.edgept")
    # It carries the source's tokenizer: an app predicts from text, as with any bundle.
    assert load(bundle).predict("the film was good")[0].label in ("negative", "positive")
    proto = onnx.load(str(bundle.model_path))
    # 2 layers x 6 Linear (q, k, v, o, up, down): MatMul(DQ(Q(x)), DQ(int8 weight initializer)).
    int8 = {i.name for i in proto.graph.initializer if i.data_type == onnx.TensorProto.INT8 and len(i.dims) == 2}
    made_by = {o: n for n in proto.graph.node for o in n.output}
    qmatmuls = [n for n in proto.graph.node if n.op_type == "MatMul"
                and all(i in made_by and made_by[i].op_type == "DequantizeLinear" for i in n.input)
                and made_by[n.input[1]].input[0] in int8]
    assert len(int8) == len(qmatmuls) == 12
    assert all(made_by[made_by[n.input[0]].input[0]].op_type == "QuantizeLinear" for n in qmatmuls)
    assert metrics["export_parity"]["max_abs_diff"] <= QDQ_TOLERANCE

    # Fresh inputs, a new shape: ORT on the QDQ bundle vs fake-quant PyTorch with the bundle's scales.
    net = _torch_fake_quant(out)
    from edgept.data import collate_for
    from edgept.quantize.qat import _calibration_batches

    collate = collate_for(out / "model", net.config, "text", max_length=128)
    prepare_qat(net, _calibration_batches(tmp_path / "cal", collate), QATConfig())
    feeds = token_feeds(seed=21, n=5, seq=13)
    feeds["input_ids"] = feeds["input_ids"] % net.config.vocab_size
    with torch.no_grad():
        ref = net(**{k: torch.from_numpy(v) for k, v in feeds.items()}).logits.numpy()
    got = load(bundle, threads=1).run(feeds)["logits"]
    parity = np.abs(got - ref).max()
    assert parity <= QDQ_TOLERANCE, parity
    assert np.abs(ref).max() > 0.5  # logits of order 1: the tolerance is not vacuous

    # ...and ORT really runs the encoder on its integer GEMM (the QDQ pattern it fuses).
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.optimized_model_filepath = str(tmp_path / "opt.onnx")
    ort.InferenceSession(str(bundle.model_path), opts, providers=["CPUExecutionProvider"])
    fused = [n.op_type for n in onnx.load(opts.optimized_model_filepath).graph.node]
    assert fused.count("MatMulIntegerToFloat") == 12, sorted(set(fused))


def test_prepare_qat_keeps_state_dict_names_and_rejects_unknown_method(tiny_bert_config):
    from edgept.models import build_model

    net = build_model(tiny_bert_config())
    keys = set(net.state_dict())
    prepare_qat(net, [token_feeds(0, n=4) | {"input_ids": token_feeds(0, n=4)["input_ids"] % 20}])
    assert set(net.state_dict()) == keys
    assert sum(isinstance(m, FakeQuantLinear) for m in net.modules()) == 12
    with pytest.raises(ConfigError, match="minmax, entropy, percentile"):
        QATConfig(method="mse")


def test_qat_towards_fp32_stays_with_the_fp32_logits_where_labels_drift(trained, tmp_path, loud_bert_dir):
    from edgept.data import DataConfig
    from edgept.train import TrainConfig

    metrics, _ = trained
    labels = qat(loud_bert_dir, DataConfig(source=str(tmp_path / "reviews.jsonl")), tmp_path / "cal", tmp_path / "qat-labels",
                 TrainConfig(max_steps=12, batch_size=8, lr=1e-3, seed=0), QATConfig(targets="labels"), progress=False)
    assert metrics["qat"]["targets"] == "fp32"
    ptq, fp32, lab = (m["dev_logit_cosine"] for m in (metrics["ptq_fake_quant"], metrics["qat_fake_quant"], labels["qat_fake_quant"]))
    assert fp32 > lab and fp32 > 0.99, (ptq, fp32, lab)


def test_qat_rejects_unknown_targets():
    with pytest.raises(ConfigError, match="fp32, labels"):
        QATConfig(targets="soft")


def test_seven_bit_weights_stay_within_63_levels_and_8_bit_within_127():
    from edgept.quantize.qat import fake_quant_weight, weight_scale

    w = torch.randn(16, 8)
    for bits, levels in ((7, 63), (8, 127)):
        assert QATConfig(weight_bits=bits).weight_levels == levels
        q = fake_quant_weight(w, levels) / weight_scale(w, levels)
        assert torch.allclose(q, q.round(), atol=1e-4) and q.abs().max().item() == pytest.approx(levels, abs=1e-3)
    with pytest.raises(ConfigError, match="7 or 8"):
        QATConfig(weight_bits=4)
