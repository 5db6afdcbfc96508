"""Load a Hugging Face checkpoint directory as an edgept model, and save one back."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgept.errors import ConfigError, InputError
from edgept.fileio import read_json
from edgept.models import build_model, parameter_breakdown
from edgept.models.config import CONFIGS, EncoderConfig, config_from_dict
from edgept.models.hf import bert, native, vit
from edgept.models.hf.checkpoint import (
    TOKENIZER_FILES,
    CheckpointFiles,
    checkpoint_files,
    read_tensors,
    tensor_shapes,
    write_checkpoint,
)
from edgept.models.hf.mapping import Family, canonical, explain_shape, labels_from, make_config

FAMILIES: dict[str, Family] = {f.model_type: f for f in (*bert.FAMILIES, *vit.FAMILIES)}
SUPPORTED_MODEL_TYPES = tuple(sorted(FAMILIES))
_CHOOSE = {"bert": bert.choose, "vit": vit.choose}  # edgept arch -> the family it is saved as


@dataclass(frozen=True)
class _Plan:
    """What config.json (and the tensor names) say: the family, the edgept config, the task."""

    files: CheckpointFiles
    hf: dict[str, Any]
    family: Family
    config: EncoderConfig
    architecture: str | None  # architectures[0] of config.json
    fresh_head: bool  # task= asked for another head than the checkpoint's: it starts from init


def _family(hf: dict[str, Any], where: str) -> Family:
    model_type = hf.get("model_type")
    if model_type not in FAMILIES:
        what = (
            "has no 'model_type'"
            if model_type is None
            else f"has model_type {model_type!r}, which is not supported"
        )
        raise ConfigError(f"{where} {what}; supported: {', '.join(SUPPORTED_MODEL_TYPES)}")
    return FAMILIES[model_type]


def _classification(arch: str) -> str:
    return next(t for t in CONFIGS[arch].tasks if t.endswith("classification"))


def _checkpoint_task(
    family: Family, hf: dict[str, Any], ours: set[str], where: str
) -> tuple[str, str | None]:
    """The task of the checkpoint's head, from `architectures`, else from which head tensors exist."""
    architectures = hf.get("architectures") or []
    if architectures:
        name = architectures[0]
        if name not in family.architectures:
            supported = ", ".join(a for a in family.architectures if a not in family.refused)
            raise ConfigError(
                f"{where}: architecture {name!r} is not supported for {family.model_type}; supported: {supported}"
            )
        return family.architectures[name], name
    if "head.classifier.weight" in ours:
        return _classification(family.arch), None
    return ("masked-lm" if "head.bias" in ours else "feature-extraction"), None


def _plan(
    files: CheckpointFiles, task: str | None, names: list[str], labels: tuple[str, ...] | None = None
) -> _Plan:
    where = str(files.config)
    hf = read_json(files.config)
    family = _family(hf, where)
    ours = {o for n in names if not family.ignored(n) and (o := family.our_name(n)[0])}
    kw = family.config_kwargs(hf, where)
    kw["task"], architecture = _checkpoint_task(family, hf, ours, where)
    kw["labels"] = labels_from(hf, where) if kw["task"].endswith("classification") else ()
    # A pooler exists when its weights do; BERT's classifier reads it, so it is then expected.
    kw["pooler"] = "pooler.dense.weight" in ours or kw["task"] == "sequence-classification"
    cfg = make_config(family.arch, kw, where)
    if "edgept" in hf:
        cfg = _edgept_block(hf["edgept"], cfg, family, where)
    if architecture in family.refused and (task is None or task == cfg.task):
        raise ConfigError(f"{where}: {architecture} is not supported: {family.refused[architecture]}")
    target = cfg.task if task is None else task
    if labels is not None and not target.endswith("classification"):
        raise ConfigError(f"labels= needs a classification task, but {where} loads as {target!r}; pass task= too")
    # Other labels than the checkpoint's (e.g. a fine-tuning set's) also mean a fresh head.
    fresh = target != cfg.task or (labels is not None and labels != cfg.labels)
    if fresh:
        if target not in cfg.tasks:
            raise ConfigError(f"task {target!r} is not one of {cfg.tasks} for a {family.model_type} checkpoint")
        new_labels = labels if labels is not None else labels_from(hf, where)
        changes: dict[str, Any] = {
            "task": target,
            "labels": new_labels if target.endswith("classification") else (),
        }
        if target == "sequence-classification":
            changes["pooler"] = (
                True  # BERT's classifier reads the pooler: a fresh one if the checkpoint has none
            )
        try:
            cfg = cfg.replace(**changes)
        except ConfigError as e:
            raise ConfigError(f"{where} with task={target!r}: {e}") from None
    return _Plan(files, hf, family, cfg, architecture, fresh)


