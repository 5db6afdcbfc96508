"""edgept.bench end to end on a real exported tiny bundle, with the PyTorch eager baseline."""

from __future__ import annotations

import json

import pytest

from edgept.bench import BenchConfig, bench, plot, render_table


@pytest.fixture
def tiny_bundle(tmp_path, tiny_bert_dir):
    from edgept.export import export

    return export(tiny_bert_dir, tmp_path / "tiny.edgept").path


def test_bench_bundle_against_torch_baseline(tiny_bundle, tmp_path):
    config = BenchConfig(batches=(1, 2), seqs=(8, 16), warmup=2, runs=6, rounds=2, threads=1)
    report = bench([tiny_bundle], baseline="torch", config=config, memory=True, progress=False)

    assert [v["name"] for v in report.variants] == ["torch eager", "tiny"]
    assert report.variants[0]["kind"] == "torch" and report.variants[1]["kind"] == "ort"
    assert report.variants[1]["precision"] == "fp32" and report.variants[1]["file_bytes"] > 0
    assert len(report.results) == 2 * 4
    for r in report.results:
        assert 0 < r.p50_ms <= r.p90_ms <= r.p99_ms
        if r.variant == "torch eager":
            assert r.speedup == pytest.approx(1.0)
    # Memory: once per variant, at the largest shape (batch 2, seq 16).
    peaks = {(r.variant, r.batch, r.seq): r.peak_mb for r in report.results}
    assert peaks[("torch eager", 2, 16)] > 0 and peaks[("tiny", 2, 16)] > 0
    assert peaks[("tiny", 1, 8)] is None
    assert "torch" in report.method["versions"] and report.method["threads"] == 1

    data = json.loads(report.to_json(tmp_path / "bench.json").read_text())
    assert data["method"]["memory"].startswith("fresh process per variant")
    assert render_table(report).row_count == 8
    pytest.importorskip("matplotlib")
    assert plot(report, tmp_path / "bench.png").stat().st_size > 10_000


def test_bench_image_bundle_ignores_seqs(tmp_path, tiny_vit_config):
    import torch

    from edgept.export import export
    from edgept.models import build_model

    torch.manual_seed(0)
    bundle = export(build_model(tiny_vit_config()), tmp_path / "vit.edgept").path
    config = BenchConfig(batches=(1, 3), seqs=(8, 16), warmup=1, runs=4, rounds=2, threads=1)
    report = bench([bundle, bundle], config=config, memory=False, progress=False)

    # One row per batch (no sequence axis), the same bundle twice told apart by name.
    assert [(r.variant, r.batch, r.seq) for r in report.results] == [
        ("vit", 1, None),
        ("vit#2", 1, None),
        ("vit", 3, None),
        ("vit#2", 3, None),
    ]
    assert report.method["memory"] is None
