"""ViT (and DeiT, DINOv2): patch embedding, [CLS] (+ distillation) token, learned position
embeddings interpolated to other image sizes, a pre-norm encoder with optional LayerScale."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgept.models.bert import ClassificationHead, Pooler
from edgept.models.config import ViTConfig
from edgept.models.layers import Encoder, EncoderOutput, init_weights


class PatchEmbeddings(nn.Module):
    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.config = cfg
        h = cfg.hidden_size
        self.patch = nn.Conv2d(cfg.num_channels, h, kernel_size=cfg.patch_size, stride=cfg.patch_size)
        self.cls = nn.Parameter(torch.zeros(1, 1, h))
        self.dist = nn.Parameter(torch.zeros(1, 1, h)) if cfg.distillation_token else None
        gh, gw = cfg.grid
        self.position = nn.Parameter(torch.zeros(1, cfg.num_prefix_tokens + gh * gw, h))
        self.drop = nn.Dropout(cfg.hidden_dropout)

    def position_embeddings(self, gh: int, gw: int) -> Tensor:
        """Position embeddings for a gh x gw patch grid: bicubic interpolation of the trained grid
        (as DINO and Hugging Face do), always when tracing so an export accepts any image size."""
        cfg = self.config
        if (gh, gw) == cfg.grid and not (torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()):
            return self.position
        n = cfg.num_prefix_tokens
        prefix, grid = self.position[:, :n], self.position[:, n:]
        th, tw = cfg.grid
        grid = grid.reshape(1, th, tw, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(gh, gw), mode="bicubic", align_corners=False)
        return torch.cat([prefix, grid.permute(0, 2, 3, 1).reshape(1, gh * gw, -1)], dim=1)

    def forward(self, pixel_values: Tensor) -> Tensor:
        b = pixel_values.shape[0]
        x = self.patch(pixel_values)
        gh, gw = x.shape[-2], x.shape[-1]
        x = x.flatten(2).transpose(1, 2)
        prefix = [self.cls.expand(b, -1, -1)] + ([self.dist.expand(b, -1, -1)] if self.dist is not None else [])
        x = torch.cat([*prefix, x], dim=1) + self.position_embeddings(gh, gw)
        return self.drop(x)


class ViT(nn.Module):
    """A ViT encoder with the head its `config.task` asks for."""

    def __init__(self, config: ViTConfig):
        super().__init__()
        self.config = config
        self.embeddings = PatchEmbeddings(config)
        self.encoder = Encoder(config, prenorm=True, qkv_bias=config.qkv_bias, layerscale=config.layerscale_init)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.pooler = Pooler(config.hidden_size) if config.pooler else None
        self.head: ClassificationHead | None = None
        if config.task == "image-classification":
            width = config.hidden_size * (2 if config.head_pooling == "cls+mean" else 1)
            drop = config.hidden_dropout if config.classifier_dropout is None else config.classifier_dropout
            self.head = ClassificationHead(width, config.num_labels, drop)
        init_weights(self, config.initializer_range)
        nn.init.trunc_normal_(self.embeddings.position, std=config.initializer_range)
        nn.init.trunc_normal_(self.embeddings.cls, std=config.initializer_range)
        if self.embeddings.dist is not None:
            nn.init.trunc_normal_(self.embeddings.dist, std=config.initializer_range)

    def forward(
        self, pixel_values: Tensor, *, output_hidden_states: bool = False, output_attention_scores: bool = False
    ) -> EncoderOutput:
        x = self.embeddings(pixel_values)
        x, hidden, scores = self.encoder(x, None, output_hidden_states, output_attention_scores)
        x = self.norm(x)
        pooled = self.pooler(x) if self.pooler is not None else None
        logits = None
        if self.head is not None:
            feats = x[:, 0]
            if self.config.head_pooling == "cls+mean":
                feats = torch.cat([feats, x[:, self.config.num_prefix_tokens :].mean(dim=1)], dim=-1)
            logits = self.head(feats)
        return EncoderOutput(x, pooled, logits, hidden, scores)
