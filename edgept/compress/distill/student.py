"""The student: its shape (from flags or a JSON file) and its initialisation from the teacher."""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from typing import Any, Self

import torch
from torch import nn

from edgept.errors import ConfigError
from edgept.fileio import read_json
from edgept.models import EncoderConfig, build_model

_FLAGS = {"num_layers": "--layers", "hidden_size": "--hidden", "num_heads": "--heads", "intermediate_size": "--ffn"}
_BLOCK = re.compile(r"^encoder\.blocks\.(\d+)\.")


@dataclass(frozen=True, kw_only=True)
class StudentShape:
    """How the student differs from the teacher; None keeps the teacher's value, except that a
    narrower student keeps the teacher's ffn/hidden ratio. Everything else (vocabulary, image and
    patch size, task, labels, activation) is the teacher's."""

    num_layers: int | None = None
    hidden_size: int | None = None
    num_heads: int | None = None
    intermediate_size: int | None = None

    def __post_init__(self) -> None:
        for name, flag in _FLAGS.items():
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"student {name} ({flag}) must be a positive whole number, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "student shape") -> Self:
        unknown = sorted(set(d) - set(_FLAGS))
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(_FLAGS)}")
        return cls(**d)

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> Self:
        """A JSON object with any of num_layers, hidden_size, num_heads, intermediate_size."""
        return cls.from_dict(read_json(path), where=str(path))

    def config_for(self, teacher: EncoderConfig) -> EncoderConfig:
        """The student's full config: the teacher's, with this shape and no layer sharing."""
        hidden = self.hidden_size or teacher.hidden_size
        changes: dict[str, Any] = {
            "num_layers": self.num_layers or teacher.num_layers,
            "hidden_size": hidden,
            "num_heads": self.num_heads or teacher.num_heads,
            "intermediate_size": self.intermediate_size or teacher.intermediate_size * hidden // teacher.hidden_size,
            "num_groups": None,
        }
        if teacher.arch == "bert" and not teacher.factorized:
            changes["embedding_size"] = None  # a plain BERT student embeds at its own width
        try:
            return teacher.replace(**changes)
        except ConfigError as e:
            flags = ", ".join(f"{_FLAGS[k]} {v}" for k, v in changes.items() if k in _FLAGS)
            raise ConfigError(f"student shape ({flags}) is invalid: {e}; adjust the flags") from None


def build_student(
    teacher: nn.Module, shape: StudentShape, layer_map: tuple[int, ...], *, seed: int = 0
) -> tuple[nn.Module, list[str]]:
    """A student for `teacher`: freshly initialised (seeded), then the teacher's weights copied
    in wherever the shapes match: embeddings, pooler and head by name, student layer m from
    teacher layer `layer_map[m-1]` (1-based, TinyBERT's g(m)).

    A module (the embeddings, one block, the pooler, the head) is copied whole or not at all.
    Returns the student (train mode) and the names of the copied tensors: with the teacher's
    width that is all of it; a narrower student starts fresh (as TinyBERT's general
    distillation does).
    """
    cfg = shape.config_for(teacher.config)
    if len(layer_map) != cfg.num_layers:
        raise ConfigError(f"layer map {layer_map} has {len(layer_map)} entries for a {cfg.num_layers}-layer student")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        student = build_model(cfg)
    source = teacher.state_dict()
    groups: dict[str, list[tuple[str, str]]] = {}
    for name in student.state_dict():
        groups.setdefault(_group(name), []).append((name, _teacher_name(name, layer_map, teacher.config)))
    target = student.state_dict()
    copied = []
    with torch.no_grad():
        for pairs in groups.values():
            # Whole modules or nothing: a block with one matching bias but other weights fresh
            # would be neither the teacher's layer nor a clean init.
            if all(src in source and source[src].shape == target[name].shape for name, src in pairs):
                for name, src in pairs:
                    target[name].copy_(source[src])
                    copied.append(name)
    return student.train(), copied


def load_student(path: str | os.PathLike, teacher: EncoderConfig, *, seed: int = 0) -> nn.Module:
    """A student checkpoint (e.g. the output of general distillation, TinyBERT's first step) set
    up for the teacher's task: for a classifier teacher, its task and labels, with a fresh head
    (seeded) unless the checkpoint already classifies exactly those labels. Train mode."""
    from edgept.models.hf import load_model

    task = labels = None
    if teacher.task.endswith("classification"):
        task, labels = teacher.task, teacher.labels
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return load_model(path, task=task, labels=labels).train()


def _group(name: str) -> str:
    """The unit copied together: one encoder block, else the top-level module (embeddings, head, ...)."""
    m = _BLOCK.match(name)
    return m.group(0) if m else name.split(".", 1)[0]


def _teacher_name(name: str, layer_map: tuple[int, ...], teacher: EncoderConfig) -> str:
    """The teacher tensor that student tensor `name` starts from (block i <- block of layer g(i+1))."""
    m = _BLOCK.match(name)
    if m is None:
        return name
    block = teacher.group_of(layer_map[int(m.group(1))] - 1)
    return f"encoder.blocks.{block}.{name[m.end():]}"
