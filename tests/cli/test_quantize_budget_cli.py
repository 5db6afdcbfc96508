"""`edgept quantize --max-drop/--data`: a task-accuracy budget on the dev split, recorded in the manifest."""

from __future__ import annotations

import json

from tests.cli.test_cli import assert_one_line_error, edgept

WORDS = "good bad boring fun dull great".split()


def _reviews(tmp_path):
    """120 labelled texts in the tiny vocabulary (its dev split: 12)."""
    rows = [{"text": f"the film was {WORDS[i % 6]} and {WORDS[(i * 7) % 6]}", "label": ["negative", "positive"][(i // 3) % 2]}
            for i in range(120)]
    path = tmp_path / "reviews.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_max_drop_budget_is_met_and_recorded(monkeypatch, capsys, tmp_path, tiny_bert_dir):
    data = _reviews(tmp_path)
    assert edgept(monkeypatch, capsys, "calibration", "make", "--data", data, "-n", "32", "-o", tmp_path / "cal")[0] == 0
    assert edgept(monkeypatch, capsys, "export", tiny_bert_dir, "-o", tmp_path / "m.edgept")[0] == 0
    code, out, err = edgept(monkeypatch, capsys, "quantize", tmp_path / "m.edgept", "-o", tmp_path / "q.edgept",
                            "--mode", "int8-static", "--smooth", "0.5", "--max-drop", "0", "--data", data,
                            "--calibration", tmp_path / "cal")
    assert code == 0, err
    assert "dev accuracy on" in out
    metrics = json.loads((tmp_path / "q.edgept" / "manifest.json").read_text())["passes"][-1]["metrics"]
    task, budget = metrics["task"], metrics["budget"]
    assert task["split"] == "dev" and task["examples"] == 12
    assert budget["met"] and budget["max_drop"] == 0 and budget["min_cosine"] is None
    assert task["drop_points"] <= 0 + 1e-9  # the budget held on the recorded graph
    assert abs(task["fp32_accuracy"] - budget["fp32_accuracy"]) < 1e-9
    assert all("accuracy" in t for t in budget["trials"] if t["met"])  # accuracy decided every pass


def test_max_drop_without_data_or_on_an_encoder_is_one_line(monkeypatch, capsys, tmp_path, tiny_bert_dir):
    data = _reviews(tmp_path)
    edgept(monkeypatch, capsys, "calibration", "make", "--data", data, "-n", "16", "-o", tmp_path / "cal")
    edgept(monkeypatch, capsys, "export", tiny_bert_dir, "-o", tmp_path / "m.edgept")
    code, _, err = edgept(monkeypatch, capsys, "quantize", tmp_path / "m.edgept", "-o", tmp_path / "q",
                          "--mode", "int8-static", "--max-drop", "0.5", "--calibration", tmp_path / "cal")
    assert_one_line_error(code, err, "--max-drop needs --data")
    code, _, err = edgept(monkeypatch, capsys, "quantize", tmp_path / "m.edgept", "-o", tmp_path / "q",
                          "--mode", "fp16", "--max-drop", "0.5", "--calibration", tmp_path / "cal")
    assert_one_line_error(code, err, "--max-drop applies to --mode auto or int8-static; drop it or change --mode")


def test_smooth_auto_picks_the_grid_alpha_closest_to_fp32_on_the_dev_split(monkeypatch, capsys, tmp_path, tiny_bert_dir):
    from edgept.quantize.config import SMOOTH_GRID

    data = _reviews(tmp_path)
    edgept(monkeypatch, capsys, "calibration", "make", "--data", data, "-n", "32", "-o", tmp_path / "cal")
    edgept(monkeypatch, capsys, "export", tiny_bert_dir, "-o", tmp_path / "m.edgept")
    runs = {}
    for rounding in ("--gptq", "--round-to-nearest"):
        code, out, err = edgept(monkeypatch, capsys, "quantize", tmp_path / "m.edgept", "-o", tmp_path / f"q{rounding}.edgept",
                                "--mode", "int8-static", "--smooth", "auto", "--data", data, "--calibration", tmp_path / "cal",
                                rounding)  # fmt: skip
        assert code == 0, err
        runs[rounding] = out, json.loads((tmp_path / f"q{rounding}.edgept" / "manifest.json").read_text())["passes"][-1]["metrics"]
    out, metrics = runs["--gptq"]
    search = metrics["smoothing"]["search"]
    scores = {s["alpha"]: s["cosine"] for s in search["scores"]}
    assert tuple(scores) == SMOOTH_GRID and search["judge"].endswith("dev split")
    assert metrics["smoothing"]["alpha"] == max(scores, key=scores.get)
    assert f"smoothing alpha {metrics['smoothing']['alpha']:g}, chosen by output cosine on the" in out
    assert metrics["gptq"] and "GPTQ rounding:" in out
    out, metrics = runs["--round-to-nearest"]
    assert "gptq" not in metrics and "GPTQ" not in out


def test_a_bad_smooth_value_is_one_line(monkeypatch, capsys, tmp_path, tiny_bert_dir):
    edgept(monkeypatch, capsys, "export", tiny_bert_dir, "-o", tmp_path / "m.edgept")
    for bad, match in (("strong", "or auto, got 'strong'"), ("1.5", "got 1.5")):
        code, _, err = edgept(monkeypatch, capsys, "quantize", tmp_path / "m.edgept", "-o", tmp_path / "q", "--mode", "int8-static",
                              "--smooth", bad)  # fmt: skip
        assert_one_line_error(code, err, match)
