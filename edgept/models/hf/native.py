"""edgept's own checkpoint directory, for models Hugging Face has no class for.

A model with low-rank feed-forward layers (`ffn_rank`, from `edgept factorize --ffn-rank`) or with
pruned attention heads (`edgept prune --heads-keep`) has no BERT/ALBERT/ViT equivalent: their FFNs
are dense and their heads span hidden_size (transformers 5 dropped `pruned_heads`). Rather than
multiply the factors back or pad the heads (and lose the size either bought), such a model is saved in the same directory layout as a HF
checkpoint (config.json, model.safetensors, tokenizer files) but with `"model_type": "edgept"`,
edgept's config under "edgept", and edgept's own parameter names. transformers refuses it with an
unknown-model-type error instead of loading it half-initialised; edgept loads, fine-tunes,
distills and exports it like any checkpoint. A weight stored under two names (tied or shared) is
written once and re-tied on load, as `"edgept_ties"` records.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from edgept.errors import ConfigError, InputError
from edgept.fileio import read_json
from edgept.models import build_model
from edgept.models.config import EncoderConfig, config_from_dict
from edgept.models.hf.checkpoint import CheckpointFiles, one_line, read_tensors, write_checkpoint

MODEL_TYPE = "edgept"


def is_native(hf: dict[str, Any]) -> bool:
    return hf.get("model_type") == MODEL_TYPE


def native_config(files: CheckpointFiles, task: str | None = None, labels: tuple[str, ...] | None = None) -> EncoderConfig:
    """The config of a native checkpoint; `task`/`labels` may only restate the saved ones."""
    hf = read_json(files.config)
    try:
        cfg = config_from_dict(hf.get("edgept"))
    except (ConfigError, TypeError, AttributeError) as e:
        raise InputError(f"{files.config}: model_type 'edgept' needs a valid 'edgept' config block ({e}); re-save the model") from None
    if (task is not None and task != cfg.task) or (labels is not None and tuple(labels) != tuple(cfg.labels)):
        raise ConfigError(
            f"{files.root} is an edgept checkpoint ({cfg.task}, labels {list(cfg.labels)}); a new head or other labels "
            "need a Hugging Face checkpoint: fine-tune before factorizing the feed-forward layers"
        )
    return cfg


def check_shapes(files: CheckpointFiles, model: nn.Module, shapes: dict[str, list[int]]) -> None:
    """The stored tensors (names, shapes; no values) fit `model`, tied copies aside: else one line."""
    ties = read_json(files.config).get("edgept_ties") or {}
    want = {k: list(v.shape) for k, v in model.state_dict().items() if k not in ties}
    if want != {k: list(v) for k, v in shapes.items()}:
        wrong = sorted(set(want) ^ set(shapes) | {k for k in want.keys() & shapes.keys() if want[k] != list(shapes[k])})
        raise InputError(f"{files.root}: the weights do not fit its edgept config ({', '.join(wrong[:3])}); re-save the model")


def save_native(model: nn.Module, path: str | os.PathLike, copy_files: list[Path], overwrite: bool) -> Path:
    cfg: EncoderConfig = model.config
    tensors, ties, seen = {}, {}, {}
    for name, t in model.state_dict(keep_vars=False).items():
        key = (t.data_ptr(), t.shape, t.stride())
        if key in seen:
            ties[name] = seen[key]
            continue
        seen[key] = name
        tensors[name] = t.detach().to("cpu")
    hf = {"model_type": MODEL_TYPE, "architectures": [f"edgept-{cfg.arch}-{cfg.task}"], "edgept": cfg.to_dict(),
          "edgept_ties": ties}  # fmt: skip
    return write_checkpoint(path, hf, tensors, copy_files=copy_files, overwrite=overwrite)


def load_native(files: CheckpointFiles, task: str | None = None, labels: tuple[str, ...] | None = None) -> nn.Module:
    cfg = native_config(files, task, labels)
    tensors = read_tensors(files)
    for name, same in (read_json(files.config).get("edgept_ties") or {}).items():
        if same not in tensors:
            raise InputError(f"{files.config}: edgept_ties names {same!r}, which model.safetensors lacks; re-save the model")
        tensors[name] = tensors[same]
    model = build_model(cfg)
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(tensors)), sorted(set(tensors) - expected)
    if missing or unexpected:
        raise InputError(
            f"{files.root}: the weights do not fit its edgept config (missing {missing[:3]}, unexpected {unexpected[:3]}); "
            "re-save the model"
        )
    try:
        model.load_state_dict(tensors)
    except RuntimeError as e:  # a shape that does not fit: torch's message spans lines
        raise InputError(f"{files.root}: {one_line(e)}; re-save the model") from None
    return model.eval()
