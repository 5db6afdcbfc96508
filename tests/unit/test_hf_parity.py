"""Parity with transformers (the oracle) for every supported architecture/head, both directions.

HF -> edgept: a tiny random transformers model, save_pretrained, load_model, same outputs.
edgept -> HF: a tiny random edgept model, save_model, transformers' own class loads it with no
missing/unexpected keys, same outputs. Every parameter is perturbed first, so LayerNorms at 1 and
biases at 0 cannot hide a swapped or dropped tensor. Tolerance: 1e-5 on every hidden state,
the last (normed) hidden state, the pooler output and the logits.
"""

from __future__ import annotations

import json

import pytest
import torch

from edgept.models import BertConfig, ViTConfig, build_model, load_model, save_model
from edgept.models.hf import describe, read_config
from edgept.models.hf.mapping import canonical

transformers = pytest.importorskip("transformers")

TOL = 1e-5
TEXT = dict(
    vocab_size=99,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    max_position_embeddings=40,
)
VISION = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    image_size=32,
    patch_size=8,
)
OTHER_SIZE = (48, 40)  # not the trained 32x32, and not square: position embeddings are interpolated
LABELS3 = {"id2label": {"0": "neg", "1": "neu", "2": "pos"}, "label2id": {"neg": 0, "neu": 1, "pos": 2}}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest on one thread: with two, each 32-wide op pays thread-pool
    hand-offs (milliseconds per op on a loaded 2-core machine, 400x the op itself)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def perturb(model: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def hf_model(config_cls: str, model_cls: str, base: dict, **kw):
    model_kw = {"add_pooling_layer": kw.pop("add_pooling_layer")} if "add_pooling_layer" in kw else {}
    config = getattr(transformers, config_cls)(**(base | kw), attn_implementation="eager")
    return perturb(getattr(transformers, model_cls)(config, **model_kw))


def text_inputs(vocab: int = 99) -> dict[str, torch.Tensor]:
    ids = torch.randint(1, vocab, (2, 9))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0  # a padded sequence
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.randint(0, 2, ids.shape)}


def max_diff(ours, hf_model_, inputs: dict, model_type: str) -> float:
    """Run both on `inputs`; the largest |difference| over every output both produce."""
    with torch.no_grad():
        if "pixel_values" in inputs:
            size = tuple(inputs["pixel_values"].shape[-2:])
            # transformers' ViT/DeiT refuse another size unless asked; DINOv2 always interpolates.
            extra = {"interpolate_pos_encoding": True} if size != (32, 32) and model_type != "dinov2" else {}
            theirs = hf_model_(**inputs, **extra, output_hidden_states=True)
            mine = ours(inputs["pixel_values"], output_hidden_states=True)
        else:
            theirs = hf_model_(**inputs, output_hidden_states=True)
            mine = ours(
                inputs["input_ids"],
                inputs["attention_mask"],
                inputs["token_type_ids"],
                output_hidden_states=True,
            )
    assert len(mine.hidden_states) == len(theirs.hidden_states) == ours.config.num_layers + 1
    pairs = list(zip(mine.hidden_states, theirs.hidden_states, strict=True))
    if getattr(theirs, "last_hidden_state", None) is not None:
        pairs.append((mine.last_hidden_state, theirs.last_hidden_state))
    pooled = getattr(theirs, "pooler_output", None)
    if pooled is not None and model_type != "dinov2":  # Dinov2Model's "pooler" is [CLS], no weights
        assert mine.pooled is not None
        pairs.append((mine.pooled, pooled))
    logits = getattr(theirs, "logits", None)
    assert (mine.logits is None) == (logits is None)
    if logits is not None:
        pairs.append((mine.logits, logits))
    return max((a - b).abs().max().item() for a, b in pairs)


