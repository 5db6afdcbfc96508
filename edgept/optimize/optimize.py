"""`optimize(model, data, dest, config)`: the fastest bundle within an accuracy budget, with its report.

    teacher (fine-tuned on data when it has no head for its labels)
      -> students distilled from it (each depth, plain and with factorized embeddings)
      -> each model compiled for the target at each precision it allows
      -> accuracy of every bundle on dev and test (the runtime, as an app would see it)
      -> one interleaved bench of every bundle + ORT's own dynamic INT8 of the teacher
      -> the fastest bundle (p50, batch 1) whose dev accuracy is within max_drop of the teacher's

Every step's result is kept in DIR/state.json as it finishes (and its files under DIR/work), so a
killed run continues where it stopped; the steps are seeded, and the bench, once done, is reused,
so the continued run reaches the same choice. Test accuracy is reported, never used to choose.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgept.bundle import Bundle, BundleWriter
from edgept.data import DataConfig
from edgept.errors import ConfigError
from edgept.fileio import atomic_write_text
from edgept.optimize.config import OptimizeConfig
from edgept.optimize.plan import (
    Candidate,
    ModelRecipe,
    candidates,
    estimate_seconds,
    paced_estimate,
    recipes,
    teacher_step_seconds,
)

STATE = "state.json"
BEST = "best.edgept"
BASELINE = "ort-dynamic-int8-teacher"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class OptimizeResult:
    """What `optimize` chose and measured: `report` is DIR/report.json's content."""

    best: Bundle
    report: dict[str, Any]


class _State:
    """DIR/state.json: one entry per finished step, written atomically after each."""

    def __init__(self, dest: Path, config: dict[str, Any]):
        self.path = dest / STATE
        config = json.loads(json.dumps(config))  # as it reads back (tuples become lists)
        self.data = {"config": config, "steps": {}}
        if self.path.exists():
            saved = json.loads(self.path.read_text())
            if saved["config"] != config:
                raise ConfigError(
                    f"{dest} holds an optimize run with other settings; continue it with the same command, "
                    "or pass another -o"
                )
            self.data = saved
        self.started = time.perf_counter()
        self.spent_before = sum(s.get("seconds", 0.0) for s in self.data["steps"].values())

    def get(self, step: str) -> Any:
        return self.data["steps"].get(step, {}).get("result")

    def done(self, step: str, result: Any, seconds: float) -> Any:
        self.data["steps"][step] = {"result": result, "seconds": seconds}
        atomic_write_text(self.path, json.dumps(self.data, indent=2) + "\n")
        return result

    def elapsed(self) -> float:
        return self.spent_before + time.perf_counter() - self.started

    def run(self, step: str, fn: Callable[[], Any]) -> Any:
        """`fn()`'s result, from the state when the step already finished."""
        if step in self.data["steps"]:
            return self.get(step)
        start = time.perf_counter()
        result = fn()
        return self.done(step, result, time.perf_counter() - start)


