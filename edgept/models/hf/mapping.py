"""The machinery of a Hugging Face <-> edgept mapping; the mappings themselves are data in bert.py
and vit.py.

A `Family` is one HF `model_type`: how its config.json fields become edgept config fields
(`Field` rows), which values edgept cannot run (`fixed`), and how its tensor names become edgept
parameter names (`KeyTable` rows of name patterns, used in both directions).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from edgept.errors import ConfigError
from edgept.models.config import CONFIGS, EncoderConfig

_INDEX = r"(?P<i>\d+)"
# A pattern names a module or a tensor; a module's tensors keep their leaf name (weight, bias).
_LEAF = r"(?:\.(?P<leaf>[A-Za-z_]\w*))?"
# TF-converted checkpoints call LayerNorm's parameters gamma/beta (transformers renames them too).
_LEAF_RENAMES = {"gamma": "weight", "beta": "bias"}


class KeyTable:
    """Rows of (HF name pattern, edgept name pattern); `{i}` stands for a layer (or ALBERT group)
    index. First matching row wins; the same rows translate both ways."""

    def __init__(self, rows: tuple[tuple[str, str], ...]):
        self.rows = rows
        self._to_ours = [(self._compile(hf), ours) for hf, ours in rows]
        self._to_hf = [(self._compile(ours), hf) for hf, ours in rows]

    @staticmethod
    def _compile(pattern: str) -> re.Pattern[str]:
        return re.compile("^" + re.escape(pattern).replace(r"\{i\}", _INDEX) + _LEAF + "$")

    @staticmethod
    def _apply(rules: list[tuple[re.Pattern[str], str]], name: str, renames: Mapping[str, str]) -> str | None:
        for rx, target in rules:
            if m := rx.match(name):
                out = target.replace("{i}", m["i"]) if "{i}" in target else target
                leaf = m["leaf"]
                return f"{out}.{renames.get(leaf, leaf)}" if leaf else out
        return None

    def to_ours(self, hf_name: str) -> str | None:
        return self._apply(self._to_ours, hf_name, _LEAF_RENAMES)

    def to_hf(self, our_name: str) -> str | None:
        return self._apply(self._to_hf, our_name, {})


def nest(hf_prefix: str, our_prefix: str, rows: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """`rows` relative to a layer, placed under the layer's prefixes on both sides."""
    return tuple((f"{hf_prefix}.{hf}", f"{our_prefix}.{ours}") for hf, ours in rows)


REQUIRED: Any = object()


def _int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError("an integer")
    return v


