"""Vocabulary trimming on a tiny classifier: kept tokens give exactly the untrimmed outputs with the
same tokenizer, dropped ones read [UNK] or their nearest kept row, and the result quantizes."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from edgept.errors import ConfigError
from edgept.vocab import TrimConfig, trim_vocab
from edgept.vocab.trim import ID_MAP
from tests.cli.test_distill_cli import write_reviews
from tests.conftest import tiny_vocab

USED = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "movie", "was", *"great good fun film acting".split(),
        *"bad boring dull plot story".split()}


@pytest.fixture
def bundle(tmp_path, tiny_bert_dir):
    from edgept.export import export

    return export(tiny_bert_dir, tmp_path / "fp32.edgept")


def feeds(words: list[str]) -> dict[str, np.ndarray]:
    vocab = {t: i for i, t in enumerate(tiny_vocab())}
    ids = np.array([[vocab["[CLS]"], *(vocab[w] for w in words), vocab["[SEP]"]]], dtype=np.int64)
    return {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}


def logits(bundle, words):
    from edgept.runtime import load

    return load(bundle).run(feeds(words))["logits"]


@pytest.mark.parametrize("fallback", ["unk", "nearest"])
def test_kept_tokens_are_exact_and_dropped_ones_read_their_fallback(bundle, tmp_path, fallback):
    data = write_reviews(tmp_path)
    result = trim_vocab(bundle, tmp_path / "trim.edgept", TrimConfig(fallback=fallback), data=str(data))
    vocab = tiny_vocab()
    assert result.kept == len(USED) and result.original == len(vocab)
    assert result.coverage["train"] == 1.0 and 0.0 < result.coverage["test"] <= 1.0
    trimmed = result.bundle
    assert trimmed.artifacts["tokenizer.json"]["sha256"] == bundle.artifacts["tokenizer.json"]["sha256"]
    proto = onnx.load(str(trimmed.model_path))
    table = next(i for i in proto.graph.initializer if i.name.endswith("word.weight"))
    assert list(table.dims)[0] == len(USED)
    kept = ["the", "movie", "was", "great", "fun", "boring"]
    np.testing.assert_allclose(logits(trimmed, kept), logits(bundle, kept), atol=1e-6, rtol=0)
    assert np.abs(logits(trimmed, kept) - logits(bundle, ["the", "movie", "was", "great", "fun", "dull"])).max() > 0
    # "very" was in no training text: dropped; it reads the row of the kept token `stand_in`.
    from onnx import numpy_helper

    id_map = numpy_helper.to_array(next(i for i in proto.graph.initializer if i.name == ID_MAP))
    original_of = {int(id_map[old]): old for old, token in enumerate(vocab) if token in USED}
    stand_in = vocab[original_of[int(id_map[vocab.index("very")])]]
    assert stand_in in USED
    if fallback == "unk":
        assert stand_in == "[UNK]"
    np.testing.assert_allclose(logits(trimmed, ["the", "very", "good", "film"]),
                               logits(bundle, ["the", stand_in, "good", "film"]), atol=1e-6, rtol=0)
    metrics = trimmed.passes[-1]["metrics"]
    assert metrics["kept_rows"] == len(USED) and set(metrics["accuracy"]) == {"dev", "test"}
    assert metrics["kept_token_max_abs_diff"] <= 1e-6


def test_a_size_keeps_the_most_frequent_and_fills_by_id(bundle, tmp_path):
    data = str(write_reviews(tmp_path))
    small = trim_vocab(bundle, tmp_path / "small.edgept", TrimConfig(vocab_size=8), data=data)
    big = trim_vocab(bundle, tmp_path / "big.edgept", TrimConfig(vocab_size=len(USED) + 2), data=data)
    assert small.kept == 8 and small.coverage["train"] < 1.0 and big.kept == len(USED) + 2
    assert big.coverage["train"] == 1.0
    for bad, match in ((TrimConfig(vocab_size=4), "no room"), (TrimConfig(vocab_size=99), "not smaller")):
        with pytest.raises(ConfigError, match=match):
            trim_vocab(bundle, tmp_path / "bad.edgept", bad, data=data)
    assert not (tmp_path / "bad.edgept").exists()
    with pytest.raises(ConfigError, match="fallback"):
        TrimConfig(fallback="zero")


def test_a_trimmed_bundle_quantizes_with_the_smaller_int8_table_and_a_quantized_one_is_refused(bundle, tmp_path):
    from edgept.quantize import Int8Dynamic, quantize
    from edgept.quantize.embeddings import ROWS

    data = str(write_reviews(tmp_path))
    trimmed = trim_vocab(bundle, tmp_path / "trim.edgept", TrimConfig(), data=data).bundle
    q = quantize(trimmed, tmp_path / "q.edgept", Int8Dynamic())
    proto = onnx.load(str(q.model_path))
    rows = next(i for i in proto.graph.initializer if i.name.endswith("word.weight" + ROWS))
    assert rows.dims[0] == len(USED) and rows.data_type == onnx.TensorProto.INT8
    kept = ["the", "movie", "was", "good"]
    assert np.abs(logits(q, kept) - logits(trimmed, kept)).max() < 0.1
    with pytest.raises(ConfigError, match="already quantized or trimmed"):
        trim_vocab(q, tmp_path / "again.edgept", TrimConfig(), data=data)


def test_the_command_reports_coverage_and_a_bad_input_is_one_line(monkeypatch, capsys, bundle, tmp_path):
    from tests.cli.test_cli import assert_one_line_error, edgept

    data = write_reviews(tmp_path)
    code, out, err = edgept(monkeypatch, capsys, "trim-vocab", bundle.path, "--data", data, "-o", tmp_path / "t.edgept")
    assert code == 0, err
    assert f"{len(USED)} of {len(tiny_vocab())} rows kept" in out and "coverage" in out and "test accuracy" in out
    code, _, err = edgept(monkeypatch, capsys, "trim-vocab", bundle.path, "--data", data, "--vocab-size", "500",
                          "-o", tmp_path / "u.edgept")
    assert_one_line_error(code, err, "not smaller than the vocabulary")
