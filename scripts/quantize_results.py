"""The quantization results table: each model x {fp32, ORT dynamic per-channel (the anchor),
edgept static, edgept auto under an accuracy budget, fp16}, measured side by side.

    .venv/bin/python scripts/quantize_results.py --model teacher=out/teacher-rt/model \
        [--model student=out/student/model] [--methods] --out docs/results/quantize

For every model (a checkpoint dir, exported here, or an fp32 bundle): the anchor is
`onnxruntime.quantization.quantize_dynamic(per_channel=True, weight_type=QInt8)` on the exported
graph with ORT's defaults (what a user gets today), wrapped in a bundle so it is scored like the
rest. Columns: test accuracy (edgept.eval on the data's test split), output cosine vs the fp32
bundle on the held-out set (edgept.parity: whole-tensor for logits, per-example mean for
embeddings) and the minimum per-example cosine,
argmax agreement, model.onnx size, latency p50 at b1/s128 and b8/s128 from one interleaved
`edgept.bench` run of all variants of that model, and the speed-up against the anchor.
`--methods` adds the accuracy remedies compared for issue 5 (ranges, 7-bit weights, SmoothQuant
smoothing, a mixed plan) to the same run. `--qat NAME=DIR` adds, for model NAME, the output of
`edgept qat` (DIR): its own Q/DQ bundle, and its fine-tuned weights through `edgept quantize
--mode int8-static --method minmax` (the grid QAT trained on: minmax uint8 activations, 8-bit
per-channel weights rounded to nearest, no smoothing) so they run on the fused integer kernels; both are compared
with the ORIGINAL model's fp32 bundle. `--compile TARGET` adds each model compiled for a CPU
target (e.g. cpu-x86_64-vnni) to the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import onnx

from edgept.bundle import Bundle, BundleWriter
from edgept.fileio import atomic_write_text
from edgept.quantize import Auto, Fp16, Int8Static, quantize

# (row name, config) of the results table; auto's accuracy budget is set from --max-drop.
TABLE = {
    "edgept static": Int8Static(smooth=0.5),
    # the fewest nodes kept in float for a whole-logit cosine of 0.9995 on the calibration set: 0.999
    # left the held-out set at 0.99898 on the fine-tuned teacher.
    "edgept static, cosine 0.9995": Int8Static(smooth=0.5, min_cosine=0.9995),
    # per-token scales for the FFN down-projections' GELU outputs, where the remaining error sat.
    "edgept static, per-token": Int8Static(smooth=0.5, per_token=True),
    # the same with 8-bit uint8 weights on ORT's u8u8 kernels (no AVX2 saturation, so no 7-bit)
    "edgept static, per-token, uint8 weights": Int8Static(smooth=0.5, per_token=True, weight_type="uint8"),
    # per-token scales on every GEMM outside the fused attention (attention output, FFN up and down)
    "edgept static, per-token all": Int8Static(smooth=0.5, per_token=True, per_token_scope="all"),
    # the same with the smoothing alpha chosen per model from SMOOTH_GRID on --data's dev split
    "edgept static, per-token all, smooth auto": Int8Static(smooth="auto", per_token=True, per_token_scope="all"),
    "edgept auto": Auto(smooth=0.5),
    "fp16": Fp16(),
}
METHODS = {  # the per-method comparison lives in scripts/benchmarks/quantize_methods.py; these are its extremes
    "static minmax, no smoothing": Int8Static(),
    # what GPTQ (on in every static row above) buys: the per-token-all row with nearest rounding
    "edgept static, per-token all, nearest rounding": Int8Static(smooth=0.5, per_token=True, per_token_scope="all", gptq=False),
}
ANCHOR = "ORT dynamic per-channel"


def fp32_bundle(model: str, work: Path) -> Bundle:
    """The model's fp32 bundle: opened as is, or exported from a checkpoint dir into `work`."""
    if (Path(model) / "manifest.json").is_file():
        return Bundle.open(model)
    from edgept.export import export

    return export(model, work / "fp32.edgept", overwrite=True)


