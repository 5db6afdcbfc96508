"""Masked language modelling (BERT), with optional whole-word masking and ALBERT's sentence-order
prediction: masking, the batch collate, the objective, and held-out perplexity.

Masking is dynamic (drawn anew each time a block is batched, RoBERTa-style) from torch's global
RNG, which `fit` seeds and restores on resume. Of the `probability` share of maskable tokens
(never [CLS], [SEP], [PAD] or another special token), `replace_mask` become [MASK],
`replace_random` a random non-special token, the rest stay as they are; the loss is the
cross-entropy at those positions only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgept.configs import DictConfig
from edgept.errors import ConfigError
from edgept.models.layers import mask_bias
from edgept.train.objectives import Objective

IGNORE = -100  # label of a position that is not predicted (transformers' convention)


@dataclass(frozen=True, kw_only=True)
class MaskingConfig(DictConfig):
    """BERT's masking: `probability` of maskable tokens are predicted; of those, `replace_mask`
    become [MASK] and `replace_random` a random token (80/10/10 by default). `whole_word`: choose
    words, not pieces, so every WordPiece of a chosen word is predicted together."""

    kind: ClassVar[str] = "masking config"

    probability: float = 0.15
    replace_mask: float = 0.8
    replace_random: float = 0.1
    whole_word: bool = False

    def __post_init__(self) -> None:
        for name in ("probability", "replace_mask", "replace_random"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 1:
                raise ConfigError(f"{name} must be a fraction in [0, 1], got {v!r}")
        if not 0 < self.probability < 1:
            raise ConfigError(f"mask probability must be in (0, 1), got {self.probability!r}")
        if self.replace_mask + self.replace_random > 1:
            raise ConfigError(
                f"replace_mask + replace_random must be <= 1 (the rest stay unchanged), got {self.replace_mask} + {self.replace_random}"
            )


class Vocab:
    """What masking needs to know about a tokenizer: the special ids, which ids are non-special
    (random replacements), and which pieces continue a word (WordPiece's ## prefix)."""

    def __init__(self, tokenizer: Any):
        vocab = tokenizer.get_vocab(with_added_tokens=True)
        self.size = max(vocab.values()) + 1
        ids = {}
        for name in ("[PAD]", "[CLS]", "[SEP]", "[MASK]"):
            if name not in vocab:
                raise ConfigError(f"the tokenizer has no {name} token; masked-LM pre-training needs BERT's special tokens")
            ids[name] = vocab[name]
        self.pad, self.cls, self.sep, self.mask = ids["[PAD]"], ids["[CLS]"], ids["[SEP]"], ids["[MASK]"]
        self.special = np.zeros(self.size, dtype=bool)
        self.special[[i for i, t in tokenizer.get_added_tokens_decoder().items() if t.special] + list(ids.values())] = True
        self.continuation = np.zeros(self.size, dtype=bool)
        self.continuation[[i for token, i in vocab.items() if token.startswith("##")]] = True
        self.random_ids = np.flatnonzero(~self.special)


def mask_tokens(
    input_ids: Tensor,
    maskable: Tensor,
    config: MaskingConfig,
    *,
    mask_id: int,
    random_ids: Tensor,
    word_start: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """(inputs, labels): `input_ids` with the chosen positions replaced as `config` says, and the
    original ids at those positions (IGNORE elsewhere). `maskable`: where choosing is allowed.
    With `config.whole_word`, `word_start` marks each word's first piece: a word is chosen with
    `probability` and its continuation pieces follow their start."""
    shape = input_ids.shape
    draw = torch.rand(shape, generator=generator)
    if config.whole_word:
        if word_start is None:
            raise ConfigError("whole-word masking needs word_start (where each word begins)")
        starts = word_start & maskable
        positions = torch.arange(shape[1]).expand(shape)
        owner = torch.cummax(torch.where(starts, positions, -1), dim=1).values  # the word's first piece
        chosen_start = (draw < config.probability) & starts
        chosen = chosen_start.gather(1, owner.clamp(min=0)) & (owner >= 0) & maskable
    else:
        chosen = (draw < config.probability) & maskable
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, IGNORE))
    how = torch.rand(shape, generator=generator)
    to_mask = chosen & (how < config.replace_mask)
    to_random = chosen & (how >= config.replace_mask) & (how < config.replace_mask + config.replace_random)
    picks = random_ids[torch.randint(len(random_ids), shape, generator=generator)]
    inputs = torch.where(to_mask, torch.full_like(input_ids, mask_id), input_ids)
    inputs = torch.where(to_random, picks, inputs)
    return inputs, labels


