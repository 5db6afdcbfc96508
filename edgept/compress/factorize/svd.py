"""Truncated SVD, the tool every factorization here uses (Eckart–Young: the best rank-k
approximation in Frobenius norm keeps the top k singular triplets, and its squared error is the
sum of the discarded squared singular values).

Everything is computed in float64 and cast back by the caller: the factors feed exactness tests
at 1e-5 and energies reported to four digits.
"""

from __future__ import annotations

import torch
from torch import Tensor

from edgept.errors import ConfigError


def mean_free_basis(n: int) -> Tensor:
    """An orthonormal basis (n, n-1) of the vectors whose entries sum to zero.

    LayerNorm subtracts the mean over features, so it sees only this subspace of its input.
    """
    centering = torch.eye(n, dtype=torch.float64) - 1.0 / n
    _, vecs = torch.linalg.eigh(centering)  # eigenvalue 0 (the ones vector) first, then n-1 ones
    return vecs[:, 1:]


def principal_basis(w: Tensor, within: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Right singular vectors of `w` (rows are samples) as columns, sorted by singular value,
    and the squared singular values.

    With `within` (d, m) orthonormal, the basis spans that subspace (m vectors, a full basis of
    it even where `w` has lower rank, so a full-rank truncation reproduces anything inside it).
    Via the Gram matrix: its size is the feature count, never the (vocabulary-sized) row count.
    """
    w = w.to(torch.float64)
    if within is None:
        within = torch.eye(w.shape[1], dtype=torch.float64)
    coords = w @ within
    sigma2, vecs = torch.linalg.eigh(coords.T @ coords)
    order = torch.argsort(sigma2, descending=True)
    return within @ vecs[:, order], sigma2[order].clamp_min(0.0)


def retained(sigma2: Tensor, k: int) -> float:
    """Fraction of the energy (sum of squared singular values) the top `k` keep."""
    total = float(sigma2.sum())
    return 1.0 if total == 0.0 else float(sigma2[:k].sum()) / total


def rank_for_energy(sigma2: Tensor, fraction: float) -> int:
    """The smallest k whose top-k singular values keep at least `fraction` of the energy."""
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"an energy fraction must be in (0, 1], got {fraction}")
    total = float(sigma2.sum())
    if total == 0.0:
        return 1
    cumulative = torch.cumsum(sigma2, 0) / total
    # 1e-12: a fraction of exactly 1.0 must not fail on the last ulp of a float64 sum
    return int(torch.searchsorted(cumulative, torch.tensor(fraction - 1e-12, dtype=torch.float64))) + 1


def low_rank_factors(w: Tensor, rank: int) -> tuple[Tensor, Tensor, Tensor]:
    """`w` (out, in) ≈ b @ a with a (rank, in), b (out, rank): the truncated SVD, its singular
    values split evenly between the factors (balanced scales train better than U and S·Vᵀ).
    Returns a, b (row-major, as a loaded checkpoint's are: LAPACK's column-major factors take
    another GEMM path with other rounding) and all squared singular values of `w`."""
    u, s, vh = torch.linalg.svd(w.to(torch.float64), full_matrices=False)
    root = s[:rank].sqrt()
    return (root[:, None] * vh[:rank]).contiguous(), (u[:, :rank] * root).contiguous(), s.square()
