"""ALBERT's embedding factorization of a trained BERT: V×H word embeddings -> V×E and E×H.

BERT computes `LN_H(word + pos + type)`; ALBERT's layout computes `proj(LN_E(word_E + pos_E +
type_E))`. The mapping used here makes the second reproduce the first exactly on a subspace:

1. LayerNorm subtracts the feature mean, so it only sees the mean-free part of its input: the
   three tables are centred (rows minus their mean), which changes nothing downstream.
2. The basis is the principal directions (a truncated SVD, optimal by Eckart–Young) of the
   stacked centred tables [word/sqrt(V); position/sqrt(P); token_type/sqrt(T)]: each table
   weighted by its mean row energy, so the one token-type row that every token adds, and the
   positions, count as much as the word vocabulary. (Word embeddings alone leave the token-type
   and position vectors, which every input carries, mostly outside the kept subspace.)
3. LN_E also subtracts a mean, over E features, so E coordinates can carry only E-1 directions
   through it unchanged: the top E-1 directions are laid into the mean-free subspace of R^E
   (an orthonormal E×(E-1) basis). Mean removal is then a no-op and LN_E only rescales.
4. LN_E gets weight 1, bias 0; BERT's LayerNorm weight γ and bias β move into the projection
   (`diag(γ) · basis`, bias β). The E-space tables are scaled by sqrt(E/H) and the projection
   by sqrt(H/E), which makes LN_E's variance (and even its eps) equal LN_H's.

So the factorized embedding output is exactly `LN_H(Π x)`, Π the projection onto the kept E-1
directions; at E = H these span every mean-free vector and the model is unchanged (tested to
1e-5), and it saves as a standard HF ALBERT checkpoint.

Measured on all-MiniLM-L6-v2 before any recovery training (`scripts/benchmarks/
factorize_choices.py`: cosine of the last hidden states to the original, per token / of the
mean-pooled sentence embedding, 64 real sentences), against two ALBERT-shaped alternatives:
"plain" = rank-E SVD of the raw word embeddings with LN_E's mean left to act (steps 1-3
skipped), "words" = this layout with the basis from the centred word embeddings alone:

    E     plain           words           this            retained energy
    64    0.192 / 0.117   0.178 / 0.105   0.451 / 0.450   0.554
    128   0.262 / 0.180   0.242 / 0.161   0.647 / 0.669   0.728
    192   0.389 / 0.265   0.368 / 0.242   0.758 / 0.794   0.832
    384   0.999 / 0.999   exact           exact           1.0

Weighting positions and token types into the basis (step 2) is what matters (0.24 -> 0.65 at
E = 128); steps 1 and 3 cost at most one of E's directions and buy exactness at E = H.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from edgept.compress.factorize.svd import mean_free_basis, principal_basis, retained
from edgept.models.config import BertConfig

_TABLES = ("embeddings.word.weight", "embeddings.position.weight", "embeddings.token_type.weight")


@dataclass(frozen=True)
class Spectrum:
    """Principal directions (H, H-1) of the stacked tables and their squared singular values."""

    basis: Tensor
    sigma2: Tensor

    def energy(self, embedding_size: int) -> float:
        """Energy an E-dim factorization keeps: E-1 directions pass through LN_E (module doc)."""
        return retained(self.sigma2, embedding_size - 1)


def _centred(t: Tensor) -> Tensor:
    t = t.to(torch.float64)
    return t - t.mean(dim=1, keepdim=True)


def stacked_tables(state: dict[str, Tensor]) -> Tensor:
    """The matrix whose truncated SVD the factorization keeps (module doc, step 2)."""
    return torch.cat([_centred(state[n]) / math.sqrt(state[n].shape[0]) for n in _TABLES])


def embedding_spectrum(state: dict[str, Tensor], hidden: int) -> Spectrum:
    """The spectrum the factorization truncates (read from a BERT state dict)."""
    return Spectrum(*principal_basis(stacked_tables(state), mean_free_basis(hidden)))


def word_energy(state: dict[str, Tensor], spectrum: Spectrum, embedding_size: int) -> float:
    """Fraction of the centred word embeddings' energy inside the kept subspace (for the report)."""
    w = _centred(state["embeddings.word.weight"])
    return float((w @ spectrum.basis[:, : embedding_size - 1]).square().sum() / w.square().sum())


def factorize_embeddings(state: dict[str, Tensor], cfg: BertConfig, size: int, spectrum: Spectrum) -> None:
    """Replace the H-dim embedding tables and LayerNorm in `state` (in place) by ALBERT's E-dim
    tables, LayerNorm and E->H projection (module doc)."""
    hidden, dtype = cfg.hidden_size, state["embeddings.word.weight"].dtype
    kept = spectrum.basis[:, : size - 1]  # H×(E-1)
    lay = mean_free_basis(size)  # E×(E-1)
    down = kept @ lay.T * math.sqrt(size / hidden)  # H×E: centred H-space rows -> E-space rows
    for name in _TABLES:
        state[name] = (_centred(state[name]) @ down).to(dtype)
    gamma = state.pop("embeddings.norm.weight").to(torch.float64)
    beta = state.pop("embeddings.norm.bias")
    state["embeddings.norm.weight"] = torch.ones(size, dtype=dtype)
    state["embeddings.norm.bias"] = torch.zeros(size, dtype=dtype)
    state["embeddings.projection.weight"] = (gamma[:, None] * (kept @ lay.T) * math.sqrt(hidden / size)).to(dtype)
    state["embeddings.projection.bias"] = beta.clone()
