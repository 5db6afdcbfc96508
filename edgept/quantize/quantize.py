"""`quantize(bundle, dest, config)`: an fp32 bundle in, an INT8 bundle out, with what it cost.

The new bundle holds what runs: `model.onnx` is the quantized graph. The fp32 graph it was made
from is described in the `quantize` pass (`metrics.reference`: source bundle, sha256, bytes) and
shipped as `model.fp32.onnx` only with `keep_reference`. The pass records the mode and the
config's fields, the calibration set (path and sha256), every node kept in float and why, the int8
embedding tables, and the output agreement with fp32 on the calibration set, on fresh random
inputs, and on a held-out set when one is given.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from edgept.bundle import Bundle, BundleWriter
from edgept.errors import ConfigError
from edgept.onnxutil import dedupe_initializers
from edgept.parity import summarize
from edgept.quantize import graph
from edgept.quantize.calibration import CalibrationSet, load_calibration
from edgept.quantize.config import SMOOTH_GRID, Auto, Fp16, Int8Dynamic, Int8Static, Qdq, QuantizeConfig
from edgept.quantize.embeddings import quantized_tables
from edgept.quantize.int8 import Budget, Int8Plan, outputs
from edgept.quantize.smooth import smooth
from edgept.quantize.task import TaskSet, load_task
from edgept.registry import Registry

FP32 = "model.fp32.onnx"
_FRESH_SHAPE = (2, 24)  # batch, sequence of the seeded random check (unlike any calibration batch)
Progress = Callable[[str], None]
# (fp32 bundle, its graph, config, calibration set, task set, progress) -> (quantized graph, report)
Handler = Callable[[Bundle, onnx.ModelProto, Any, CalibrationSet | None, TaskSet | None, Progress | None],
                   tuple[onnx.ModelProto, dict[str, Any]]]
# Mode name -> what builds its graph; `quantize` dispatches through it.
HANDLERS: Registry[Handler] = Registry("quantize handler")


def _fresh_batches(bundle: Bundle, seed: int) -> list[dict[str, np.ndarray]]:
    from edgept.runtime.feeds import make_feeds

    rng = np.random.default_rng(seed)
    return [make_feeds(bundle.inputs, bundle.limits or {}, _FRESH_SHAPE[0], _FRESH_SHAPE[1], rng) for _ in range(2)]


def accuracy(reference: onnx.ModelProto, candidate: onnx.ModelProto, batches: list[dict[str, np.ndarray]]) -> dict[str, float]:
    """Output agreement of `candidate` with `reference` on `batches` (see edgept.parity)."""
    return summarize(outputs(reference, batches), outputs(candidate, batches), batches)


def _budget(plan: Int8Plan, config: Int8Static, task: TaskSet | None) -> tuple[Budget | None, dict[str, Any]]:
    """The budget check the search runs on each candidate graph: output cosine (edgept.parity) on the
    calibration set >= `budget`, and/or task accuracy on the dev split within `max_drop` points."""
    cosine, drop = config.budget, config.max_drop
    if cosine is None and drop is None:
        return None, {}
    recorded: dict[str, Any] = {"min_cosine": cosine, "max_drop": drop}
    if drop is not None:
        if task is None:
            raise ConfigError("--max-drop needs --data NAME|PATH (a labelled set; its dev split is scored)")
        recorded["fp32_accuracy"] = base = task.accuracy(plan.fused)

    def meets(proto: onnx.ModelProto) -> tuple[bool, dict[str, Any]]:
        score: dict[str, Any] = {}
        ok = True
        if cosine is not None:
            score.update(plan.score(proto))
            ok = score["cosine"] >= cosine
        if drop is not None and ok:  # accuracy only when the cosine already holds: it is the slow check
            score["accuracy"] = task.accuracy(proto)
            ok = 100 * (base - score["accuracy"]) <= drop
        return ok, score

    return meets, recorded


def _int8(
    plan: Int8Plan, config: Int8Static, task: TaskSet | None, progress: Progress | None
) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """Build the static graph; with a budget, rank nodes and keep the fewest in float that meet it."""
    report: dict[str, Any] = {"method": config.method}
    method = config.method
    if isinstance(config, Auto):
        method, scores = plan.best_method()
        report.update(method=method, method_scores=scores)
    float_nodes = [{"node": n, "reason": "user --keep-float"} for n in config.keep_float]
    meets, budget = _budget(plan, config, task)
    kept: list[str] = []
    if meets is not None and isinstance(config, Auto) and not config.per_token:
        # Per-token scales cost ~4% of the speed, a node kept in float far more: try them first.
        ok, score = meets(plan.build(method))
        report["per_token"] = {"chosen": not ok, "all_int8_score": score}
        if not ok:
            if progress:
                progress("budget missed in all-INT8: per-token scales for the FFN down-projections")
            plan.config = config = config.replace(per_token=True)
    if meets is not None:
        ranked = plan.sensitivity(method, progress)
        report["sensitivity"] = ranked
        kept, score, trials = plan.meet_budget(method, [r["node"] for r in ranked], meets, progress)
        met = any(t["met"] for t in trials if t["float_nodes"] == len(kept))
        report["budget"] = {**budget, "met": met, "score": score, "trials": trials}
        errors = {r["node"]: r["error"] for r in ranked}
        float_nodes += [
            {"node": n, "reason": f"sensitivity rank {i + 1}: alone in INT8 it costs {errors[n]:.2e} cosine"}
            for i, n in enumerate(kept)
        ]
    report["float_nodes"] = float_nodes
    if progress and config.bias_correction:
        progress("correcting biases for the INT8 mean shift")
    proto = plan.build(method, kept)
    if config.bias_correction:
        report["bias_correction"] = plan.corrections
    if config.gptq:
        report["gptq"] = plan.rounding
    return proto, report


def _search_alpha(
    fused: onnx.ModelProto, cal: CalibrationSet, config: Int8Static, task: TaskSet | None, progress: Progress | None,
) -> tuple[Int8Plan, dict[str, Any]]:
    """`smooth="auto"`: the plan (smoothed graph, ranges, GPTQ weights) of the SMOOTH_GRID alpha whose
    all-INT8 graph (config.method, biases corrected) has the best output cosine against fp32 on the
    dev split of `task` when given, else on the calibration set; and the smoothing report with every
    alpha's score."""
    judge = list(task.batches) if task is not None else list(cal.batches)
    best: tuple[float, Int8Plan, dict[str, Any]] | None = None
    scores = []
    for alpha in SMOOTH_GRID:
        if progress:
            progress(f"smoothing alpha {alpha}: calibrating and scoring the all-INT8 graph")
        smoothed, report = smooth(fused, cal.batches, alpha, skip=config.keep_float)
        plan = Int8Plan(smoothed, cal.batches, config)
        cosine = accuracy(fused, plan.build(config.method), judge)["cosine"]
        scores.append({"alpha": alpha, "cosine": cosine})
        if best is None or cosine > best[0]:
            best = (cosine, plan, report)
    assert best is not None
    judged = f"{task.data} {task.split} split" if task is not None else "calibration set"
    return best[1], {**best[2], "search": {"judge": judged, "method": config.method, "scores": scores}}


