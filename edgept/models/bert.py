"""BERT (and ALBERT): embeddings, a post-norm encoder, the pooler, and the task heads.

ALBERT is this same model with `embedding_size < hidden_size` (embeddings in E dims, normalised,
then projected to H) and/or `num_groups < num_layers` (cross-layer sharing).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from edgept.models.config import BertConfig
from edgept.models.layers import Encoder, EncoderOutput, activation, init_weights, mask_bias


class TextEmbeddings(nn.Module):
    def __init__(self, cfg: BertConfig):
        super().__init__()
        e = cfg.emb_size
        self.word = nn.Embedding(cfg.vocab_size, e, padding_idx=cfg.pad_token_id)
        self.position = nn.Embedding(cfg.max_position, e)
        self.token_type = nn.Embedding(cfg.type_vocab_size, e)
        self.norm = nn.LayerNorm(e, eps=cfg.layer_norm_eps)
        self.drop = nn.Dropout(cfg.hidden_dropout)
        self.projection = nn.Linear(e, cfg.hidden_size) if cfg.factorized else None

    def forward(self, input_ids: Tensor, token_type_ids: Tensor) -> Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.word(input_ids) + self.position(positions)[None] + self.token_type(token_type_ids)
        x = self.drop(self.norm(x))
        return x if self.projection is None else self.projection(x)


class Pooler(nn.Module):
    """BERT's pooler: dense + tanh over the [CLS] token."""

    def __init__(self, hidden: int):
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(self.dense(x[:, 0]))


class ClassificationHead(nn.Module):
    def __init__(self, in_features: int, num_labels: int, dropout: float):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.classifier = nn.Linear(in_features, num_labels)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.drop(x))


class MaskedLMHead(nn.Module):
    """Transform (dense, act, norm) to the embedding width, then the decoder tied to the word
    embeddings. The tied weight is passed in rather than held, so it exists once in state_dict."""

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.emb_size)
        self.act = activation(cfg.hidden_act)
        self.norm = nn.LayerNorm(cfg.emb_size, eps=cfg.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(cfg.vocab_size))

    def forward(self, x: Tensor, word_embeddings: Tensor) -> Tensor:
        h = self.norm(self.act(self.dense(x)))
        # 2-D, so the ONNX exporter emits Gemm(transB=1) on the embedding matrix itself rather
        # than constant-folding a transposed copy of it (which would double the vocabulary bytes).
        logits = nn.functional.linear(h.reshape(-1, h.shape[-1]), word_embeddings, self.bias)
        return logits.view(*h.shape[:-1], -1)


class Bert(nn.Module):
    """A BERT/ALBERT encoder with the head its `config.task` asks for."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.embeddings = TextEmbeddings(config)
        self.encoder = Encoder(config, prenorm=False)
        self.pooler = Pooler(config.hidden_size) if config.pooler else None
        self.head: nn.Module | None = None
        if config.task == "sequence-classification":
            drop = config.hidden_dropout if config.classifier_dropout is None else config.classifier_dropout
            self.head = ClassificationHead(config.hidden_size, config.num_labels, drop)
        elif config.task == "masked-lm":
            self.head = MaskedLMHead(config)
        init_weights(self, config.initializer_range)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        *,
        output_hidden_states: bool = False,
        output_attention_scores: bool = False,
    ) -> EncoderOutput:
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        bias = None if attention_mask is None else mask_bias(attention_mask, self.embeddings.norm.weight.dtype)
        x = self.embeddings(input_ids, token_type_ids)
        x, hidden, scores = self.encoder(x, bias, output_hidden_states, output_attention_scores)
        pooled = self.pooler(x) if self.pooler is not None else None
        logits = None
        if isinstance(self.head, ClassificationHead):
            logits = self.head(pooled)
        elif isinstance(self.head, MaskedLMHead):
            logits = self.head(x, self.embeddings.word.weight)
        return EncoderOutput(x, pooled, logits, hidden, scores)
