"""Activation range methods on data with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from edgept.quantize.ranges import TensorStats, tensor_range, uint8_params


@pytest.fixture
def heavy_tailed():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(200_000).astype(np.float32)
    x[:20] = 40.0  # rare outliers, 0.01% of the values
    s = TensorStats()
    s.observe_range(x)
    s.observe_hist(x)
    return s


def test_methods_differ_and_clip_outliers(heavy_tailed):
    r = {m: tensor_range(heavy_tailed, m, 99.9) for m in ("minmax", "entropy", "percentile")}
    assert r["minmax"][1] == pytest.approx(40.0)
    assert 3.0 < r["percentile"][1] < 3.6  # 99.9th percentile of |N(0,1)| is 3.29
    assert 2.0 < r["entropy"][1] < 20.0
    assert len({v for v in r.values()}) == 3


def test_uint8_params_cover_the_range_and_keep_zero_exact():
    scale, zp = uint8_params(-1.0, 3.0, symmetric=False)
    assert scale == pytest.approx(4 / 255) and zp == round(1 / scale)
    assert uint8_params(-1.0, 3.0, symmetric=True) == (pytest.approx(6 / 255), 128)


def test_logit_cosine_is_whole_tensor_so_a_near_tie_flip_does_not_dominate():
    from edgept.parity import summarize

    rng = np.random.default_rng(0)
    a = rng.normal(scale=3.0, size=(64, 1))
    ref = np.concatenate([a, -a], 1).astype(np.float32)
    ref[0] = [0.01, -0.01]  # a near-tie: a tiny error flips its sign
    got = ref + rng.normal(scale=1e-3, size=ref.shape).astype(np.float32)
    got[0] = [-0.01, 0.01]
    m = summarize([ref], [got], [{}])
    assert m["cosine_min"] < -0.99  # per example, the flip reads as opposite vectors
    assert m["cosine"] > 0.9999  # the whole tensor is as close as the noise says
    emb = rng.normal(size=(4, 8, 16)).astype(np.float32)
    mask = np.ones((4, 8), np.int64)
    e = summarize([emb], [emb + 0.1], [{"attention_mask": mask}])
    assert e["cosine"] == e["cosine_mean"] < 1.0  # embeddings keep the per-example mean