def anchor_bundle(src: Bundle, dest: Path) -> Bundle:
    """ORT's quantize_dynamic per-channel of the bundle's graph, with ORT's defaults, as a bundle."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="edgept-anchor-") as tmp:
        out = Path(tmp) / "model.onnx"
        quantize_dynamic(str(src.model_path), str(out), per_channel=True, weight_type=QuantType.QInt8)
        with BundleWriter(dest, overwrite=True, base=src) as w:
            onnx.save(onnx.load(str(out)), str(w.path("model.onnx")))
            w.add_pass("quantize", {"mode": "onnxruntime quantize_dynamic", "per_channel": True, "weight_type": "QInt8"}, {})
    return Bundle.open(dest)


def agreement(ref: Bundle, cand: Bundle, holdout: str) -> dict[str, float]:
    """Output agreement of `cand` with the fp32 bundle `ref` on the held-out calibration-format set."""
    from edgept.quantize.calibration import load_calibration
    from edgept.quantize.quantize import accuracy

    batches = list(load_calibration(holdout, ref).batches)
    return accuracy(onnx.load(str(ref.model_path)), onnx.load(str(cand.model_path)), batches)


def qat_variants(qat_dir: Path, args: argparse.Namespace, work: Path) -> dict[str, Bundle]:
    """The rows of one `edgept qat` output: its Q/DQ bundle, and its weights quantized by edgept's static INT8."""
    from edgept.export import export

    weights = export(qat_dir / "model", work / "qat-fp32.edgept", overwrite=True)
    # Nearest rounding: QAT fitted its weights to that grid, GPTQ would move them off it.
    static = quantize(weights, work / "qat-static.edgept", Int8Static(gptq=False),
                      calibration=args.calibration, holdout=args.holdout, overwrite=True)
    return {"edgept QAT, Q/DQ": Bundle.open(qat_dir / "model.edgept"), "edgept QAT, static": static}


def variants(src: Bundle, args: argparse.Namespace, work: Path, qat_dir: Path | None = None) -> dict[str, Bundle]:
    """Every bundle of one model's rows, built (or rebuilt) under `work`."""
    built = {"fp32": src, ANCHOR: anchor_bundle(src, work / "anchor.edgept")}
    configs = dict(TABLE)
    scored = bool(src.task and src.task.endswith("classification") and args.data)
    if scored:
        configs["edgept auto"] = configs["edgept auto"].replace(max_drop=args.max_drop)
    if args.methods:
        configs.update(METHODS)
    for name, config in configs.items():
        dest = work / f"{name.replace(' ', '_')}.edgept"
        if args.reuse and (dest / "manifest.json").is_file():
            built[name] = Bundle.open(dest)
            continue
        print(f"[{src.path.name}] {name} ...", flush=True)
        judged = isinstance(config, Int8Static) and (config.max_drop is not None or config.smooth == "auto")
        extra = {"data": args.data} if scored and judged else {}
        built[name] = quantize(src, dest, config, calibration=args.calibration, holdout=args.holdout, overwrite=True, **extra)
    if qat_dir is not None:
        built.update(qat_variants(qat_dir, args, work))
    for target in args.compile:
        from edgept.compile import CompileConfig, compile_for_target

        dest = work / f"compile-{target}.edgept"
        if args.reuse and (dest / "manifest.json").is_file():
            built[f"edgept compile {target}"] = Bundle.open(dest)
            continue
        print(f"[{src.path.name}] compile {target} ...", flush=True)
        built[f"edgept compile {target}"] = compile_for_target(
            src.path, dest, CompileConfig(target=target), calibration=args.calibration, overwrite=True)
    return built


def test_flips(ref: Bundle, cand: Bundle, data: str) -> dict[str, float]:
    """On the data's test split: the whole-logit cosine vs the fp32 bundle, and the examples whose
    prediction changed, split into those fp32 had right (lost) and wrong (gained): a net accuracy
    change of a few examples is the difference of two small counts, so both are shown."""
    import numpy as np

    from edgept.parity import tensor_cosine
    from edgept.quantize.int8 import outputs
    from edgept.quantize.task import load_task

    task = load_task(data, ref, "test")
    r = np.concatenate(outputs(onnx.load(str(ref.model_path)), task.batches))
    q = np.concatenate(outputs(onnx.load(str(cand.model_path)), task.batches))
    flipped, right = r.argmax(-1) != q.argmax(-1), r.argmax(-1) == task.targets
    return {"test_cosine": tensor_cosine([r], [q]), "flips_lost": int((flipped & right).sum()),
            "flips_gained": int((flipped & ~right).sum()), "margin_error_sd": float(np.std(np.diff(q - r, axis=-1)))}


