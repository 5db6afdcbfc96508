"""`edgept optimize`: the plan in --dry-run, and one-line errors for a bad target or budget."""

from __future__ import annotations

import pytest

from tests.cli.test_cli import assert_one_line_error, edgept
from tests.cli.test_distill_cli import write_reviews


def test_dry_run_prints_the_plan_and_writes_nothing(monkeypatch, capsys, tmp_path, tiny_bert_dir):
    data = write_reviews(tmp_path)
    code, out, err = edgept(monkeypatch, capsys, "optimize", tiny_bert_dir, "--data", data, "--target", "cpu",
                            "--depths", "1", "--embedding-sizes", "8", "-o", tmp_path / "run", "--dry-run")
    assert code == 0, err
    for name in ("teacher-int8", "teacher-fp32", "teacher-ffn50-int8", "teacher-ffn12-h25-int8", "s1-int8", "s1-ffn50-fp32",
                 "s1-ffn25-int8", "s1-ffn12-h25-fp32", "s1-e8-fp32"):
        assert name in out
    assert "18 candidates" in out and not (tmp_path / "run").exists()  # 9 models (3 plain, 6 pruned) x 2 precisions


def test_a_run_logs_its_steps_where_stderr_is_not_a_terminal(monkeypatch, capsys, tmp_path, tiny_bert_dir):
    data = write_reviews(tmp_path)
    code, out, err = edgept(monkeypatch, capsys, "optimize", tiny_bert_dir, "--data", data, "--target", "cpu-x86_64",
                            "--schedule", "short", "--depths", "1", "--embedding-sizes", "", "--prune-ffn", "",
                            "--prune-heads", "", "-o", tmp_path / "run")
    assert code == 0, err
    steps = [line.split(": ", 1)[1] for line in err.splitlines() if line.startswith(f"optimizing {tiny_bert_dir} for cpu-x86_64: ")]
    assert steps[0].startswith("making 1-layer student") and steps[-1].startswith("benchmarking 4 bundles")
    assert "chose" in out and (tmp_path / "run" / "best.edgept").is_dir()


@pytest.mark.parametrize(("flags", "match"), [
    (["--target", "toaster"], "unknown target 'toaster'"),
    (["--target", "cpu", "--time-budget", "soon"], "not a duration"),
    (["--target", "cpu", "--max-drop", "-2"], "--max-drop"),
    (["--target", "cpu", "--depths", "two"], "--depths"),
    (["--target", "cpu", "--prune-ffn", "150"], "--prune-ffn"),
    (["--target", "cpu", "--prune-heads-ffn", "0"], "--prune-heads-ffn"),
])
def test_bad_input_is_one_line(monkeypatch, capsys, tmp_path, tiny_bert_dir, flags, match):
    data = write_reviews(tmp_path)
    code, _, err = edgept(monkeypatch, capsys, "optimize", tiny_bert_dir, "--data", data, *flags, "-o", tmp_path / "run")
    assert_one_line_error(code, err, match)
    assert not (tmp_path / "run").exists()
