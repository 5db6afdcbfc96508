"""Pre-training results: does edgept's pre-training help? -> docs/results/pretrain.{md,json}

(a) held-out MLM perplexity of a `mini` BERT pre-trained on Jane Austen's novels, by step;
(b) that BERT fine-tuned on rt-polarity vs the same architecture (same tokenizer) from random
    initialisation, with the same fine-tuning budget;
(c) a `tiny` ViT pre-trained by MAE on Fashion-MNIST's training split, fine-tuned vs random init
    at equal fine-tuning steps.

    nice -n 10 .venv/bin/python scripts/pretrain_results.py            # both parts
    nice -n 10 .venv/bin/python scripts/pretrain_results.py --parts vit

Runs on 1 torch thread. Work goes to --work (re-running resumes finished or interrupted runs);
each part's numbers are merged into the JSON, and the markdown is rewritten from it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

BERT_PRE = dict(lr=5e-4, max_steps=300, batch_size=32, eval_every=50, warmup=0.1)
BERT_FT = dict(lr=1e-4, max_steps=200, batch_size=32, warmup=0.1)
VIT_PRE = dict(lr=1e-3, max_steps=400, batch_size=128, warmup=0.1, weight_decay=0.05)
VIT_FT = dict(lr=1e-3, max_steps=300, batch_size=64, warmup=0.1)
MAX_LENGTH = 64


def _finetune(model_dir: Path, data: str, out: Path, train: dict, seed: int, max_length: int = MAX_LENGTH) -> dict:
    from edgept.data import DataConfig
    from edgept.train import TrainConfig
    from edgept.train.finetune import METRICS_FILE, finetune

    if (out / METRICS_FILE).is_file():
        return json.loads((out / METRICS_FILE).read_text())
    config = TrainConfig(**train, seed=seed)
    return finetune(model_dir, DataConfig(source=data), out, config, max_length=max_length, resume=(out / "checkpoints").exists(), progress=False)


def _random_twin(model_config, source: Path, out: Path, seed: int) -> Path:
    """The pre-trained model's architecture, freshly initialised, with the same tokenizer/preprocessor."""
    import torch

    from edgept.models import build_model
    from edgept.models.hf import save_model

    torch.manual_seed(seed)
    return save_model(build_model(model_config), out, source=source, overwrite=True)


def _compare(work: Path, pretrained: Path, config, source: Path, data: str, ft: dict, seeds: list[int], **kw) -> dict:
    rows = []
    for seed in seeds:
        random_dir = _random_twin(config, source, work / f"random-init-{seed}", seed)
        pre = _finetune(pretrained, data, work / f"ft-pretrained-{seed}", ft, seed, **kw)
        rnd = _finetune(random_dir, data, work / f"ft-random-{seed}", ft, seed, **kw)
        rows.append({
            "seed": seed,
            "pretrained": {"dev": pre["dev"]["accuracy"], "test": pre["test"]["accuracy"], "seconds": pre["seconds"]},
            "random": {"dev": rnd["dev"]["accuracy"], "test": rnd["test"]["accuracy"], "seconds": rnd["seconds"]},
        })  # fmt: skip
    margin = sum(r["pretrained"]["test"] - r["random"]["test"] for r in rows) / len(rows)
    return {"finetune": ft, "runs": rows, "mean_test_margin": margin}


def bert_part(work: Path, seeds: list[int]) -> dict:
    from edgept.models import BertConfig
    from edgept.train import TrainConfig
    from edgept.train.pretrain import BertPretrainConfig, Shape, pretrain_bert

    out = work / "bert-mini-austen"
    config = BertPretrainConfig(shape=Shape(preset="mini"), max_length=MAX_LENGTH, vocab_size=8000)
    m = pretrain_bert(["austen"], out, config, TrainConfig(**BERT_PRE, seed=0), resume=(out / "checkpoints").exists(), progress=False)
    comparison = _compare(work / "bert", out / "model", BertConfig.from_dict(m["model"]), out / "tokenizer", "rt-polarity", BERT_FT, seeds)
    return {"pretrain": {k: m[k] for k in ("blocks", "params", "steps", "held_out_perplexity", "seconds", "train")}, "rt_polarity": comparison}


def vit_part(work: Path, seeds: list[int]) -> dict:
    from edgept.models import ViTConfig
    from edgept.train import TrainConfig
    from edgept.train.pretrain import Shape, ViTPretrainConfig, pretrain_vit

    out = work / "vit-tiny-mae"
    config = ViTPretrainConfig(objective="mae", shape=Shape(preset="tiny"), patch_size=4)
    m = pretrain_vit("fashion-mnist", out, config, TrainConfig(**VIT_PRE, seed=0), resume=(out / "checkpoints").exists(), progress=False)
    comparison = _compare(work / "vit", out / "model", ViTConfig.from_dict(m["model"]), out / "preprocessor", "fashion-mnist", VIT_FT, seeds)
    return {"pretrain": {k: m[k] for k in ("params", "steps", "held_out_mae_loss", "seconds", "train")}, "fashion_mnist": comparison}


