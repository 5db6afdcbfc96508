"""Pre-training from scratch: BERT by masked language modelling (optionally whole-word masking and
ALBERT's sentence-order prediction), ViT by masked autoencoding or supervised classification.

    pretrain_bert(["austen"], "out/bert-mini", BertPretrainConfig(shape=Shape(preset="mini")), TrainConfig(max_steps=1000))
    pretrain_vit("fashion-mnist", "out/vit-mae", ViTPretrainConfig(objective="mae"), TrainConfig(max_steps=1000))

Both train through `edgept.train.fit` (checkpoints, resume, data parallelism) and write HF checkpoints.
"""

from __future__ import annotations

from edgept.train.pretrain.mae import MAEConfig, MAEObjective
from edgept.train.pretrain.mlm import MaskingConfig, MLMCollate, MLMObjective
from edgept.train.pretrain.run import (
    PRESETS,
    BertPretrainConfig,
    Shape,
    ViTPretrainConfig,
    pretrain_bert,
    pretrain_vit,
)

__all__ = [
    "PRESETS",
    "BertPretrainConfig",
    "MAEConfig",
    "MAEObjective",
    "MLMCollate",
    "MLMObjective",
    "MaskingConfig",
    "Shape",
    "ViTPretrainConfig",
    "pretrain_bert",
    "pretrain_vit",
]
