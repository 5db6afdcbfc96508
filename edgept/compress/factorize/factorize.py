"""ALBERT-style factorization of a trained BERT: `factorize(model, FactorizeConfig(...))`.

Three independent torch -> torch transforms, each initialised from the trained weights so the
result starts close to the original (recovery distillation then closes the gap):
- embedding factorization: V×H word embeddings -> V×E and E×H (`edgept.compress.factorize.embedding`);
- cross-layer sharing: layers in a group run one set of weights (`edgept.compress.factorize.sharing`);
- low-rank feed-forward: each FFN matrix -> a rank-r product (truncated SVD), a `LowRankLinear`.

Factorized and shared models save as standard Hugging Face ALBERT checkpoints; a low-rank FFN has
no HF equivalent, so such a model is exported (`edgept.export`) rather than saved.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from edgept.compress.factorize import svd
from edgept.compress.factorize.config import FactorizeConfig
from edgept.compress.factorize.embedding import embedding_spectrum, factorize_embeddings, word_energy
from edgept.compress.factorize.sharing import share_layers
from edgept.compress.output import check_output, write_checkpoint_with_report
from edgept.errors import ConfigError
from edgept.models import BertConfig, build_model, parameter_breakdown

REPORT_FILE = "factorize_report.json"
_FFN = re.compile(r"^(encoder\.blocks\.\d+\.ffn\.(?:up|down))\.weight$")


@dataclass(frozen=True, kw_only=True)
class FactorizeReport:
    """What `factorize` did: unique parameters before/after, and what each part kept."""

    params_before: int
    params_after: int
    embedding_size: int | None = None
    embedding_energy: float | None = None  # retained energy of the truncated matrix (edgept.compress.embedding)
    word_energy: float | None = None  # of which: retained fraction of the centred word embeddings' energy
    groups: int | None = None
    share_init: str | None = None
    ffn_rank: int | None = None
    ffn_energy: float | None = None  # the lowest retained fraction over all FFN matrices

    @property
    def drop(self) -> float:
        """Fraction of the parameters removed."""
        return 1.0 - self.params_after / self.params_before

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "drop": self.drop}


def _check_model(model: nn.Module, config: FactorizeConfig) -> BertConfig:
    cfg = getattr(model, "config", None)
    if not isinstance(cfg, BertConfig):
        raise ConfigError(f"factorize needs an edgept BERT (from load_model or build_model), got {type(model).__name__}")
    wants_embedding = config.embedding_size is not None or config.embedding_energy is not None
    if wants_embedding and cfg.factorized:
        raise ConfigError(f"the model's embeddings are already factorized (embedding_size={cfg.emb_size}); factorize the original BERT")
    if wants_embedding and cfg.task == "masked-lm":
        raise ConfigError(
            "embedding factorization of a masked-lm model is not supported (its decoder is tied to the word embeddings); "
            "load it with task='feature-extraction' first"
        )
    if config.embedding_size is not None and config.embedding_size > cfg.hidden_size:
        raise ConfigError(
            f"embedding_size {config.embedding_size} is larger than hidden_size {cfg.hidden_size}; use 2..{cfg.hidden_size - 1}"
        )
    if config.share != "none" and cfg.shared:
        raise ConfigError(f"the model already shares layers ({cfg.groups} groups of {cfg.num_layers}); share the original BERT")
    if config.ffn_rank is not None and config.ffn_rank > min(cfg.hidden_size, cfg.intermediate_size):
        top = min(cfg.hidden_size, cfg.intermediate_size)
        raise ConfigError(f"ffn_rank {config.ffn_rank} exceeds min(hidden_size, intermediate_size) = {top}; use 1..{top}")
    if cfg.ffn_rank is not None and (config.ffn_rank is not None or config.ffn_energy is not None):
        raise ConfigError(f"the model's FFN is already low-rank (ffn_rank={cfg.ffn_rank})")
    return cfg


def _factorize_ffn(state: dict[str, Tensor], config: FactorizeConfig) -> tuple[int, float]:
    """Every FFN matrix in `state` -> LowRankLinear factors (in place); the rank and the lowest
    retained energy."""
    names = [m[1] for n in state if (m := _FFN.match(n))]
    spectra = {n: torch.linalg.svdvals(state[f"{n}.weight"].to(torch.float64)).square() for n in names}
    rank = config.ffn_rank
    if rank is None:
        assert config.ffn_energy is not None
        rank = max(svd.rank_for_energy(s, config.ffn_energy) for s in spectra.values())
    for n in names:
        w = state.pop(f"{n}.weight")
        a, b, _ = svd.low_rank_factors(w, rank)
        state[f"{n}.a.weight"], state[f"{n}.b.weight"] = a.to(w.dtype), b.to(w.dtype)
        state[f"{n}.b.bias"] = state.pop(f"{n}.bias")
    return rank, min(svd.retained(s, rank) for s in spectra.values())


def factorize(model: nn.Module, config: FactorizeConfig) -> tuple[nn.Module, FactorizeReport]:
    """A factorized copy of the edgept BERT `model` (left unchanged) and what it cost.

    Deterministic (no random init: every weight of the result comes from `model`). The copy is
    in the same train/eval mode and dtype. `embedding_size == hidden_size` is allowed here as the
    exact identity (the same function in ALBERT's layout); see `factorize_checkpoint` for files.
    """
    cfg = _check_model(model, config)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    changes: dict[str, Any] = {}
    report: dict[str, Any] = {}
    if config.embedding_size is not None or config.embedding_energy is not None:
        spectrum = embedding_spectrum(state, cfg.hidden_size)
        size = config.embedding_size
        if size is None:  # E carries E-1 directions (embedding.py): E = k + 1
            size = min(svd.rank_for_energy(spectrum.sigma2, config.embedding_energy) + 1, cfg.hidden_size)
        report.update(
            embedding_size=size, embedding_energy=spectrum.energy(size), word_energy=word_energy(state, spectrum, size)
        )
        factorize_embeddings(state, cfg, size, spectrum)
        changes.update(embedding_size=size, embedding_projection=True)
    groups = config.groups(cfg.num_layers)
    if groups is not None:
        share_layers(state, cfg.num_layers, groups, config.share_init)
        changes["num_groups"] = groups
        report.update(groups=groups, share_init=config.share_init)
    if config.ffn_rank is not None or config.ffn_energy is not None:
        report["ffn_rank"], report["ffn_energy"] = _factorize_ffn(state, config)
        changes["ffn_rank"] = report["ffn_rank"]
    new_cfg = cfg.replace(**changes)
    with torch.device("meta"):  # every weight comes from `state`: skip the random init
        new = build_model(new_cfg)
    new.load_state_dict(state, strict=True, assign=True)
    new.train(model.training)
    before, after = parameter_breakdown(model)["total"], parameter_breakdown(new)["total"]
    return new, FactorizeReport(params_before=before, params_after=after, **report)


def load_factorized(source: str | os.PathLike, config: FactorizeConfig) -> tuple[nn.Module, FactorizeReport]:
    """The HF checkpoint dir `source`, loaded and factorized into a model that saves as an HF
    ALBERT checkpoint (`factorize_checkpoint`, and `edgept.compress.recover` before training).

    Unlike `factorize`, an embedding size of hidden_size or more is refused: it adds an H×H
    projection and saves nothing. A low-rank FFN saves in edgept's own checkpoint layout
    (`edgept.models.hf.native`: Hugging Face has no such layer).
    """
    from edgept.models.hf import load_model, read_config

    cfg = read_config(source)
    if config.embedding_size is not None and config.embedding_size >= cfg.hidden_size:
        raise ConfigError(
            f"embedding_size {config.embedding_size} must be below hidden_size {cfg.hidden_size} to save anything; "
            f"use 2..{cfg.hidden_size - 1}"
        )
    model, report = factorize(load_model(source), config)
    if report.embedding_size is not None and report.embedding_size >= cfg.hidden_size:
        raise ConfigError(
            f"embedding_energy {config.embedding_energy} needs E = {report.embedding_size} = hidden_size: nothing to save; "
            "lower the fraction"
        )
    return model, report


def report_json(config: FactorizeConfig, report: FactorizeReport) -> str:
    """The factorize_report.json written beside a factorized checkpoint."""
    return _json({"config": config.to_dict(), **report.to_dict()})


def factorize_checkpoint(
    source: str | os.PathLike, dest: str | os.PathLike, config: FactorizeConfig, *, overwrite: bool = False
) -> FactorizeReport:
    """Factorize the HF checkpoint directory `source` into `dest`: an HF ALBERT checkpoint (edgept's
    own layout with low-rank FFNs; its tokenizer files copied) plus `factorize_report.json`,
    written atomically (see `load_factorized` for what is refused)."""
    source, dest = Path(source), Path(dest)
    check_output(dest, overwrite)
    model, report = load_factorized(source, config)
    write_checkpoint_with_report(model, source, dest, REPORT_FILE, report_json(config, report))
    return report


def _json(d: dict[str, Any]) -> str:
    return json.dumps(d, indent=2, sort_keys=True) + "\n"


__all__ = ["FactorizeConfig", "FactorizeReport", "factorize", "factorize_checkpoint", "load_factorized"]
