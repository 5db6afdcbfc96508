"""The distillation results table (markdown), its JSON and its accuracy-vs-latency PNG.

Used by scripts/distill_results.py; separate so the measuring and the writing stay small.
A student's size-implied speed-up is the teacher's encoder parameters over the student's: the
embedding table is a lookup, so the matmuls a forward runs scale with the encoder alone.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from edgept.fileio import atomic_write_bytes, atomic_write_text

TITLES = {"text": "MiniLM-L6 teacher on rt-polarity, TinyBERT students", "vit": "ViT teacher on Fashion-MNIST, a distilled ViT"}
KEEP = {"3 layers": 0.99, "smallest": 0.97}  # the done-when: share of the teacher's test accuracy
# A speed-up counts as the implied one when it reaches 95% of it: the embedding lookup, the head and
# the per-call overhead do not shrink with the encoder, and interleaved runs still differ by a few %.
SPEED_SHARE = 0.95


def implied(teacher: dict[str, Any], row: dict[str, Any]) -> float:
    """Teacher encoder parameters / student encoder parameters (see the module doc)."""
    return teacher["params"]["encoder"] / row["params"]["encoder"]


def _shape_label(batch: int, seq: int | None) -> str:
    return f"b{batch}" + ("" if seq is None else f" s{seq}")


def table(part: dict[str, Any]) -> list[str]:
    """Markdown rows of one row set: size, accuracy, latency and speed-up at each benched shape."""
    rows = part["rows"]
    teacher = rows[0]
    shapes = [tuple(s) for s in part["shapes"]]
    head = ["model", "shape", "params", "encoder params", "bundle MiB", "test acc", "% of teacher"]
    for b, s in shapes:
        head += [f"p50 ms {_shape_label(b, s)}", f"speed-up {_shape_label(b, s)}"]
    head.append("size-implied speed-up")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        acc = r["test"]["accuracy"]
        cells = [
            r["name"], r["shape"], f"{r['params']['total'] / 1e6:.2f}M", f"{r['params']['encoder'] / 1e6:.2f}M",
            f"{r['bundle_bytes'] / 2**20:.1f}", f"{acc:.4f}", f"{100 * acc / teacher['test']['accuracy']:.1f}%",
        ]  # fmt: skip
        for lat in r["latency"]:
            cells += [f"{lat['p50_ms']:.3f}" if lat["p50_ms"] < 1 else f"{lat['p50_ms']:.2f}", f"{lat['speedup']:.2f}×"]
        cells.append("—" if r is teacher else f"{implied(teacher, r):.2f}×")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def checks(part: dict[str, Any], criteria: bool) -> list[str]:
    """Accuracy kept and speed-up against the implied one at every shape, per student; with
    `criteria`, judged against the issue's done-when (which is set for the text row set)."""
    teacher, students = part["rows"][0], part["rows"][1:]
    if not students:
        return []
    wanted = {}
    if criteria:
        wanted = {r["name"]: ("3 layers", KEEP["3 layers"]) for r in students if r["shape"].startswith("3x")}
        smallest = min(students, key=lambda r: r["params"]["total"])
        wanted[smallest["name"]] = ("smallest", KEEP["smallest"])
    out = []
    for r in students:
        keep = r["test"]["accuracy"] / teacher["test"]["accuracy"]
        need = implied(teacher, r)
        fast = all(lat["speedup"] >= SPEED_SHARE * need for lat in r["latency"])
        speed = ", ".join(f"{lat['speedup']:.2f}× at {_shape_label(lat['batch'], lat['seq'])}" for lat in r["latency"])
        line = f"- **{r['name']}**: keeps {100 * keep:.1f}% of the teacher's test accuracy"
        if r["name"] in wanted:
            role, target = wanted[r["name"]]
            line += f" ({role}: needs ≥ {100 * target:.0f}% → {'met' if keep >= target else 'NOT met'})"
        line += (f"; speed-up {speed} vs {need:.2f}× implied (met at ≥ {100 * SPEED_SHARE:.0f}% of it) → "
                 f"{'met' if fast else 'NOT met' if criteria else 'not reached'}.")
        out.append(line)
    return out