def _edgept_block(block: Any, from_hf: EncoderConfig, family: Family, where: str) -> EncoderConfig:
    """edgept's own config saved beside the HF fields: used (it is exact) when it agrees with them."""
    try:
        cfg = config_from_dict(block) if isinstance(block, dict) else None
    except ConfigError as e:
        raise ConfigError(
            f"{where}: invalid 'edgept' block ({e}); remove the 'edgept' key to load from the HF fields alone"
        ) from None
    if cfg is None or cfg.arch != family.arch:
        raise InputError(
            f"{where}: its 'edgept' block is not an edgept {family.arch} config; remove the 'edgept' key to load from the HF fields alone"
        )
    ours, theirs = canonical(cfg, family.lossy), canonical(from_hf, family.lossy)
    for key in ours:
        if ours[key] != theirs.get(key):
            raise InputError(
                f"{where}: its 'edgept' block disagrees with its Hugging Face fields ({key}: {ours[key]!r} vs {theirs.get(key)!r}); "
                "remove the 'edgept' key to load from the HF fields alone"
            )
    return cfg


def read_config(path: str | os.PathLike, task: str | None = None) -> EncoderConfig:
    """The edgept config of the HF checkpoint directory `path` (validated), without loading weights.

    `task` overrides the task `architectures` implies, as in `load_model`.
    """
    files = checkpoint_files(path)
    if native.is_native(read_json(files.config)):
        return native.native_config(files, task)
    return _plan(files, task, list(tensor_shapes(files))).config


def load_model(
    path: str | os.PathLike, task: str | None = None, labels: Sequence[str] | None = None
) -> nn.Module:
    """An edgept model (eval mode, float32 parameters) from a local Hugging Face checkpoint directory.

    Reads config.json and model.safetensors (or a sharded index, or pytorch_model.bin with
    `torch.load(weights_only=True)`). Supported model_types: albert, bert, deit, dinov2, vit. The
    task comes from `architectures`; `task=` picks another head, which then starts from a fresh
    init (and the checkpoint's own head is dropped); so does `labels=` (class names, for fine-tuning
    on a data set) when they differ from the checkpoint's. Every other tensor must be used and every
    parameter filled; anything else is an `InputError`/`ConfigError` with a one-line message.
    """
    files = checkpoint_files(path)
    if native.is_native(read_json(files.config)):
        return native.load_native(files, task, None if labels is None else tuple(labels))
    tensors = read_tensors(files)
    plan = _plan(files, task, list(tensors), None if labels is None else tuple(labels))
    model = build_model(plan.config)
    fit = _fit(plan, {k: list(v.shape) for k, v in tensors.items()}, _shapes(model))
    root, fillers = plan.files.root, plan.family.fillers
    for hf_name, ours in fit.implicit:
        if not torch.equal(tensors[hf_name].float(), fillers[ours](plan.config)):
            raise InputError(
                f"{root}: {hf_name} holds trained values but the 'edgept' block in config.json says the model has "
                f"no {ours.rsplit('.', 1)[0]}; remove the 'edgept' key to load from the HF fields alone"
            )
    for hf_name, ours in fit.ties:
        if ours in fit.source and not torch.equal(tensors[hf_name], tensors[fit.source[ours]]):
            raise InputError(
                f"{root}: {hf_name} differs from {fit.source[ours]}, to which edgept ties it "
                "(tie_word_embeddings=false checkpoints are not supported)"
            )
    model.load_state_dict({ours: tensors[hf] for ours, hf in fit.source.items()}, strict=not plan.fresh_head)
    return model.eval()