def _float(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise TypeError("a number")
    return float(v)


def _typed(t: type, what: str) -> Callable[[Any], Any]:
    def parse(v: Any) -> Any:
        if not isinstance(v, t):
            raise TypeError(what)
        return v

    return parse


def _size2(v: Any) -> tuple[int, int]:
    """An image size: an int or [height, width] (HF accepts both)."""
    if isinstance(v, list | tuple) and len(v) == 2:
        return (_int(v[0]), _int(v[1]))
    return (_int(v), _int(v))


def _square(v: Any) -> int:
    """A patch size: edgept's patches are square, so [p, p] or p."""
    h, w = _size2(v)
    if h != w:
        raise TypeError("a square size (edgept's patches are square)")
    return h


def _activation(v: Any) -> str:
    """transformers' ACT2FN name; "swish" is its alias of silu (edgept's config validates the rest)."""
    name = _typed(str, "a string")(v)
    return {"swish": "silu"}.get(name, name)


PARSERS: dict[str, Callable[[Any], Any]] = {
    "int": _int,
    "float": _float,
    "str": _typed(str, "a string"),
    "activation": _activation,
    "bool": _typed(bool, "true or false"),
    "size2": _size2,
    "square": _square,
}


@dataclass(frozen=True)
class Field:
    """config.json field `hf` <-> edgept config field `ours`, parsed as `kind`.

    A missing or null field takes `default` (HF's class default); `REQUIRED` ones must be present.
    `save` computes the written value from the edgept config when it is not simply `ours`.
    """

    hf: str
    ours: str
    kind: str
    default: Any = REQUIRED
    save: Callable[[EncoderConfig], Any] | None = None

    def parse(self, hf: Mapping[str, Any], where: str) -> Any:
        value = hf.get(self.hf)
        if value is None:
            if self.default is REQUIRED:
                raise ConfigError(
                    f"{where} has no {self.hf!r}, which edgept needs to build the model; add it or re-save the checkpoint"
                )
            return self.default
        try:
            return PARSERS[self.kind](value)
        except TypeError as e:
            raise ConfigError(f"{where}: {self.hf}={value!r} must be {e}") from None

    def write(self, cfg: EncoderConfig) -> Any:
        value = self.save(cfg) if self.save else getattr(cfg, self.ours)
        if isinstance(value, tuple):  # image_size: an int when square, as HF writes it
            value = value[0] if len(set(value)) == 1 else list(value)
        return value


@dataclass(frozen=True)
class Family:
    """One Hugging Face model_type and its mapping onto an edgept architecture."""

    model_type: str
    arch: str  # edgept arch: "bert" | "vit"
    base: str  # HF base_model_prefix: task models keep the encoder under "<base>."
    architectures: Mapping[str, str]  # HF class -> edgept task; save writes the first per task
    fields: tuple[Field, ...]
    backbone: KeyTable  # tensor names relative to `base`
    heads: KeyTable  # tensor names at the top level
    fixed: Mapping[str, Any] = field(default_factory=dict)  # HF field -> the one value edgept runs
    # edgept fields every checkpoint of this family has (ALBERT: a projection; DeiT: the token)
    implied: Mapping[str, Any] = field(default_factory=dict)
    ties: KeyTable = KeyTable(())  # tied copies (HF alias -> edgept name): must equal what they alias
    ignore: tuple[str, ...] = ()  # regexes of tensors that are not edgept weights
    refused: Mapping[str, str] = field(default_factory=dict)  # HF class -> why its head cannot load
    # Tensors HF's layout always has but an edgept model may leave out, with the value they
    # must hold then; "strict" ones are checked on load (a non-identity projection is a real weight).
    fillers: Mapping[str, Callable[[EncoderConfig], Tensor]] = field(default_factory=dict)
    strict_fillers: frozenset[str] = frozenset()
    lossy: tuple[str, ...] = ()  # edgept fields config.json cannot hold (only the "edgept" block does)
    derive: Callable[[Mapping[str, Any], str], dict[str, Any]] | None = None  # extra load-time fields
    export: Callable[[EncoderConfig], dict[str, Any]] | None = None  # extra save-time fields

    def our_name(self, hf_name: str) -> tuple[str | None, bool]:
        """The edgept parameter name of a checkpoint tensor, and whether it sat under `base`."""
        prefix = self.base + "."
        if hf_name.startswith(prefix):
            return self.backbone.to_ours(hf_name[len(prefix) :]), True
        return self.heads.to_ours(hf_name) or self.backbone.to_ours(hf_name), False

    def hf_name(self, our_name: str, prefixed: bool) -> str:
        """The checkpoint name of an edgept parameter (`prefixed`: encoder under `base.`)."""
        if our_name.startswith("head.") and (name := self.heads.to_hf(our_name)):
            return name
        name = self.backbone.to_hf(our_name)
        if name is None:  # a parameter no row covers is a bug in the tables, not user input
            raise ValueError(f"no {self.model_type} name for edgept parameter {our_name!r}")
        return f"{self.base}.{name}" if prefixed else name

    def ignored(self, hf_name: str) -> bool:
        return any(re.search(rx, hf_name) for rx in self.ignore)

    def config_kwargs(self, hf: Mapping[str, Any], where: str) -> dict[str, Any]:
        """edgept config fields from config.json (task, labels and pooler are decided by the caller)."""
        for name, allowed in self.fixed.items():
            value = hf.get(name, allowed)
            if value != allowed and not (value is None and allowed is False):
                raise ConfigError(
                    f"{where}: {name}={value!r} is not supported for {self.model_type} (allowed: {allowed!r}); "
                    "edgept cannot run this variant"
                )
        kw = {f.ours: f.parse(hf, where) for f in self.fields}
        kw.update(self.implied)
        if self.derive:
            kw.update(self.derive(hf, where))
        return kw

    def hf_config(self, cfg: EncoderConfig) -> dict[str, Any]:
        """The config.json fields (all of them, none left to transformers' defaults) for `cfg`."""
        d: dict[str, Any] = {"model_type": self.model_type, **self.fixed}
        d.update({f.hf: f.write(cfg) for f in self.fields})
        if self.export:
            d.update(self.export(cfg))
        return d

    def architecture(self, task: str) -> str:
        return next(a for a, t in self.architectures.items() if t == task and a not in self.refused)


def canonical(cfg: EncoderConfig, lossy: tuple[str, ...]) -> dict[str, Any]:
    """`cfg` with equivalent spellings made equal (None = the default), to compare two configs
    of one model. `embedding_projection` is left out: the weights decide it (see `fillers`)."""
    d = cfg.to_dict()
    d["num_groups"] = cfg.groups
    if d.get("classifier_dropout") is None:
        d["classifier_dropout"] = cfg.hidden_dropout
    if "embedding_size" in d:
        d["embedding_size"] = cfg.emb_size  # type: ignore[attr-defined]
        d.pop("embedding_projection")
    if cfg.task == "feature-extraction":
        d.pop("head_pooling", None)  # only a classification head reads it
    for name in lossy:
        d.pop(name, None)
    return d


def make_config(arch: str, kw: dict[str, Any], where: str) -> EncoderConfig:
    """The edgept config, its validation errors prefixed with where the values came from."""
    try:
        return CONFIGS[arch](**kw)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


def labels_from(hf: Mapping[str, Any], where: str) -> tuple[str, ...]:
    """Class names ordered by id from `id2label` (HF's default LABEL_0.. names kept as they are)."""
    id2label = hf.get("id2label")
    if not id2label:
        n = hf.get("num_labels", 2)  # transformers' default: 2 labels
        return tuple(f"LABEL_{i}" for i in range(n if isinstance(n, int) and n >= 2 else 2))
    try:
        by_id = {int(k): str(v) for k, v in dict(id2label).items()}
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: id2label keys must be integers 0..n-1, got {list(id2label)}") from None
    if sorted(by_id) != list(range(len(by_id))):
        raise ConfigError(f"{where}: id2label ids must be 0..{len(by_id) - 1}, got {sorted(by_id)}")
    return tuple(by_id[i] for i in range(len(by_id)))


SIZE_FIELDS = (
    "hidden_size",
    "intermediate_size",
    "vocab_size",
    "embedding_size",
    "max_position",
    "type_vocab_size",
    "num_channels",
    "patch_size",
)


def explain_shape(
    family: Family, cfg: EncoderConfig, hf_name: str, actual: list[int], expected: list[int]
) -> str:
    """'weights do not match config.json: <name> is [..] but hidden_size=48 implies [..]'."""
    hf_names = {f.ours: f.hf for f in family.fields}
    sizes = [
        (hf_names.get(n, n), getattr(cfg, "emb_size" if n == "embedding_size" else n))
        for n in SIZE_FIELDS
        if hasattr(cfg, n)
    ]
    sizes.append(("num_labels", cfg.num_labels))
    parts, explained = [], set()
    for name, value in sizes:
        if value in expected and value not in explained:
            parts.append(f"{name}={value}")
            explained.add(value)
    if set(expected) - explained and hasattr(cfg, "image_size"):  # the number of positions
        parts.append(f"image_size={list(cfg.image_size)} with patch_size={cfg.patch_size}")  # type: ignore[attr-defined]
    because = " and ".join(parts) if parts else "config.json"
    verb = "implies" if len(parts) <= 1 else "imply"
    return f"weights do not match config.json: {hf_name} is {actual} but {because} {verb} {expected}"
