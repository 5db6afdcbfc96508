"""A PNG of a benchmark report: latency per shape and variant (with tails), and throughput."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

from edgept.bench.harness import Result
from edgept.bench.report import BenchReport
from edgept.errors import MissingDependencyError
from edgept.fileio import atomic_write_bytes

# Colour-blind-safe (Okabe-Ito); the reference variant gets grey so the eye goes to the challengers.
_REFERENCE_COLOUR = "#8c8c8c"
_TAIL_CLIP = 3.0
_COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#F0E442"]


def plot(report: BenchReport, path: str | Path) -> Path:
    """Write a two-panel PNG of `report` to `path` (atomically) and return the path.

    Left: p50 latency as grouped bars per shape, a whisker from p90 to p99, the speed-up over the
    reference variant above each bar. Right: throughput in samples/s. Needs matplotlib (`edgept[plot]`).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: never open a window or need a display
        import matplotlib.pyplot as plt
        from matplotlib.ticker import EngFormatter
    except ImportError as e:
        raise MissingDependencyError(f"plotting needs matplotlib: pip install 'edgept[plot]' ({e})") from None

    names = [v["name"] for v in report.variants] or list(dict.fromkeys(r.variant for r in report.results))
    shapes = sorted({(r.batch, r.seq) for r in report.results}, key=lambda s: (s[0], s[1] or 0))
    by_key = {(r.variant, r.batch, r.seq): r for r in report.results}
    colours = [_REFERENCE_COLOUR] + [_COLOURS[i % len(_COLOURS)] for i in range(len(names) - 1)]

    # Small multiples, one column per shape, each with its own y scale: latencies across shapes differ
    # by orders of magnitude, and one shared axis would flatten the small shapes to nothing.
    width = max(7.0, len(shapes) * (0.9 + 0.6 * len(names)))
    fig, axes = plt.subplots(2, len(shapes), figsize=(width, 6.2), squeeze=False, layout="constrained")
    for col, (batch, seq) in enumerate(shapes):
        rows = [by_key.get((name, batch, seq)) for name in names]
        _latency_panel(axes[0][col], rows, colours)
        axes[0][col].set_title(f"batch {batch}" + ("" if seq is None else f", seq {seq}"), fontsize=10)
        axes[1][col].bar(range(len(rows)), [r.throughput if r else 0.0 for r in rows], 0.75, color=colours)
        axes[1][col].yaxis.set_major_formatter(EngFormatter(sep=""))
        for ax in (axes[0][col], axes[1][col]):
            ax.set_xticks([])
            ax.set_axisbelow(True)
            ax.grid(axis="y", color="#e3e3e3")
            ax.spines[["top", "right"]].set_visible(False)
    axes[0][0].set_ylabel("latency, ms\n(bar p50, tick p90, cap p99)")
    axes[1][0].set_ylabel("throughput, samples/s")

    m = report.method
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colours]
    # The title rides on the legend: constrained layout lets a suptitle and an outside legend overlap.
    legend = fig.legend(
        handles,
        [n + (" (reference)" if i == 0 else "") for i, n in enumerate(names)],
        loc="outside upper center",
        ncols=min(len(names), 4),
        frameon=False,
        fontsize=9,
        title=f"edgept bench: {m.get('cpu', '?')}, {m.get('threads', '?')} threads",
    )
    legend.get_title().set_fontsize(12)
    footer = (
        f"speed-up = p50 of the reference / p50 of the variant; {m.get('runs')} timed calls per bar after "
        f"{m.get('warmup')} warm-up, {m.get('rounds')} interleaved rounds; timed: {m.get('timed')}"
    )
    # Wrapped to the figure (about 16 characters per inch at 7.5 pt) so it never widens the image.
    fig.supxlabel(textwrap.fill(footer, int(width * 16)), fontsize=7.5, color="#555555")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=130, bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(Path(path), buf.getvalue())


def _latency_panel(ax, rows: list[Result | None], colours: list[str]) -> None:
    """p50 bars with a p50-to-p99 line (tick at p90) and the speed-up above each challenger."""
    present = [(x, r) for x, r in enumerate(rows) if r is not None]
    ax.bar(
        [x for x, _ in present], [r.p50_ms for _, r in present], 0.75, color=[colours[x] for x, _ in present]
    )
    # On a noisy machine a p99 can be 20x the p50; the axis stops at _TAIL_CLIP x the largest p50 so the
    # bars stay readable, and a clipped tail is written out instead of drawn.
    top = _TAIL_CLIP * max(r.p50_ms for _, r in present)
    top = min(top, 1.12 * max(r.p99_ms for _, r in present))
    for x, r in present:
        p90, p99 = min(r.p90_ms, top), min(r.p99_ms, top)
        ax.vlines(x, r.p50_ms, p99, color="#222222", lw=1.0)
        ax.hlines([p90, p99], [x - 0.08, x - 0.16], [x + 0.08, x + 0.16], color="#222222", lw=1.0)
        label = "ref" if x == 0 else f"{r.speedup:.2f}×"
        if r.p99_ms > top:
            label += f"\n(p99 {r.p99_ms:,.0f} ↑)" if r.p99_ms >= 10 else f"\n(p99 {r.p99_ms:.2f} ↑)"
        ax.annotate(
            label,
            (x, p99),
            xytext=(0, 3),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=8,
            fontweight="normal" if x == 0 else "bold",
            annotation_clip=False,
        )
    ax.set_ylim(0, top * 1.18)
