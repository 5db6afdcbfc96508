"""TinyBERT's distillation losses (Jiao et al. 2020, "TinyBERT: Distilling BERT for Natural
Language Understanding", Sec. 3.1), as small functions of tensors.

Departures from the official code, on purpose:
- padded positions are excluded everywhere (the official code averages over them too, so the loss
  depends on how much padding a batch happens to have);
- attention scores here come without the padding bias (edgept's models return them so), so there
  is no `where(score <= -1e2, 0, score)` clean-up of masked entries: they are simply not counted.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgept.errors import ConfigError


def _masked_mean(sq: Tensor, weight: Tensor | None) -> Tensor:
    """Each example's mean of `sq` over the entries `weight` (broadcastable 1/0) marks valid, then
    the mean over the batch: a mean over examples, as `edgept.train.fit` requires of a loss so that
    data-parallel shards with different amounts of padding still average to the global batch's."""
    if weight is None:
        return sq.mean()
    weight = weight.to(sq.dtype).expand_as(sq).flatten(1)
    per_example = (sq.flatten(1) * weight).sum(1) / weight.sum(1).clamp_min(1.0)
    return per_example.mean()


def hidden_state_mse(
    student: Tensor, teacher: Tensor, attention_mask: Tensor | None = None, projection: nn.Module | None = None
) -> Tensor:
    """TinyBERT's hidden-state loss (Eq. 8): MSE(H_S W_h, H_T).

    `student` is (batch, seq, d_S), `teacher` (batch, seq, d_T). When d_S != d_T the student goes
    through `projection` (W_h, a learned d_S -> d_T linear map); with equal widths no projection
    is used and none may be given. Each example's mean runs over the d_T features of its valid
    tokens only (`attention_mask` (batch, seq), 1 = token, 0 = padding; None = all valid); the
    loss is the mean of those over the batch.
    """
    if (student.shape[-1] != teacher.shape[-1]) != (projection is not None):
        raise ConfigError(
            f"hidden widths student {student.shape[-1]} / teacher {teacher.shape[-1]}: "
            "a projection is needed exactly when they differ"
        )
    if projection is not None:
        student = projection(student)
    weight = None if attention_mask is None else attention_mask[:, :, None]
    return _masked_mean((student - teacher).pow(2), weight)


def embedding_mse(
    student: Tensor, teacher: Tensor, attention_mask: Tensor | None = None, projection: nn.Module | None = None
) -> Tensor:
    """TinyBERT's embedding-layer loss (Eq. 9): MSE(E_S W_e, E_T), over valid tokens.

    The same form as `hidden_state_mse`, on the embedding outputs (hidden state 0), with its own
    projection W_e (not shared with W_h, as in the paper).
    """
    return hidden_state_mse(student, teacher, attention_mask, projection)


def attention_mse(
    student: Tensor, teacher: Tensor, attention_mask: Tensor | None = None, *, average_heads: bool = False
) -> Tensor:
    """TinyBERT's attention loss (Eq. 7): (1/h) * sum_i MSE(A_i^S, A_i^T) over the h heads of one
    layer, on pre-softmax scores (batch, heads, seq, seq).

    Entries whose query or key is padding are excluded: each example's mean runs over its valid
    (query, key) pairs of all heads only, so changing a padded position's score cannot change
    the loss; the loss is the mean of those over the batch. Head i of the
    student is matched with head i of the teacher, so the head counts must be equal; with
    `average_heads` each model's scores are first averaged over its heads (one map per layer),
    which lets a student have another head count at the cost of a coarser signal.
    """
    if average_heads:
        student, teacher = student.mean(dim=1, keepdim=True), teacher.mean(dim=1, keepdim=True)
    elif student.shape[1] != teacher.shape[1]:
        raise ConfigError(
            f"attention loss pairs heads one to one but the student has {student.shape[1]} heads and the "
            f"teacher {teacher.shape[1]}; give the student {teacher.shape[1]} heads or average heads"
        )
    weight = None
    if attention_mask is not None:
        m = attention_mask.to(student.dtype)
        weight = m[:, None, :, None] * m[:, None, None, :]  # valid query x valid key
    return _masked_mean((student - teacher).pow(2), weight)


def soft_cross_entropy(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0) -> Tensor:
    """TinyBERT's prediction-layer loss (Eq. 10): -sum_c softmax(z_T/t)_c * log_softmax(z_S/t)_c,
    summed over classes and averaged over the batch. No t^2 factor (TinyBERT has none)."""
    if temperature <= 0:
        raise ConfigError(f"temperature must be > 0, got {temperature}")
    target = torch.softmax(teacher_logits / temperature, dim=-1)
    return -(target * F.log_softmax(student_logits / temperature, dim=-1)).sum(dim=-1).mean()
