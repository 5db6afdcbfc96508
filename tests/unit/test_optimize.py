"""`edgept.optimize` on a tiny teacher: the plan, a choice made on dev only within the budget, the
time budget, and a killed run that continues to the same result."""

from __future__ import annotations

import json

import pytest
import torch

from edgept.errors import ConfigError
from edgept.optimize import OptimizeConfig, optimize, parse_duration
from edgept.optimize.optimize import _report
from edgept.optimize.report import pareto
from tests.cli.test_distill_cli import write_reviews

SMALL = dict(target="cpu-x86_64", schedule="short", depths=(1,), embedding_sizes=(), ffn_keeps=(), heads_keeps=())


@pytest.fixture
def teacher(tmp_path, tiny_bert_config):
    from edgept.models import build_model
    from edgept.models.hf import save_model
    from tests.conftest import tiny_vocab

    (tmp_path / "tok").mkdir()
    (tmp_path / "tok" / "vocab.txt").write_text("\n".join(tiny_vocab()) + "\n")
    torch.manual_seed(0)
    return save_model(build_model(tiny_bert_config(num_layers=3)), tmp_path / "teacher", source=tmp_path / "tok")


def row(name, dev, test, b1, precision="fp32"):
    model = "the teacher" if name.startswith("teacher-") else name
    return {"candidate": name, "model": model, "precision": precision, "path": name, "params": 1, "bytes": 1,
            "dev": dev, "test": test}


def timings(**p50):
    return [{"path": k, "batch": b, "seq": 32, "p50_ms": v * b} for k, v in p50.items() for b in (1, 8)]


def test_the_choice_is_the_fastest_within_the_dev_budget_and_never_looks_at_test():
    rows = [row("teacher-fp32", 0.90, 0.90, 10), row("fast-bad-dev", 0.85, 0.95, 1), row("ok", 0.895, 0.70, 4),
            row("slower-ok", 0.90, 0.99, 6)]
    base = {"path": "base", "bytes": 1}
    config = OptimizeConfig(target="cpu", max_drop=1.0)
    splits = type("S", (), {"describe": lambda self: {}})()
    report = _report(rows, base, timings(**{"teacher-fp32": 10, "fast-bad-dev": 1, "ok": 4, "slower-ok": 6, "base": 8}),
                     config, "cpu-x86_64", splits)
    # fast-bad-dev is 5 dev points down (its test is the best: unseen); ok is 0.5 down and faster than slower-ok.
    assert report["chosen"] == "ok"
    by = {r["candidate"]: r for r in report["candidates"]}
    assert by["ok"]["x_baseline_b1"] == pytest.approx(2.0) and by["fast-bad-dev"]["drop_points"] == pytest.approx(5.0)
    tight = _report(rows, base, timings(**{"teacher-fp32": 10, "fast-bad-dev": 1, "ok": 4, "slower-ok": 6, "base": 8}),
                    config.replace(max_drop=0.0), "cpu-x86_64", splits)
    assert tight["chosen"] == "slower-ok"  # ties the teacher on dev, faster than it


def test_pareto_front_keeps_exactly_the_undominated():
    rows = [{"candidate": n, "dev": d, "cost": c} for n, d, c in [("a", 0.9, 10), ("b", 0.8, 5), ("c", 0.7, 6), ("d", 0.9, 12)]]
    assert pareto(rows, "cost") == ["a", "b"]


def test_config_and_duration_errors_are_one_line():
    assert parse_duration("1h30m") == 5400 and parse_duration("90m") == 5400 and parse_duration("45") == 45
    for bad in ("soon", "", "3x"):
        with pytest.raises(ConfigError, match="not a duration"):
            parse_duration(bad)
    with pytest.raises(ConfigError, match="max-drop"):
        OptimizeConfig(target="cpu", max_drop=-1)
    with pytest.raises(ConfigError, match="schedule"):
        OptimizeConfig(target="cpu", schedule="fastest")


def test_a_small_train_split_gets_the_teachers_minimum_steps_and_a_large_one_its_epochs():
    config = OptimizeConfig(target="cpu")
    assert config.teacher_epochs(2880) * 2880 / config.batch_size == pytest.approx(500)  # 90 steps an epoch
    assert config.teacher_epochs(8530) == 2.0  # rt-polarity: 533 steps in 2 epochs
    assert OptimizeConfig(target="cpu", schedule="short").teacher_epochs(100) == 0.25