def measure_model(label: str, model: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """One model's rows: accuracy, agreement, size, and latency from one side-by-side bench."""
    from edgept.bench import BenchConfig, bench

    work = Path(args.work) / label
    work.mkdir(parents=True, exist_ok=True)
    qat = dict(q.split("=", 1) for q in args.qat)
    built = variants(fp32_bundle(model, work), args, work, Path(qat[label]) if label in qat else None)
    paths = [str(b.path) for b in built.values()]
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    report = bench(paths, config=BenchConfig(batches=(1, 8), seqs=(args.seq,), threads=args.threads, runs=args.runs),
                   memory=False, progress=False)
    report.method["load"] = load
    p50 = {(r.variant, r.batch): r.p50_ms for r in report.results}
    names = dict(zip(built, (v["name"] for v in report.variants), strict=True))
    rows = []
    for name, b in built.items():
        row: dict[str, Any] = {"model": label, "variant": name, "bundle": str(b.path),
                               "bytes": b.artifacts["model.onnx"]["bytes"]}
        if b.task and b.task.endswith("classification") and args.data:
            from edgept.data import DataConfig
            from edgept.eval import evaluate

            row["test_accuracy"] = evaluate(b.path, DataConfig(source=args.data), "test")["accuracy"]
            row.update(test_flips(built["fp32"], b, args.data))
        row.update({f"agree_{k}": v for k, v in agreement(built["fp32"], b, args.holdout).items()})
        q = b.passes[-1]["metrics"] if b.passes[-1]["pass"] == "quantize" else {}
        row["float_nodes"] = [f["node"] for f in q.get("float_nodes", []) if "always fp32" not in f["reason"]]
        for batch in (1, 8):
            ms, anchor = p50[(names[name], batch)], p50[(names[ANCHOR], batch)]
            row[f"b{batch}_ms"], row[f"b{batch}_vs_anchor"] = ms, anchor / ms
        rows.append(row)
    return rows, report


def markdown(rows: list[dict[str, Any]], command: str, method: dict[str, Any]) -> str:
    head = ("| model | variant | test acc | flips lost/gained (test) | test cosine | held-out cosine (min per example) | argmax agree | MiB "
            "| b1 ms | × anchor | b8 ms | × anchor | in float |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for r in rows:
        acc = f"{100 * r['test_accuracy']:.2f}" if "test_accuracy" in r else "–"
        agree = f"{r['agree_argmax_agreement']:.4f}" if "agree_argmax_agreement" in r else "–"
        flips = f"{r['flips_lost']}/{r['flips_gained']}" if "flips_lost" in r else "–"
        test_cos = f"{r['test_cosine']:.5f}" if "test_cosine" in r else "–"
        lines.append(
            f"| {r['model']} | {r['variant']} | {acc} | {flips} | {test_cos} | {r['agree_cosine']:.5f} ({r['agree_cosine_min']:.4f}) | {agree} "
            f"| {r['bytes'] / 2**20:.1f} | {r['b1_ms']:.1f} | {r['b1_vs_anchor']:.2f} | {r['b8_ms']:.1f} | {r['b8_vs_anchor']:.2f} "
            f"| {len(r['float_nodes'])} |")
    cpu = (f"{method.get('cpu')} ({method.get('logical_cpus')} logical CPUs), {method.get('threads')} threads, "
           f"load average {method.get('load', '?')} when the bench began")
    return (f"# Quantization results\n\nMade by `{command}` on {cpu}; onnxruntime {method['versions'].get('onnxruntime')}.\n"
            f"Latency: p50 of {method['runs']} interleaved runs per shape ({method['timed']}); × anchor = anchor p50 / variant p50, "
            "from the same run. Cosine: of the primary output vs the fp32 bundle on the held-out set: of the whole logit tensor for "
            "classifiers (a 2-class logit row's own cosine is +-1 by its sign, see edgept/parity.py), the mean "
            "per-example cosine for embeddings; in brackets the worst single example. Test cosine: the same whole-logit cosine on "
            "the test split. Flips: test examples whose prediction differs from fp32's, that fp32 had right (lost) or wrong "
            "(gained); test accuracy moves by (gained - lost) / examples.\n\n"
            + head + "\n".join(lines) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", required=True, help="NAME=PATH: a checkpoint dir or an fp32 bundle")
    p.add_argument("--data", default="rt-polarity", help="data set for test accuracy and auto's --max-drop ('' for none)")
    p.add_argument("--max-drop", type=float, default=0.5, help="auto's budget in accuracy points on the dev split")
    p.add_argument("--calibration", default="calibration/rt-polarity-256")
    p.add_argument("--holdout", default="out/rt-polarity-dev-256", help="calibration-format set the cosines are measured on")
    p.add_argument("--methods", action="store_true", help="also build and time the accuracy remedies")
    p.add_argument("--qat", action="append", default=[], metavar="NAME=DIR", help="an `edgept qat` output for model NAME")
    p.add_argument("--reuse", action="store_true", help="open bundles already built under --work instead of rebuilding them")
    p.add_argument("--compile", action="append", default=[], metavar="TARGET", help="also `edgept compile --target TARGET` each model")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=40)
    p.add_argument("--seq", type=int, default=128, help="sequence length timed (with batch 1 and 8)")
    p.add_argument("--work", default="out/quantize-results")
    p.add_argument("--out", default="docs/results/quantize")
    args = p.parse_args()
    import sys

    command = "python " + " ".join(sys.argv)
    rows, methods = [], {}
    for spec in args.model:
        label, _, path = spec.partition("=")
        model_rows, report = measure_model(label, path, args)
        rows += model_rows
        methods[label] = report.method
    method = next(iter(methods.values()))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out.with_suffix(".json"), json.dumps({"command": command, "bench_method": methods, "rows": rows}, indent=2) + "\n")
    atomic_write_text(out.with_suffix(".md"), markdown(rows, command, method))
    print(markdown(rows, command, method))


if __name__ == "__main__":
    main()
