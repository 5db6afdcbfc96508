"""`edgept pretrain bert|vit` end to end on tiny models: outputs finetune accepts, seeding, one-line errors."""

from __future__ import annotations

import json

import pytest

from edgept.train.state import load_latest
from tests.cli.test_cli import assert_one_line_error, edgept
from tests.unit.test_pretrain import TEXT

SMALL = ["--preset", "tiny", "--hidden", "32", "--heads", "2", "--ffn", "64", "--max-length", "24", "--vocab-size", "150", "--batch-size", "4", "--max-steps", "3", "-q"]


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(TEXT * 3) + "\n")
    return path


def test_pretrain_bert_writes_a_masked_lm_that_finetune_accepts(monkeypatch, capsys, tmp_path, corpus):
    code, out, err = edgept(monkeypatch, capsys, "pretrain", "bert", "--corpus", corpus, "-o", tmp_path / "a", *SMALL, "--whole-word")
    assert code == 0, err
    assert "held-out perplexity" in out
    config = json.loads((tmp_path / "a" / "model" / "config.json").read_text())
    assert config["architectures"] == ["BertForMaskedLM"] and (tmp_path / "a" / "model" / "vocab.txt").is_file()
    # The same seed gives the same model; the trained tokenizer is reusable with --tokenizer.
    code, _, err = edgept(monkeypatch, capsys, "pretrain", "bert", "--corpus", corpus, "-o", tmp_path / "b", *SMALL, "--whole-word", "--tokenizer", tmp_path / "a" / "tokenizer")
    assert code == 0, err
    assert (tmp_path / "a" / "model" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model" / "model.safetensors").read_bytes()
    data = tmp_path / "reviews.jsonl"
    data.write_text("".join(json.dumps({"text": t, "label": ["neg", "pos"][i % 2]}) + "\n" for i, t in enumerate(TEXT * 2)))
    code, out, err = edgept(monkeypatch, capsys, "finetune", tmp_path / "a" / "model", "--data", data, "-o", tmp_path / "ft", "--max-steps", "2", "--batch-size", "4", "-q", "--precision", "bf16")
    assert code == 0, err
    assert load_latest(tmp_path / "ft" / "checkpoints")["config"]["precision"] == "bf16"
    code, _, err = edgept(monkeypatch, capsys, "pretrain", "bert", "--corpus", corpus, "-o", tmp_path / "c", *SMALL, "--precision", "fp8")
    assert_one_line_error(code, err, "precision must be one of fp32, bf16")


@pytest.mark.parametrize("kind", ["empty", "latin-1"])
def test_bad_corpus_is_one_line(monkeypatch, capsys, tmp_path, kind):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"\n\n" if kind == "empty" else "na\xefve caf\xe9\n".encode("latin-1"))
    code, _, err = edgept(monkeypatch, capsys, "pretrain", "bert", "--corpus", path, "-o", tmp_path / "o", *SMALL)
    assert_one_line_error(code, err, "bad.txt")


def test_unknown_preset_and_objective_are_one_line(monkeypatch, capsys, tmp_path, corpus):
    code, _, err = edgept(monkeypatch, capsys, "pretrain", "bert", "--corpus", corpus, "-o", tmp_path / "o", "--preset", "huge")
    assert_one_line_error(code, err, "tiny, mini, small, base")
    code, _, err = edgept(monkeypatch, capsys, "pretrain", "vit", "--data", "fashion-mnist", "-o", tmp_path / "v", "--objective", "byol")
    assert_one_line_error(code, err, "mae, supervised")
