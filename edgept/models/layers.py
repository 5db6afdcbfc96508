"""The transformer pieces BERT and ViT share: attention, feed-forward, a block, a (shareable) encoder.

BERT blocks are post-norm, ViT blocks pre-norm; everything else is the same code. Distillation
needs per-layer hidden states and pre-softmax attention scores, so the encoder returns them on
request. ALBERT-style sharing is structural: layers that share weights run the same module, so
there is one parameter tensor, gradients accumulate into it, and ONNX export stores it once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgept.models.config import EncoderConfig

# -1e4 (the original BERT value) rather than finfo(float32).min: it survives an fp16 cast as a
# finite number, so a later fp16 engine never sees -inf + -inf or inf - inf in the softmax.
MASK_BIAS = -10000.0


def activation(name: str) -> nn.Module:
    if name == "gelu":
        return nn.GELU()
    if name in ("gelu_new", "gelu_pytorch_tanh"):
        return nn.GELU(approximate="tanh")
    if name == "relu":
        return nn.ReLU()
    if name == "silu":
        return nn.SiLU()
    if name == "quick_gelu":
        return QuickGELU()
    raise ValueError(name)  # unreachable: EncoderConfig validates hidden_act


class QuickGELU(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(1.702 * x)


def mask_bias(attention_mask: Tensor, dtype: torch.dtype) -> Tensor:
    """(batch, seq) 1/0 mask -> (batch, 1, 1, seq) additive bias for the attention scores."""
    return (1.0 - attention_mask[:, None, None, :].to(dtype)) * MASK_BIAS


class Attention(nn.Module):
    def __init__(self, cfg: EncoderConfig, qkv_bias: bool = True):
        super().__init__()
        h, w = cfg.hidden_size, cfg.attention_width
        self.num_heads, self.head_dim = cfg.num_heads, cfg.head_dim
        self.q = nn.Linear(h, w, bias=qkv_bias)
        self.k = nn.Linear(h, w, bias=qkv_bias)
        self.v = nn.Linear(h, w, bias=qkv_bias)
        self.o = nn.Linear(w, h)
        self.dropout = cfg.attention_dropout

    def forward(self, x: Tensor, bias: Tensor | None, need_scores: bool) -> tuple[Tensor, Tensor | None]:
        b, t, _ = x.shape

        def heads(y: Tensor) -> Tensor:
            return y.view(b, t, self.num_heads, self.head_dim).transpose(1, 2)

        q, k, v = heads(self.q(x)), heads(self.k(x)), heads(self.v(x))
        dropout = self.dropout if self.training else 0.0
        scores = None
        # The explicit form is what ONNX Runtime's attention fusion recognises in an export and
        # what distillation needs (pre-softmax scores); SDPA is only the fast path for training.
        if need_scores or torch.onnx.is_in_onnx_export() or torch.jit.is_tracing():
            scores = (q @ k.transpose(-1, -2)) / math.sqrt(self.head_dim)
            probs = torch.softmax(scores if bias is None else scores + bias, dim=-1)
            ctx = F.dropout(probs, dropout, self.training) @ v
        else:
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout)
        ctx = ctx.transpose(1, 2).reshape(b, t, self.num_heads * self.head_dim)
        return self.o(ctx), (scores if need_scores else None)


class LowRankLinear(nn.Module):
    """`y = b(a(x))`: a Linear whose weight is the rank-`rank` product `b.weight @ a.weight`
    (in*r + r*out parameters instead of in*out), as `edgept.compress.factorize` makes it by SVD."""

    def __init__(self, in_features: int, out_features: int, rank: int):
        super().__init__()
        self.a = nn.Linear(in_features, rank, bias=False)
        self.b = nn.Linear(rank, out_features)

    def forward(self, x: Tensor) -> Tensor:
        return self.b(self.a(x))


def _linear(cfg: EncoderConfig, in_features: int, out_features: int) -> nn.Module:
    if cfg.ffn_rank is None:
        return nn.Linear(in_features, out_features)
    return LowRankLinear(in_features, out_features, cfg.ffn_rank)


class FeedForward(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.up = _linear(cfg, cfg.hidden_size, cfg.intermediate_size)
        self.act = activation(cfg.hidden_act)
        self.down = _linear(cfg, cfg.intermediate_size, cfg.hidden_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.down(self.act(self.up(x)))


class LayerScale(nn.Module):
    def __init__(self, dim: int, init: float):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init)))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


class Block(nn.Module):
    """One transformer layer: post-norm (BERT) or pre-norm with optional LayerScale (ViT)."""

    def __init__(self, cfg: EncoderConfig, prenorm: bool, qkv_bias: bool = True, layerscale: float | None = None):
        super().__init__()
        self.prenorm = prenorm
        self.attn = Attention(cfg, qkv_bias)
        self.attn_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.ffn = FeedForward(cfg)
        self.ffn_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.drop = nn.Dropout(cfg.hidden_dropout)
        self.ls1 = LayerScale(cfg.hidden_size, layerscale) if layerscale is not None else nn.Identity()
        self.ls2 = LayerScale(cfg.hidden_size, layerscale) if layerscale is not None else nn.Identity()

    def forward(self, x: Tensor, bias: Tensor | None, need_scores: bool) -> tuple[Tensor, Tensor | None]:
        if self.prenorm:
            a, scores = self.attn(self.attn_norm(x), bias, need_scores)
            x = x + self.ls1(self.drop(a))
            return x + self.ls2(self.drop(self.ffn(self.ffn_norm(x)))), scores
        a, scores = self.attn(x, bias, need_scores)
        x = self.attn_norm(x + self.drop(a))
        return self.ffn_norm(x + self.drop(self.ffn(x))), scores


@dataclass
class EncoderOutput:
    """What a model returns. `hidden_states` starts with the embedding output (num_layers + 1
    tensors); `attention_scores` are pre-softmax, before the padding mask is added."""

    last_hidden_state: Tensor
    pooled: Tensor | None = None
    logits: Tensor | None = None
    hidden_states: tuple[Tensor, ...] | None = None
    attention_scores: tuple[Tensor, ...] | None = None


class Encoder(nn.Module):
    """`num_layers` layers running `groups` blocks of weights (ALBERT's cross-layer sharing)."""

    def __init__(self, cfg: EncoderConfig, prenorm: bool, qkv_bias: bool = True, layerscale: float | None = None):
        super().__init__()
        self.config = cfg
        self.blocks = nn.ModuleList(Block(cfg, prenorm, qkv_bias, layerscale) for _ in range(cfg.groups))

    def forward(
        self, x: Tensor, bias: Tensor | None, need_hidden: bool = False, need_scores: bool = False
    ) -> tuple[Tensor, tuple[Tensor, ...] | None, tuple[Tensor, ...] | None]:
        hidden, scores = [x], []
        for i in range(self.config.num_layers):
            x, s = self.blocks[self.config.group_of(i)](x, bias, need_scores)
            hidden.append(x)
            scores.append(s)
        return x, (tuple(hidden) if need_hidden else None), (tuple(scores) if need_scores else None)


def init_weights(module: nn.Module, std: float) -> None:
    """BERT's initialisation: N(0, std) for linear and embedding weights, zero biases, unit norms."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.trunc_normal_(m.weight, std=std, a=-2 * std, b=2 * std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=std)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
