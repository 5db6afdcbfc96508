"""Pre-training results: does edgept's pre-training help? -> docs/results/pretrain.{md,json}

(a) held-out MLM perplexity of a `mini` BERT pre-trained on Jane Austen's novels, by step;
(b) that BERT fine-tuned on rt-polarity vs the same architecture (same tokenizer) from random
    initialisation, with the same fine-tuning budget, and a linear probe of both arms' frozen
    features (does pre-training put anything about the task into them?);
(c) a `tiny` ViT pre-trained by MAE on Fashion-MNIST's training split, fine-tuned vs random init
    at equal fine-tuning steps.

    .venv/bin/python scripts/pretrain_results.py            # both parts
    .venv/bin/python scripts/pretrain_results.py --parts vit

Fine-tuning runs on 1 torch thread (BERT pre-training on every core). Work goes to --work
(re-running resumes finished or interrupted runs); each part's numbers are merged into the JSON,
and the markdown is rewritten from it. On a multi-core machine, once BERT is pre-trained, the
fine-tunes of (b) can run one process per rate side by side, and the full script then reuses them:

    .venv/bin/python scripts/pretrain_results.py --rate 2e-4 & .venv/bin/python scripts/pretrain_results.py --rate 5e-4
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

# 300 MLM steps at lr 5e-4 on Austen alone left held-out perplexity at 381 and a 200-step
# fine-tune of either arm near chance; 1500 steps at 1e-3 with rt-polarity's train texts reached
# 310 and fine-tuned 2.9 points below random init. 8000 steps leave the plateau near 300 (a
# unigram model: 615; perplexity 295 at step 4000, 76 at 8000; 78 min on one thread beside other
# jobs) and still fine-tune below random init. A 10000-step schedule at 1e-3 or 4e-4 (to step
# 6000 and 5000) or batch 16 (to step 7000) had not left it; sinusoidal positions broke no
# earlier by step 1500 (docs/pretrain.md). bf16 autocast runs 1.65x the steps/s: 18000 steps took
# 96 min on both cores, left the plateau at about 5500 and reached 28.9, and fine-tuned 2.3 points
# below random init with each arm's rate chosen on dev after 2 fine-tuning epochs, where all 18
# runs (three rates) still had their best dev accuracy at the last evaluation; 4 epochs (Turc et
# al.'s recipe for small BERTs) let both arms finish, and pre-training wins by 1.9 (bf16 fine-tuning
# only for speed). MAE's 2000 steps already help.
BERT_CORPUS = ("austen", "rt-polarity")  # rt-polarity: its train-split texts only (edgept.data.corpus)
BERT_PRE = dict(lr=1e-3, max_steps=18000, batch_size=32, eval_every=1000, warmup=0.04, precision="bf16")
BERT_FT = dict(epochs=4.0, batch_size=32, warmup=0.1, precision="bf16")
BERT_FT_RATES = (2e-4, 5e-4)
VIT_PRE = dict(lr=1e-3, max_steps=2000, batch_size=128, warmup=0.05, weight_decay=0.05)
VIT_FT = dict(lr=1e-3, max_steps=300, batch_size=64, warmup=0.1)
MAX_LENGTH = 64


def _finetune(model_dir: Path, data: str, out: Path, train: dict, seed: int, max_length: int = MAX_LENGTH) -> dict:
    from edgept.data import DataConfig
    from edgept.train import TrainConfig
    from edgept.train.finetune import METRICS_FILE, finetune

    config = TrainConfig(**train, seed=seed)
    if (out / METRICS_FILE).is_file():
        m = json.loads((out / METRICS_FILE).read_text())
        if m["train"] != config.to_dict():
            raise SystemExit(f"{out} holds a fine-tune with other settings; move it away or pass another --work")
        return m
    return finetune(model_dir, DataConfig(source=data), out, config, max_length=max_length, resume=(out / "checkpoints").exists(), progress=False)


def _finished(out: Path, train: dict) -> dict | None:
    """The metrics of a pre-training run already finished in `out` with these training settings
    (so re-running the script for the markdown does not touch it), else None."""
    path = out / "metrics.json"
    if not path.is_file():
        return None
    m = json.loads(path.read_text())
    return m if all(m["train"].get(k) == v for k, v in train.items()) else None


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


ARMS = ("pretrained", "random")


def _rate_dir(work: Path, ft: dict, lr: float) -> Path:
    """Where one peak rate's runs of a fine-tuning recipe go: named by the budget too, so runs of an
    earlier recipe are kept beside them rather than mistaken for them."""
    return work / f"{ft['epochs']:g}ep-lr-{lr:g}"


def _mean(runs: list[dict], arm: str, split: str) -> float:
    return sum(r[arm][split] for r in runs) / len(runs)


def _compare_rates(work: Path, pretrained: Path, config, source: Path, data: str, ft: dict, rates: tuple[float, ...], seeds: list[int]) -> dict:
    """Both arms fine-tuned at every peak rate in `rates` (the rest of `ft` fixed), each over `seeds`.
    Each arm keeps the rate with its best mean dev accuracy, as a user tuning either model would; the
    margin is between the kept rates' mean test accuracies."""
    by_rate = {f"{lr:g}": _compare(_rate_dir(work, ft, lr), pretrained, config, source, data, {**ft, "lr": lr}, seeds) for lr in rates}
    chosen = {arm: max(by_rate, key=lambda r, arm=arm: _mean(by_rate[r]["runs"], arm, "dev")) for arm in ARMS}
    test = {arm: _mean(by_rate[chosen[arm]]["runs"], arm, "test") for arm in ARMS}
    return {"finetune": ft, "rates": by_rate, "chosen": chosen, "mean_test": test, "margin": test["pretrained"] - test["random"]}


