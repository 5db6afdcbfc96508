"""`DistillObjective`: what `edgept.train.fit` optimises to distill a teacher into a student."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgept.compress.distill.layer_map import check_layer_map
from edgept.compress.distill.losses import attention_mse, embedding_mse, hidden_state_mse, soft_cross_entropy
from edgept.errors import ConfigError
from edgept.models import EncoderConfig
from edgept.models.layers import EncoderOutput
from edgept.train import Objective

STAGES = ("intermediate", "prediction", "general")
_INPUTS = {"bert": ("input_ids", "attention_mask", "token_type_ids"), "vit": ("pixel_values",)}


class DistillObjective(Objective):
    """TinyBERT's loss for one stage, as an `edgept.train` objective: forward(batch) -> (loss, logs).

    - `intermediate` (task-specific) and `general` (on unlabeled text, from a pretrained teacher):
      embedding MSE + sum over student layers m of attention MSE and hidden-state MSE against
      teacher layer `layer_map[m-1]`; learned projections W_e, W_h exist iff the widths differ.
    - `prediction`: soft cross-entropy of the logits at `temperature` (or, with
      `prediction_loss="logit_mse"`, the mean squared error of the logits themselves, which also
      fixes their scale: what QAT needs to stay close to its fp32 model), plus `hard_weight` times
      the cross-entropy with the batch's `labels` when that weight is > 0.

    The teacher is frozen, always in eval mode, and runs once per batch under no_grad; all losses
    read that one output. It is kept out of the module tree (so `state_dict`, checkpoints and
    DDP hold only what trains: the student and projections) but follows `.to()` / `.cuda()`.
    With unequal head counts the attention loss compares head-averaged maps (see `attention_mse`).
    """

    teacher: nn.Module  # set through __dict__, outside the module tree (see above)

    def __init__(
        self,
        teacher: nn.Module,
        student: nn.Module,
        *,
        stage: str,
        layer_map: tuple[int, ...],
        head_map: tuple[tuple[int, ...], ...] | None = None,
        temperature: float = 1.0,
        hard_weight: float = 0.0,
        prediction_loss: str = "soft_ce",
        seed: int = 0,
    ):
        super().__init__()
        t, s = teacher.config, student.config
        _check_pair(t, s, stage)
        if temperature <= 0 or hard_weight < 0:
            raise ConfigError(f"temperature must be > 0 and hard_weight >= 0, got {temperature} and {hard_weight}")
        if prediction_loss not in ("soft_ce", "logit_mse"):
            raise ConfigError(f"prediction_loss must be soft_ce or logit_mse, got {prediction_loss!r}")
        self.stage, self.temperature, self.hard_weight = stage, float(temperature), float(hard_weight)
        self.prediction_loss = prediction_loss
        self.layer_map = check_layer_map(tuple(layer_map), s.num_layers, t.num_layers)
        self.model = student
        self.__dict__["teacher"] = teacher.eval().requires_grad_(False)
        self.head_map = _check_head_map(head_map, s, t)
        self.average_heads = head_map is None and s.num_heads != t.num_heads
        self.embedding_projection: nn.Linear | None = None
        self.hidden_projection: nn.Linear | None = None
        if stage != "prediction" and s.hidden_size != t.hidden_size:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                self.embedding_projection = nn.Linear(s.hidden_size, t.hidden_size)
                self.hidden_projection = nn.Linear(s.hidden_size, t.hidden_size)
        self.inputs = _INPUTS[t.arch]

    def train(self, mode: bool = True) -> DistillObjective:
        super().train(mode)
        self.teacher.eval()  # dropout in the teacher would make its targets noise
        return self

    def _apply(self, fn, recurse=True):
        self.teacher._apply(fn, recurse)
        return super()._apply(fn, recurse)

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        inputs = {k: batch[k] for k in self.inputs if k in batch}
        inner = self.stage != "prediction"
        kw = {"output_hidden_states": inner, "output_attention_scores": inner}
        with torch.no_grad():
            t = self.teacher(**inputs, **kw)
        s = self.model(**inputs, **kw)
        if inner:
            terms = self._intermediate(s, t, batch.get("attention_mask"))
        else:
            if self.prediction_loss == "logit_mse":
                terms = {"logit_mse": F.mse_loss(s.logits, t.logits)}
            else:
                terms = {"soft_ce": soft_cross_entropy(s.logits, t.logits, self.temperature)}
            if self.hard_weight > 0:
                terms["hard_ce"] = self.hard_weight * F.cross_entropy(s.logits, batch["labels"])
        loss = torch.stack(list(terms.values())).sum()
        return loss, {k: float(v.detach()) for k, v in terms.items()}

    def _intermediate(self, s: EncoderOutput, t: EncoderOutput, mask: Tensor | None) -> dict[str, Tensor]:
        # TinyBERT sums the per-layer losses (every lambda_m = 1), it does not average them.
        att = hid = 0.0
        for m, g in enumerate(self.layer_map):
            target = t.attention_scores[g - 1]
            if self.head_map is not None:
                target = target[:, self.head_map[m]]
            att = att + attention_mse(s.attention_scores[m], target, mask, average_heads=self.average_heads)
            hid = hid + hidden_state_mse(s.hidden_states[m + 1], t.hidden_states[g], mask, self.hidden_projection)
        emb = embedding_mse(s.hidden_states[0], t.hidden_states[0], mask, self.embedding_projection)
        return {"embedding": emb, "attention": att, "hidden": hid}


def _check_head_map(head_map: tuple[tuple[int, ...], ...] | None, s: EncoderConfig, t: EncoderConfig) -> list[list[int]] | None:
    if head_map is None:
        return None
    if len(head_map) != s.num_layers or any(len(h) != s.num_heads or not all(0 <= i < t.num_heads for i in h) for h in head_map):
        raise ConfigError(
            f"head_map needs, for each of the student's {s.num_layers} layers, {s.num_heads} teacher heads in "
            f"0..{t.num_heads - 1}; got {[list(h) for h in head_map]}"
        )
    return [list(h) for h in head_map]


def _check_pair(t: EncoderConfig, s: EncoderConfig, stage: str) -> None:
    """Everything about teacher and student that would otherwise fail at the first batch."""
    if stage not in STAGES:
        raise ConfigError(f"stage {stage!r} is not one of {', '.join(STAGES)}")
    if t.arch != s.arch:
        raise ConfigError(f"teacher is {t.arch} but student is {s.arch}; distill within one architecture")
    if t.arch == "vit" and (t.image_size, t.patch_size, t.num_prefix_tokens) != (
        s.image_size,
        s.patch_size,
        s.num_prefix_tokens,
    ):
        raise ConfigError(
            "ViT teacher and student must see the same tokens (image_size, patch_size, prefix tokens): "
            f"teacher {t.image_size}/{t.patch_size}/{t.num_prefix_tokens}, "
            f"student {s.image_size}/{s.patch_size}/{s.num_prefix_tokens}"
        )
    if stage == "prediction" and not (t.task.endswith("classification") and s.labels == t.labels):
        raise ConfigError(
            f"stage 'prediction' needs a classification teacher and a student with its labels; teacher task "
            f"{t.task!r} labels {list(t.labels)}, student labels {list(s.labels)} (fine-tune the teacher first)"
        )
