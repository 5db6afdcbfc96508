"""Every size/speed lever on the fine-tuned MiniLM, alone and combined: docs/results/size.{md,json,png}.

    nice -n 10 .venv/bin/python scripts/size_results.py --teacher out/teacher-rt/model \\
        [--student out/distill-3x384/model [--student-only]] [--recover-steps 400] [--augment 20] [--work out/size]

Levers: INT8 (edgept's int8-dynamic with INT8 embeddings, and what `compile --target cpu` builds),
vocabulary trimming (`edgept trim-vocab --vocab-size 16000`), structured FFN pruning recovered by
distillation from the unpruned model (`edgept prune --ffn-keep 0.5|0.25 --recover`), and, with
--student (a distilled student, e.g. from `edgept distill`), depth, FFN pruning to 25%, FFN 25% with
half the attention heads (`--heads-keep 0.5`), that model's embeddings factorized to E=128 and
recovered (`edgept factorize --embedding-size 128 --recover`), and int4 embeddings (`--embeddings
int4`); each alone on the teacher and combined. --augment N trains every recovery on TinyBERT's
augmented copies (`--recover --augment N`). --student-only keeps of the
teacher only its fp32 row and the baseline (the teacher's levers take most of the run's time).
Baseline: ONNX Runtime's own `quantize_dynamic` of the exported teacher (per channel), what a user
gets without edgept. Columns: bundle MiB (every file), dev and test accuracy through
edgept.runtime on the shared rt-polarity split, and p50 latency at b1 s128, b1 s32, b8 s128 and b8 s32 from
one interleaved `edgept.bench` run of every row, 1 thread; speed-ups are against the baseline.

The edge cuts (EDGE_CUTS, on the teacher): FFNs pruned to 192 neurons with 3 heads a layer, and to
128 with 4, each recovered --edge-steps (2000) per stage on 20 augmented copies; the first one
also with E=128 embeddings (recovered on augmented copies, --recover-steps) and its vocabulary
trimmed, the smallest bundle.

Outputs are kept under --work and reused when present, so an interrupted run goes on where it
stopped. Only the public API is used.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from edgept.fileio import atomic_write_text

DATA = "rt-polarity"
TRIM = 16000
SHAPES = ((1, 128), (1, 32), (8, 128), (8, 32))
# The edge cuts of the teacher (FFN share, heads share): FFN 192 + 3 heads and FFN 128 + 4 heads a
# layer, 4.55x and 4.31x ORT dyn at b1 s128 as untrained shapes. Each recovers --edge-steps per stage
# on EDGE_COPIES augmented copies: 250 steps without them left FFN 192 + 4 heads 2.5 test points short.
EDGE_CUTS = ((0.125, 0.25), (1 / 12, 1 / 3))
EDGE_COPIES = 20


def build(args: argparse.Namespace) -> list[dict]:
    """Make every row's bundle (reused when present); return the rows without measurements."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from edgept.bundle import Bundle
    from edgept.compile import CompileConfig, compile_for_target
    from edgept.compress.distill import AugmentConfig
    from edgept.compress.factorize import FactorizeConfig
    from edgept.compress.prune import PruneConfig, kept_heads, kept_width
    from edgept.compress.recover import factorize_and_recover, prune_and_recover
    from edgept.data import DataConfig
    from edgept.export import export
    from edgept.quantize import Int8Dynamic, quantize
    from edgept.train import TrainConfig
    from edgept.vocab import TrimConfig, trim_vocab

    work, data = Path(args.work), DataConfig(source=DATA)
    rows: list[dict] = []

    def once(path: Path, make, **row) -> Path:
        if not path.exists():
            started = time.perf_counter()
            print(f"making {path.name} ...", file=sys.stderr, flush=True)
            make(path)
            print(f"  {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
        rows.append({"path": str(path), **row})
        return path

    def recovered(model: Path, name: str, cut, config, steps: int | None = None, copies: int | None = None) -> Path:
        # cut: prune_ or factorize_and_recover; steps/copies default to --recover-steps/--augment
        train = TrainConfig(max_steps=steps or args.recover_steps, lr=1e-4, batch_size=32, seed=0, save_every=100)
        copies = args.augment if copies is None else copies
        augment = AugmentConfig(copies=copies, seed=0) if copies else None
        out = work / "models" / name
        if not (out / "model").exists():
            cut(model, out, config, train, data=data, max_length=64, augment=augment, resume=True, progress=False)
        return out / "model"

    def pruned(model: Path, keep: float, name: str, heads: float = 1.0, **recovery) -> Path:
        return recovered(model, name, prune_and_recover, PruneConfig(ffn_keep=keep, heads_keep=heads, max_length=64), **recovery)

    def int8(model: Path, dest: Path, embeddings: str = "int8") -> None:  # what `edgept compile --target cpu` builds
        # int4 tables cost output cosine on random inputs (0.89-0.93 measured) but not task accuracy: the gate is
        # relaxed for them as docs/quantize.md tells users to.
        config = CompileConfig(target="cpu", precision="int8", embeddings=embeddings,
                               min_cosine=0.8 if embeddings == "int4" else None)
        compile_for_target(model, dest, config, calibration=args.calibration)

    def trimmed_int8(fp32_bundle: Path, dest: Path, embeddings: str = "int8") -> None:  # trim the fp32 graph first
        trim = work / "trimmed" / fp32_bundle.name
        if not trim.exists():
            trim_vocab(fp32_bundle, trim, TrimConfig(vocab_size=TRIM), data=DATA)
        int8(trim, dest, embeddings)

    teacher = Path(args.teacher)
    fp32 = once(work / "teacher-fp32.edgept", lambda d: export(teacher, d), model="teacher", levers="none (fp32)")
    once(work / "ort-dynamic-int8.onnx", lambda d: quantize_dynamic(
        str(Bundle.open(fp32).model_path), str(d), per_channel=True, weight_type=QuantType.QInt8),
        model="teacher", levers="ORT quantize_dynamic (baseline)")  # fmt: skip
    bases = [("student", Path(args.student))] if args.student else []
    if not args.student_only:
        once(work / "teacher-int8dyn.edgept", lambda d: quantize(fp32, d, Int8Dynamic()), model="teacher",
             levers="int8-dynamic, int8 embeddings")
        once(work / "teacher-int8.edgept", lambda d: int8(teacher, d), model="teacher",
             levers="compile --target cpu (int8)")
        once(work / f"teacher-int8-v{TRIM}.edgept", lambda d: trimmed_int8(fp32, d), model="teacher",
             levers=f"int8 + vocab {TRIM}")
        bases.insert(0, ("teacher", teacher))
    for who, model in bases:
        if who == "student":
            s32 = once(work / "student-fp32.edgept", lambda d, m=model: export(m, d), model=who, levers="depth")
            once(work / "student-int8.edgept", lambda d, m=model: int8(m, d), model=who, levers="depth + int8")
            once(work / "student-int4.edgept", lambda d, m=model: int8(m, d, "int4"), model=who,
                 levers="depth + int8, int4 embeddings")
        # The student is pruned only to 25%: on the teacher it lost no accuracy and bought the most.
        for keep in (0.25,) if who == "student" else (0.5, 0.25):
            tag = f"{who}-ffn{round(100 * keep)}"
            p = pruned(model, keep, tag)
            p32 = once(work / f"{tag}-fp32.edgept", lambda d, p=p: export(p, d), model=who, levers=f"FFN {keep:.0%}")
            once(work / f"{tag}-int8.edgept", lambda d, p=p: int8(p, d), model=who, levers=f"FFN {keep:.0%} + int8")
            once(work / f"{tag}-int8-v{TRIM}.edgept", lambda d, b=p32: trimmed_int8(b, d), model=who,
                 levers=f"FFN {keep:.0%} + int8 + vocab {TRIM}")
            if who == "student":
                once(work / f"{tag}-int4-v{TRIM}.edgept", lambda d, b=p32: trimmed_int8(b, d, "int4"), model=who,
                     levers=f"FFN {keep:.0%} + int8, int4 embeddings + vocab {TRIM}")
        if who == "teacher":
            shape = json.loads((model / "config.json").read_text())
            cuts = []
            for ffn, heads in EDGE_CUTS:
                width, n_heads = kept_width(shape["intermediate_size"], ffn), kept_heads(shape["num_attention_heads"], heads)
                tag, cut = f"teacher-f{width}-h{n_heads}", f"FFN {width} + {n_heads} heads"
                cuts.append((tag, cut, pruned(model, ffn, tag, heads=heads, steps=args.edge_steps, copies=EDGE_COPIES)))
                once(work / f"{tag}-int8.edgept", lambda d, p=cuts[-1][2]: int8(p, d), model=who, levers=f"{cut} + int8")
            # The first cut with E=128 embeddings and its vocabulary trimmed: the smallest bundle.
            tag, cut, p = cuts[0]
            tag, cut = f"{tag}-e128", f"{cut} + E=128"
            e = recovered(p, tag, factorize_and_recover, FactorizeConfig(embedding_size=128), copies=EDGE_COPIES)
            e32 = once(work / f"{tag}-fp32.edgept", lambda d, p=e: export(p, d), model=who, levers=cut)
            once(work / f"{tag}-int8.edgept", lambda d, p=e: int8(p, d), model=who, levers=f"{cut} + int8")
            once(work / f"{tag}-int8-v{TRIM}.edgept", lambda d, b=e32: trimmed_int8(b, d), model=who,
                 levers=f"{cut} + int8 + vocab {TRIM}")
        if who == "student":
            once(work / f"student-int8-v{TRIM}.edgept", lambda d, b=s32: trimmed_int8(b, d), model=who,
                 levers=f"depth + int8 + vocab {TRIM}")
            # Half the heads on top of FFN 25%: attention is then most of what a layer computes.
            tag = "student-ffn25-h50"
            h = pruned(model, 0.25, tag, heads=0.5)
            once(work / f"{tag}-int8.edgept", lambda d, p=h: int8(p, d), model=who, levers="FFN 25% + heads 50% + int8")
            tag += "-e128"
            e = recovered(h, tag, factorize_and_recover, FactorizeConfig(embedding_size=128))
            e32 = once(work / f"{tag}-fp32.edgept", lambda d, p=e: export(p, d), model=who, levers="FFN 25% + heads 50% + E=128")
            once(work / f"{tag}-int8.edgept", lambda d, p=e: int8(p, d), model=who, levers="FFN 25% + heads 50% + E=128 + int8")
            once(work / f"{tag}-int8-v{TRIM}.edgept", lambda d, b=e32: trimmed_int8(b, d), model=who,
                 levers=f"FFN 25% + heads 50% + E=128 + int8 + vocab {TRIM}")
    return rows


def measure(rows: list[dict], runs: int) -> dict:
    """Size, parameters and dev/test accuracy of every row, and one interleaved bench of them all."""
    from edgept.bench import BenchConfig, bench
    from edgept.bench.report import method_caption
    from edgept.bundle import Bundle
    from edgept.data import DataConfig
    from edgept.eval import evaluate

    data = DataConfig(source=DATA)
    for r in rows:
        path = Path(r["path"])
        r["bytes"] = path.stat().st_size if path.is_file() else sum(f.stat().st_size for f in path.iterdir() if f.is_file())
        if path.is_dir():  # the baseline is a bare .onnx: no tokenizer to score it through edgept.runtime
            r["onnx_bytes"] = Bundle.open(path).model_path.stat().st_size
            r.update({s: evaluate(path, data, s, max_length=64)["accuracy"] for s in ("dev", "test")})
    config = BenchConfig(batches=(1, 8), seqs=(32, 128), warmup=max(2, runs // 10), runs=runs, rounds=10, threads=1)
    baseline = next(r for r in rows if r["path"].endswith(".onnx"))
    # The baseline goes first: bench's own speed-ups (and the caption) are against its first variant.
    order = [baseline["path"]] + [r["path"] for r in rows if r is not baseline]
    report = bench(order, config=config, memory=False, progress=True)
    names = {v["name"]: v["path"] for v in report.variants}
    p50 = {(names[x.variant], x.batch, x.seq): x.p50_ms for x in report.results}
    for r in rows:
        for b, s in SHAPES:
            r[f"p50_ms_b{b}_s{s}"] = p50[(r["path"], b, s)]
            r[f"x_baseline_b{b}_s{s}"] = p50[(baseline["path"], b, s)] / p50[(r["path"], b, s)]
    teacher = next(r for r in rows if r["levers"] == "none (fp32)")
    return {"rows": rows, "teacher": {"dev": teacher["dev"], "test": teacher["test"]},
            "method": dict(report.method), "caption": method_caption(report)}


def markdown(result: dict) -> str:
    t = result["teacher"]
    lines = [
        "# Size and speed levers on the fine-tuned MiniLM (rt-polarity)",
        "",
        f"Made by `{result['command']}` ({result['seconds']} s including what it trained). Teacher (fp32): dev "
        f"{t['dev']:.4f}, test {t['test']:.4f}. Speed-ups are against ONNX Runtime's own `quantize_dynamic` of the "
        "teacher, all rows from one interleaved bench run.",
        "",
        "| model | levers | MiB | dev acc | test acc | test vs teacher (pts) | p50 ms b1 s128 | x ORT dyn b1 s128 "
        "| x ORT dyn b1 s32 | x ORT dyn b8 s128 | x ORT dyn b8 s32 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        acc = (f"{r['dev']:.4f} | {r['test']:.4f} | {100 * (r['test'] - t['test']):+.2f}" if "dev" in r else "— | — | —")
        lines.append(
            f"| {r['model']} | {r['levers']} | {r['bytes'] / 2**20:.1f} | {acc} | {r['p50_ms_b1_s128']:.2f} "
            f"| {r['x_baseline_b1_s128']:.2f}x | {r['x_baseline_b1_s32']:.2f}x | {r['x_baseline_b8_s128']:.2f}x "
            f"| {r['x_baseline_b8_s32']:.2f}x |"
        )
    lines += ["", f"Latency: {result['caption']}.", "", f"![accuracy vs latency and size]({result['plot']})"]
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    """Test accuracy against b1 s128 latency and against size; the Pareto front of each joined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgept.optimize.report import pareto

    rows = [{**r, "candidate": r["path"], "mib": r["bytes"] / 2**20, "label": f"{r['model']}: {r['levers']}"}
            for r in result["rows"] if "dev" in r]
    floor = 100 * result["teacher"]["test"] - 1.0
    fig, axes = plt.subplots(1, 2, figsize=(12, 5), constrained_layout=True)
    for ax, cost, label in ((axes[0], "p50_ms_b1_s128", "p50 latency, batch 1, seq 128 (ms, 1 thread)"),
                            (axes[1], "mib", "bundle size (MiB)")):
        front = set(pareto([{**r, "dev": r["test"]} for r in rows], cost))
        for r in rows:
            ax.scatter(r[cost], 100 * r["test"], s=60 if r["candidate"] in front else 25,
                       color="#0072B2" if "int8" in r["levers"] else "#E69F00", zorder=3)
            ax.annotate(r["label"], (r[cost], 100 * r["test"]), fontsize=6, xytext=(4, 3), textcoords="offset points")
        line = sorted((r for r in rows if r["candidate"] in front), key=lambda r: r[cost])
        ax.plot([r[cost] for r in line], [100 * r["test"] for r in line], color="#8c8c8c", lw=1, zorder=2)
        ax.axhline(floor, color="#CC79A7", ls="--", lw=1, label="teacher - 1 pt")
        ax.set_xlabel(label)
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    base = next(r for r in result["rows"] if "dev" not in r)
    axes[0].axvline(base["p50_ms_b1_s128"], color="#009E73", ls=":", lw=1, label="ORT quantize_dynamic of the teacher")
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle("Size/speed levers on MiniLM, rt-polarity: blue int8, orange fp32; grey = Pareto front", fontsize=10)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", required=True)
    parser.add_argument("--student")
    parser.add_argument("--student-only", action="store_true")
    parser.add_argument("--calibration", default="calibration/rt-polarity-256")
    parser.add_argument("--recover-steps", type=int, default=400)
    parser.add_argument("--augment", type=int, default=0)
    parser.add_argument("--edge-steps", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--work", default="out/size")
    parser.add_argument("--out", default="docs/results/size")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    result = measure(build(args), args.runs)
    result.update(command="scripts/size_results.py " + " ".join(sys.argv[1:] if argv is None else argv),
                  seconds=round(time.perf_counter() - started), plot=Path(args.out).with_suffix(".png").name)
    out = Path(args.out)
    atomic_write_text(out.with_suffix(".json"), json.dumps(result, indent=2) + "\n")
    atomic_write_text(out.with_suffix(".md"), markdown(result))
    plot(result, out.with_suffix(".png"))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
