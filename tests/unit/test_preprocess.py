"""Text and image pre-processing: explicit truncation/padding, HF numerics, manifest round trips."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from edgept.errors import ConfigError, InputError, MissingDependencyError
from edgept.preprocess import ImagePreprocessor, TextPreprocessor, from_manifest

VOCAB = "[PAD] [UNK] [CLS] [SEP] [MASK] hello world the cat ##s sat on mat".split()
ID = {t: i for i, t in enumerate(VOCAB)}


@pytest.fixture
def ckpt(tmp_path):
    d = tmp_path / "ckpt"
    d.mkdir()
    (d / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    return d


def ids(*tokens):
    return [ID[t] for t in tokens]


def test_wordpiece_from_vocab_txt(ckpt):
    tp = TextPreprocessor.from_checkpoint(ckpt, max_length=16)
    out = tp(["Hello cats", "the cat sat on the mat"])
    assert set(out) == {"input_ids", "attention_mask", "token_type_ids"}
    assert all(a.dtype == np.int64 and a.shape == (2, 8) for a in out.values())
    assert out["input_ids"][0].tolist() == ids(
        "[CLS]", "hello", "cat", "##s", "[SEP]", "[PAD]", "[PAD]", "[PAD]"
    )
    assert out["attention_mask"][0].tolist() == [1] * 5 + [0] * 3
    assert out["token_type_ids"].sum() == 0
    assert tp.vocab_size == len(VOCAB) and tp.pad_id == 0


def test_do_lower_case_false_is_honored(ckpt):
    (ckpt / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False}))
    tp = TextPreprocessor.from_checkpoint(ckpt)
    assert tp("Hello hello")["input_ids"][0].tolist() == ids("[CLS]", "[UNK]", "hello", "[SEP]")


def test_truncation_and_padding_are_explicit(ckpt, tmp_path):
    # A tokenizer.json saved with truncation 3 and fixed padding 20 must not leak those settings.
    from tokenizers import Tokenizer

    tok = TextPreprocessor.from_checkpoint(ckpt).tokenizer
    baked = Tokenizer.from_str(tok.to_str())
    baked.enable_truncation(max_length=3)
    baked.enable_padding(length=20, pad_id=0, pad_token="[PAD]")
    (tmp_path / "tokenizer.json").write_text(baked.to_str())
    tp = TextPreprocessor.from_file(tmp_path / "tokenizer.json", max_length=6)
    assert tp(["the cat sat on the mat"])["input_ids"].tolist() == [
        ids("[CLS]", "the", "cat", "sat", "on", "[SEP]")
    ]
    assert tp(["hello"])["input_ids"].shape == (1, 3)
    assert tp(["hello"], pad_to="max_length")["input_ids"].shape == (1, 6)
    assert tp(["the cat sat on the mat"], max_length=4)["input_ids"].shape == (1, 4)


def test_text_pairs_get_segment_ids(ckpt):
    tp = TextPreprocessor.from_checkpoint(ckpt)
    out = tp(["hello world"], 16, text_pairs=["the cat"])
    assert out["input_ids"][0].tolist() == ids("[CLS]", "hello", "world", "[SEP]", "the", "cat", "[SEP]")
    assert out["token_type_ids"][0].tolist() == [0, 0, 0, 0, 1, 1, 1]
    with pytest.raises(InputError, match="text_pairs has 2 items but texts has 1"):
        tp(["hello"], text_pairs=["a", "b"])


def test_save_and_manifest_roundtrip(ckpt, tmp_path):
    tp = TextPreprocessor.from_checkpoint(ckpt, max_length=10)
    bundle = tmp_path / "b"
    bundle.mkdir()
    tp.save(bundle / "tokenizer.json")
    assert [p.name for p in bundle.iterdir()] == ["tokenizer.json"]
    d = json.loads(json.dumps(tp.to_dict()))
    assert d == {"kind": "text", "tokenizer": "tokenizer.json", "max_length": 10, "pad_id": 0}
    back = from_manifest(d, bundle)
    assert isinstance(back, TextPreprocessor) and back.max_length == 10
    texts = ["the cats sat on the mat hello world", "hello"]
    for k, v in tp(texts).items():
        np.testing.assert_array_equal(back(texts)[k], v)
    with pytest.raises(ConfigError, match="unknown key.*lowercase.*allowed: kind, tokenizer"):
        TextPreprocessor.from_dict({**d, "lowercase": True}, bundle)


def test_text_errors(tmp_path, ckpt):
    with pytest.raises(InputError) as e:
        TextPreprocessor.from_checkpoint(tmp_path)
    assert str(tmp_path) in str(e.value) and "tokenizer.json or vocab.txt" in str(e.value)
    tp = TextPreprocessor.from_checkpoint(ckpt)
    with pytest.raises(InputError, match=r"texts\[1\] is int, expected str"):
        tp(["ok", 3])
    with pytest.raises(ConfigError, match="pad_to 'max' is not one of: longest, max_length"):
        tp(["ok"], pad_to="max")


def test_matches_hf_bert_tokenizer(ckpt):
    transformers = pytest.importorskip("transformers")
    hf = transformers.BertTokenizer(str(ckpt / "vocab.txt"), do_lower_case=True)
    texts = ["Hello, the cats SAT on the mat!", "héllo wörld", "unknownword cat"]
    ours = TextPreprocessor.from_checkpoint(ckpt, max_length=12)(texts)
    ref = hf(texts, padding="longest", truncation=True, max_length=12, return_tensors="np")
    for k in ours:
        np.testing.assert_array_equal(ours[k], ref[k])


def rgb(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def test_rescale_and_normalize_without_resize():
    pp = ImagePreprocessor(size=(4, 5), mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.5))
    img = rgb(4, 5)
    out = pp(img)
    assert out.shape == (1, 3, 4, 5) and out.dtype == np.float32 and out.flags.c_contiguous
    ref = (img / 255.0 - np.array([0.5, 0.4, 0.3])) / np.array([0.2, 0.25, 0.5])
    np.testing.assert_allclose(out[0], ref.transpose(2, 0, 1), atol=1e-6)


def test_grayscale_is_repeated_to_three_channels():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = ImagePreprocessor(size=(3, 4))([gray, gray[:, :, None]])
    assert out.shape == (2, 3, 3, 4)
    np.testing.assert_array_equal(out[:, 0], out[:, 2])
    np.testing.assert_allclose(out[0, 1], (gray / 255 - 0.5) / 0.5, atol=1e-6)


def test_pillow_only_when_resizing(monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)  # makes `from PIL import Image` raise ImportError
    pp = ImagePreprocessor(size=(6, 6))
    assert pp(rgb(6, 6)).shape == (1, 3, 6, 6)
    with pytest.raises(MissingDependencyError) as e:
        pp(rgb(7, 6))
    assert "pip install 'edgept[images]'" in str(e.value) and "\n" not in str(e.value)


def test_center_crop_and_shortest_edge():
    img = rgb(10, 10)
    out = ImagePreprocessor(size=(10, 10), crop_size=(4, 6), mean=(0,) * 3, std=(1,) * 3, rescale=1.0)(img)
    np.testing.assert_array_equal(out[0], img[3:7, 2:8].transpose(2, 0, 1))
    tall = ImagePreprocessor(size=None, shortest_edge=8, mean=(0,) * 3, std=(1,) * 3)(rgb(30, 20))
    assert tall.shape == (1, 3, 12, 8)


@pytest.mark.parametrize(
    "cls_name, config",
    [
        ("ViTImageProcessor", {"do_resize": True, "size": {"height": 16, "width": 12}, "resample": 2}),
        (
            "BitImageProcessor",  # DINOv2's processor: shortest edge, bicubic, crop, ImageNet stats
            {
                "size": {"shortest_edge": 20},
                "resample": 3,
                "do_center_crop": True,
                "crop_size": {"height": 14, "width": 14},
                "image_mean": [0.485, 0.456, 0.406],
                "image_std": [0.229, 0.224, 0.225],
                "do_convert_rgb": True,
            },
        ),
    ],
)
def test_matches_hf_image_processor(tmp_path, cls_name, config):
    transformers = pytest.importorskip("transformers")
    (tmp_path / "preprocessor_config.json").write_text(
        json.dumps({"image_processor_type": cls_name, **config})
    )
    hf = getattr(transformers, cls_name).from_pretrained(tmp_path)
    ours = ImagePreprocessor.from_checkpoint(tmp_path)
    images = [rgb(37, 29, seed=1), rgb(37, 29, seed=2)]
    ref = hf(images=images, return_tensors="np")["pixel_values"]
    out = ours(images)
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, atol=1e-5, rtol=0)


def test_from_checkpoint_defaults(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"image_size": 32, "num_channels": 1}))
    pp = ImagePreprocessor.from_checkpoint(tmp_path)
    assert pp == ImagePreprocessor(size=(32, 32), mean=(0.5,), std=(0.5,), channels=1)
    assert pp(np.zeros((32, 32), dtype=np.uint8)).shape == (1, 1, 32, 32)

    class VitConfig:  # what edgept's own config offers: it wins over config.json
        image_size, num_channels = (16, 24), 3

    assert ImagePreprocessor.from_checkpoint(tmp_path, VitConfig()).size == (16, 24)


def test_image_manifest_roundtrip_and_files(tmp_path):
    from PIL import Image

    pp = ImagePreprocessor(size=(8, 8), crop_size=(6, 6), resample="bicubic", mean=(0.1, 0.2, 0.3))
    d = json.loads(json.dumps(pp.to_dict()))
    assert d["kind"] == "image" and d["size"] == [8, 8] and "shortest_edge" not in d
    assert from_manifest(d, tmp_path) == pp
    Image.fromarray(rgb(11, 9)).save(tmp_path / "a.png")
    a = pp(tmp_path / "a.png")
    np.testing.assert_array_equal(a, pp(Image.open(tmp_path / "a.png")))
    np.testing.assert_array_equal(a, pp(rgb(11, 9)))
    with pytest.raises(ConfigError, match="unknown key.*'?crop'?.*allowed: kind, size"):
        ImagePreprocessor.from_dict({**d, "crop": [2, 2]})


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"mean": (0.5, 0.5)}, "mean has 2 values but channels is 3"),
        ({"resample": "cubic"}, "resample 'cubic' is not one of: nearest, lanczos, bilinear, bicubic"),
        ({"std": (1.0, 0.0, 1.0)}, "std values must be > 0"),
        ({"shortest_edge": 8}, "give size or shortest_edge, not both"),
    ],
)
def test_image_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ImagePreprocessor(**kwargs)


def test_image_input_errors():
    pp = ImagePreprocessor(size=(4, 4))
    with pytest.raises(InputError, match="image 0 has dtype float32; expected uint8"):
        pp(np.zeros((4, 4, 3), dtype=np.float32))
    with pytest.raises(InputError, match=r"image 1 has shape \(4, 4, 2\)"):
        pp([rgb(4, 4), np.zeros((4, 4, 2), dtype=np.uint8)])
    with pytest.raises(InputError, match="image 0 is a dict"):
        pp([{}])


@pytest.mark.parametrize(
    "config, match",
    [
        ({"do_center_crop": True}, "sets do_center_crop but no crop_size"),
        (
            {"size": {"longest_edge": 5}},
            "size must be \\[height, width\\] of positive ints, got {'longest_edge': 5}",
        ),
        ({"resample": 9}, "resample 9 is not a PIL filter"),
    ],
)
def test_bad_preprocessor_config(tmp_path, config, match):
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match=match):
        ImagePreprocessor.from_checkpoint(tmp_path)