PROBE_TRAIN = 4000  # training-split examples the linear probe fits on


def _mean_pooled_features(model_dir: Path, examples: list) -> list:
    """Mean-pooled (over real tokens) hidden states of every layer, embeddings first: (N, hidden) each."""
    import torch

    from edgept.data.collate import collate_for
    from edgept.models.hf import load_model

    model = load_model(model_dir)
    collate = collate_for(model_dir, model.config, "text", MAX_LENGTH)
    layers: list[list] = []
    with torch.no_grad():
        for i in range(0, len(examples), 128):
            batch = collate(examples[i : i + 128])
            out = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"], output_hidden_states=True)
            keep = batch["attention_mask"].unsqueeze(-1).float()
            layers = layers or [[] for _ in out.hidden_states]
            for chunks, h in zip(layers, out.hidden_states, strict=True):
                chunks.append((h * keep).sum(1) / keep.sum(1))
    return [torch.cat(chunks) for chunks in layers]


def _probe_accuracy(x_train, y_train, x_dev, y_dev) -> float:
    """Dev accuracy of an L2-regularised logistic regression (L-BFGS) on standardised frozen features."""
    import torch

    mu, sd = x_train.mean(0), x_train.std(0) + 1e-6
    x_train, x_dev = (x_train - mu) / sd, (x_dev - mu) / sd
    w = torch.zeros(x_train.shape[1], int(y_train.max()) + 1, requires_grad=True)
    b = torch.zeros(w.shape[1], requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=200)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(x_train @ w + b, y_train) + 1e-2 * (w**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return float(((x_dev @ w + b).argmax(1) == y_dev).float().mean())


def linear_probe(arms: dict[str, Path], data: str) -> dict[str, list[float]]:
    """Per arm, the dev accuracy of a linear probe on each layer's frozen mean-pooled features:
    whether pre-training put anything about the task into the representations before fine-tuning."""
    import numpy as np
    import torch

    from edgept.data import DataConfig, load_splits

    splits = load_splits(DataConfig(source=data))
    order = np.random.default_rng(0).permutation(len(splits.train))[:PROBE_TRAIN]  # the train split is sorted by class
    train = [splits.train[int(i)] for i in order]
    dev = [splits.dev[i] for i in range(len(splits.dev))]
    y_train, y_dev = torch.tensor([t for _, t in train]), torch.tensor([t for _, t in dev])
    result = {}
    for name, model_dir in arms.items():
        pairs = zip(_mean_pooled_features(model_dir, train), _mean_pooled_features(model_dir, dev), strict=True)
        result[name] = [_probe_accuracy(a, y_train, b, y_dev) for a, b in pairs]
    return result


def _bert_pretrained(work: Path) -> dict:
    """The metrics of the pre-trained `mini` BERT in work/bert-mini, pre-training it first if needed."""
    from edgept.train import TrainConfig
    from edgept.train.pretrain import BertPretrainConfig, Shape, pretrain_bert

    out = work / "bert-mini"
    config = BertPretrainConfig(shape=Shape(preset="mini"), max_length=MAX_LENGTH, vocab_size=8000)
    m = _finished(out, BERT_PRE)
    if m is None:
        import torch

        # Every core for the long run: on 2 cores batch-32 steps go 1.4x faster on 2 threads than on 1.
        threads = torch.get_num_threads()
        torch.set_num_threads(os.cpu_count() or 1)
        try:
            m = pretrain_bert(list(BERT_CORPUS), out, config, TrainConfig(**BERT_PRE, seed=0), resume=(out / "checkpoints").exists(), progress=False)
        finally:
            torch.set_num_threads(threads)
    return m


def _bert_comparison(work: Path, m: dict, seeds: list[int], rates: tuple[float, ...]) -> dict:
    """(b): the pre-trained BERT whose metrics are `m` against its random twin on rt-polarity."""
    from edgept.models import BertConfig

    out = work / "bert-mini"
    return _compare_rates(work / "bert", out / "model", BertConfig.from_dict(m["model"]), out / "tokenizer", "rt-polarity", BERT_FT, rates, seeds)


def bert_part(work: Path, seeds: list[int]) -> dict:
    out, m = work / "bert-mini", _bert_pretrained(work)
    comparison = _bert_comparison(work, m, seeds, BERT_FT_RATES)
    twin = _rate_dir(work / "bert", BERT_FT, BERT_FT_RATES[0]) / f"random-init-{seeds[0]}"
    probe = linear_probe({"pretrained": out / "model", "random": twin}, "rt-polarity")
    return {"pretrain": {k: m[k] for k in ("blocks", "params", "steps", "held_out_perplexity", "seconds", "train")},
            "rt_polarity": comparison, "probe": probe}  # fmt: skip


def vit_part(work: Path, seeds: list[int]) -> dict:
    from edgept.models import ViTConfig
    from edgept.train import TrainConfig
    from edgept.train.pretrain import Shape, ViTPretrainConfig, pretrain_vit

    out = work / "vit-tiny-mae"
    config = ViTPretrainConfig(objective="mae", shape=Shape(preset="tiny"), patch_size=4)
    m = _finished(out, VIT_PRE) or pretrain_vit(
        "fashion-mnist", out, config, TrainConfig(**VIT_PRE, seed=0), resume=(out / "checkpoints").exists(), progress=False
    )
    comparison = _compare(work / "vit", out / "model", ViTConfig.from_dict(m["model"]), out / "preprocessor", "fashion-mnist", VIT_FT, seeds)
    return {"pretrain": {k: m[k] for k in ("params", "steps", "held_out_mae_loss", "seconds", "train")}, "fashion_mnist": comparison}


def _markdown(r: dict) -> str:
    loads = ", ".join(f"{part} {r[part]['load']}" for part in ("bert", "vit") if part in r)
    lines = [
        "# Pre-training: does it help?",
        "",
        "Produced by `scripts/pretrain_results.py` (re-run: `make bench-pretrain`). CPU, 1 torch thread per "
        "fine-tuning run (BERT pre-training: every core), "
        "on a 2-core machine shared with other jobs (each part's 1-/5-/15-min load average when it started is in "
        f"pretrain.json: {loads}; runs the script finds finished in --work are reused, "
        "so their timings are from when they ran). Fine-tuning uses the shared "
        "seeded split of `edgept.data` and edgept's own `finetune`; accuracy is on the held-out test split.",
        "",
    ]
    if "bert" in r:
        b = r["bert"]
        p = b["pretrain"]
        lines += [
            "## (a) Held-out MLM perplexity falls during pre-training",
            "",
            f"`mini` BERT (4 layers x 256, {p['params']['total'] / 1e6:.1f}M parameters) on Jane Austen's six novels plus "
            "rt-polarity's train-split sentences (labels dropped; never its dev or test split) "
            f"({p['blocks']['tokens']:,} WordPiece tokens, vocabulary 8,000 trained by edgept, blocks of {MAX_LENGTH}); "
            f"{p['blocks']['held_out']} blocks held out, masks fixed for evaluation; {p['steps']} steps x batch "
            f"{p['train']['batch_size']} in {p['seconds'] / 60:.1f} min.",
            "",
            f"    edgept pretrain bert {' '.join(f'--corpus {c}' for c in BERT_CORPUS)} --preset mini --max-length {MAX_LENGTH} \\",
            f"        --vocab-size 8000 {_flags(BERT_PRE)} -o out/pretrain-results/bert-mini",
            "",
            "| step | held-out perplexity |",
            "|---:|---:|",
            *[f"| {c['step']} | {c['perplexity']:.1f} |" for c in p["held_out_perplexity"]],
            "",
        ]
        lines += _rates_md(b["rt_polarity"], f"edgept finetune out/pretrain-results/bert-mini/model --data rt-polarity --lr LR "
                                             f"{_flags(BERT_FT)} --max-length {MAX_LENGTH} --seed SEED")  # fmt: skip
        if "probe" in b:
            pr = b["probe"]
            lines += [
                "### Linear probe: what the frozen features know about the task",
                "",
                f"Dev accuracy of a logistic regression on each layer's frozen mean-pooled features ({PROBE_TRAIN:,} "
                "training examples, standardised, L2 1e-2): a pre-trained encoder that helps fine-tuning should beat the "
                "random one here before any fine-tuning.",
                "",
                "| arm | " + " | ".join(["embeddings"] + [f"layer {i}" for i in range(1, len(pr["pretrained"]))]) + " |",
                "|---|" + "---:|" * len(pr["pretrained"]),
                *[f"| {arm} | " + " | ".join(f"{100 * a:.1f}" for a in accs) + " |" for arm, accs in pr.items()],
                "",
            ]
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
            "    edgept pretrain vit --data fashion-mnist --objective mae --preset tiny --patch-size 4 \\",
            f"        {_flags(VIT_PRE)} -o out/pretrain-results/vit-tiny-mae",
            "",
        ]
        lines += _comparison_md("Fine-tuning", v["fashion_mnist"],
                                f"edgept finetune out/pretrain-results/vit-tiny-mae/model --data fashion-mnist {_flags(VIT_FT)}")  # fmt: skip
    return "\n".join(lines) + "\n"


