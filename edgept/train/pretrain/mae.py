"""Masked autoencoding (He et al., 2021) for edgept's ViT: hide most patches, encode the visible
ones, reconstruct the hidden ones' pixels with a light decoder.

The encoder is the ViT itself run on the visible patches only ([CLS] + 25% of the patches by
default), which is what makes MAE cheap. The decoder (a few narrow pre-norm blocks with fixed 2-D
sine-cosine positions) exists only for pre-training: `fit` saves the encoder as the model, and the
decoder is written beside it (see `pretrain_vit`). The loss is the mean squared error on the
masked patches only, against their pixels, optionally normalised per patch (MAE's best target).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from edgept.configs import DictConfig
from edgept.errors import ConfigError
from edgept.models.config import ViTConfig
from edgept.models.layers import Encoder, init_weights
from edgept.train.objectives import Objective


@dataclass(frozen=True, kw_only=True)
class MAEConfig(DictConfig):
    """mask_ratio: share of patches hidden (round(ratio * patches) per image, exactly).
    decoder_*: the light decoder's depth, width and heads. norm_pix: reconstruct each patch's
    pixels normalised by that patch's mean and variance (MAE's default target) instead of raw."""

    kind: ClassVar[str] = "MAE config"

    mask_ratio: float = 0.75
    decoder_layers: int = 1
    decoder_hidden: int = 128
    decoder_heads: int = 4
    norm_pix: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.mask_ratio, bool) or not isinstance(self.mask_ratio, int | float) or not 0 < self.mask_ratio < 1:
            raise ConfigError(f"mask_ratio must be in (0, 1), got {self.mask_ratio!r}")
        for name in ("decoder_layers", "decoder_hidden", "decoder_heads"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name} must be a whole number >= 1, got {v!r}")
        if self.decoder_hidden % 4 or self.decoder_hidden % self.decoder_heads:
            raise ConfigError(
                f"decoder_hidden {self.decoder_hidden} must be a multiple of 4 (2-D sine-cosine positions) and of decoder_heads {self.decoder_heads}"
            )

    def masked_count(self, patches: int) -> int:
        """Patches hidden per image; at least one stays visible and at least one is hidden."""
        return min(max(round(self.mask_ratio * patches), 1), patches - 1)


def random_masking(batch: int, patches: int, masked: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """(keep, mask): per image, the indices of the `patches - masked` visible patches (ascending)
    and a bool (batch, patches) mask, True where hidden; a uniformly random subset per image."""
    order = torch.rand(batch, patches, generator=generator).argsort(dim=1)
    keep = order[:, : patches - masked].sort(dim=1).values
    mask = torch.ones(batch, patches, dtype=torch.bool)
    mask.scatter_(1, keep, False)
    return keep, mask


def patchify(pixels: Tensor, patch: int) -> Tensor:
    """(B, C, H, W) -> (B, patches, patch*patch*C), patches in the row-major order of the ViT's
    patch embedding, each patch's pixels row by row with channels last (MAE's layout)."""
    b, c, h, w = pixels.shape
    x = pixels.reshape(b, c, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // patch) * (w // patch), patch * patch * c)


def mae_target(pixels: Tensor, patch: int, norm_pix: bool) -> Tensor:
    """What the decoder reconstructs for every patch: its pixels, or (norm_pix) those pixels
    minus the patch mean over the square root of its variance + 1e-6 (as in MAE)."""
    target = patchify(pixels, patch)
    if norm_pix:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + 1e-6) ** 0.5
    return target


def mae_loss(prediction: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean squared error per patch, averaged over the hidden patches only."""
    per_patch = ((prediction - target) ** 2).mean(dim=-1)
    return (per_patch * mask).sum() / mask.sum()


def sincos_2d(dim: int, grid: tuple[int, int]) -> Tensor:
    """Fixed 2-D sine-cosine positions (1, 1 + gh*gw, dim): half the channels encode the row,
    half the column; the [CLS] slot is zeros (MAE's decoder positions)."""
    gh, gw = grid
    freq = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim // 4))
    rows, cols = torch.meshgrid(torch.arange(gh, dtype=torch.float64), torch.arange(gw, dtype=torch.float64), indexing="ij")
    parts = []
    for coord in (cols.reshape(-1), rows.reshape(-1)):
        angles = coord[:, None] * freq[None]
        parts += [angles.sin(), angles.cos()]
    table = torch.cat(parts, dim=1).float()
    return torch.cat([torch.zeros(1, dim), table])[None]