def _fused(src: Bundle, progress: Progress | None) -> onnx.ModelProto:
    if progress:
        progress("fusing the fp32 graph")
    return graph.fuse(src.model_path, src.manifest.get("model", {}).get("config"))


@HANDLERS.register(Int8Dynamic.mode)
def _dynamic(
    src: Bundle, reference: onnx.ModelProto, config: Int8Dynamic, cal: CalibrationSet | None, task: TaskSet | None,
    progress: Progress | None,
) -> tuple[onnx.ModelProto, dict[str, Any]]:
    proto = graph.quantize_weights(
        _fused(src, progress), keep_float=config.keep_float, per_channel=config.per_channel,
        reduce_range=config.seven_bit, embedding_bits=config.embedding_bits, unsigned=config.unsigned_weights,
    )
    return proto, {"method": "per-call min/max (DynamicQuantizeLinear)",
                   "float_nodes": [{"node": n, "reason": "user --keep-float"} for n in config.keep_float]}


@HANDLERS.register(Int8Static.mode)
@HANDLERS.register(Auto.mode)
def _static(
    src: Bundle, reference: onnx.ModelProto, config: Int8Static, cal: CalibrationSet, task: TaskSet | None,
    progress: Progress | None,
) -> tuple[onnx.ModelProto, dict[str, Any]]:
    fused = _fused(src, progress)
    smoothing = None
    if config.smooth == "auto":
        plan, smoothing = _search_alpha(fused, cal, config, task, progress)
    else:
        if config.smooth is not None:
            if progress:
                progress(f"smoothing activation outliers into the weights (alpha {config.smooth})")
            fused, smoothing = smooth(fused, cal.batches, config.smooth, skip=config.keep_float)
        if progress:
            progress("calibrating activation ranges" + (" and rounding weights by GPTQ" if config.gptq else ""))
        plan = Int8Plan(fused, cal.batches, config)
    proto, report = _int8(plan, config, task, progress)
    report["smoothing"] = smoothing
    return proto, report


