"""Time TinyBERT augmentation (`edgept distill --augment N`) on a real teacher and data set.

    .venv/bin/python scripts/benchmarks/distill_augment.py --teacher minilm --data rt-polarity --copies 20 --threads 2

Measures WordAugmenter.augment over the train split of the shared split (wall clock, one run,
after loading the model and data) and prints the counts, the seconds and a few examples.
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default="minilm")
    parser.add_argument("--data", default="rt-polarity")
    parser.add_argument("--copies", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    from edgept.compress.distill import AugmentConfig, WordAugmenter
    from edgept.data import DataConfig, load_splits
    from edgept.models.hf import load_model
    from edgept.preprocess import TextPreprocessor
    from edgept.zoo import resolve

    torch.set_num_threads(args.threads)
    source = resolve(args.teacher)
    teacher = load_model(source)
    tokenizer = TextPreprocessor.from_checkpoint(source).tokenizer
    texts = list(load_splits(DataConfig(source=args.data)).train.items)
    augmenter = WordAugmenter(teacher, tokenizer, AugmentConfig(copies=args.copies, seed=args.seed))
    started = time.perf_counter()
    groups = augmenter.augment(texts)
    seconds = time.perf_counter() - started
    result = {
        "teacher": str(source),
        "path": "mlm" if augmenter.use_mlm else "embedding neighbours",
        "data": args.data,
        "sentences": len(texts),
        "copies": args.copies,
        "augmented_sentences": sum(len(g) for g in groups),
        "threads": args.threads,
        "seconds": round(seconds, 1),
        "torch": torch.__version__,
    }
    print(json.dumps(result, indent=2))
    for group in groups[:2]:
        print("\n".join(group[:4]))


if __name__ == "__main__":
    main()