# (id, HF config class, HF model class, base config, extra config/model kwargs)
HF_CASES = [
    ("bert", "BertConfig", "BertModel", TEXT, {}),
    ("bert-nopool", "BertConfig", "BertModel", TEXT, {"add_pooling_layer": False}),
    ("bert-seq", "BertConfig", "BertForSequenceClassification", TEXT, {"num_labels": 3, **LABELS3}),
    ("bert-mlm", "BertConfig", "BertForMaskedLM", TEXT, {"hidden_act": "gelu_new"}),
    ("albert", "AlbertConfig", "AlbertModel", TEXT, {"embedding_size": 16, "num_hidden_layers": 3}),
    (
        "albert-seq",
        "AlbertConfig",
        "AlbertForSequenceClassification",
        TEXT,
        {"embedding_size": 16, "num_labels": 3},
    ),
    ("albert-mlm", "AlbertConfig", "AlbertForMaskedLM", TEXT, {"embedding_size": 16}),
    (
        "albert-2of4",
        "AlbertConfig",
        "AlbertModel",
        TEXT,
        {"embedding_size": 32, "num_hidden_layers": 4, "num_hidden_groups": 2},
    ),
    ("vit", "ViTConfig", "ViTModel", VISION, {}),
    ("vit-nopool", "ViTConfig", "ViTModel", VISION, {"add_pooling_layer": False, "qkv_bias": False}),
    ("vit-cls", "ViTConfig", "ViTForImageClassification", VISION, {"num_labels": 3, **LABELS3}),
    ("deit", "DeiTConfig", "DeiTModel", VISION, {}),
    ("deit-cls", "DeiTConfig", "DeiTForImageClassification", VISION, {"num_labels": 4}),
    ("dinov2", "Dinov2Config", "Dinov2Model", VISION, {"mlp_ratio": 3}),
    (
        "dinov2-cls",
        "Dinov2Config",
        "Dinov2ForImageClassification",
        VISION,
        {"num_labels": 3, "layerscale_value": 0.3},
    ),
]


@pytest.mark.parametrize(
    ("case", "config_cls", "model_cls", "base", "kw"), HF_CASES, ids=[c[0] for c in HF_CASES]
)
def test_hf_to_edgept(tmp_path, case, config_cls, model_cls, base, kw):
    torch.manual_seed(0)
    theirs = hf_model(config_cls, model_cls, base, **dict(kw))
    theirs.save_pretrained(tmp_path)
    ours = load_model(tmp_path)
    assert not ours.training
    assert ours.config.labels == tuple(theirs.config.id2label[i] for i in range(len(ours.config.labels)))
    if "num_labels" in kw:
        assert len(ours.config.labels) == kw["num_labels"]
    model_type = theirs.config.model_type
    inputs = (
        [text_inputs()]
        if "vocab_size" in base
        else [{"pixel_values": torch.randn(2, 3, *s)} for s in ((32, 32), OTHER_SIZE)]
    )
    for x in inputs:
        d = max_diff(ours, theirs, x, model_type)
        print(f"HF->edgept {case}: max|diff| = {d:.2e}")
        assert d <= TOL


def _bert(**kw) -> BertConfig:
    base = dict(
        vocab_size=99, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=37, max_position=40
    )
    return BertConfig(**(base | kw))


def _vit(**kw) -> ViTConfig:
    return ViTConfig(
        **(
            dict(hidden_size=32, num_layers=2, num_heads=4, intermediate_size=37, image_size=32, patch_size=8)
            | kw
        )
    )


