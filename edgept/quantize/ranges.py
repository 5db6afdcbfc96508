"""Activation ranges from calibration data: min/max, percentile and entropy (KL), computed here.

ORT's `quantize_static(calibrate_method=Entropy)` with its defaults writes the same file as MinMax
(measured: 128 bins leave one candidate threshold), so edgept collects the statistics itself:
one pass for min/max, a second for a fixed-range histogram that percentile and entropy read.
Only numpy: the graph side (which tensors, which batches) lives in `edgept.quantize.graph`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

METHODS = ("minmax", "entropy", "percentile")
HIST_BINS = 2048  # TensorRT's entropy calibrator uses 2048 bins over [0, max|x|]
QUANT_LEVELS = 128  # int8 magnitude levels the KL search compresses the histogram into


@dataclass
class TensorStats:
    """Running statistics of one activation tensor: min/max, then a histogram of |x| over [0, amax]."""

    lo: float = np.inf
    hi: float = -np.inf
    hist: np.ndarray | None = None
    row_max: list[np.ndarray] = field(default_factory=list)
    row_min: list[np.ndarray] = field(default_factory=list)

    def observe_range(self, x: np.ndarray) -> None:
        """Pass 1: widen [lo, hi] to cover `x`; keep each row's (token's) maximum and minimum."""
        if x.size:
            self.lo = min(self.lo, float(x.min()))
            self.hi = max(self.hi, float(x.max()))
            rows = x.reshape(-1, x.shape[-1])
            self.row_max.append(rows.max(1))
            self.row_min.append(rows.min(1))

    @property
    def median_row_max(self) -> float:
        """The median over rows of each row's maximum (what a per-token scale usually spans)."""
        return float(np.median(np.concatenate(self.row_max))) if self.row_max else 0.0

    @property
    def median_row_min(self) -> float:
        """The median over rows of each row's minimum."""
        return float(np.median(np.concatenate(self.row_min))) if self.row_min else 0.0

    @property
    def amax(self) -> float:
        return max(abs(self.lo), abs(self.hi), 1e-12)

    def observe_hist(self, x: np.ndarray) -> None:
        """Pass 2: add |x| to a HIST_BINS histogram over [0, amax] (amax fixed by pass 1)."""
        counts, _ = np.histogram(np.abs(x), bins=HIST_BINS, range=(0.0, self.amax))
        self.hist = counts if self.hist is None else self.hist + counts


def tensor_range(stats: TensorStats, method: str, percentile: float = 99.99) -> tuple[float, float]:
    """The (lo, hi) to quantize a tensor to, by `method`; always contains 0 (so 0 is exact)."""
    lo, hi = min(stats.lo, 0.0), max(stats.hi, 0.0)
    if method == "minmax":
        return lo, hi
    if stats.hist is None:
        raise ValueError(f"method {method!r} needs the histogram pass (observe_hist) first")
    if method == "percentile":
        threshold = _percentile_threshold(stats.hist, stats.amax, percentile)
    elif method == "entropy":
        threshold = _entropy_threshold(stats.hist, stats.amax)
    else:
        raise ValueError(f"unknown range method {method!r}; known: {', '.join(METHODS)}")
    # Clip by a magnitude threshold, keeping each side no wider than what was observed.
    return max(lo, -threshold), min(hi, threshold)


def _percentile_threshold(hist: np.ndarray, amax: float, percentile: float) -> float:
    cdf = np.cumsum(hist) / max(hist.sum(), 1)
    idx = int(np.searchsorted(cdf, percentile / 100.0))
    return (min(idx, len(hist) - 1) + 1) * amax / len(hist)


def _entropy_threshold(hist: np.ndarray, amax: float) -> float:
    """TensorRT's calibration: the clip threshold whose 128-level quantized histogram has the least
    KL divergence from the clipped reference histogram."""
    hist = hist.astype(np.float64)
    nbins = len(hist)
    best_kl, best_i = np.inf, nbins
    for i in range(QUANT_LEVELS, nbins + 1, 16):  # step 16: 121 candidates, same optimum to one step
        ref = hist[:i].copy()
        ref[i - 1] += hist[i:].sum()  # outliers collapse into the last kept bin
        if ref.sum() == 0:
            continue
        # Quantize the first i bins into QUANT_LEVELS groups, spread each group's mass over its non-empty bins.
        starts = np.linspace(0, i, QUANT_LEVELS + 1).astype(int)[:-1]
        sizes = np.diff(np.append(starts, i))
        nonzero = hist[:i] > 0
        mass = np.add.reduceat(hist[:i], starts)
        filled = np.add.reduceat(nonzero.astype(np.float64), starts)
        q = np.repeat(mass / np.maximum(filled, 1), sizes) * nonzero
        kl = _kl(ref, q)
        if kl < best_kl:
            best_kl, best_i = kl, i
    return best_i * amax / nbins


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    p = p / p.sum()
    qs = q.sum()
    if qs == 0:
        return np.inf
    q = q / qs
    mask = p > 0
    # A bin the reference has and the candidate lost is an infinite penalty in theory; a tiny floor keeps order.
    return float(np.sum(p[mask] * np.log(p[mask] / np.maximum(q[mask], 1e-12))))


def uint8_params(lo: float, hi: float, symmetric: bool) -> tuple[float, int]:
    """(scale, zero_point) for a uint8 activation covering [lo, hi]; symmetric pins the zero point at 128."""
    if symmetric:
        amax = max(abs(lo), abs(hi), 1e-12)
        return float(2 * amax / 255), 128
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = max((hi - lo) / 255, 1e-12)
    return float(scale), int(np.clip(round(-lo / scale), 0, 255))


def int8_scale(lo: float, hi: float) -> float:
    """The scale of a symmetric int8 tensor (zero point 0, -127..127) covering [lo, hi]: TensorRT's Q/DQ form."""
    return float(max(abs(lo), abs(hi), 1e-12) / 127)
