"""Which INT8 accuracy remedy to use: ranges, 7-bit weights, SmoothQuant smoothing, a mixed plan.

    nice -n 10 .venv/bin/python scripts/benchmarks/quantize_methods.py out/minilm.edgept \
        --calibration calibration/rt-polarity-256 --holdout out/rt-polarity-dev-256 --json out/quantize-methods.json

One process: the bundle's graph is fused once, calibrated once per smoothing setting, and each
variant built from the same statistics (edgept.quantize.int8.Int8Plan); cosine is the mean (min)
per-example output cosine vs fp32 on the held-out set. The variants and ORT's quantize_dynamic
per-channel (the anchor) are then timed side by side in one interleaved edgept.bench run.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import onnx

from edgept.bench import BenchConfig, bench
from edgept.bundle import Bundle
from edgept.quantize import Int8Static, graph
from edgept.quantize.calibration import load_calibration
from edgept.quantize.int8 import Int8Plan
from edgept.quantize.quantize import accuracy
from edgept.quantize.smooth import smooth

# name -> (smoothing alpha, range method, 7-bit weights, nodes kept in float from the sensitivity ranking)
VARIANTS = {
    "static minmax": (None, "minmax", False, 0),
    "static percentile": (None, "percentile", False, 0),
    "static minmax, 7-bit weights": (None, "minmax", True, 0),
    "static minmax, 2 float": (None, "minmax", False, 2),
    "smooth 0.5 minmax, 8-bit weights": (0.5, "minmax", False, 0),
    "smooth 0.5 minmax, 7-bit weights": (0.5, "minmax", True, 0),
    "smooth 0.5 minmax 7-bit, 1 float": (0.5, "minmax", True, 1),
    "smooth 0.5 minmax 7-bit, 2 float": (0.5, "minmax", True, 2),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle")
    p.add_argument("--calibration", default="calibration/rt-polarity-256")
    p.add_argument("--holdout", default="out/rt-polarity-dev-256")
    p.add_argument("--runs", type=int, default=40)
    p.add_argument("--json", default="out/quantize-methods.json")
    args = p.parse_args()
    src = Bundle.open(args.bundle)
    cal = load_calibration(args.calibration, src).batches
    hold = list(load_calibration(args.holdout, src).batches)
    reference = onnx.load(str(src.model_path))
    fused = graph.fuse(src.model_path, src.manifest["model"]["config"])
    tmp = Path(tempfile.mkdtemp(prefix="edgept-qm-"))
    from onnxruntime.quantization import QuantType, quantize_dynamic

    files = {"fp32": str(src.model_path), "ORT dynamic per-channel": str(tmp / "anchor.onnx")}
    quantize_dynamic(str(src.model_path), files["ORT dynamic per-channel"], per_channel=True, weight_type=QuantType.QInt8)
    plans: dict = {}
    rows = {}
    for name, (alpha, method, seven, n_float) in VARIANTS.items():
        key = (alpha, seven)
        if key not in plans:
            g, info = smooth(fused, cal, alpha) if alpha is not None else (fused, None)
            config = Int8Static(smooth=alpha, reduce_range=seven, sensitivity_examples=32)
            plan = Int8Plan(g, cal, config)
            plans[key] = (plan, {})
        plan, ranked = plans[key]
        if n_float and method not in ranked:
            ranked[method] = [r["node"] for r in plan.sensitivity(method)]
        kept = ranked[method][:n_float] if n_float else []
        proto = plan.build(method, kept)
        files[name] = str(tmp / f"{len(files)}.onnx")
        onnx.save(proto, files[name])
        rows[name] = {**accuracy(reference, proto, hold), "float_nodes": kept}
        print(name, rows[name], flush=True)
    rows["ORT dynamic per-channel"] = accuracy(reference, onnx.load(files["ORT dynamic per-channel"]), hold)
    report = bench(list(files.values()), config=BenchConfig(batches=(1, 8), seqs=(128,), threads=2, runs=args.runs),
                   memory=False, progress=False)
    names = dict(zip((v["name"] for v in report.variants), files, strict=True))
    p50 = {(names[r.variant], r.batch): r.p50_ms for r in report.results}
    anchor = "ORT dynamic per-channel"
    print("| variant | cosine mean (min) | b1 p50 ms | × anchor | b8 p50 ms | × anchor |\n|---|---|---|---|---|---|")
    for name in files:
        r = rows.get(name, {"cosine_mean": 1.0, "cosine_min": 1.0})
        r.update({f"b{b}_ms": p50[(name, b)] for b in (1, 8)})
        r.update({f"b{b}_vs_anchor": p50[(anchor, b)] / p50[(name, b)] for b in (1, 8)})
        rows[name] = r
        print(f"| {name} | {r['cosine_mean']:.5f} ({r['cosine_min']:.4f}) | {r['b1_ms']:.1f} | {r['b1_vs_anchor']:.2f} "
              f"| {r['b8_ms']:.1f} | {r['b8_vs_anchor']:.2f} |")
    Path(args.json).write_text(json.dumps({"bundle": args.bundle, "method": report.method, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