def encode_visible(vit: nn.Module, pixels: Tensor, keep: Tensor) -> Tensor:
    """The ViT's normalised output for [CLS] + the `keep` patches only (B, 1 + kept, hidden)."""
    emb = vit.embeddings
    x = emb.patch(pixels).flatten(2).transpose(1, 2) + emb.position[:, 1:]
    x = x.gather(1, keep[..., None].expand(-1, -1, x.shape[-1]))
    cls = (emb.cls + emb.position[:, :1]).expand(x.shape[0], -1, -1)
    x, _, _ = vit.encoder(emb.drop(torch.cat([cls, x], dim=1)), None)
    return vit.norm(x)


class MAEDecoder(nn.Module):
    """Encoded visible tokens -> predicted pixels of every patch (B, patches, patch*patch*C)."""

    def __init__(self, encoder: ViTConfig, config: MAEConfig):
        super().__init__()
        d = config.decoder_hidden
        blocks = ViTConfig(
            hidden_size=d, num_layers=config.decoder_layers, num_heads=config.decoder_heads, intermediate_size=4 * d,
            image_size=encoder.image_size, patch_size=encoder.patch_size, num_channels=encoder.num_channels,
            layer_norm_eps=1e-6,
        )  # fmt: skip
        self.embed = nn.Linear(encoder.hidden_size, d)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, d))
        self.register_buffer("position", sincos_2d(d, encoder.grid), persistent=False)
        self.blocks = Encoder(blocks, prenorm=True)
        self.norm = nn.LayerNorm(d, eps=1e-6)
        self.pred = nn.Linear(d, encoder.patch_size**2 * encoder.num_channels)
        init_weights(self, 0.02)
        nn.init.normal_(self.mask_token, std=0.02)

    def forward(self, latent: Tensor, keep: Tensor, patches: int) -> Tensor:
        x = self.embed(latent)
        b, d = x.shape[0], x.shape[-1]
        tokens = self.mask_token.expand(b, patches, d).scatter(1, keep[..., None].expand(-1, -1, d), x[:, 1:])
        x, _, _ = self.blocks(torch.cat([x[:, :1], tokens], dim=1) + self.position, None)
        return self.pred(self.norm(x))[:, 1:]


class MAEObjective(Objective):
    """MAE on a plain ViT (one [CLS] token, the config's own image size): `.model` is the encoder,
    `.decoder` the light decoder trained with it."""

    def __init__(self, model: nn.Module, config: MAEConfig):
        super().__init__()
        cfg = model.config
        if cfg.arch != "vit" or cfg.num_prefix_tokens != 1:
            raise ConfigError("MAE pre-trains a plain ViT (one [CLS] token, no distillation token)")
        self.model, self.config = model, config
        self.decoder = MAEDecoder(cfg, config)
        gh, gw = cfg.grid
        self.patches = gh * gw
        self.masked = config.masked_count(self.patches)

    def reconstruct(self, pixels: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """(loss, prediction, mask) for a batch of images, with a fresh random mask per image."""
        keep, mask = random_masking(pixels.shape[0], self.patches, self.masked, generator)
        keep, mask = keep.to(pixels.device), mask.to(pixels.device)
        prediction = self.decoder(encode_visible(self.model, pixels, keep), keep, self.patches)
        target = mae_target(pixels, self.model.config.patch_size, self.config.norm_pix)
        return mae_loss(prediction, target, mask), prediction, mask

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        loss, _, _ = self.reconstruct(batch["pixel_values"])
        return loss, {}

    def held_out_loss(self, examples: list, collate: object, batch_size: int = 256, seed: int = 0) -> float:
        """Mean reconstruction loss over `examples` with seeded masks (comparable between runs)."""
        generator = torch.Generator().manual_seed(seed)
        total, n = 0.0, 0
        was_training = self.training
        self.eval()
        with torch.no_grad():
            for i in range(0, len(examples), batch_size):
                chunk = [examples[j] for j in range(i, min(i + batch_size, len(examples)))]
                loss, _, _ = self.reconstruct(collate(chunk)["pixel_values"], generator)
                total, n = total + loss.item() * len(chunk), n + len(chunk)
        self.train(was_training)
        return total / n
