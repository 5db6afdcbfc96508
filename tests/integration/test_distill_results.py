"""scripts/distill_results.py end to end on a tiny teacher and student: export, bundle accuracy,
one bench run, and the table/JSON/PNG it writes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


@pytest.fixture
def results_script(monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPTS))
    import distill_report
    import distill_results

    yield distill_results, distill_report
    for name in ("distill_results", "distill_report"):
        sys.modules.pop(name, None)


def test_rows_come_from_bundles_and_one_bench_run(results_script, tmp_path, tiny_bert_dir):
    from tests.cli.test_distill_cli import write_reviews

    results, report = results_script
    data = write_reviews(tmp_path)
    student = tmp_path / "students" / "s1"
    plan = results.Plan("s1", {"num_layers": 1}, steps=(2, 3), lr=(1e-4, 5e-5), augment=2)
    assert results.distill_student(tiny_bert_dir, plan, str(data), student, seed=0) == student
    m = json.loads((student / "metrics.json").read_text())
    assert [s["steps"] for s in m["stages"]] == [3] and m["augment"]["copies"] == 2
    first = json.loads((student / "intermediate" / "metrics.json").read_text())
    assert first["stages"][0] == {**first["stages"][0], "stage": "intermediate", "steps": 2}
    rows = results.RowSet("text", str(data), tiny_bert_dir, {"s1": student})
    part = results.measure(rows, threads=1, runs=3, long_seq=48)

    teacher, row = part["rows"]
    assert [r["name"] for r in part["rows"]] == ["teacher", "s1"]
    # The deployed bundle scores what the PyTorch student scored on the same test split.
    assert row["test"]["accuracy"] == pytest.approx(m["student"]["test"]["accuracy"])
    assert row["params"]["encoder"] * 2 == pytest.approx(teacher["params"]["encoder"], rel=0.01)
    assert report.implied(teacher, row) == pytest.approx(2.0, rel=0.01)
    real = results.real_length(tiny_bert_dir, str(data))
    assert part["shapes"] == [[1, real], [1, 48]] and part["real_length"] == real < 48
    for r in part["rows"]:  # in the table's column order
        assert [[lat["batch"], lat["seq"]] for lat in r["latency"]] == part["shapes"]
        assert all(lat["p50_ms"] > 0 for lat in r["latency"])
    assert teacher["latency"][0]["speedup"] == pytest.approx(1.0)

    part["made"] = {"command": "test", "seconds": 0, "load": (0.0, 0.0, 0.0)}
    js, md, png = report.write_results({"text": part}, tmp_path / "doc" / "distill")
    text = md.read_text()
    assert "| s1 | 1x32, 4 heads, ffn 64 |" in text and "2.00×" in text and "keeps" in text
    assert json.loads(js.read_text())["parts"]["text"]["rows"][1]["name"] == "s1"
    assert png.read_bytes()[:4] == b"\x89PNG"
