"""`edgept calibration make` and `edgept quantize` end to end on a tiny checkpoint."""

from __future__ import annotations

import json

from edgept.quantize import Int8Static
from tests.cli.test_cli import assert_one_line_error, edgept


def test_calibration_make_then_quantize(monkeypatch, capsys, tmp_path, tiny_bert_dir):
    data = tmp_path / "reviews.jsonl"
    rows = [{"text": f"the film was {w} and {v}", "label": ["negative", "positive"][i % 2]}
            for i, (w, v) in enumerate(zip("good bad boring fun dull great".split() * 8, "not very".split() * 24, strict=True))]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, out, err = edgept(monkeypatch, capsys, "calibration", "make", "--data", data, "-n", "16", "-o", tmp_path / "cal")
    assert code == 0, err
    card = json.loads((tmp_path / "cal" / "card.json").read_text())
    assert card["count"] == 16 and card["split"]["part"] == "train" and "texts.jsonl" in card["sha256"]
    code, _, err = edgept(monkeypatch, capsys, "export", tiny_bert_dir, "-o", tmp_path / "m.edgept")
    assert code == 0, err
    code, out, err = edgept(monkeypatch, capsys, "quantize", tmp_path / "m.edgept", "-o", tmp_path / "q.edgept",
                            "--mode", "int8-static", "--method", "entropy", "--calibration", tmp_path / "cal")
    assert code == 0, err
    assert "cosine" in out and "per example: mean" in " ".join(out.split())
    assert "bias correction:" in out
    manifest = json.loads((tmp_path / "q.edgept" / "manifest.json").read_text())
    assert manifest["passes"][-1]["config"]["method"] == "entropy"
    assert manifest["passes"][-1]["config"]["bias_correction"] is True and manifest["passes"][-1]["metrics"]["bias_correction"]
    code, out, err = edgept(monkeypatch, capsys, "quantize", tmp_path / "m.edgept", "-o", tmp_path / "q2.edgept", "--mode",
                            "int8-static", "--calibration", tmp_path / "cal", "--per-token", "--per-token-scope", "all",
                            "--no-bias-correction")  # fmt: skip
    assert code == 0, err
    assert "bias correction:" not in out
    passed = json.loads((tmp_path / "q2.edgept" / "manifest.json").read_text())["passes"][-1]
    assert passed["config"]["per_token_scope"] == "all" and "bias_correction" not in passed["metrics"]
    # The options given set their fields; every other field keeps the config class's default.
    expected = Int8Static(per_token=True, per_token_scope="all", bias_correction=False).to_dict()
    assert {k: v for k, v in passed["config"].items() if k != "calibration"} == json.loads(json.dumps(expected))


def test_quantize_cli_errors_are_one_line(monkeypatch, capsys, tmp_path, tiny_bert_dir):
    code, _, err = edgept(monkeypatch, capsys, "export", tiny_bert_dir, "-o", tmp_path / "m.edgept")
    code, _, err = edgept(monkeypatch, capsys, "quantize", tmp_path / "m.edgept", "-o", tmp_path / "q", "--mode", "int4")
    assert_one_line_error(code, err, "known: auto, fp16, int8-dynamic, int8-qdq, int8-static")
    code, _, err = edgept(monkeypatch, capsys, "quantize", tmp_path / "m.edgept", "-o", tmp_path / "q", "--per-token",
                          "--per-token-scope", "attention")
    assert_one_line_error(code, err, "ffn-down, all")
    code, _, err = edgept(monkeypatch, capsys, "quantize", tmp_path / "m.edgept", "-o", tmp_path / "q",
                          "--calibration", tmp_path / "nope")
    assert_one_line_error(code, err, "not a directory")