def _flags(train: dict) -> str:
    """A TrainConfig dict as the CLI flags that set it (--seed per run, so left out)."""
    return " ".join(f"--{k.replace('_', '-')} {v:g}" if isinstance(v, int | float) else f"--{k.replace('_', '-')} {v}" for k, v in train.items())


def _rates_md(c: dict, command: str) -> list[str]:
    ft, chosen, test = c["finetune"], c["chosen"], c["mean_test"]
    rates = ", ".join(c["rates"])
    lines = [
        "## (b) rt-polarity: pre-trained `mini` BERT vs random initialisation",
        "",
        f"Both arms: the same architecture and tokenizer, {ft['epochs']:g} epochs x batch {ft['batch_size']}, warm-up "
        f"{ft['warmup']}, the best dev evaluation kept; the random arm is the same config saved freshly initialised. "
        f"Each arm is fine-tuned at every peak rate in {{{rates}}} with each seed and keeps the rate with its best mean "
        "dev accuracy; the margin compares the kept rates' mean test accuracy.",
        "",
        f"    {command}",
        "",
        "| lr | seed | pre-trained dev | pre-trained test | random-init dev | random-init test |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for rate, r in c["rates"].items():
        lines += [f"| {rate} | {x['seed']} | {x['pretrained']['dev']:.4f} | {x['pretrained']['test']:.4f} | {x['random']['dev']:.4f} | "
                  f"{x['random']['test']:.4f} |" for x in r["runs"]]  # fmt: skip
        runs = r["runs"]
        if len(runs) > 1:
            lines.append(f"| {rate} | mean | {_mean(runs, 'pretrained', 'dev'):.4f} | {_mean(runs, 'pretrained', 'test'):.4f} | "
                         f"{_mean(runs, 'random', 'dev'):.4f} | {_mean(runs, 'random', 'test'):.4f} |")  # fmt: skip
    paired = [100 * (x["pretrained"]["test"] - x["random"]["test"]) for r in c["rates"].values() for x in r["runs"]]
    return lines + [
        "",
        f"At equal rate and seed the pre-trained arm is ahead on test in {sum(m > 0 for m in paired)} of {len(paired)} "
        f"pairs (margins {min(paired):+.1f} to {max(paired):+.1f} points). "
        f"Kept on dev: lr {chosen['pretrained']} for the pre-trained arm (mean test {100 * test['pretrained']:.2f}), lr "
        f"{chosen['random']} for random init (mean test {100 * test['random']:.2f}). Test-accuracy margin of pre-training: "
        f"**{100 * c['margin']:+.1f} points**.",
        "",
    ]


def _comparison_md(title: str, c: dict, command: str) -> list[str]:
    ft = c["finetune"]
    budget = f"{ft['max_steps']} steps" if "max_steps" in ft else f"{ft['epochs']:g} epochs"
    return [
        f"### {title}",
        "",
        f"Both arms: the same architecture and tokenizer/preprocessor, {budget} x batch {ft['batch_size']}, "
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
    ap.add_argument("--seeds", default="0,1,2", help="fine-tuning seeds, comma-separated")
    ap.add_argument("--work", type=Path, default=Path("out/pretrain-results"))
    ap.add_argument("--docs", type=Path, default=Path("docs/results"))
    ap.add_argument("--rate", type=float, help="only (b)'s fine-tunes at this one peak rate, for running rates side by side; writes no results")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.rate is not None:
        m = _finished(args.work / "bert-mini", BERT_PRE)
        if m is None:
            raise SystemExit("--rate needs the pre-trained BERT: run the script with --parts bert first")
        print(json.dumps(_bert_comparison(args.work, m, seeds, (args.rate,))["rates"], indent=1))
        return
    from edgept.fileio import atomic_write_text

    path = args.docs / "pretrain.json"
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    parts = {"vit": vit_part, "bert": bert_part}
    for name in args.parts.split(","):
        started = time.perf_counter()
        part = parts[name](args.work, seeds)
        part["wall_seconds"], part["load"] = round(time.perf_counter() - started, 1), load
        # Read just before writing: a part run in another process at the same time keeps its numbers.
        results = json.loads(path.read_text()) if path.is_file() else {}
        results.update({name: part}, python=platform.python_version(), torch=torch.__version__)
        args.docs.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(results, indent=2) + "\n")
        atomic_write_text(args.docs / "pretrain.md", _markdown(results))
        print(f"{name}: done in {results[name]['wall_seconds']:.0f} s", flush=True)


if __name__ == "__main__":
    main()
