"""ViT, DeiT and DINOv2: config fields and tensor names, as tables.

All three map onto edgept's `ViT` (pre-norm blocks, final LayerNorm). DeiT adds the
distillation token; DINOv2 adds LayerScale, an MLP sized by `mlp_ratio`, and a classifier over
[CLS] concatenated with the mean of the patch tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from edgept.errors import ConfigError
from edgept.models.config import EncoderConfig, ViTConfig
from edgept.models.hf.mapping import Family, Field, KeyTable, nest

_EMBEDDINGS = (
    ("embeddings.cls_token", "embeddings.cls"),
    ("embeddings.position_embeddings", "embeddings.position"),
    ("embeddings.patch_embeddings.projection", "embeddings.patch"),
)
_DISTILLATION = (("embeddings.distillation_token", "embeddings.dist"),)
_CLASSIFIER = KeyTable((("classifier", "head.classifier"),))
_ATTENTION = (
    ("attention.attention.query", "attn.q"),
    ("attention.attention.key", "attn.k"),
    ("attention.attention.value", "attn.v"),
    ("attention.output.dense", "attn.o"),
)
_VIT_LAYER = (
    *_ATTENTION,
    ("layernorm_before", "attn_norm"),
    ("layernorm_after", "ffn_norm"),
    ("intermediate.dense", "ffn.up"),
    ("output.dense", "ffn.down"),
)
_DINOV2_LAYER = (
    *_ATTENTION,
    ("norm1", "attn_norm"),
    ("norm2", "ffn_norm"),
    ("mlp.fc1", "ffn.up"),
    ("mlp.fc2", "ffn.down"),
    ("layer_scale1.lambda1", "ls1.gamma"),
    ("layer_scale2.lambda1", "ls2.gamma"),
)
_TAIL = (("layernorm", "norm"), ("pooler.dense", "pooler.dense"))


def _fields(*, intermediate: bool, layer_norm_eps: float) -> tuple[Field, ...]:
    """The fields the three share; DINOv2 sizes its MLP by mlp_ratio instead of intermediate_size."""
    return (
        Field("hidden_size", "hidden_size", "int"),
        Field("num_hidden_layers", "num_layers", "int"),
        Field("num_attention_heads", "num_heads", "int"),
        *((Field("intermediate_size", "intermediate_size", "int"),) if intermediate else ()),
        Field("hidden_act", "hidden_act", "activation", "gelu"),
        Field("hidden_dropout_prob", "hidden_dropout", "float", 0.0),
        Field("attention_probs_dropout_prob", "attention_dropout", "float", 0.0),
        Field("layer_norm_eps", "layer_norm_eps", "float", layer_norm_eps),
        Field("initializer_range", "initializer_range", "float", 0.02),
        Field("image_size", "image_size", "size2"),
        Field("patch_size", "patch_size", "square"),
        Field("num_channels", "num_channels", "int", 3),
        Field("qkv_bias", "qkv_bias", "bool", True),
    )


def _mlp_from_ratio(hf: Mapping[str, Any], where: str) -> dict[str, Any]:
    hidden, ratio = hf.get("hidden_size"), hf.get("mlp_ratio", 4)
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or ratio <= 0:
        raise ConfigError(f"{where}: mlp_ratio={ratio!r} must be a positive number")
    # transformers' Dinov2MLP: int(hidden_size * mlp_ratio) hidden features.
    return {"intermediate_size": int(hidden * ratio)} if isinstance(hidden, int) else {}


def _ratio_for(cfg: EncoderConfig) -> dict[str, Any]:
    # transformers' Dinov2Config types mlp_ratio as an int (and sizes the MLP hidden * ratio).
    if cfg.intermediate_size % cfg.hidden_size:
        raise ConfigError(
            f"a LayerScale ViT is saved as dinov2, whose MLP is hidden_size * an integer mlp_ratio, but intermediate_size="
            f"{cfg.intermediate_size} is not a multiple of hidden_size={cfg.hidden_size}; use e.g. {4 * cfg.hidden_size}"
        )
    return {"mlp_ratio": cfg.intermediate_size // cfg.hidden_size}


def _zero_mask_token(cfg: EncoderConfig) -> Tensor:
    # DINOv2's masked-image-modelling token: unused for inference (edgept has no masking), but
    # transformers expects it; zeros, as edgept cannot know the trained value.
    return torch.zeros(1, cfg.hidden_size)


_VIT_ARGS: dict[str, Any] = {
    "fields": _fields(intermediate=True, layer_norm_eps=1e-12),
    "fixed": {"pooler_act": "tanh"},  # edgept's pooler is dense + tanh
    "lossy": ("classifier_dropout",),  # HF ViT heads apply no dropout before the classifier
    "export": lambda cfg: {"pooler_output_size": cfg.hidden_size},
}

VIT = Family(
    model_type="vit",
    arch="vit",
    base="vit",
    architectures={"ViTModel": "feature-extraction", "ViTForImageClassification": "image-classification"},
    backbone=KeyTable((*_EMBEDDINGS, *nest("encoder.layer.{i}", "encoder.blocks.{i}", _VIT_LAYER), *_TAIL)),
    heads=_CLASSIFIER,
    **_VIT_ARGS,
)

DEIT = Family(
    model_type="deit",
    arch="vit",
    base="deit",
    architectures={
        "DeiTModel": "feature-extraction",
        "DeiTForImageClassification": "image-classification",
        "DeiTForImageClassificationWithTeacher": "image-classification",
    },
    refused={
        "DeiTForImageClassificationWithTeacher": "its logits average a [CLS] head and a distillation-token head, "
        "while edgept's DeiT head is one classifier on [CLS]; pass task='feature-extraction' to load the encoder alone"
    },
    implied={"distillation_token": True},
    backbone=KeyTable(
        (*_EMBEDDINGS, *_DISTILLATION, *nest("encoder.layer.{i}", "encoder.blocks.{i}", _VIT_LAYER), *_TAIL)
    ),
    # With the teacher model's two heads named, task='feature-extraction' can drop them.
    heads=KeyTable(
        (
            ("classifier", "head.classifier"),
            ("cls_classifier", "head.cls_classifier"),
            ("distillation_classifier", "head.distillation_classifier"),
        )
    ),
    **_VIT_ARGS,
)

DINOV2 = Family(
    model_type="dinov2",
    arch="vit",
    base="dinov2",
    architectures={
        "Dinov2Model": "feature-extraction",
        "Dinov2ForImageClassification": "image-classification",
    },
    fields=(
        *_fields(intermediate=False, layer_norm_eps=1e-6),
        Field("layerscale_value", "layerscale_init", "float", 1.0),
    ),
    fixed={"use_swiglu_ffn": False},  # the SwiGLU MLP (DINOv2 giant) is not edgept's FeedForward
    implied={"head_pooling": "cls+mean"},
    derive=_mlp_from_ratio,
    export=_ratio_for,
    backbone=KeyTable(
        (
            *_EMBEDDINGS,
            ("embeddings.mask_token", "embeddings.mask_token"),
            *nest("encoder.layer.{i}", "encoder.blocks.{i}", _DINOV2_LAYER),
            *_TAIL[:1],  # Dinov2Model's pooled output is [CLS] itself, no weights
        )
    ),
    heads=_CLASSIFIER,
    fillers={"embeddings.mask_token": _zero_mask_token},
    lossy=("classifier_dropout",),
)

FAMILIES = (VIT, DEIT, DINOV2)


def choose(cfg: EncoderConfig) -> Family:
    """The HF family an edgept ViT is saved as, chosen so that it round-trips exactly.

    LayerScale -> `dinov2` (needs head_pooling "cls+mean" for a classifier, no pooler, no
    distillation token); a distillation token -> `deit`; otherwise `vit`. Configs none of them
    can hold (e.g. shared layers, which no HF vision model has) are a `ConfigError`.
    """
    assert isinstance(cfg, ViTConfig)
    classifies = cfg.task == "image-classification"
    family = DINOV2 if cfg.layerscale_init is not None else DEIT if cfg.distillation_token else VIT
    problems = []
    if cfg.shared:
        problems.append(
            f"num_groups={cfg.groups} < num_layers={cfg.num_layers} (HF vision models share no layers)"
        )
    if family is DINOV2:
        if cfg.distillation_token:
            problems.append("a distillation token together with LayerScale")
        if cfg.pooler:
            problems.append("pooler=True with LayerScale (Dinov2Model has no pooler)")
        if classifies and cfg.head_pooling != "cls+mean":
            problems.append(
                "head_pooling='cls' with LayerScale (Dinov2ForImageClassification reads [CLS]+mean)"
            )
    elif classifies and cfg.head_pooling != "cls":
        problems.append(
            f"head_pooling={cfg.head_pooling!r} without LayerScale ({family.model_type} classifies [CLS])"
        )
    if problems:
        raise ConfigError(
            f"this ViT has no Hugging Face equivalent: {'; '.join(problems)}; "
            "supported: vit (plain), deit (distillation_token), dinov2 (layerscale_init)"
        )
    return family
