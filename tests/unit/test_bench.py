"""edgept.bench: statistics, interleaving, feeds, report round-trip, memory probe, plot. Fast and offline."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest

from edgept.bench import BenchConfig, BenchReport, Shape, Variant, VariantSpec, bench, measure, render_table
from edgept.bench.harness import latency_stats, round_plan, summarize
from edgept.bench.memprobe import probe_memory
from edgept.bench.variants import onnx_variant
from edgept.errors import ConfigError, FeedError
from edgept.runtime.feeds import make_feeds

Spec = namedtuple("Spec", "name dtype dims")
TEXT = (
    Spec("input_ids", "int64", ["batch", "sequence"]),
    Spec("attention_mask", "int64", ["batch", "sequence"]),
    Spec("token_type_ids", "int64", ["batch", "sequence"]),
)


def tiny_onnx(path: Path, vocab: int = 4000, hidden: int = 64) -> Path:
    """input_ids [batch, sequence] -> Gather from a vocab x hidden table -> MatMul -> mean over sequence."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    table = numpy_helper.from_array(rng.standard_normal((vocab, hidden)).astype(np.float32), "table")
    weight = numpy_helper.from_array(rng.standard_normal((hidden, hidden)).astype(np.float32), "weight")
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["table", "input_ids"], ["emb"]),
            helper.make_node("MatMul", ["emb", "weight"], ["hid"]),
            helper.make_node("ReduceMean", ["hid"], ["pooled"], axes=[1], keepdims=0),
        ],
        "tiny",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"])],
        [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["batch", hidden])],
        [table, weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def fixed_variant(name: str, log: list[str] | None = None, work: int = 0) -> Variant:
    """A variant that records its calls and optionally does `work` units of busy CPU (no sleep).

    Element-wise numpy runs on one thread, so unlike a BLAS matmul its cost does not swing with how
    many cores a loaded machine happens to leave free.
    """
    x = np.random.default_rng(0).random(20_000)
    out = np.empty_like(x)

    def factory(feeds):
        def call():
            if log is not None:
                log.append(name)
            for _ in range(work):
                np.sqrt(x, out=out)

        return call

    return Variant(name=name, factory=factory)


# --- statistics on given arrays -------------------------------------------------------------


def test_latency_stats_match_hand_computed_percentiles():
    times_ns = [int(ms * 1e6) for ms in (7, 1, 10, 3, 5, 2, 9, 4, 8, 6)]  # 1..10 ms, shuffled
    s = latency_stats(times_ns)
    # Linear interpolation on sorted 1..10: position q*(n-1) -> p50 at 4.5 -> 5.5, p90 at 8.1 -> 9.1, p99 at 8.91 -> 9.91.
    assert s["p50_ms"] == pytest.approx(5.5)
    assert s["p90_ms"] == pytest.approx(9.1)
    assert s["p99_ms"] == pytest.approx(9.91)
    assert s["mean_ms"] == pytest.approx(5.5)
    assert s["std_ms"] == pytest.approx((82.5 / 9) ** 0.5)  # sum of squared deviations 82.5, ddof=1


def test_summarize_throughput_and_speedup_relative_to_first():
    timings = {"ref": np.full(20, 10_000_000), "fast": np.full(20, 4_000_000)}  # 10 ms and 4 ms
    ref, fast = summarize(timings, Shape(8, 128))
    assert (ref.speedup, fast.speedup) == (pytest.approx(1.0), pytest.approx(2.5))
    assert ref.throughput == pytest.approx(800.0)  # 8 samples / 10 ms
    assert fast.throughput == pytest.approx(2000.0)
    assert (fast.batch, fast.seq, fast.runs) == (8, 128, 20)


def test_latency_stats_rejects_empty():
    with pytest.raises(ValueError):
        latency_stats([])


# --- interleaving ---------------------------------------------------------------------------


def test_rounds_rotate_the_variant_order():
    log: list[str] = []
    variants = [fixed_variant(n, log) for n in "abc"]
    measure(variants, [Shape(1, 8)], BenchConfig(warmup=0, runs=6, rounds=3))
    assert "".join(log) == "aabbcc" + "bbccaa" + "ccaabb"


def test_runs_not_divisible_by_rounds_still_give_exactly_runs_calls():
    plan = round_plan(2, runs=7, rounds=3)
    assert [n for _, n in plan] == [3, 2, 2]
    assert [order for order, _ in plan] == [[0, 1], [1, 0], [0, 1]]
    log: list[str] = []
    results = measure(
        [fixed_variant("a", log), fixed_variant("b", log)],
        [Shape(2, 4)],
        BenchConfig(warmup=2, runs=7, rounds=3),
    )
    assert log.count("a") == 2 + 7 and log.count("b") == 2 + 7
    assert [r.runs for r in results] == [7, 7]


def test_double_work_variant_is_measured_slower():
    # Logic check, not a timing claim: the reference does twice the work, so the other must come out faster.
    variants = [fixed_variant("double", work=20), fixed_variant("single", work=10)]
    double, single = measure(variants, [Shape(1, 8)], BenchConfig(warmup=3, runs=60, rounds=20))
    assert double.speedup == pytest.approx(1.0)
    assert single.speedup > 1.3
    assert single.throughput > double.throughput


def test_measure_refuses_duplicate_names():
    with pytest.raises(ConfigError, match="unique"):
        measure([fixed_variant("a"), fixed_variant("a")], [Shape(1, 8)], BenchConfig(runs=2, rounds=1))


# --- config ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"batches": ()}, "batches"),
        ({"seqs": (128, 0)}, "seqs"),
        ({"runs": 0}, "runs"),
        ({"warmup": -1}, "warmup"),
        ({"rounds": 20, "runs": 10}, "rounds"),
        ({"threads": 0}, "threads"),
        ({"batches": (1.5,)}, "batches"),
        ({"threads": True}, "threads"),
    ],
)
def test_config_validation(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        BenchConfig(**kwargs)


def test_config_normalises_and_round_trips():
    config = BenchConfig(batches=[1, 4], seqs=32, threads=2)
    assert config.batches == (1, 4) and config.seqs == (32,)
    assert BenchConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(TypeError):
        BenchConfig((1,))  # keyword-only


# --- feeds ----------------------------------------------------------------------------------


def test_text_feeds_shapes_and_values():
    feeds = make_feeds(TEXT, {"vocab_size": 50, "max_sequence": 64}, 3, 16, np.random.default_rng(0))
    ids = feeds["input_ids"]
    assert ids.shape == (3, 16) and ids.dtype == np.int64
    assert ids.min() >= 1 and ids.max() < 50
    assert (feeds["attention_mask"] == 1).all() and (feeds["token_type_ids"] == 0).all()
    again = make_feeds(TEXT, {"vocab_size": 50}, 3, 16, np.random.default_rng(0))
    assert np.array_equal(again["input_ids"], ids)  # seeded


def test_image_feeds_take_size_from_limits():
    spec = [Spec("pixel_values", "float32", ["batch", 3, "height", "width"])]
    feeds = make_feeds(spec, {"image_size": [32, 48], "channels": 3}, 2, None, np.random.default_rng(0))
    assert feeds["pixel_values"].shape == (2, 3, 32, 48) and feeds["pixel_values"].dtype == np.float32


def test_feed_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(ConfigError, match="max_sequence"):
        make_feeds(TEXT, {"max_sequence": 64}, 1, 128, rng)
    with pytest.raises(FeedError, match="'weird'"):
        make_feeds([Spec("weird", "int64", ["batch", "sequence"])], {}, 1, 8, rng)
    with pytest.raises(ConfigError, match="fixed to batch 1"):
        make_feeds([Spec("input_ids", "int64", [1, "sequence"])], {}, 8, 8, rng)


# --- ORT end to end, report, table, plot, memory --------------------------------------------


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> BenchReport:
    folder = tmp_path_factory.mktemp("bench")
    big, small = tiny_onnx(folder / "big.onnx", hidden=256), tiny_onnx(folder / "small.onnx", hidden=32)
    config = BenchConfig(batches=(1, 4), seqs=(16,), warmup=2, runs=12, rounds=3, threads=1)
    return bench([big, small], config=config, memory=True, progress=False)


def test_bench_on_onnx_files(report):
    assert [v["name"] for v in report.variants] == ["big", "small"]
    assert [(r.variant, r.batch, r.seq) for r in report.results] == [
        ("big", 1, 16),
        ("small", 1, 16),
        ("big", 4, 16),
        ("small", 4, 16),
    ]
    assert all(r.p50_ms > 0 and r.p50_ms <= r.p90_ms <= r.p99_ms for r in report.results)
    # Memory is measured once per variant, at the largest shape, and only shown there.
    peaks = {(r.variant, r.batch): r.peak_mb for r in report.results}
    assert peaks[("big", 1)] is None and peaks[("big", 4)] > 0
    assert report.method["threads"] == 1 and report.method["memory"]


def test_json_round_trip_keeps_method(report, tmp_path):
    path = report.to_json(tmp_path / "bench.json")
    data = json.loads(path.read_text())
    for key in ("warmup", "runs", "rounds", "threads", "timed", "versions", "cpu"):
        assert key in data["method"]
    assert data["method"]["timed"].startswith("session.run on pre-built numpy feeds")
    assert "onnxruntime" in data["method"]["versions"]
    assert BenchReport.from_json(path) == report


def test_render_table_shows_speedup_and_method(report):
    from rich.console import Console

    console = Console(record=True, width=220)
    console.print(render_table(report))
    text = console.export_text()
    small = next(r for r in report.results if r.variant == "small" and r.batch == 4)
    assert f"{small.speedup:.2f}×" in text and "1.00×" in text
    assert "interleaved rounds" in text and "1 threads" in text


def test_memprobe_reports_positive_peak(tmp_path):
    model = tiny_onnx(tmp_path / "m.onnx", vocab=20000, hidden=64)  # a 5 MB table the probe must see
    variant = onnx_variant(model, threads=1)
    assert variant.spec == VariantSpec(kind="onnx", path=str(model), threads=1, name="m")
    feeds = {"input_ids": np.ones((2, 16), dtype=np.int64)}
    peak = probe_memory(variant.spec, feeds, calls=2)
    assert 4 < peak < 500


def test_memprobe_failure_is_reported(tmp_path):
    spec = VariantSpec(kind="onnx", path=str(tmp_path / "missing.onnx"), threads=1, name="gone")
    with pytest.raises(RuntimeError, match="memory probe for 'gone' failed"):
        probe_memory(spec, {"input_ids": np.ones((1, 4), dtype=np.int64)})


def test_plot_writes_png(report, tmp_path):
    pytest.importorskip("matplotlib")
    from edgept.bench import plot

    path = plot(report, tmp_path / "bench.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_bench_argument_errors(tmp_path):
    with pytest.raises(ConfigError, match="baseline"):
        bench([tiny_onnx(tmp_path / "a.onnx")], baseline="tensorflow")
    with pytest.raises(ConfigError, match="needs a bundle"):
        bench([tiny_onnx(tmp_path / "b.onnx")], baseline="torch")


def test_import_does_not_pull_in_torch():
    code = "import sys, edgept.bench; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.stdout.strip() == "False"


def test_torch_variant_runs_eval_inference_mode_with_threads(monkeypatch):
    torch = pytest.importorskip("torch")
    import edgept.models
    from edgept.bench import build_variant

    seen = {}

    class Probe(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(4, 2)

        def forward(self, input_ids, attention_mask=None, token_type_ids=None):
            seen.update(
                training=self.training,
                inference=torch.is_inference_mode_enabled(),
                threads=torch.get_num_threads(),
                keys=(attention_mask is not None, token_type_ids is not None),
            )
            return self.linear(input_ids.float())

    monkeypatch.setattr(edgept.models, "load_model", lambda path: Probe().train(), raising=False)
    before = torch.get_num_threads()
    try:
        variant = build_variant(VariantSpec(kind="torch", path="ckpt", threads=1, name="torch eager"))
        feeds = make_feeds(TEXT, {"vocab_size": 10}, 2, 4, np.random.default_rng(0))
        out = variant.factory(feeds)()
    finally:
        torch.set_num_threads(before)
    assert seen == {"training": False, "inference": True, "threads": 1, "keys": (True, True)}
    assert out.shape == (2, 2) and variant.inputs == () and variant.precision == "fp32"
