"""Peak memory of one variant, measured in a fresh process so the number belongs to that variant alone.

Method: the child imports the backend's libraries and loads the feeds, then records its current RSS
(the baseline: interpreter + libraries + inputs). It then builds the variant (loads the model, creates
the session) and makes a few calls at the given shape. Peak RSS minus the baseline is what loading and
running the model cost. Where Linux allows it, the child resets its RSS high-water mark right after the
baseline (/proc/self/clear_refs), so a transient spike during imports cannot hide a smaller model;
otherwise the peak is `resource.getrusage(RUSAGE_SELF).ru_maxrss`.

Run as: python -m edgept.bench.memprobe SPEC_JSON FEEDS_NPZ CALLS
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from edgept.bench.variants import VariantSpec, build_variant, preload

DEFAULT_CALLS = 5
METHOD = (
    "fresh process per variant: peak RSS while loading the model and running {calls} calls at the largest "
    "shape, minus RSS after importing the backend and loading the inputs"
)


def probe_memory(
    spec: VariantSpec, feeds: Mapping[str, np.ndarray], calls: int = DEFAULT_CALLS, timeout: float = 900
) -> float:
    """Run the variant described by `spec` in a child process on `feeds`; return the extra peak RSS in MB (MiB)."""
    with tempfile.TemporaryDirectory(prefix="edgept-memprobe-") as tmp:
        npz = Path(tmp) / "feeds.npz"
        np.savez(npz, **dict(feeds))
        env = dict(os.environ)
        # The child must import this same edgept, installed or not.
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        cmd = [
            sys.executable,
            "-m",
            "edgept.bench.memprobe",
            json.dumps(spec.to_dict()),
            str(npz),
            str(calls),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"memory probe for {spec.name!r} failed (exit {proc.returncode}):\n{tail}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return result["delta_kib"] / 1024


def _rss_kib() -> int:
    """Current resident set size in KiB."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


def _reset_peak() -> bool:
    """Reset the kernel's RSS high-water mark (Linux >= 4.0); False where not permitted."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_kib(reset: bool) -> int:
    if reset:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    # ru_maxrss is KiB on Linux (bytes on macOS, where /proc and this probe do not apply).
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main(argv: list[str]) -> int:
    spec = VariantSpec.from_dict(json.loads(argv[0]))
    calls = int(argv[2])
    preload(spec.kind)
    with np.load(argv[1], allow_pickle=False) as data:
        feeds = {k: data[k] for k in data.files}
    baseline = _rss_kib()
    reset = _reset_peak()
    call = build_variant(spec).factory(feeds)
    for _ in range(calls):
        call()
    peak = _peak_kib(reset)
    # Pages freed between the baseline and the reset can leave the peak a hair under the baseline.
    print(
        json.dumps(
            {
                "baseline_kib": baseline,
                "peak_kib": peak,
                "delta_kib": max(peak - baseline, 0),
                "hwm_reset": reset,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