def markdown(results: dict[str, Any]) -> str:
    parts = []
    for key in ("text", "vit"):
        if key not in results:
            continue
        part = results[key]
        method = part["bench"]["method"]
        made = part["made"]
        load = ", ".join(f"{x:.1f}" for x in made["load"])
        parts += [f"## {TITLES[key]}", "", *table(part), "", *checks(part, criteria=key == "text"), ""]
        parts += [
            f"Made by `{made['command']}` ({made['seconds']} s including any training it did; 1-/5-/15-min load "
            f"average at the end: {load} on 2 cores shared with other jobs). How each model was made:",
            "",
            *(f"- {r['name']}: {r['schedule'] or 'given'} (`{_relative(r['model'])}`)" for r in part["rows"]),
            "",
            f"Latency: ORT fp32 bundles, {method['runs']} timed calls per model and shape after {method['warmup']} "
            f"warm-up in {method['rounds']} interleaved rounds, {method['threads']} thread{'s' * (method['threads'] > 1)}, "
            f"{method['cpu']}; "
            f"timed: {method['timed']}. Speed-up = teacher p50 / model p50, from one `edgept.bench` run. "
            "Test accuracy: `edgept.eval` on the bundle (the runtime), on the shared test split.",
            "",
        ]
    return "\n".join([
        "# Distillation results", "",
        "Re-run with `nice -n 10 .venv/bin/python scripts/distill_results.py [--part text|vit]` (see its docstring). "
        "The machine is shared, so absolute latencies are noisy; the speed-ups come from one interleaved run per row "
        "set. The size-implied speed-up is the teacher's encoder parameters over the student's (the embedding table "
        "is a lookup, so a forward's matmuls scale with the encoder alone).", "", *parts,
    ])  # fmt: skip


def _relative(path: str) -> str:
    """A path inside the repository as the repository names it (the table is read there)."""
    p = Path(path)
    try:
        return str(p.relative_to(Path.cwd()))
    except ValueError:
        return str(p)


def plot(results: dict[str, Any], path: Path) -> Path:
    """Test accuracy against p50 latency (the last benched shape: the data's real length for text)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in ("text", "vit") if k in results]
    fig, axes = plt.subplots(1, len(keys), figsize=(5.5 * len(keys), 4.2), squeeze=False, layout="constrained")
    for ax, key in zip(axes[0], keys, strict=True):
        part = results[key]
        # The data's real length for text, batch 1 for images: the shape a deployment meets most.
        b, s = next(s for s in part["shapes"] if s[1] == part.get("real_length") or s[1] is None)
        xs = [next(lat["p50_ms"] for lat in r["latency"] if (lat["batch"], lat["seq"]) == (b, s)) for r in part["rows"]]
        for i, (r, x) in enumerate(zip(part["rows"], xs, strict=True)):
            y = 100 * r["test"]["accuracy"]
            ax.scatter([x], [y], s=60, color="#8c8c8c" if i == 0 else "#0072B2", zorder=3)
            ax.annotate(r["name"], (x, y), xytext=(5, 4), textcoords="offset points", fontsize=9)
        threads = part["bench"]["method"]["threads"]
        ax.set_xlabel(f"ORT p50 latency, ms ({_shape_label(b, s)}, {threads} thread{'s' * (threads > 1)})")
        ax.set_ylabel("test accuracy, %")
        ax.set_title(TITLES[key], fontsize=10)
        ax.grid(color="#e3e3e3")
        ax.set_xlim(0, 1.3 * max(xs))  # room for the labels right of the points
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=130)
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def write_results(results: dict[str, Any], prefix: Path) -> list[Path]:
    """<prefix>.json (every number and the bench reports), .md (the tables) and .png."""
    data = {"parts": results}
    prefix.parent.mkdir(parents=True, exist_ok=True)
    return [
        atomic_write_text(prefix.with_suffix(".json"), json.dumps(data, indent=2) + "\n"),
        atomic_write_text(prefix.with_suffix(".md"), markdown(results)),
        plot(results, prefix.with_suffix(".png")),
    ]
