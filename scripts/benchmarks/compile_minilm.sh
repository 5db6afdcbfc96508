#!/usr/bin/env bash
# edgept compile on MiniLM-L6 (out/minilm.edgept): CPU targets int8 vs the edgept quantize bundles vs fp32
# in ONE interleaved bench run, plus the Jetson Orin Nano int8 (Q/DQ) and fp16 bundles' parity with fp32.
# Results: docs/results/compile-minilm.{json,png} (bench) and the compile passes' metrics printed below.
# Needs out/minilm.dyn.edgept and out/minilm.static.edgept (edgept quantize --mode int8-dynamic / int8-static
# --calibration calibration/rt-polarity-256); re-export the source with `edgept export minilm -o out/minilm.edgept`.
set -euo pipefail
cd "$(dirname "$0")/../.."
E=.venv/bin/edgept
mkdir -p out/compile docs/results
[ -d out/minilm.edgept ] || $E export minilm -o out/minilm.edgept
for t in cpu-x86_64 cpu-x86_64-vnni; do
  $E compile out/minilm.edgept --target "$t" -o "out/compile/minilm.$t.edgept" --force
done
for p in int8 fp16; do
  $E compile out/minilm.edgept --target jetson-orin-nano --precision "$p" -o "out/compile/minilm.orin-$p.edgept" --force
done
$E bench out/minilm.edgept out/minilm.dyn.edgept out/minilm.static.edgept \
  out/compile/minilm.cpu-x86_64.edgept out/compile/minilm.cpu-x86_64-vnni.edgept \
  --batch 1,8 --seq 128 --threads 2 --warmup 5 --runs 40 --rounds 8 --no-memory \
  --json docs/results/compile-minilm.json --plot docs/results/compile-minilm.png
.venv/bin/python - <<'PY'
import json, time
from edgept.bundle import Bundle
from edgept.runtime import load
for name in ("minilm.edgept", "minilm.dyn.edgept", "minilm.static.edgept", "compile/minilm.cpu-x86_64.edgept",
             "compile/minilm.cpu-x86_64-vnni.edgept"):
    b = Bundle.open(f"out/{name}")
    best = min((lambda t: (load(b), time.perf_counter() - t)[1])(time.perf_counter()) for _ in range(3))
    print(f"load {name}: {best:.3f} s (best of 3, edgept.runtime.load, hashes verified before)")
for p in ("int8", "fp16"):
    m = Bundle.open(f"out/compile/minilm.orin-{p}.edgept").passes[-1]["metrics"]["vs_fp32"]
    print(f"jetson-orin-nano {p}:", json.dumps(m))
PY
