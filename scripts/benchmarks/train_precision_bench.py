"""Training steps/s of the `mini` masked-LM BERT in fp32 and under bf16 autocast, alternated in one
run so machine noise hits both alike (docs/pretrain.md quotes it).

    .venv/bin/python scripts/benchmarks/train_precision_bench.py --threads 2
"""

from __future__ import annotations

import argparse
import time

import torch

from edgept.models import BertConfig, build_model
from edgept.train.pretrain.mlm import IGNORE, MLMObjective
from edgept.train.pretrain.run import PRESETS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--length", type=int, default=64)
    ap.add_argument("--steps", type=int, default=30, help="timed steps per round (after 5 untimed)")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = BertConfig(**PRESETS["mini"], vocab_size=8000, max_position=args.length, task="masked-lm", pooler=False, pad_token_id=0)
    objective = MLMObjective(build_model(config))
    opt = torch.optim.AdamW(objective.parameters(), lr=1e-4)
    shape = (args.batch_size, args.length)
    ids = torch.randint(5, config.vocab_size, shape)
    batch = {
        "input_ids": ids,
        "attention_mask": torch.ones(shape, dtype=torch.long),
        "token_type_ids": torch.zeros(shape, dtype=torch.long),
        "labels": torch.where(torch.rand(shape) < 0.15, ids, torch.full_like(ids, IGNORE)),
    }

    def step(bf16: bool) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, _ = objective(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()

    rates: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for _ in range(args.rounds):
        for name in rates:
            for _ in range(5):
                step(name == "bf16")
            started = time.perf_counter()
            for _ in range(args.steps):
                step(name == "bf16")
            rates[name].append(args.steps / (time.perf_counter() - started))
    fp32, bf16 = (sum(r) / len(r) for r in rates.values())
    print(f"mini MLM, batch {args.batch_size} x {args.length}, {args.threads} threads: fp32 {fp32:.2f} steps/s, bf16 {bf16:.2f} steps/s ({bf16 / fp32:.2f}x)")


if __name__ == "__main__":
    main()
