"""`edgept finetune` and `edgept eval` end to end on a tiny model and a tiny JSONL file; a
checkpoint and its exported bundle score the same."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from edgept.cli.main import app

GOOD, BAD = ["good", "great", "fun"], ["bad", "boring", "dull"]


@pytest.fixture
def reviews(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "reviews.jsonl"
    rows = []
    for i in range(60):
        label = ["neg", "pos"][i % 2]
        words = " ".join(rng.choice(GOOD if label == "pos" else BAD, size=2 + i % 3))
        rows.append(json.dumps({"review": f"the film was {words}", "sentiment": label}))
    path.write_text("\n".join(rows) + "\n")
    return path


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_finetune_then_eval_checkpoint_and_bundle_agree(tmp_path, tiny_bert_dir, reviews):
    out = tmp_path / "ft"
    columns = ("--text-column", "review", "--label-column", "sentiment")
    r = invoke("finetune", tiny_bert_dir, "--data", reviews, "-o", out, *columns, "--epochs", 4, "--lr", "3e-3",
               "--batch-size", 8, "--eval-every", 6, "--quiet")  # fmt: skip
    assert r.exit_code == 0, r.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"]["labels"] == ["neg", "pos"] and metrics["data"]["sizes"] == {"train": 48, "dev": 6, "test": 6}
    assert metrics["steps"] == 24 and metrics["test"]["accuracy"] >= 0.5
    assert (out / "model" / "vocab.txt").is_file()  # tokenizer copied from the source

    r = invoke("eval", out / "model", "--data", reviews, *columns, "--json", tmp_path / "ckpt.json")
    assert r.exit_code == 0, r.output
    ckpt = json.loads((tmp_path / "ckpt.json").read_text())
    assert (ckpt["accuracy"], ckpt["macro_f1"]) == (metrics["test"]["accuracy"], metrics["test"]["macro_f1"])

    assert invoke("export", out / "model", "-o", tmp_path / "ft.edgept").exit_code == 0
    r = invoke("eval", tmp_path / "ft.edgept", "--data", reviews, *columns, "--split", "train", "--json", tmp_path / "b.json")
    assert r.exit_code == 0, r.output
    r = invoke("eval", out / "model", "--data", reviews, *columns, "--split", "train", "--json", tmp_path / "c.json")
    bundle, torch_side = (json.loads((tmp_path / f).read_text()) for f in ("b.json", "c.json"))
    assert bundle["format"] == "bundle" and torch_side["format"] == "checkpoint" and bundle["examples"] == 48
    assert (bundle["accuracy"], bundle["macro_f1"]) == (torch_side["accuracy"], torch_side["macro_f1"])


def test_cli_errors_are_one_line(tmp_path, tiny_bert_dir, reviews):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "good", "label": "pos"}\n{"text": "bad"}\n')
    runner = CliRunner()
    r = runner.invoke(app, ["finetune", str(tiny_bert_dir), "--data", str(bad), "-o", str(tmp_path / "o")])
    assert r.exit_code != 0 and "bad.jsonl:2" in str(r.exception) and "\n" not in str(r.exception)
    # A model trained on other labels: the row with an unknown label is named.
    r = runner.invoke(app, ["eval", str(tiny_bert_dir), "--data", str(reviews), "--text-column", "review", "--label-column", "sentiment"])
    assert r.exit_code != 0 and "reviews.jsonl:" in str(r.exception) and "not one of the model's labels (negative, positive)" in str(r.exception)