def optimize(
    model: str | os.PathLike,
    data: str,
    dest: str | os.PathLike,
    config: OptimizeConfig,
    *,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> OptimizeResult | list[dict[str, Any]]:
    """Search for the fastest bundle of `model` for `config.target` whose dev accuracy on `data` is
    within `config.max_drop` points of the teacher's; write it to DEST/best.edgept with DEST/report.json,
    report.md and pareto.png. With `dry_run`, return the plan (candidates and estimated seconds) only."""
    from edgept.compile import available_precisions
    from edgept.data import load_splits
    from edgept.models.hf import read_config
    from edgept.targets import resolve_target
    from edgept.zoo import resolve

    say = progress or (lambda message: None)
    target, _ = resolve_target(config.target)
    precisions = tuple(p for p in target.build.precisions if p in available_precisions() and p != "fp16")
    source = resolve(model).resolve()
    data_config = DataConfig(source=data)  # the shared split every other command scores on
    splits = load_splits(data_config)
    mcfg = read_config(source)
    finetune_teacher = not (mcfg.task.endswith("classification") and tuple(mcfg.labels) == tuple(splits.labels))
    plan = candidates(config, mcfg.num_layers, precisions)
    step = teacher_step_seconds(source, splits, config)
    estimates = {r.name: estimate_seconds(r, mcfg.num_layers, config, len(splits.train), step, finetune_teacher)
                 for r in recipes(config, mcfg.num_layers)}
    if dry_run:
        return [{"candidate": c.name, "model": c.model.describe(), "precision": c.precision,
                 "train_seconds_estimate": estimates[c.model.name] if c.precision == precisions[0] else 0.0}
                for c in plan]

    out = Path(dest).absolute()  # the state records paths: absolute, so a run continues from any directory
    out.mkdir(parents=True, exist_ok=True)
    state = _State(out, {"model": str(source), "data": data, **config.to_dict()})
    work = out / "work"
    teacher = Path(state.run("teacher", lambda: _teacher(source, data_config, work, config, finetune_teacher, len(splits.train), say)))
    calibration = state.run("calibration", lambda: _calibration(data, work, config))
    models: dict[str, str | None] = {}
    finished: list[tuple[ModelRecipe, float, float]] = []  # (recipe, estimate, seconds taken)
    for recipe in recipes(config, mcfg.num_layers):
        if recipe.layers is None and recipe.base is None:
            models[recipe.name] = str(teacher)
            continue
        left = None if config.time_budget is None else config.time_budget - state.elapsed()
        need = paced_estimate(recipe, estimates[recipe.name], finished)
        if f"model:{recipe.name}" not in state.data["steps"] and left is not None and need > left:
            say(f"skipping {recipe.describe()}: estimated {need:.0f} s, {left:.0f} s left")
            models[recipe.name] = state.done(f"model:{recipe.name}", None, 0.0)
            continue
        if recipe.base is not None and models[recipe.base] is None:
            say(f"skipping {recipe.describe()}: its base model was skipped")
            models[recipe.name] = state.done(f"model:{recipe.name}", None, 0.0)
            continue
        say(f"making {recipe.describe()} ({state.elapsed():.0f} s spent)")
        make = _pruned if recipe.base else _student
        base = teacher if recipe.base is None else Path(models[recipe.base])
        models[recipe.name] = state.run(f"model:{recipe.name}", lambda r=recipe, m=make, b=base: m(b, r, data_config, work, config))
        finished.append((recipe, estimates[recipe.name], state.data["steps"][f"model:{recipe.name}"]["seconds"]))
    rows = []
    for cand in plan:
        if models[cand.model.name] is None:
            rows.append({"candidate": cand.name, "skipped": "time budget"})
            continue
        say(f"compiling and scoring {cand.name}")
        rows.append(state.run(f"bundle:{cand.name}", lambda c=cand: _bundle(
            Path(models[c.model.name]), c, target.name, calibration, data_config, work, config)))
    baseline = state.run("baseline", lambda: _ort_dynamic_baseline(teacher, work, config))
    built = [r for r in rows if "skipped" not in r]
    say(f"benchmarking {len(built)} bundles and the baseline in one interleaved run")
    timings = state.run("bench", lambda: _bench([baseline["path"], *(r["path"] for r in built)], target, config))
    report = _report(rows, baseline, timings, config, target.name, splits)
    chosen = next(r for r in report["candidates"] if r["candidate"] == report["chosen"])
    with BundleWriter(out / BEST, overwrite=(out / BEST).exists(), base=chosen["path"]) as w:
        w.add_pass("optimize", config.to_dict(), {"chosen": report["chosen"], "why": report["why"]})
    from edgept.optimize.report import write_report

    write_report(out, report)
    return OptimizeResult(Bundle.open(out / BEST), report)


def _teacher(
    source: Path, data: DataConfig, work: Path, config: OptimizeConfig, finetune: bool, train_examples: int, say: Progress
) -> str:
    if not finetune:
        return str(source)
    from edgept.train import TrainConfig
    from edgept.train.finetune import finetune as run

    say("fine-tuning the teacher")
    out = work / "teacher"
    train = TrainConfig(epochs=config.teacher_epochs(train_examples), lr=5e-5, batch_size=config.batch_size, seed=config.seed,
                        save_every=100)
    run(source, data, out, train, max_length=config.max_length, resume=(out / "checkpoints").exists(), progress=False)
    return str(out / "model")


def _calibration(data: str, work: Path, config: OptimizeConfig) -> str:
    """A calibration set drawn from the task's own train split (its vocabulary, its lengths)."""
    from edgept.data import load_splits
    from edgept.quantize.calibration import make_calibration

    out = work / "calibration"
    if out.exists():  # a run killed after writing it, before recording it
        shutil.rmtree(out)
    n = min(256, len(load_splits(DataConfig(source=data)).train))
    return str(make_calibration(data, out, n=n, seed=config.seed, command="edgept optimize"))


def _student(teacher: Path, recipe: ModelRecipe, data: DataConfig, work: Path, config: OptimizeConfig) -> str:
    from edgept.compress.distill import AugmentConfig, DistillConfig, StudentShape, distill
    from edgept.train import TrainConfig

    out = work / "models" / recipe.name
    student = None
    if recipe.embedding_size is not None:
        student = _factorized_student(teacher, recipe, work, config)
    copies = int(config.steps["augment_copies"])
    dcfg = DistillConfig(stage="prediction", student=StudentShape(num_layers=None if student else recipe.layers),
                         augment=AugmentConfig(copies=copies, seed=config.seed) if copies else None,
                         max_length=config.max_length)
    train = TrainConfig(max_steps=int(config.steps["distill_steps"]), lr=config.lr, batch_size=config.batch_size,
                        seed=config.seed, save_every=100)
    distill(teacher, out, dcfg, train, data=data, resume=(out / "checkpoints").exists(), progress=False, student=student)
    return str(out / "model")


def _pruned(base: Path, recipe: ModelRecipe, data: DataConfig, work: Path, config: OptimizeConfig) -> str:
    """`base` with its FFNs and heads pruned as `recipe` says, recovered by distilling from `base`
    (with heads pruned: longer, on augmented copies; SCHEDULES)."""
    from edgept.compress.distill import AugmentConfig
    from edgept.compress.prune import PruneConfig
    from edgept.compress.recover import prune_and_recover
    from edgept.train import TrainConfig

    out = work / "models" / recipe.name
    prune = PruneConfig(ffn_keep=recipe.ffn_keep or 1.0, heads_keep=recipe.heads_keep or 1.0, max_length=config.max_length,
                        seed=config.seed)
    deep = recipe.heads_keep is not None
    copies = int(config.steps["augment_copies"]) if deep else 0
    train = TrainConfig(max_steps=int(config.steps["heads_prune_steps" if deep else "prune_steps"]), lr=config.lr,
                        batch_size=config.batch_size, seed=config.seed, save_every=100)
    # resume=True also starts a fresh run when `out` holds none: a killed run continues where it stopped.
    prune_and_recover(base, out, prune, train, data=data, max_length=config.max_length, resume=True, progress=False,
                      augment=AugmentConfig(copies=copies, seed=config.seed) if copies else None)
    return str(out / "model")


def _factorized_student(teacher: Path, recipe: ModelRecipe, work: Path, config: OptimizeConfig) -> Any:
    """The student's starting point: its layers copied from the teacher (TinyBERT's map), the
    embeddings factorized to E by SVD (exact at full rank), then distilled like the others."""
    from edgept.compress.distill import StudentShape, build_student, uniform_layer_map
    from edgept.compress.factorize import FactorizeConfig, factorize
    from edgept.models.hf import load_model

    net = load_model(teacher)
    student, _ = build_student(net, StudentShape(num_layers=recipe.layers),
                               uniform_layer_map(recipe.layers, net.config.num_layers), seed=config.seed)
    factorized, _ = factorize(student, FactorizeConfig(embedding_size=recipe.embedding_size))
    return factorized.train()


def _bundle(
    model: Path, cand: Candidate, target: str, calibration: str, data: DataConfig, work: Path, config: OptimizeConfig
) -> dict[str, Any]:
    from edgept.compile import CompileConfig, compile_for_target
    from edgept.eval import evaluate
    from edgept.models import parameter_breakdown
    from edgept.models.hf import load_model

    dest = work / "bundles" / f"{cand.name}.edgept"
    bundle = compile_for_target(model, dest, CompileConfig(target=target, precision=cand.precision, measure=False,
                                                           seed=config.seed),
                                calibration=calibration, overwrite=dest.exists())
    scores = {split: evaluate(bundle.path, data, split)["accuracy"] for split in ("dev", "test")}
    return {
        "candidate": cand.name, "model": cand.model.describe(), "precision": cand.precision, "path": str(bundle.path),
        "params": parameter_breakdown(load_model(model))["total"],
        "bytes": sum(a["bytes"] for a in bundle.artifacts.values()), "dev": scores["dev"], "test": scores["test"],
    }


def _ort_dynamic_baseline(teacher: Path, work: Path, config: OptimizeConfig) -> dict[str, Any]:
    """ONNX Runtime's own `quantize_dynamic` (per channel, int8 weights) of the exported teacher: the
    baseline a user gets without edgept."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from edgept.export import ExportConfig, export

    exported = export(teacher, work / "teacher.edgept", ExportConfig(seed=config.seed),
                      overwrite=(work / "teacher.edgept").exists())
    path = work / f"{BASELINE}.onnx"
    quantize_dynamic(str(exported.model_path), str(path), per_channel=True, weight_type=QuantType.QInt8)
    return {"path": str(path), "bytes": path.stat().st_size}


def _bench(paths: list[str], target: Any, config: OptimizeConfig) -> list[dict[str, Any]]:
    from edgept.bench import BenchConfig, bench

    limit = min((Bundle.open(p).manifest["io"].get("limits") or {}).get("max_sequence") or 10**9
                for p in paths if Path(p).is_dir())
    seq = min(target.shapes.sequence[1], config.max_length, limit)
    runs = int(config.steps["bench_runs"])
    bench_config = BenchConfig(batches=(1, 8), seqs=(seq,), warmup=max(1, runs // 10), runs=runs,
                               rounds=min(10, runs), threads=target.bench.threads or None, seed=config.seed)
    report = bench(paths, config=bench_config, memory=False, progress=False)
    names = {v["name"]: v["path"] for v in report.variants}
    return [{"path": names[r.variant], "batch": r.batch, "seq": r.seq, "p50_ms": r.p50_ms} for r in report.results]


def _report(rows: list[dict], baseline: dict, timings: list[dict], config: OptimizeConfig, target: str, splits: Any) -> dict:
    """The table (every candidate, measured), the teacher's and baseline's figures, and the choice."""
    p50 = {(t["path"], t["batch"]): t["p50_ms"] for t in timings}
    # The reference: the teacher at fp32 where the target allows it, else its first precision.
    teachers = [r for r in rows if r.get("model") == ModelRecipe("teacher").describe()]
    teacher = next((r for r in teachers if r["precision"] == "fp32"), teachers[0])
    seq = timings[0]["seq"]
    table = []
    for r in rows:
        if "skipped" in r:
            table.append(r)
            continue
        b1, b8 = p50[(r["path"], 1)], p50[(r["path"], 8)]
        table.append({**r, "p50_ms_b1": b1, "p50_ms_b8": b8,
                      "x_teacher_b1": p50[(teacher["path"], 1)] / b1, "x_baseline_b1": p50[(baseline["path"], 1)] / b1,
                      "x_baseline_b8": p50[(baseline["path"], 8)] / b8,
                      "drop_points": 100 * (teacher["dev"] - r["dev"])})
    within = [r for r in table if "skipped" not in r and r["drop_points"] <= config.max_drop]
    best = min(within, key=lambda r: r["p50_ms_b1"])  # the teacher itself is always within
    return {
        "target": target, "max_drop": config.max_drop, "seq": seq, "candidates": table,
        "teacher": {"dev": teacher["dev"], "test": teacher["test"]},
        "baseline": {"name": BASELINE, **baseline, "p50_ms_b1": p50[(baseline["path"], 1)],
                     "p50_ms_b8": p50[(baseline["path"], 8)]},
        "chosen": best["candidate"],
        "why": f"fastest at batch 1 (p50 {best['p50_ms_b1']:.2f} ms) of the {len(within)} candidates within "
               f"{config.max_drop:g} dev points of the teacher ({best['drop_points']:+.2f})",
        "method": {"choice": "dev split only; test reported", "data": splits.describe(), "bench": "one interleaved "
                   "edgept.bench run of every bundle and the baseline, batch 1 and 8", "config": config.to_dict()},
    }


__all__ = ["BEST", "OptimizeResult", "optimize"]