def test_dry_run_plans_without_training(teacher, tmp_path):
    plan = optimize(teacher, str(write_reviews(tmp_path)), tmp_path / "run", OptimizeConfig(**SMALL), dry_run=True)
    assert [p["candidate"] for p in plan] == ["teacher-int8", "teacher-fp32", "s1-int8", "s1-fp32"]
    assert plan[0]["train_seconds_estimate"] == 0.0  # the teacher already classifies the data's labels
    assert plan[2]["train_seconds_estimate"] > 0 and not (tmp_path / "run").exists()


def test_a_headless_encoder_is_planned_with_its_fine_tuning(tmp_path, tiny_bert_config):
    from edgept.models import build_model
    from edgept.models.hf import save_model
    from tests.conftest import tiny_vocab

    (tmp_path / "tok").mkdir()
    (tmp_path / "tok" / "vocab.txt").write_text("\n".join(tiny_vocab()) + "\n")
    encoder = build_model(tiny_bert_config(task="feature-extraction", labels=()))
    encoder = save_model(encoder, tmp_path / "encoder", source=tmp_path / "tok")
    plan = optimize(encoder, str(write_reviews(tmp_path)), tmp_path / "run", OptimizeConfig(**SMALL), dry_run=True)
    assert plan[0]["candidate"] == "teacher-int8" and plan[0]["train_seconds_estimate"] > 0


