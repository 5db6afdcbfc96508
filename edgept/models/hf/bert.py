"""BERT and ALBERT: config fields and tensor names, as tables.

Both map onto edgept's `Bert`. An edgept BERT is saved as `bert` when it is plain (no
factorized embeddings, no shared layers), otherwise as `albert`, whose layout holds both:
E-dim embeddings normalised in E, `embedding_hidden_mapping_in` (E -> H), and
`albert_layer_groups` (group g = edgept's `encoder.blocks.g`, one `albert_layers.0` each).
"""

from __future__ import annotations

import torch
from torch import Tensor

from edgept.models.config import BertConfig, EncoderConfig
from edgept.models.hf.mapping import Family, Field, KeyTable, nest

_EMBEDDINGS = (
    ("embeddings.word_embeddings", "embeddings.word"),
    ("embeddings.position_embeddings", "embeddings.position"),
    ("embeddings.token_type_embeddings", "embeddings.token_type"),
    ("embeddings.LayerNorm", "embeddings.norm"),
)
_BERT_LAYER = (  # transformers' BertLayer -> edgept Block
    ("attention.self.query", "attn.q"),
    ("attention.self.key", "attn.k"),
    ("attention.self.value", "attn.v"),
    ("attention.output.dense", "attn.o"),
    ("attention.output.LayerNorm", "attn_norm"),
    ("intermediate.dense", "ffn.up"),
    ("output.dense", "ffn.down"),
    ("output.LayerNorm", "ffn_norm"),
)
_ALBERT_LAYER = (  # transformers' AlbertLayer -> edgept Block (the same post-norm layer)
    ("attention.query", "attn.q"),
    ("attention.key", "attn.k"),
    ("attention.value", "attn.v"),
    ("attention.dense", "attn.o"),
    ("attention.LayerNorm", "attn_norm"),
    ("ffn", "ffn.up"),
    ("ffn_output", "ffn.down"),
    ("full_layer_layer_norm", "ffn_norm"),
)


def _mlm_head(prefix: str) -> tuple[tuple[str, str], ...]:
    """BERT's `cls.predictions.transform.*` and ALBERT's `predictions.*` are the same head."""
    transform = f"{prefix}.transform" if prefix == "cls.predictions" else prefix
    return (
        ("classifier", "head.classifier"),
        (f"{transform}.dense", "head.dense"),
        (f"{transform}.LayerNorm", "head.norm"),
        (f"{prefix}.bias", "head.bias"),
    )


def _mlm_ties(prefix: str) -> KeyTable:
    # The decoder is tied to the word embeddings (and its bias to the head's bias); checkpoints
    # written before transformers 4.x store the copies, which must then be equal.
    return KeyTable(
        ((f"{prefix}.decoder.weight", "embeddings.word.weight"), (f"{prefix}.decoder.bias", "head.bias"))
    )


def _effective_classifier_dropout(cfg: EncoderConfig) -> float:
    return cfg.hidden_dropout if cfg.classifier_dropout is None else cfg.classifier_dropout