def _markdown(r: dict) -> str:
    lines = [
        "# Pre-training: does it help?",
        "",
        "Produced by `scripts/pretrain_results.py` (re-run: `make bench-pretrain`). CPU, 1 torch thread, `nice -n 10`, "
        f"on a 2-core machine shared with other jobs (load average at the start: {r['load']}). Fine-tuning uses the shared "
        "seeded split of `edgept.data` and edgept's own `finetune`; accuracy is on the held-out test split. One seed per arm "
        "unless the table shows more.",
        "",
    ]
    if "bert" in r:
        b = r["bert"]
        p = b["pretrain"]
        lines += [
            "## (a) Held-out MLM perplexity falls during pre-training",
            "",
            f"`mini` BERT (4 layers x 256, {p['params']['total'] / 1e6:.1f}M parameters) on Jane Austen's six novels "
            f"({p['blocks']['tokens']:,} WordPiece tokens, vocabulary 8,000 trained by edgept, blocks of {MAX_LENGTH}); "
            f"{p['blocks']['held_out']} blocks held out, masks fixed for evaluation; {p['steps']} steps x batch "
            f"{p['train']['batch_size']} in {p['seconds'] / 60:.1f} min.",
            "",
            "    edgept pretrain bert --corpus austen --preset mini --max-length 64 --vocab-size 8000 --max-steps 300 \\",
            "        --batch-size 32 --lr 5e-4 --eval-every 50 -o out/pretrain-results/bert-mini-austen",
            "",
            "| step | held-out perplexity |",
            "|---:|---:|",
            *[f"| {c['step']} | {c['perplexity']:.1f} |" for c in p["held_out_perplexity"]],
            "",
        ]
        lines += _comparison_md("(b) rt-polarity: pre-trained `mini` BERT vs random initialisation", b["rt_polarity"],
                                "edgept finetune out/pretrain-results/bert-mini-austen/model --data rt-polarity --max-steps 200 --batch-size 32 --lr 1e-4 --max-length 64")  # fmt: skip
    if "vit" in r:
        v = r["vit"]
        p = v["pretrain"]
        lines += [
            "## (c) Fashion-MNIST: MAE-pre-trained `tiny` ViT vs random initialisation",
            "",
            f"`tiny` ViT (2 layers x 128, 28x28 grayscale, 4x4 patches, {p['params']['total'] / 1e6:.2f}M parameters), MAE with "
            f"75% of patches masked, a 1-layer 128-wide decoder, normalised-pixel targets; {p['steps']} steps x batch "
            f"{p['train']['batch_size']} on the training split in {p['seconds'] / 60:.1f} min; held-out (dev) reconstruction "
            f"loss {p['held_out_mae_loss']:.3f}.",
            "",
            "    edgept pretrain vit --data fashion-mnist --objective mae --preset tiny --patch-size 4 --max-steps 400 \\",
            "        --batch-size 128 --lr 1e-3 -o out/pretrain-results/vit-tiny-mae",
            "",
        ]
        lines += _comparison_md("Fine-tuning", v["fashion_mnist"],
                                "edgept finetune out/pretrain-results/vit-tiny-mae/model --data fashion-mnist --max-steps 300 --batch-size 64 --lr 1e-3")  # fmt: skip
    return "\n".join(lines) + "\n"


def _comparison_md(title: str, c: dict, command: str) -> list[str]:
    ft = c["finetune"]
    return [
        f"### {title}" if title == "Fine-tuning" else f"## {title}",
        "",
        f"Both arms: the same architecture and tokenizer/preprocessor, {ft['max_steps']} steps x batch {ft['batch_size']}, "
        f"lr {ft['lr']}, warm-up {ft['warmup']}; the random arm is the same config saved freshly initialised.",
        "",
        f"    {command}",
        "",
        "| seed | pre-trained dev | pre-trained test | random-init dev | random-init test | test margin |",
        "|---:|---:|---:|---:|---:|---:|",
        *[
            f"| {x['seed']} | {x['pretrained']['dev']:.4f} | {x['pretrained']['test']:.4f} | {x['random']['dev']:.4f} | "
            f"{x['random']['test']:.4f} | {100 * (x['pretrained']['test'] - x['random']['test']):+.1f} pts |"
            for x in c["runs"]
        ],
        "",
        f"Mean test-accuracy margin of pre-training: **{100 * c['mean_test_margin']:+.1f} points**.",
        "",
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="vit,bert", help="comma-separated: vit, bert")
    ap.add_argument("--seeds", default="0", help="fine-tuning seeds, comma-separated")
    ap.add_argument("--work", type=Path, default=Path("out/pretrain-results"))
    ap.add_argument("--docs", type=Path, default=Path("docs/results"))
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    from edgept.fileio import atomic_write_text

    seeds = [int(s) for s in args.seeds.split(",")]
    path = args.docs / "pretrain.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    results.update(load=" ".join(f"{x:.1f}" for x in os.getloadavg()), python=platform.python_version(), torch=torch.__version__)
    parts = {"vit": vit_part, "bert": bert_part}
    for name in args.parts.split(","):
        started = time.perf_counter()
        results[name] = parts[name](args.work, seeds)
        results[name]["wall_seconds"] = round(time.perf_counter() - started, 1)
        args.docs.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(results, indent=2) + "\n")
        atomic_write_text(args.docs / "pretrain.md", _markdown(results))
        print(f"{name}: done in {results[name]['wall_seconds']:.0f} s", flush=True)


if __name__ == "__main__":
    main()
