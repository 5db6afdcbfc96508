"""`edgept factorize`: writes an HF ALBERT checkpoint + report; bad flags are one line."""

from __future__ import annotations

import json

import pytest
import torch

from tests.cli.test_cli import assert_one_line_error, edgept
from tests.cli.test_distill_cli import data_file  # noqa: F401  (a fixture)


def test_factorize_writes_albert_checkpoint(monkeypatch, capsys, tmp_path, tiny_bert_dir):
    from edgept.models.hf import load_model

    out = tmp_path / "albert"
    code, stdout, stderr = edgept(
        monkeypatch, capsys, "factorize", tiny_bert_dir, "-o", out, "--embedding-size", "8", "--share", "all"
    )
    assert code == 0, stderr
    report = json.loads((out / "factorize_report.json").read_text())
    assert report["embedding_size"] == 8 and report["groups"] == 1
    assert report["params_after"] < report["params_before"]
    assert f"-{100 * report['drop']:.1f}%" in stdout
    assert json.loads((out / "config.json").read_text())["model_type"] == "albert"
    assert (out / "vocab.txt").read_text() == (tiny_bert_dir / "vocab.txt").read_text()
    model = load_model(out)
    assert model.config.emb_size == 8 and model.config.groups == 1
    # the same flags give the same weights (deterministic, no seed needed)
    code, _, _ = edgept(
        monkeypatch, capsys, "factorize", tiny_bert_dir, "-o", out, "--embedding-size", "8", "--share", "all", "--force"
    )
    assert code == 0
    again = load_model(out)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True))


@pytest.mark.parametrize(
    ("flags", "match"),
    [
        (["--embedding-size", "32"], "embedding_size 32 must be below hidden_size 32"),
        (["--embedding-size", "40"], "must be below hidden_size 32"),
        (["--embedding-size", "0"], "embedding_size must be at least 2"),
        (["--embedding-size", "-1"], "embedding_size must be at least 2"),
        (["--embedding-energy", "1.5"], "embedding_energy must be a fraction in (0, 1]"),
        (["--embedding-energy", "0"], "embedding_energy must be a fraction in (0, 1]"),
        (["--share", "groups:3"], "3 groups do not divide the model's 2 layers"),
        (["--share", "everything"], "share must be 'none', 'all' or 'groups:N'"),
        (["--ffn-rank", "0"], "ffn_rank must be a positive integer"),
        (["--ffn-rank", "33"], "exceeds min"),
    ],
)
def test_bad_flags_are_one_line(monkeypatch, capsys, tmp_path, tiny_bert_dir, flags, match):
    code, _, stderr = edgept(monkeypatch, capsys, "factorize", tiny_bert_dir, "-o", tmp_path / "x", *flags)
    assert_one_line_error(code, stderr, match)
    assert not (tmp_path / "x").exists()


def test_existing_output_needs_force(monkeypatch, capsys, tmp_path, tiny_bert_dir):
    (tmp_path / "x").mkdir()
    code, _, stderr = edgept(monkeypatch, capsys, "factorize", tiny_bert_dir, "-o", tmp_path / "x", "--share", "all")
    assert_one_line_error(code, stderr, "already exists")


RECOVER = ["--embedding-size", "8", "--share", "all", "--recover", "--max-steps", "3", "--batch-size", "8", "-q"]


def test_recover_writes_an_albert_checkpoint_and_teacher_vs_recovered_and_the_seed_repeats(
    monkeypatch, capsys, tmp_path, tiny_bert_dir, data_file  # noqa: F811
):
    from edgept.models.hf import load_model

    runs = []
    for name in ("a", "b"):
        code, stdout, stderr = edgept(
            monkeypatch, capsys, "factorize", tiny_bert_dir, "-o", tmp_path / name, *RECOVER, "--data", data_file
        )
        assert code == 0, stderr
        line = " ".join(stdout.split())  # rich wraps long lines
        assert "test accuracy" in line and "vs teacher" in line and "E=8" in line
        runs.append(load_model(tmp_path / name / "model"))
    assert (runs[0].config.emb_size, runs[0].config.groups) == (8, 1)
    assert all(torch.equal(x, y) for x, y in zip(*(r.state_dict().values() for r in runs), strict=True))
    m = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert [s["steps"] for s in m["stages"]] == [3, 3]
    assert m["train"]["max_steps"] == 3 and m["factorize"]["drop"] > 0


def test_ffn_rank_recovers_into_an_edgept_checkpoint_that_exports(monkeypatch, capsys, tmp_path, tiny_bert_dir, data_file):  # noqa: F811
    from edgept.export import export
    from edgept.models.hf import load_model

    out = tmp_path / "lowrank"
    code, stdout, stderr = edgept(monkeypatch, capsys, "factorize", tiny_bert_dir, "-o", out, "--embedding-size", "8",
                                  "--ffn-rank", "8", "--recover", "--max-steps", "2", "--batch-size", "8", "-q", "--data", data_file)  # fmt: skip
    assert code == 0, stderr
    assert "FFN rank 8" in " ".join(stdout.split())
    assert json.loads((out / "model" / "config.json").read_text())["model_type"] == "edgept"
    model = load_model(out / "model")
    assert model.config.ffn_rank == 8 and model.config.emb_size == 8
    export(out / "model", tmp_path / "lowrank.edgept")  # its parity gate: <= 1e-4 against the loaded model


@pytest.mark.parametrize(
    ("flags", "match"),
    [
        (["--recover"], "--recover trains on --data"),
        (["--data", "rt-polarity"], "--recover trains on --data"),
        (["--resume"], "--resume continues a --recover run"),
        (["--augment", "2"], "--augment adds copies to --recover's training data"),
    ],
)
def test_recover_flag_errors_are_one_line(monkeypatch, capsys, tmp_path, tiny_bert_dir, flags, match):
    code, _, stderr = edgept(
        monkeypatch, capsys, "factorize", tiny_bert_dir, "-o", tmp_path / "x", "--embedding-size", "8", *flags
    )
    assert_one_line_error(code, stderr, match)
    assert not (tmp_path / "x").exists()