def _text_fields(**defaults: object) -> tuple[Field, ...]:
    """The fields BERT and ALBERT share; `defaults` are the class defaults that differ."""
    d = {"hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1} | defaults
    return (
        Field("vocab_size", "vocab_size", "int"),
        Field("hidden_size", "hidden_size", "int"),
        Field("num_hidden_layers", "num_layers", "int"),
        Field("num_attention_heads", "num_heads", "int"),
        Field("intermediate_size", "intermediate_size", "int"),
        Field("hidden_act", "hidden_act", "activation", d["hidden_act"]),
        Field("hidden_dropout_prob", "hidden_dropout", "float", d["hidden_dropout_prob"]),
        Field(
            "attention_probs_dropout_prob", "attention_dropout", "float", d["attention_probs_dropout_prob"]
        ),
        Field("max_position_embeddings", "max_position", "int", 512),
        Field("type_vocab_size", "type_vocab_size", "int", 2),
        Field("layer_norm_eps", "layer_norm_eps", "float", 1e-12),
        Field("initializer_range", "initializer_range", "float", 0.02),
        Field("pad_token_id", "pad_token_id", "int", 0),
    )


def _identity_projection(cfg: EncoderConfig) -> Tensor:
    return torch.eye(cfg.hidden_size)


def _zero_bias(cfg: EncoderConfig) -> Tensor:
    return torch.zeros(cfg.hidden_size)


# Non-weights: position/token-type id buffers some transformers versions saved, and the
# pre-training NSP/SOP heads (bert-base-uncased's checkpoint has one; edgept has no such task).
_TEXT_IGNORE = (r"(^|\.)embeddings\.position_ids$", r"(^|\.)embeddings\.token_type_ids$")
_FIXED = {"position_embedding_type": "absolute", "is_decoder": False, "add_cross_attention": False}

BERT = Family(
    model_type="bert",
    arch="bert",
    base="bert",
    architectures={
        "BertModel": "feature-extraction",
        "BertForSequenceClassification": "sequence-classification",
        "BertForMaskedLM": "masked-lm",
        "BertForPreTraining": "masked-lm",
    },
    fields=(*_text_fields(), Field("classifier_dropout", "classifier_dropout", "float", None)),
    fixed=_FIXED,
    backbone=KeyTable(
        (
            *_EMBEDDINGS,
            *nest("encoder.layer.{i}", "encoder.blocks.{i}", _BERT_LAYER),
            ("pooler.dense", "pooler.dense"),
        )
    ),
    heads=KeyTable(_mlm_head("cls.predictions")),
    ties=_mlm_ties("cls.predictions"),
    ignore=(*_TEXT_IGNORE, r"^cls\.seq_relationship\."),
)

ALBERT = Family(
    model_type="albert",
    arch="bert",
    base="albert",
    architectures={
        "AlbertModel": "feature-extraction",
        "AlbertForSequenceClassification": "sequence-classification",
        "AlbertForMaskedLM": "masked-lm",
        "AlbertForPreTraining": "masked-lm",
    },
    fields=(
        *_text_fields(hidden_act="gelu_new", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0),
        Field("embedding_size", "embedding_size", "int", 128, save=lambda c: c.emb_size),  # type: ignore[attr-defined]
        Field("num_hidden_groups", "num_groups", "int", 1, save=lambda c: c.groups),
        Field(
            "classifier_dropout_prob", "classifier_dropout", "float", 0.1, save=_effective_classifier_dropout
        ),
    ),
    # inner_group_num > 1 stacks several different layers per group; edgept's groups are one layer.
    fixed={**_FIXED, "inner_group_num": 1},
    implied={"embedding_projection": True},  # ALBERT always projects E -> H, even when E == H
    backbone=KeyTable(
        (
            *_EMBEDDINGS,
            ("encoder.embedding_hidden_mapping_in", "embeddings.projection"),
            *nest("encoder.albert_layer_groups.{i}.albert_layers.0", "encoder.blocks.{i}", _ALBERT_LAYER),
            ("pooler", "pooler.dense"),
        )
    ),
    heads=KeyTable(_mlm_head("predictions")),
    ties=_mlm_ties("predictions"),
    ignore=(*_TEXT_IGNORE, r"^sop_classifier\."),
    # A shared but unfactorized edgept BERT has no projection; ALBERT's layout needs one: identity.
    fillers={"embeddings.projection.weight": _identity_projection, "embeddings.projection.bias": _zero_bias},
    strict_fillers=frozenset({"embeddings.projection.weight", "embeddings.projection.bias"}),
)

FAMILIES = (BERT, ALBERT)


def choose(cfg: EncoderConfig) -> Family:
    """The HF family an edgept BERT is saved as: `albert` when factorized or shared, else `bert`.

    Both round-trip exactly: ALBERT holds E < H and any grouping that edgept's
    `layer * groups // layers` mapping gives (transformers uses the same formula).
    """
    assert isinstance(cfg, BertConfig)
    return ALBERT if cfg.factorized or cfg.shared else BERT