def test_a_run_writes_the_best_bundle_and_its_report_and_a_killed_run_continues_to_the_same(teacher, tmp_path, monkeypatch):
    import importlib

    from edgept.runtime import load

    impl = importlib.import_module("edgept.optimize.optimize")  # the module (the package re-exports the verb)

    data = str(write_reviews(tmp_path))
    whole = optimize(teacher, data, tmp_path / "whole", OptimizeConfig(**SMALL))
    report = json.loads((tmp_path / "whole" / "report.json").read_text())
    assert report["chosen"] == whole.report["chosen"] and (tmp_path / "whole" / "pareto.png").stat().st_size > 0
    assert "| candidate |" in (tmp_path / "whole" / "report.md").read_text()
    chosen = next(r for r in report["candidates"] if r["candidate"] == report["chosen"])
    assert chosen["drop_points"] <= 1.0 and {r["candidate"] for r in report["candidates"]} == {
        "teacher-int8", "teacher-fp32", "s1-int8", "s1-fp32"}
    assert load(whole.best).predict(["the movie was great fun"])[0].label in ("negative", "positive")

    real, calls = impl._bundle, []

    def dies_on_the_third(*args, **kwargs):
        calls.append(args[1].name)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(impl, "_bundle", dies_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        optimize(teacher, data, tmp_path / "killed", OptimizeConfig(**SMALL))
    distills = []
    real_student = impl._student
    monkeypatch.setattr(impl, "_bundle", lambda *a, **k: calls.append(a[1].name) or real(*a, **k))
    monkeypatch.setattr(impl, "_student", lambda *a, **k: distills.append(a[1]) or real_student(*a, **k))
    resumed = optimize(teacher, data, tmp_path / "killed", OptimizeConfig(**SMALL)).report
    assert calls == ["teacher-int8", "teacher-fp32", "s1-int8", "s1-int8", "s1-fp32"]  # only the unfinished re-ran
    assert distills == []  # the student finished before the kill
    keep = ("candidate", "precision", "params", "bytes", "dev", "test")
    assert [{k: r[k] for k in keep} for r in resumed["candidates"]] == [{k: r[k] for k in keep} for r in report["candidates"]]
    with pytest.raises(ConfigError, match="other settings"):
        optimize(teacher, data, tmp_path / "killed", OptimizeConfig(**{**SMALL, "max_drop": 2.0}))


def test_a_time_budget_skips_what_does_not_fit_and_still_chooses(teacher, tmp_path):
    config = OptimizeConfig(**{**SMALL, "ffn_keeps": (0.5,)}, time_budget=1e-3)
    result = optimize(teacher, str(write_reviews(tmp_path)), tmp_path / "run", config)
    by = {r["candidate"]: r for r in result.report["candidates"]}
    for name in ("s1-int8", "teacher-ffn50-int8", "s1-ffn50-fp32"):  # the last: its base s1 was skipped
        assert by[name] == {"candidate": name, "skipped": "time budget"}
    assert "skipped" not in by["teacher-fp32"] and result.report["chosen"].startswith("teacher-")


def test_estimates_are_paced_by_what_finished_models_of_the_same_kind_took():
    from edgept.optimize.plan import ModelRecipe, paced_estimate

    pruned, student = ModelRecipe("teacher-ffn25", ffn_keep=0.25, base="teacher"), ModelRecipe("s2", 2)
    finished = [(ModelRecipe("teacher-ffn50", ffn_keep=0.5, base="teacher"), 2000.0, 1000.0)]
    assert paced_estimate(pruned, 3000.0, finished) == pytest.approx(1500.0)  # took half its estimate
    assert paced_estimate(student, 3000.0, finished) == 3000.0  # no distilled student finished yet
    assert paced_estimate(student, 3000.0, []) == 3000.0


def test_a_pruned_teacher_is_planned_after_it_and_built_smaller(teacher, tmp_path):
    from edgept.models.hf import read_config

    config = OptimizeConfig(**{**SMALL, "depths": (), "ffn_keeps": (0.5,), "heads_keeps": (0.5,), "heads_ffn_keep": 0.5})
    data = str(write_reviews(tmp_path))
    plan = optimize(teacher, data, tmp_path / "run", config, dry_run=True)
    assert [p["candidate"] for p in plan] == ["teacher-int8", "teacher-fp32", "teacher-ffn50-int8", "teacher-ffn50-fp32",
                                              "teacher-ffn50-h50-int8", "teacher-ffn50-h50-fp32"]
    assert plan[2]["train_seconds_estimate"] > 0 and "FFNs pruned to 50% and recovered" in plan[2]["model"]
    assert "FFNs pruned to 50% and heads pruned to 50% and recovered" in plan[4]["model"]
    by = {r["candidate"]: r for r in optimize(teacher, data, tmp_path / "run", config).report["candidates"]}
    assert by["teacher-ffn50-h50-fp32"]["params"] < by["teacher-ffn50-fp32"]["params"] < by["teacher-fp32"]["params"]
    models = tmp_path / "run" / "work" / "models"
    assert read_config(models / "teacher-ffn50" / "model").intermediate_size == read_config(teacher).intermediate_size // 2
    both = read_config(models / "teacher-ffn50-h50" / "model")
    assert (both.intermediate_size, both.num_heads) == (read_config(teacher).intermediate_size // 2, read_config(teacher).num_heads // 2)


def test_heads_variants_prune_the_ffns_to_their_own_share_or_the_heads_alone():
    from edgept.optimize.plan import estimate_seconds, recipes

    both = OptimizeConfig(**{**SMALL, "ffn_keeps": (0.5, 0.25), "heads_keeps": (0.5,)})
    assert [r.name for r in recipes(both, 2)] == ["teacher", "teacher-ffn50", "teacher-ffn25", "teacher-ffn12-h50",
                                                 "s1", "s1-ffn50", "s1-ffn25", "s1-ffn12-h50"]
    alone = recipes(OptimizeConfig(**{**SMALL, "heads_keeps": (0.5,), "heads_ffn_keep": 1.0}), 2)[1]
    assert (alone.name, alone.ffn_keep, alone.heads_keep, alone.base) == ("teacher-h50", None, 0.5, "teacher")
    with pytest.raises(ConfigError, match="--prune-heads takes percents of attention heads"):
        OptimizeConfig(**{**SMALL, "heads_keeps": (1.0,)})
    with pytest.raises(ConfigError, match="--prune-heads-ffn"):
        OptimizeConfig(**{**SMALL, "heads_ffn_keep": 0.0})
    # The default plan has the measured edge cut; it recovers longer, on augmented copies.
    default = OptimizeConfig(target="cpu")
    ffn, deep = (r for r in recipes(default, 6) if r.name in ("teacher-ffn25", "teacher-ffn12-h25"))
    assert deep.describe() == "the teacher, FFNs pruned to 12.5% and heads pruned to 25% and recovered"
    cost = {r.name: estimate_seconds(r, 6, default, 8000, 1.0, False) for r in (ffn, deep)}
    assert cost["teacher-ffn12-h25"] > 5 * cost["teacher-ffn25"]


def test_a_heads_pruned_candidate_recovers_longer_on_augmented_copies(monkeypatch, tmp_path):
    import importlib

    import edgept.compress.recover as recover
    from edgept.optimize.plan import ModelRecipe

    impl = importlib.import_module("edgept.optimize.optimize")
    seen = {}
    monkeypatch.setattr(recover, "prune_and_recover",
                        lambda base, out, prune, train, **kw: seen.update({prune.heads_keep: (train.max_steps, kw["augment"])}))
    config = OptimizeConfig(target="cpu")
    for recipe in (ModelRecipe("teacher-ffn25", ffn_keep=0.25, base="teacher"),
                   ModelRecipe("teacher-ffn12-h25", ffn_keep=0.125, heads_keep=0.25, base="teacher")):
        impl._pruned(tmp_path, recipe, None, tmp_path, config)
    assert seen[1.0] == (400, None)
    steps, augment = seen[0.25]
    assert (steps, augment.copies, augment.seed) == (2000, 20, 0)