def _shapes(model: nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in model.state_dict().items()}


@dataclass
class _Fit:
    """How checkpoint tensors land on the model: edgept name -> HF name, plus the tensors whose
    values must still be checked (tied copies; implicit tensors, see `Family.fillers`)."""

    source: dict[str, str]
    ties: list[tuple[str, str]]
    implicit: list[tuple[str, str]]


def _fit(plan: _Plan, theirs: dict[str, list[int]], ours_shapes: dict[str, list[int]]) -> _Fit:
    """Match checkpoint names and shapes to the model's (no values needed): nothing left over,
    nothing missing, no shape that config.json does not imply; else a one-line `InputError`."""
    family, root = plan.family, plan.files.root
    fit = _Fit({}, [], [])
    unexpected, prefixed = [], False
    for hf_name in theirs:
        if family.ignored(hf_name):
            continue
        if tied := family.ties.to_ours(hf_name):
            fit.ties.append((hf_name, tied))
            continue
        ours, under_base = family.our_name(hf_name)
        prefixed |= under_base
        if plan.fresh_head and ours and ours.startswith("head."):  # replaced by a freshly initialised head
            continue
        if ours is not None and ours not in ours_shapes and ours in family.fillers:
            if ours in family.strict_fillers:
                fit.implicit.append((hf_name, ours))
            continue
        if ours is None or ours not in ours_shapes:
            if not (plan.fresh_head and ours and ours.startswith("head.")):  # task= replaces the head
                unexpected.append(hf_name)
            continue
        if ours in fit.source:
            raise InputError(
                f"{root}: {fit.source[ours]} and {hf_name} are the same weight ({ours}); re-save the checkpoint"
            )
        fit.source[ours] = hf_name
    fresh = ("head.", "pooler.") if plan.fresh_head else ()
    missing = [
        family.hf_name(k, prefixed)
        for k in ours_shapes
        if k not in fit.source and not (fresh and k.startswith(fresh))
    ]
    if missing or unexpected:
        raise InputError(
            f"{root}: the weights do not fit config.json: {_some('missing', missing)}{_some('unexpected', unexpected)}"
            "check that config.json belongs to these weights (or pass task= for another head)"
        )
    for ours, hf_name in fit.source.items():
        if theirs[hf_name] != ours_shapes[ours]:
            why = explain_shape(family, plan.config, hf_name, theirs[hf_name], ours_shapes[ours])
            raise InputError(f"{root}: {why}; fix config.json or use the weights saved with it")
    return fit


def _some(what: str, names: list[str], limit: int = 3) -> str:
    if not names:
        return ""
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return f"{what} {len(names)} ({', '.join(sorted(names)[:limit])}{more}); "