# (id, edgept config, expected model_type, transformers class that must load it, its kwargs)
EDGEPT_CASES = [
    ("bert", _bert(), "bert", "BertModel", {}),
    (
        "bert-nopool",
        _bert(pooler=False, hidden_act="relu"),
        "bert",
        "BertModel",
        {"add_pooling_layer": False},
    ),
    (
        "bert-seq",
        _bert(task="sequence-classification", labels=("neg", "pos", "neu")),
        "bert",
        "BertForSequenceClassification",
        {},
    ),
    ("bert-mlm", _bert(task="masked-lm", pooler=False), "bert", "BertForMaskedLM", {}),
    (
        "factorized-mlm",
        _bert(embedding_size=16, task="masked-lm", pooler=False),
        "albert",
        "AlbertForMaskedLM",
        {},
    ),
    (
        "factorized-seq",
        _bert(embedding_size=16, task="sequence-classification", labels=("a", "b")),
        "albert",
        "AlbertForSequenceClassification",
        {},
    ),
    ("shared-1of4", _bert(num_layers=4, num_groups=1), "albert", "AlbertModel", {}),
    ("shared-2of4", _bert(num_layers=4, num_groups=2, embedding_size=16), "albert", "AlbertModel", {}),
    ("vit", _vit(), "vit", "ViTModel", {"add_pooling_layer": False}),
    ("vit-pool", _vit(pooler=True), "vit", "ViTModel", {}),
    (
        "vit-cls",
        _vit(task="image-classification", labels=("cat", "dog", "fox")),
        "vit",
        "ViTForImageClassification",
        {},
    ),
    ("deit", _vit(distillation_token=True), "deit", "DeiTModel", {"add_pooling_layer": False}),
    (
        "deit-cls",
        _vit(distillation_token=True, task="image-classification", labels=("a", "b")),
        "deit",
        "DeiTForImageClassification",
        {},
    ),
    (
        "dinov2",
        _vit(layerscale_init=0.5, layer_norm_eps=1e-6, intermediate_size=64),
        "dinov2",
        "Dinov2Model",
        {},
    ),
    (
        "dinov2-cls",
        _vit(
            layerscale_init=0.5,
            intermediate_size=96,
            head_pooling="cls+mean",
            task="image-classification",
            labels=("x", "y", "z"),
        ),
        "dinov2",
        "Dinov2ForImageClassification",
        {},
    ),
]


@pytest.mark.parametrize(
    ("case", "cfg", "model_type", "hf_cls", "hf_kw"), EDGEPT_CASES, ids=[c[0] for c in EDGEPT_CASES]
)
def test_edgept_to_hf(tmp_path, case, cfg, model_type, hf_cls, hf_kw):
    torch.manual_seed(1)
    ours = perturb(build_model(cfg))
    save_model(ours, tmp_path / "ckpt")
    written = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert written["model_type"] == model_type and written["architectures"] == [hf_cls]
    theirs, info = getattr(transformers, hf_cls).from_pretrained(
        tmp_path / "ckpt", attn_implementation="eager", output_loading_info=True, **hf_kw
    )
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    theirs.eval()
    if cfg.labels:
        assert [theirs.config.id2label[i] for i in range(cfg.num_labels)] == list(cfg.labels)
    inputs = (
        [text_inputs()]
        if cfg.arch == "bert"
        else [{"pixel_values": torch.randn(2, 3, *s)} for s in ((32, 32), OTHER_SIZE)]
    )
    for x in inputs:
        d = max_diff(ours, theirs, x, model_type)
        print(f"edgept->HF {case}: max|diff| = {d:.2e}")
        assert d <= TOL


ROUND_TRIPS = [(c[0], c[1]) for c in EDGEPT_CASES] + [("mlm-pooler", _bert(task="masked-lm"))]


@pytest.mark.parametrize(("case", "cfg"), ROUND_TRIPS, ids=[c[0] for c in ROUND_TRIPS])
def test_edgept_round_trip_is_exact(tmp_path, case, cfg):
    torch.manual_seed(2)
    ours = perturb(build_model(cfg))
    save_model(ours, tmp_path / "ckpt")
    back = load_model(tmp_path / "ckpt")
    assert back.config == cfg
    a, b = ours.state_dict(), back.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # Without the "edgept" block the HF fields alone give the same model (same weights).
    hf = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    del hf["edgept"]
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(hf))
    plain = load_model(tmp_path / "ckpt")
    assert canonical(plain.config, ()) == canonical(cfg, ())
    # From the HF fields alone, a shared unfactorized BERT keeps ALBERT's (identity) projection.
    if not (cfg.arch == "bert" and cfg.shared and not cfg.factorized):
        assert plain.state_dict().keys() == a.keys()
    x = text_inputs() if cfg.arch == "bert" else {"pixel_values": torch.randn(2, 3, 32, 32)}
    with torch.no_grad():
        args = (x["input_ids"], x["attention_mask"]) if cfg.arch == "bert" else (x["pixel_values"],)
        assert torch.allclose(plain(*args).last_hidden_state, ours(*args).last_hidden_state, atol=TOL)


