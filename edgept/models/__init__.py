"""edgept's own compact PyTorch encoders, their configs, and Hugging Face checkpoint interop."""

from __future__ import annotations

from torch import nn

from edgept.models.bert import Bert
from edgept.models.config import BertConfig, EncoderConfig, ViTConfig, config_from_dict
from edgept.models.layers import EncoderOutput
from edgept.models.vit import ViT
from edgept.registry import Registry

ARCHITECTURES: Registry[type[nn.Module]] = Registry("architecture")
ARCHITECTURES.add("bert", Bert)
ARCHITECTURES.add("vit", ViT)


def build_model(config: EncoderConfig) -> nn.Module:
    """A freshly initialised model for `config` (use `torch.manual_seed` first for determinism)."""
    return ARCHITECTURES.get(config.arch)(config)


def parameter_breakdown(model: nn.Module) -> dict[str, int]:
    """Unique parameters (a shared tensor counted once) by part: embeddings, encoder, heads."""
    seen: set[int] = set()
    parts = {"embeddings": 0, "encoder": 0, "heads": 0}
    for name, p in model.named_parameters():  # named_parameters already skips repeats of one tensor
        if id(p) in seen:
            continue
        seen.add(id(p))
        top = name.split(".", 1)[0]
        part = top if top in ("embeddings", "encoder") else "heads"
        if top == "norm":  # ViT's final LayerNorm belongs to the encoder, not a task head
            part = "encoder"
        parts[part] += p.numel()
    parts["total"] = sum(parts.values())
    return parts


__all__ = [
    "ARCHITECTURES",
    "Bert",
    "BertConfig",
    "EncoderConfig",
    "EncoderOutput",
    "ViT",
    "ViTConfig",
    "build_model",
    "config_from_dict",
    "load_model",
    "parameter_breakdown",
    "save_model",
]

# Imported last: edgept.models.hf builds models with build_model above.
from edgept.models.hf import load_model, save_model  # noqa: E402