def save_model(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    source: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> Path:
    """Write `model` as a Hugging Face checkpoint directory that transformers loads as-is.

    The model_type is the one that round-trips exactly: a plain BERT -> `bert`; factorized
    (embedding_size < hidden_size, or a projection) or shared (num_groups < num_layers) ->
    `albert` (a shared BERT without factorization gets an identity embedding_hidden_mapping_in);
    a ViT -> `vit`, with a distillation token -> `deit`, with LayerScale -> `dinov2` (whose
    unused mask_token is written as zeros). Tied weights are written once, as transformers does.
    A model with low-rank FFNs (ffn_rank) or pruned attention heads (query/key/value narrower than
    hidden_size) has no Hugging Face class and is written in edgept's own layout (`edgept.models.hf.native`), which edgept loads and transformers refuses.
    config.json also keeps edgept's own config under "edgept" for an exact reload. Tokenizer
    and preprocessor files are copied from `source` when given. The directory appears atomically.
    """
    cfg = getattr(model, "config", None)
    if not isinstance(cfg, EncoderConfig) or cfg.arch not in _CHOOSE:
        raise ConfigError(
            f"save_model needs an edgept model (from build_model or load_model), got {type(model).__name__}"
        )
    # transformers 5 has no low-rank FFNs and no pruned heads (it dropped `pruned_heads`): edgept's own layout
    if cfg.ffn_rank is not None or cfg.attention_width != cfg.hidden_size:
        return native.save_native(model, path, _source_files(source), overwrite)
    family = _CHOOSE[cfg.arch](cfg)
    state = model.state_dict()
    dtype = next(iter(state.values())).dtype
    hf = family.hf_config(cfg)
    hf.update(
        architectures=[family.architecture(cfg.task)],
        dtype=str(dtype).removeprefix("torch."),
        edgept=cfg.to_dict(),
    )
    if cfg.task.endswith("classification"):
        hf["id2label"] = {str(i): label for i, label in enumerate(cfg.labels)}
        hf["label2id"] = {label: i for i, label in enumerate(cfg.labels)}
    prefixed = cfg.task != "feature-extraction"  # transformers' task models keep the encoder under "<base>."
    tensors = {family.hf_name(k, prefixed): v.detach().to("cpu") for k, v in state.items()}
    for ours, fill in family.fillers.items():
        if ours not in state:
            tensors[family.hf_name(ours, prefixed)] = fill(cfg).to(dtype)
    return write_checkpoint(path, hf, tensors, copy_files=_source_files(source), overwrite=overwrite)


def _source_files(source: str | os.PathLike | None) -> list[Path]:
    if source is None:
        return []
    root = Path(source)
    if not root.is_dir():
        raise InputError(
            f"source {root} is not a directory; pass the checkpoint directory whose tokenizer files to copy"
        )
    return [root / n for n in TOKENIZER_FILES if (root / n).is_file()]


def describe(path: str | os.PathLike) -> dict[str, Any]:
    """What `edgept info` shows about a checkpoint directory, checked against the safetensors
    headers (names and shapes) without loading the weights themselves.

    Keys: path, model_type, architecture, arch, task, labels, params (embeddings, encoder,
    heads, total: unique parameters, via `parameter_breakdown`), format, files ({name: bytes}),
    bytes (their sum), config (edgept's config as a dict).
    """
    files = checkpoint_files(path)
    shapes = tensor_shapes(files)
    hf = read_json(files.config)
    if native.is_native(hf):
        cfg, model_type, architecture = native.native_config(files), native.MODEL_TYPE, hf["architectures"][0]
        with torch.device("meta"):
            model = build_model(cfg)
        native.check_shapes(files, model, shapes)
    else:
        plan = _plan(files, None, list(shapes))
        with torch.device("meta"):  # shapes only: no memory, no init time, even for large models
            model = build_model(plan.config)
        _fit(plan, shapes, _shapes(model))  # the weights must fit the config, as load_model checks
        cfg, model_type, architecture = plan.config, plan.family.model_type, plan.architecture
    params = parameter_breakdown(model)
    sizes = files.sizes()
    return {
        "path": str(files.root),
        "model_type": model_type,
        "architecture": architecture,
        "arch": cfg.arch,
        "task": cfg.task,
        "labels": list(cfg.labels),
        "params": params,
        "format": files.format,
        "files": sizes,
        "bytes": sum(sizes.values()),
        "config": cfg.to_dict(),
    }


__all__ = ["SUPPORTED_MODEL_TYPES", "describe", "load_model", "read_config", "save_model"]
