"""The optimize report: report.json (everything), report.md (the table), pareto.png (the trade-off)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from edgept.errors import MissingDependencyError
from edgept.fileio import atomic_write_bytes, atomic_write_text


def pareto(rows: list[dict[str, Any]], cost: str) -> list[str]:
    """The candidates no other beats on both dev accuracy and `cost` (lower is better)."""
    front = []
    for r in rows:
        if not any(o is not r and o["dev"] >= r["dev"] and o[cost] <= r[cost] and (o["dev"] > r["dev"] or o[cost] < r[cost])
                   for o in rows):
            front.append(r["candidate"])
    return front


def markdown(report: dict[str, Any]) -> str:
    seq, base = report["seq"], report["baseline"]
    lines = [
        f"# edgept optimize: target {report['target']}, budget {report['max_drop']:g} dev points",
        "",
        f"Chosen: **{report['chosen']}**: {report['why']}.",
        "",
        f"| candidate | model | precision | params | MiB | dev acc | test acc | drop (dev pts) | p50 ms b1 s{seq} "
        f"| p50 ms b8 s{seq} | x teacher b1 | x ORT dyn INT8 b1 | x ORT dyn INT8 b8 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["candidates"]:
        if "skipped" in r:
            lines.append(f"| {r['candidate']} | skipped: {r['skipped']} |" + " |" * 11)
            continue
        mark = " **(chosen)**" if r["candidate"] == report["chosen"] else ""
        lines.append(
            f"| {r['candidate']}{mark} | {r['model']} | {r['precision']} | {r['params'] / 1e6:.2f}M | {r['bytes'] / 2**20:.1f} "
            f"| {r['dev']:.4f} | {r['test']:.4f} | {r['drop_points']:+.2f} | {r['p50_ms_b1']:.2f} | {r['p50_ms_b8']:.2f} "
            f"| {r['x_teacher_b1']:.2f}x | {r['x_baseline_b1']:.2f}x | {r['x_baseline_b8']:.2f}x |"
        )
    lines += [
        "",
        f"Baseline: ONNX Runtime's own `quantize_dynamic` of the teacher ({base['bytes'] / 2**20:.1f} MiB): "
        f"p50 {base['p50_ms_b1']:.2f} ms at b1, {base['p50_ms_b8']:.2f} ms at b8. Teacher: dev "
        f"{report['teacher']['dev']:.4f}, test {report['teacher']['test']:.4f}.",
        "",
        f"Method: {report['method']['choice']}; {report['method']['bench']}, sequence {seq}. "
        "Accuracy is the bundle's, through edgept.runtime. Every number is measured on this machine.",
    ]
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> Path:
    """Dev accuracy against batch-1 latency and against size, the Pareto front joined, the choice ringed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise MissingDependencyError(f"the Pareto plot needs matplotlib: pip install 'edgept[plot]' ({e})") from None
    rows = [{**r, "mib": r["bytes"] / 2**20} for r in report["candidates"] if "skipped" not in r]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), constrained_layout=True)
    floor = 100 * report["teacher"]["dev"] - report["max_drop"]
    for ax, cost, label in ((axes[0], "p50_ms_b1", "p50 latency, batch 1 (ms)"), (axes[1], "mib", "bundle size (MiB)")):
        front = set(pareto(rows, cost))
        for r in rows:
            colour = "#0072B2" if r["precision"] == "int8" else "#E69F00"
            ax.scatter(r[cost], 100 * r["dev"], color=colour, s=60 if r["candidate"] in front else 25, zorder=3)
            ax.annotate(r["candidate"], (r[cost], 100 * r["dev"]), fontsize=7, xytext=(4, 3), textcoords="offset points")
            if r["candidate"] == report["chosen"]:
                ax.scatter(r[cost], 100 * r["dev"], s=220, facecolors="none", edgecolors="#D55E00", linewidths=2, zorder=4)
        line = sorted((r for r in rows if r["candidate"] in front), key=lambda r: r[cost])
        ax.plot([r[cost] for r in line], [100 * r["dev"] for r in line], color="#8c8c8c", lw=1, zorder=2)
        ax.axhline(floor, color="#CC79A7", ls="--", lw=1, label=f"budget: teacher - {report['max_drop']:g} pts")
        ax.set_xlabel(label)
        ax.set_ylabel("dev accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle(f"edgept optimize on {report['target']}: blue int8, orange fp32; grey line = Pareto front; ringed = chosen",
                 fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def write_report(dest: Path, report: dict[str, Any]) -> None:
    atomic_write_text(dest / "report.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(dest / "report.md", markdown(report))
    plot(report, dest / "pareto.png")


__all__ = ["markdown", "pareto", "plot", "write_report"]
