"""Every bad checkpoint gives one clear edgept error (one line: what, where, how to fix).

Checkpoints are written by edgept itself (no transformers needed), then broken on purpose.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from edgept.errors import ConfigError, EdgeptError, InputError
from edgept.models import BertConfig, ViTConfig, build_model, load_model, save_model
from edgept.models.hf import describe, read_config


def fails(exc: type[EdgeptError], match: str, fn, *args, **kw) -> str:
    """Call fn; it must raise `exc` with a one-line message matching `match`."""
    with pytest.raises(exc, match=match) as info:
        fn(*args, **kw)
    msg = str(info.value)
    assert "\n" not in msg and msg.strip() == msg
    return msg


def _bert(**kw) -> BertConfig:
    return BertConfig(
        **(
            dict(
                vocab_size=50,
                hidden_size=32,
                num_layers=2,
                num_heads=4,
                intermediate_size=37,
                max_position=16,
            )
            | kw
        )
    )


def _save(path: Path, cfg, hf_only: bool = True) -> Path:
    torch.manual_seed(0)
    save_model(build_model(cfg), path)
    if hf_only:  # drop edgept's own block: these tests exercise the HF fields
        edit(path, edgept=None)
    return path


def edit(path: Path, **changes) -> None:
    """Change config.json fields (None deletes one)."""
    cfg = json.loads((path / "config.json").read_text())
    for k, v in changes.items():
        cfg.pop(k, None) if v is None else cfg.__setitem__(k, v)
    (path / "config.json").write_text(json.dumps(cfg, indent=2))


def edit_tensors(path: Path, fn) -> None:
    tensors = load_file(path / "model.safetensors")
    fn(tensors)
    save_file(tensors, path / "model.safetensors", metadata={"format": "pt"})


@pytest.fixture
def ckpt(tmp_path) -> Path:
    return _save(tmp_path / "ckpt", _bert())


# --- the directory and its files ---------------------------------------------------------


def test_missing_dir(tmp_path):
    fails(
        InputError,
        r"checkpoint directory .*nope does not exist; pass a directory",
        load_model,
        tmp_path / "nope",
    )


def test_file_instead_of_dir(ckpt):
    fails(
        InputError,
        r"model.safetensors is a file, not a checkpoint directory; pass the directory",
        load_model,
        ckpt / "model.safetensors",
    )


def test_dir_without_config(ckpt):
    (ckpt / "config.json").unlink()
    fails(InputError, r"no config.json in .*\(found: model.safetensors\)", load_model, ckpt)


def test_invalid_json_names_the_line(ckpt):
    (ckpt / "config.json").write_text('{\n  "model_type": "bert",\n  "hidden_size": 32,,\n}\n')
    fails(InputError, r"config.json is not valid JSON: .* at line 3, column", load_model, ckpt)


def test_json_that_is_not_an_object(ckpt):
    (ckpt / "config.json").write_text("[1, 2]")
    fails(InputError, r"must hold a JSON object, got list", load_model, ckpt)


def test_missing_required_field(ckpt):
    edit(ckpt, hidden_size=None)
    fails(ConfigError, r"config.json has no 'hidden_size', which edgept needs", load_model, ckpt)


def test_field_of_wrong_type(ckpt):
    edit(ckpt, num_hidden_layers="2")
    fails(ConfigError, r"num_hidden_layers='2' must be an integer", read_config, ckpt)


@pytest.mark.parametrize(
    ("model_type", "what"),
    [(None, "has no 'model_type'"), ("roberta", "has model_type 'roberta', which is not supported")],
)
def test_unsupported_model_type(ckpt, model_type, what):
    edit(ckpt, model_type=model_type)
    fails(ConfigError, re.escape(what) + r"; supported: albert, bert, deit, dinov2, vit$", load_model, ckpt)


def test_no_weights_file(ckpt):
    (ckpt / "model.safetensors").unlink()
    fails(
        InputError,
        r"no weights in .*: expected one of model.safetensors, .*pytorch_model.bin.*\(found: config.json\)",
        load_model,
        ckpt,
    )


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_safetensors(ckpt, damage):
    f = ckpt / "model.safetensors"
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"\x13" * 64)
    fails(
        InputError,
        r"model.safetensors is not a readable safetensors file .*re-download or re-save it",
        load_model,
        ckpt,
    )


def _to_bin(ckpt: Path, obj) -> None:
    (ckpt / "model.safetensors").unlink()
    torch.save(obj, ckpt / "pytorch_model.bin")


def test_bin_loads(ckpt):
    ref = load_model(ckpt)
    _to_bin(ckpt, load_file(ckpt / "model.safetensors"))
    back = load_model(ckpt)
    assert all(
        torch.equal(a, b) for a, b in zip(ref.state_dict().values(), back.state_dict().values(), strict=True)
    )


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_bin(ckpt, damage):
    _to_bin(ckpt, load_file(ckpt / "model.safetensors"))
    f = ckpt / "pytorch_model.bin"
    f.write_bytes(f.read_bytes()[:300] if damage == "truncate" else b"not a zip file at all")
    fails(InputError, r"pytorch_model.bin is not a readable PyTorch weights file", load_model, ckpt)


class Payload:  # anything but tensors: weights_only=True must refuse to rebuild it
    pass


def test_bin_with_python_objects_is_refused(ckpt):
    _to_bin(ckpt, {"w": torch.zeros(2), "obj": Payload()})
    fails(InputError, r"holds Python objects besides tensors; edgept loads weights only", load_model, ckpt)


def test_bin_that_is_not_a_flat_state_dict(ckpt):
    _to_bin(ckpt, {"state_dict": load_file(ckpt / "model.safetensors")})
    fails(InputError, r"is not a flat name -> tensor state dict", load_model, ckpt)


def test_index_naming_a_missing_shard(ckpt):
    (ckpt / "model.safetensors").rename(ckpt / "model-00001-of-00001.safetensors")
    (ckpt / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"a": "../elsewhere.safetensors"}})
    )
    fails(InputError, r"names shard '../elsewhere.safetensors', which is not a file in", load_model, ckpt)


# --- weights that do not fit config.json --------------------------------------------------


def test_shape_mismatch_names_tensor_and_config_field(ckpt):
    edit(ckpt, intermediate_size=40)
    msg = fails(InputError, "weights do not match config.json", load_model, ckpt)
    assert msg == (
        f"{ckpt}: weights do not match config.json: encoder.layer.0.intermediate.dense.bias is [37] "
        "but intermediate_size=40 implies [40]; fix config.json or use the weights saved with it"
    )
    # describe (edgept info) checks the same from the safetensors header, without loading weights
    assert fails(InputError, "weights do not match", describe, ckpt) == msg
    edit(ckpt, intermediate_size=37, hidden_size=48)
    fails(
        InputError,
        r"weights do not match config.json: \S+ is \[32\] but hidden_size=48 implies \[48\]; fix",
        load_model,
        ckpt,
    )


def test_missing_and_unexpected_tensors(ckpt):
    edit_tensors(ckpt, lambda t: t.pop("encoder.layer.1.output.dense.weight"))
    fails(
        InputError,
        r"weights do not fit config.json: missing 1 \(encoder.layer.1.output.dense.weight\); check",
        load_model,
        ckpt,
    )
    edit_tensors(
        ckpt,
        lambda t: t.update(
            {"encoder.layer.1.output.dense.weight": torch.zeros(32, 37), "foo.weight": torch.zeros(1)}
        ),
    )
    fails(InputError, r"weights do not fit config.json: unexpected 1 \(foo.weight\); check", load_model, ckpt)
    edit(ckpt, num_hidden_layers=3)  # many missing: a few named, the rest counted
    fails(
        InputError,
        r"missing 16 \(encoder.layer.2.\S+, encoder.layer.2.\S+, encoder.layer.2.\S+, \.\.\. \(13 more\)\)",
        load_model,
        ckpt,
    )


def test_untied_mlm_decoder_is_refused(tmp_path):
    ckpt = _save(tmp_path / "mlm", _bert(task="masked-lm", pooler=False))
    words = load_file(ckpt / "model.safetensors")["bert.embeddings.word_embeddings.weight"]
    edit_tensors(ckpt, lambda t: t.update({"cls.predictions.decoder.weight": words.clone()}))
    load_model(ckpt)  # an old-style checkpoint that stores the tied copy: fine
    edit_tensors(ckpt, lambda t: t.update({"cls.predictions.decoder.weight": words + 1}))
    fails(
        InputError,
        r"cls.predictions.decoder.weight differs from bert.embeddings.word_embeddings.weight, to which edgept ties it",
        load_model,
        ckpt,
    )


# --- variants edgept cannot run -----------------------------------------------------------


@pytest.mark.parametrize(
    ("cfg", "change", "match"),
    [
        (
            _bert(num_layers=2, num_groups=1),
            {"inner_group_num": 2},
            r"inner_group_num=2 is not supported for albert \(allowed: 1\)",
        ),
        (
            _bert(),
            {"position_embedding_type": "relative_key"},
            r"position_embedding_type='relative_key' is not supported for bert",
        ),
        (_bert(), {"hidden_act": "tanh"}, r"config.json: hidden_act 'tanh' is not one of"),
        (
            _bert(),
            {"architectures": ["BertForTokenClassification"]},
            r"'BertForTokenClassification' is not supported for bert; supported: BertModel, ",
        ),
        (
            ViTConfig(
                hidden_size=32,
                num_layers=2,
                num_heads=4,
                intermediate_size=64,
                image_size=16,
                patch_size=8,
                layerscale_init=1.0,
            ),
            {"use_swiglu_ffn": True},
            r"use_swiglu_ffn=True is not supported for dinov2 \(allowed: False\)",
        ),
        (
            ViTConfig(
                hidden_size=32,
                num_layers=2,
                num_heads=4,
                intermediate_size=64,
                image_size=16,
                patch_size=8,
                distillation_token=True,
            ),
            {"architectures": ["DeiTForImageClassificationWithTeacher"]},
            r"DeiTForImageClassificationWithTeacher is not supported: .*pass task='feature-extraction'",
        ),
        (
            _bert(task="sequence-classification", labels=("a", "b")),
            {"id2label": {"0": "a", "2": "b"}},
            r"id2label ids must be 0..1, got \[0, 2\]",
        ),
    ],
    ids=[
        "albert-inner-groups",
        "relative-positions",
        "activation",
        "architecture",
        "swiglu",
        "deit-teacher",
        "id2label",
    ],
)
def test_unsupported_variants(tmp_path, cfg, change, match):
    ckpt = _save(tmp_path / "ckpt", cfg)
    edit(ckpt, **change)
    fails(ConfigError, match, load_model, ckpt)


def test_bad_task_override(ckpt):
    fails(
        ConfigError,
        r"task 'image-classification' is not one of \(.*\) for a bert checkpoint",
        load_model,
        ckpt,
        task="image-classification",
    )


def test_stale_edgept_block(tmp_path):
    ckpt = _save(tmp_path / "ckpt", _bert(), hf_only=False)
    edit(ckpt, hidden_act="relu")
    fails(
        InputError,
        r"'edgept' block disagrees with its Hugging Face fields \(hidden_act: 'gelu' vs 'relu'\); remove the 'edgept' key",
        load_model,
        ckpt,
    )
    edit(ckpt, edgept=None)
    assert load_model(ckpt).config.hidden_act == "relu"  # the HF fields alone


def test_trained_projection_contradicting_edgept_block(tmp_path):
    ckpt = _save(
        tmp_path / "ckpt", _bert(num_layers=4, num_groups=2), hf_only=False
    )  # shared: identity projection
    assert load_model(ckpt).embeddings.projection is None
    edit_tensors(ckpt, lambda t: t["encoder.embedding_hidden_mapping_in.weight"].mul_(2))
    fails(
        InputError,
        r"embedding_hidden_mapping_in.weight holds trained values but the 'edgept' block",
        load_model,
        ckpt,
    )


# --- save_model ---------------------------------------------------------------------------


def test_save_refuses_existing_dir_unless_overwrite(tmp_path):
    model = build_model(_bert())
    save_model(model, tmp_path / "ckpt")
    (tmp_path / "ckpt" / "stale.txt").write_text("old")
    fails(InputError, r"ckpt already exists; pass overwrite=True", save_model, model, tmp_path / "ckpt")
    save_model(model, tmp_path / "ckpt", overwrite=True)
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["config.json", "model.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_failed_save_leaves_nothing(tmp_path, monkeypatch):
    import safetensors.torch

    def broken(*args, **kw):
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", broken)
    model = build_model(_bert())
    with pytest.raises(OSError, match="disk full"):
        save_model(model, tmp_path / "new")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    save_model(model, tmp_path / "old")
    monkeypatch.setattr(safetensors.torch, "save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        save_model(model, tmp_path / "old", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]  # the previous checkpoint, intact
    assert (tmp_path / "old" / "model.safetensors").is_file()


def test_save_refuses_what_hf_cannot_hold(tmp_path):
    vit = dict(hidden_size=32, num_layers=2, num_heads=4, intermediate_size=48, image_size=16, patch_size=8)
    fails(
        ConfigError,
        r"save_model needs an edgept model .*, got Linear",
        save_model,
        torch.nn.Linear(2, 2),
        tmp_path / "a",
    )
    shared = build_model(ViTConfig(**vit, num_groups=1))
    fails(
        ConfigError,
        r"no Hugging Face equivalent: num_groups=1 < num_layers=2",
        save_model,
        shared,
        tmp_path / "b",
    )
    dino = build_model(ViTConfig(**vit, layerscale_init=1.0))
    fails(
        ConfigError,
        r"intermediate_size=48 is not a multiple of hidden_size=32",
        save_model,
        dino,
        tmp_path / "c",
    )
    cls_mean = build_model(
        ViTConfig(**vit, head_pooling="cls+mean", task="image-classification", labels=("a", "b"))
    )
    fails(ConfigError, r"head_pooling='cls\+mean' without LayerScale", save_model, cls_mean, tmp_path / "d")
    fails(
        InputError,
        r"source .*nowhere is not a directory",
        save_model,
        build_model(_bert()),
        tmp_path / "e",
        source=tmp_path / "nowhere",
    )
    assert list(tmp_path.iterdir()) == []