def mlm_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy over the predicted positions (labels != IGNORE); 0 when there are none."""
    picked = labels != IGNORE
    if not bool(picked.any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits[picked], labels[picked])


def sop_split(length: int, starts: np.ndarray) -> int:
    """Where a block splits into segments A and B: the line start nearest the middle (a sentence
    boundary), or the middle itself when no line starts inside the block."""
    inside = starts[(starts > 0) & (starts < length)]
    if inside.size == 0:
        return max(1, length // 2)
    return int(inside[np.argmin(np.abs(inside - length / 2))])


class MLMCollate:
    """Packed blocks -> a masked batch: input_ids, attention_mask, token_type_ids, labels (and
    sop_labels with `sop`: 1 where segments A and B were swapped). Padded to the longest row."""

    def __init__(self, vocab: Vocab, masking: MaskingConfig, sop: bool = False, generator: torch.Generator | None = None):
        self.vocab, self.masking, self.sop, self.generator = vocab, masking, sop, generator

    def seeded(self, seed: int) -> MLMCollate:
        """The same collate drawing from its own seeded generator (evaluation: the same masks every time)."""
        return MLMCollate(self.vocab, self.masking, self.sop, torch.Generator().manual_seed(seed))

    def _row(self, block: np.ndarray, starts: np.ndarray, swap: bool) -> tuple[list[int], list[int]]:
        v = self.vocab
        if not self.sop:
            return [v.cls, *block.tolist(), v.sep], [0] * (len(block) + 2)
        cut = sop_split(len(block), starts)
        a, b = block[:cut].tolist(), block[cut:].tolist()
        if swap:
            a, b = b, a
        return [v.cls, *a, v.sep, *b, v.sep], [0] * (len(a) + 2) + [1] * (len(b) + 1)

    def __call__(self, examples: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, Tensor]:
        v = self.vocab
        swaps = (torch.rand(len(examples), generator=self.generator) < 0.5).tolist() if self.sop else [False] * len(examples)
        rows = [self._row(block, starts, swap) for (block, starts), swap in zip(examples, swaps, strict=True)]
        width = max(len(ids) for ids, _ in rows)
        ids = torch.full((len(rows), width), v.pad, dtype=torch.long)
        types = torch.zeros((len(rows), width), dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for i, (row, tt) in enumerate(rows):
            ids[i, : len(row)], types[i, : len(row)], attention[i, : len(row)] = torch.tensor(row), torch.tensor(tt), 1
        maskable = (attention == 1) & ~torch.from_numpy(v.special)[ids]
        inputs, labels = mask_tokens(
            ids, maskable, self.masking, mask_id=v.mask, random_ids=torch.from_numpy(v.random_ids),
            word_start=~torch.from_numpy(v.continuation)[ids], generator=self.generator,
        )  # fmt: skip
        batch = {"input_ids": inputs, "attention_mask": attention, "token_type_ids": types, "labels": labels}
        if self.sop:
            batch["sop_labels"] = torch.tensor(swaps, dtype=torch.long)
        return batch


def encode(model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor | None]:
    """An edgept Bert's last hidden states and pooled output, without running its head (the
    objective runs the vocabulary projection on the masked positions only: ~15% of the cost)."""
    bias = mask_bias(batch["attention_mask"], model.embeddings.norm.weight.dtype)
    x = model.embeddings(batch["input_ids"], batch["token_type_ids"])
    x, _, _ = model.encoder(x, bias)
    return x, (model.pooler(x) if model.pooler is not None else None)


class MLMObjective(Objective):
    """Masked-LM cross-entropy on a `masked-lm` Bert, plus ALBERT's sentence-order prediction
    (a 2-way classifier on the pooled [CLS], not saved with the model) when `sop`."""

    def __init__(self, model: nn.Module, sop: bool = False):
        super().__init__()
        if getattr(model.config, "task", "") != "masked-lm":
            raise ConfigError(f"MLMObjective needs a masked-lm Bert, got task {getattr(model.config, 'task', None)!r}")
        if sop and model.pooler is None:
            raise ConfigError("sentence-order prediction reads the pooled [CLS]; build the model with pooler=True")
        self.model = model
        self.sop = nn.Linear(model.config.hidden_size, 2) if sop else None

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        hidden, pooled = encode(self.model, batch)
        labels = batch["labels"]
        picked = labels != IGNORE
        logits = self.model.head(hidden[picked], self.model.embeddings.word.weight)
        loss = mlm_loss(logits, labels[picked])
        # Per example, so fit's cross-process mean stays right; the progress bar shows tokens/s from it.
        logs = {"mlm_loss": loss.item(), "tokens_per_example": batch["attention_mask"].sum().item() / len(labels)}
        if self.sop is not None:
            sop_logits = self.sop(pooled)
            sop = F.cross_entropy(sop_logits, batch["sop_labels"])
            loss = loss + sop
            logs["sop_loss"] = sop.item()
            logs["sop_accuracy"] = (sop_logits.argmax(-1) == batch["sop_labels"]).float().mean().item()
        return loss, logs


class HeldOutPerplexity:
    """exp(mean masked-token cross-entropy) on held-out blocks, with the same masks at every call
    (a seeded generator), so evaluations during training are comparable."""

    def __init__(self, blocks: Any, collate: MLMCollate, batch_size: int = 64, seed: int = 0):
        self.blocks, self.collate, self.batch_size, self.seed = blocks, collate, batch_size, seed

    def __call__(self, model: nn.Module) -> dict[str, float]:
        collate = self.collate.seeded(self.seed)
        total, count = 0.0, 0
        was_training = model.training
        model.eval()
        with torch.no_grad():
            for i in range(0, len(self.blocks), self.batch_size):
                batch = collate([self.blocks[j] for j in range(i, min(i + self.batch_size, len(self.blocks)))])
                device = next(model.parameters()).device
                batch = {k: t.to(device) for k, t in batch.items()}
                hidden, _ = encode(model, batch)
                picked = batch["labels"] != IGNORE
                logits = model.head(hidden[picked], model.embeddings.word.weight)
                total += F.cross_entropy(logits, batch["labels"][picked], reduction="sum").item()
                count += int(picked.sum())
        model.train(was_training)
        loss = total / max(count, 1)
        return {"perplexity": math.exp(min(loss, 50.0)), "mlm_loss": loss, "masked_tokens": float(count)}