def test_bin_sharded_and_prefixed_variants(tmp_path):
    """pytorch_model.bin, a sharded safetensors index, and BertModel weights under "bert." plus
    the legacy position_ids buffer all load to the same model."""
    from safetensors.torch import load_file, save_file

    torch.manual_seed(3)
    theirs = hf_model("BertConfig", "BertModel", TEXT)
    x = text_inputs()
    theirs.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    assert max_diff(load_model(tmp_path / "sharded"), theirs, x, "bert") <= TOL

    theirs.save_pretrained(tmp_path / "bin")
    tensors = load_file(tmp_path / "bin" / "model.safetensors")
    (tmp_path / "bin" / "model.safetensors").unlink()
    torch.save(tensors, tmp_path / "bin" / "pytorch_model.bin")
    assert max_diff(load_model(tmp_path / "bin"), theirs, x, "bert") <= TOL

    theirs.save_pretrained(tmp_path / "prefixed")
    prefixed = {f"bert.{k}": v for k, v in tensors.items()}
    prefixed["bert.embeddings.position_ids"] = torch.arange(40)[None]
    save_file(prefixed, tmp_path / "prefixed" / "model.safetensors", metadata={"format": "pt"})
    assert max_diff(load_model(tmp_path / "prefixed"), theirs, x, "bert") <= TOL


def test_task_override_keeps_the_encoder(tmp_path):
    torch.manual_seed(4)
    theirs = hf_model("BertConfig", "BertForSequenceClassification", TEXT, num_labels=3)
    theirs.save_pretrained(tmp_path)
    encoder = load_model(tmp_path, task="feature-extraction")
    assert encoder.config.task == "feature-extraction" and encoder.head is None
    x = text_inputs()
    with torch.no_grad():
        ref = theirs.bert(**x).last_hidden_state
        assert (
            encoder(x["input_ids"], x["attention_mask"], x["token_type_ids"]).last_hidden_state - ref
        ).abs().max() <= TOL
    mlm = load_model(tmp_path, task="masked-lm")  # a fresh MLM head on the trained encoder
    assert mlm.config.task == "masked-lm" and mlm.head is not None


def test_deit_with_teacher_loads_as_encoder_only(tmp_path):
    torch.manual_seed(5)
    theirs = hf_model("DeiTConfig", "DeiTForImageClassificationWithTeacher", VISION)
    theirs.save_pretrained(tmp_path)
    ours = load_model(tmp_path, task="feature-extraction")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = theirs.deit(pixel_values=x).last_hidden_state
        assert (ours(x).last_hidden_state - ref).abs().max() <= TOL


def test_read_config_and_describe(tmp_path):
    torch.manual_seed(6)
    cfg = _bert(
        num_layers=4, num_groups=2, embedding_size=16, task="sequence-classification", labels=("a", "b")
    )
    model = build_model(cfg)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    save_model(model, tmp_path / "ckpt", source=tmp_path / "src")
    assert (tmp_path / "ckpt" / "vocab.txt").read_text() == "[PAD]\n[UNK]\n"
    assert read_config(tmp_path / "ckpt") == cfg
    info = describe(tmp_path / "ckpt")
    assert info["model_type"] == "albert" and info["architecture"] == "AlbertForSequenceClassification"
    assert info["task"] == "sequence-classification" and info["labels"] == ["a", "b"]
    # A shared tensor counts once: 2 groups of weights, not 4 layers.
    assert info["params"]["total"] == sum(p.numel() for p in model.parameters())
    assert set(info["files"]) == {"config.json", "model.safetensors", "vocab.txt"}
    assert info["bytes"] == sum((tmp_path / "ckpt" / f).stat().st_size for f in info["files"])
