"""TinyBERT losses against values computed by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from edgept.compress.distill.losses import attention_mse, embedding_mse, hidden_state_mse, soft_cross_entropy
from edgept.errors import ConfigError

T = torch.tensor


def test_hidden_mse_by_hand():
    s = T([[[1.0, 2.0], [3.0, 4.0]]])
    t = T([[[0.0, 2.0], [3.0, 1.0]]])
    # squared differences 1, 0, 0, 9 -> mean 10 / 4
    assert hidden_state_mse(s, t).item() == pytest.approx(2.5)
    assert hidden_state_mse(s, t, T([[1, 1]])).item() == pytest.approx(2.5)
    # the padded second token is left out: (1 + 0) / 2
    assert hidden_state_mse(s, t, T([[1, 0]])).item() == pytest.approx(0.5)
    # two examples, the second with one valid token of squares 4, 4: mean of 2.5 and 4
    s2, t2 = torch.cat([s, T([[[2.0, 2.0], [7.0, 7.0]]])]), torch.cat([t, T([[[0.0, 0.0], [0.0, 0.0]]])])
    assert hidden_state_mse(s2, t2, T([[1, 1], [1, 0]])).item() == pytest.approx(3.25)


def test_embedding_mse_through_projection_by_hand():
    proj = nn.Linear(1, 2)
    with torch.no_grad():
        proj.weight.copy_(T([[2.0], [-1.0]]))
        proj.bias.copy_(T([0.0, 1.0]))
    s = T([[[1.0], [2.0]]])  # projected: (2, 0) and (4, -1)
    t = T([[[1.0, 0.0], [4.0, 1.0]]])  # differences (1, 0), (0, -2): squares 1, 0, 0, 4
    assert embedding_mse(s, t, T([[1, 1]]), proj).item() == pytest.approx(1.25)
    assert hidden_state_mse(s, t, None, proj).item() == pytest.approx(1.25)


def test_projection_needed_exactly_when_widths_differ():
    with pytest.raises(ConfigError, match="projection is needed exactly when they differ"):
        hidden_state_mse(torch.zeros(1, 2, 3), torch.zeros(1, 2, 4))
    with pytest.raises(ConfigError, match="projection is needed exactly when they differ"):
        hidden_state_mse(torch.zeros(1, 2, 4), torch.zeros(1, 2, 4), projection=nn.Linear(4, 4))


def test_attention_mse_by_hand_mean_over_valid_entries_then_examples():
    a_s = T([[1.0, 2.0, 9.0], [3.0, 4.0, 9.0], [9.0, 9.0, 9.0]])
    a_t = T([[1.0, 0.0, 0.0], [0.0, 4.0, 0.0], [0.0, 0.0, 0.0]])
    b_t = torch.zeros(3, 3)
    s = torch.stack([a_s, b_t + 1.0])[:, None]  # (batch 2, heads 1, 3, 3)
    t = torch.stack([a_t, b_t])[:, None]
    mask = T([[1, 1, 0], [1, 1, 1]])
    # example A: valid 2x2 block, squares 0, 4, 9, 0 -> 13 / 4; example B: 9 entries of 1 -> 1.
    # The loss is the mean over examples, (3.25 + 1) / 2 (not the pooled 22 / 13 = 1.692): fit's contract
    assert attention_mse(s, t, mask).item() == pytest.approx(2.125)
    assert attention_mse(s[:1], t[:1], mask[:1]).item() == pytest.approx(3.25)


def test_attention_mse_two_heads_and_head_averaging_by_hand():
    s = T([[[[1.0, 3.0]], [[3.0, 5.0]]]])  # (1, 2 heads, 1 query, 2 keys)
    t2 = T([[[[1.0, 3.0]], [[2.0, 5.0]]]])
    assert attention_mse(s, t2).item() == pytest.approx(1 / 4)  # one squared difference of 1 in 4 entries
    t1 = T([[[[0.0, 4.0]]]])  # one head; the student's head mean is (2, 4): squares 4, 0
    assert attention_mse(s, t1, average_heads=True).item() == pytest.approx(2.0)
    with pytest.raises(ConfigError, match="student has 2 heads and the teacher 1"):
        attention_mse(s, t1)


def test_attention_mse_ignores_padded_queries_and_keys():
    torch.manual_seed(0)
    s, t = torch.randn(2, 4, 5, 5), torch.randn(2, 4, 5, 5)
    mask = T([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    base = attention_mse(s, t, mask)
    padded = s.clone()
    padded[0, :, 3:, :] = 1e4  # padded queries
    padded[0, :, :, 4] = -1e4  # a padded key
    assert attention_mse(padded, t, mask).item() == base.item()
    valid = s.clone()
    valid[0, 1, 2, 0] += 1.0  # a valid (query, key) pair
    assert attention_mse(valid, t, mask).item() != pytest.approx(base.item(), rel=1e-6)
    assert attention_mse(s, t).item() != pytest.approx(base.item(), rel=1e-6)  # without the mask it counts them


def test_soft_cross_entropy_by_hand():
    teacher = T([[0.0, math.log(3)], [0.0, 2 * math.log(3)]])
    student = T([[0.0, 0.0], [2 * math.log(2), 0.0]])
    # row 1 at t=1: target (1/4, 3/4), student log-probs ln(1/2) each -> ln 2 = 0.6931472
    assert soft_cross_entropy(student[:1], teacher[:1]).item() == pytest.approx(0.6931472, abs=1e-6)
    # row 2 at t=2: target softmax(0, ln 3) = (1/4, 3/4), student log_softmax(ln 2, 0) = (ln 2/3, ln 1/3)
    # -> 0.25 * 0.4054651 + 0.75 * 1.0986123 = 0.9253255
    assert soft_cross_entropy(student[1:], teacher[1:], 2.0).item() == pytest.approx(0.9253255, abs=1e-6)
    # row 1 at t=2: target softmax(0, ln3 / 2) = (0.3660254, 0.6339746), student uniform -> ln 2 again;
    # the batch loss is the mean of the rows
    assert soft_cross_entropy(student, teacher, 2.0).item() == pytest.approx((0.6931472 + 0.9253255) / 2, abs=1e-6)
    with pytest.raises(ConfigError, match="temperature must be > 0"):
        soft_cross_entropy(student, teacher, 0.0)