# fp16 and int8-qdq keep the exported graph's standard ops (what TensorRT parses); the ORT int8 modes fuse.
@HANDLERS.register(Fp16.mode)
def _fp16(
    src: Bundle, reference: onnx.ModelProto, config: Fp16, cal: CalibrationSet, task: TaskSet | None,
    progress: Progress | None,
) -> tuple[onnx.ModelProto, dict[str, Any]]:
    from edgept.quantize.fp16 import to_fp16

    return to_fp16(reference, cal.batches, config)


@HANDLERS.register(Qdq.mode)
def _qdq(
    src: Bundle, reference: onnx.ModelProto, config: Qdq, cal: CalibrationSet, task: TaskSet | None,
    progress: Progress | None,
) -> tuple[onnx.ModelProto, dict[str, Any]]:
    from edgept.quantize.qdq import to_qdq

    if progress:
        progress("calibrating activation ranges")
    return to_qdq(reference, cal.batches, config)


def quantize(
    bundle: Bundle | str | os.PathLike,
    dest: str | os.PathLike,
    config: QuantizeConfig | None = None,
    *,
    calibration: str | os.PathLike | None = None,
    holdout: str | os.PathLike | None = None,
    data: str | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> Bundle:
    """Quantize an fp32 bundle into `dest` by `config` (one of the mode configs of
    edgept.quantize.config; default Int8Static()); return the new bundle.

    `calibration` (a set made by `edgept calibration make`) is required by every mode but
    int8-dynamic; `holdout` is another set, scored but never used to choose anything. `data` (a
    labelled set's name or path; classifiers only) makes its dev split the `max_drop` budget's
    judge, and the manifest records the dev accuracy of the fp32 and the quantized graph.
    """
    config = config or Int8Static()
    handler = HANDLERS.get(config.mode)
    src = bundle if isinstance(bundle, Bundle) else Bundle.open(bundle)
    if any(p.get("pass") == "quantize" for p in src.passes):
        raise ConfigError(
            f"{src.path} is already quantized (its manifest has a quantize pass); quantize the fp32 bundle it came from"
        )
    cal: CalibrationSet | None = None
    if calibration is not None:
        cal = load_calibration(calibration, src, config.batch_size)
    elif config.needs_calibration:
        raise ConfigError(
            f"--mode {config.mode} needs --calibration DIR (e.g. calibration/rt-polarity-256); "
            "make one with `edgept calibration make`, or use --mode int8-dynamic"
        )
    hold = load_calibration(holdout, src, config.batch_size) if holdout is not None else None
    task = load_task(data, src) if data is not None else None
    reference = onnx.load(str(src.model_path))
    proto, report = handler(src, reference, config, cal, task, progress)
    tables = quantized_tables(proto)  # before the dedupe, which may rename a table shared with a weight
    # Fusion gives each layer its own QKV matrix and ORT its own int8 copy of every use of a shared
    # weight; identical copies (same weights -> same scales) collapse back into one (ALBERT).
    dedupe_initializers(proto)
    if progress:
        progress("scoring against fp32")
    source = src.artifacts["model.onnx"]
    metrics: dict[str, Any] = {
        "reference": {"bundle": str(Path(src.path).resolve()), "sha256": source["sha256"], "bytes": source["bytes"],
                      "file": FP32 if config.keep_reference else None},
        "fresh_random": accuracy(reference, proto, _fresh_batches(src, config.seed)),
    }
    if cal is not None:
        metrics["calibration"] = accuracy(reference, proto, list(cal.batches))
    if hold is not None:
        metrics["holdout"] = {**hold.describe(), **accuracy(reference, proto, list(hold.batches))}
    if task is not None:
        base, got = task.accuracy(reference), task.accuracy(proto)
        metrics["task"] = {**task.describe(), "fp32_accuracy": base, "accuracy": got, "drop_points": 100 * (base - got)}
    metrics["float_nodes"] = report.pop("float_nodes")
    metrics["embeddings"] = tables
    metrics.update(report)
    recorded = {**config.to_dict(), "calibration": cal.describe() if cal else None}
    with BundleWriter(dest, overwrite=overwrite, base=src) as w:
        onnx.save(proto, str(w.path("model.onnx")))
        if config.keep_reference:
            onnx.save(reference, str(w.path(FP32)))
        w.add_pass("quantize", recorded, metrics)
    return Bundle.open(dest)
