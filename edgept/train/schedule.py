"""AdamW parameter groups and the linear warm-up / linear decay learning-rate schedule."""

from __future__ import annotations

from torch import nn


class WarmupLinear:
    """LR multiplier at optimizer step `step` (0-based): 0 -> 1 linearly over `warmup_steps`, then
    1 -> 0 linearly at `total_steps` (transformers' get_linear_schedule_with_warmup).

    A plain object with int fields so LambdaLR's state_dict stores (and restores) it as data.
    """

    def __init__(self, warmup_steps: int, total_steps: int):
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return step / max(1, self.warmup_steps)
        return max(0.0, (self.total_steps - step) / max(1, self.total_steps - self.warmup_steps))


def parameter_groups(module: nn.Module, weight_decay: float) -> list[dict]:
    """Trainable parameters in two AdamW groups: weight matrices decay; biases, LayerNorm weights
    and other 1-d tensors (LayerScale) do not, as in BERT's recipe."""
    decay, no_decay = [], []
    no_decay_ids = {
        id(m.weight) for m in module.modules() if isinstance(m, nn.LayerNorm) and m.weight is not None
    }
    for _, p in module.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or id(p) in no_decay_ids else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
