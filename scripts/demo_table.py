"""The trade-off table at the end of `make demo`: what each step cost in accuracy and bought in size and speed.

    .venv/bin/python scripts/demo_table.py out/demo

Reads what the demo wrote in its directory: <name>.eval.json (`edgept eval --json`, test split),
bench.json (`edgept bench --json`, one interleaved run) and each bundle's manifest (parameters).
Prints a markdown table and writes it to <dir>/table.md. A bundle without an eval or bench entry
shows "–" in those columns.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edgept.bundle import Bundle
from edgept.fileio import atomic_write_text

WHAT = {
    "teacher": "MiniLM-L6 fine-tuned on rt-polarity (fp32)",
    "student": "3-layer TinyBERT student, embeddings factorized to E=128 (fp32)",
    "student.int8": "the student, static INT8 (calibration/rt-polarity-256)",
    "student.cpu": "the student compiled for this CPU (edgept compile --target cpu)",
}


def table(demo: Path) -> str:
    bench = json.loads((demo / "bench.json").read_text())
    by_path = {Path(v["path"]).resolve(): v["name"] for v in bench["variants"]}
    p50 = {(r["variant"], r["batch"]): r["p50_ms"] for r in bench["results"]}
    batches = sorted({r["batch"] for r in bench["results"]})
    seq = bench["results"][0]["seq"]
    teacher_acc = None
    rows = []
    for name in WHAT:
        path = demo / f"{name}.edgept"
        if not path.is_dir():
            continue
        bundle = Bundle.open(path, verify=False)
        ev = demo / f"{name}.eval.json"
        acc = json.loads(ev.read_text())["accuracy"] if ev.is_file() else None
        teacher_acc = acc if name == "teacher" else teacher_acc
        variant = by_path.get(path.resolve())
        params = bundle.manifest["model"].get("params")
        cells = [
            name,
            WHAT[name],
            f"{params / 1e6:.2f}M" if params else "–",
            f"{bundle.artifacts['model.onnx']['bytes'] / 2**20:.1f}",
            f"{100 * acc:.2f}" if acc is not None else "–",
            f"{100 * (acc - teacher_acc):+.2f}" if acc is not None and teacher_acc is not None else "–",
        ]
        for b in batches:
            ms, base = p50.get((variant, b)), p50.get((by_path.get((demo / "teacher.edgept").resolve()), b))
            cells.append(f"{ms:.1f} ({base / ms:.2f}×)" if ms and base else "–")
        rows.append("| " + " | ".join(cells) + " |")
    head = ["bundle", "what", "params", "model.onnx MiB", "test acc %", "vs teacher (pts)",
            *[f"p50 ms b{b}/s{seq} (× teacher)" for b in batches]]  # fmt: skip
    cpu = bench.get("method", {}).get("cpu", "this CPU")
    return (
        f"# make demo: the trade-off\n\nTest split of rt-polarity (1,057 snippets), `edgept eval` on each bundle; latency "
        f"from one interleaved `edgept bench` run on {cpu} (ratios are the stable part: timings on a shared machine move).\n\n"
        "| " + " | ".join(head) + " |\n|" + "---|" * len(head) + "\n" + "\n".join(rows) + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("demo", type=Path, help="The demo's output directory (out/demo).")
    args = parser.parse_args()
    text = table(args.demo)
    atomic_write_text(args.demo / "table.md", text)
    print(text)


if __name__ == "__main__":
    main()
