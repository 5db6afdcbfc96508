"""Model configs: frozen, keyword-only dataclasses, validated on construction, JSON-friendly.

These are edgept's own configs, not Hugging Face's; `edgept.models.hf` maps between the two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Self

from edgept.configs import DictConfig
from edgept.errors import ConfigError

ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu", "quick_gelu")
TEXT_TASKS = ("feature-extraction", "sequence-classification", "masked-lm")
IMAGE_TASKS = ("feature-extraction", "image-classification")


def _require(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


@dataclass(frozen=True, kw_only=True)
class EncoderConfig(DictConfig):
    """What every transformer encoder here shares.

    `num_groups` is ALBERT's cross-layer sharing: layer i runs the weights of group
    `i * num_groups // num_layers`, so 1 group means all layers share one set of weights and
    `num_groups == num_layers` means no sharing.
    """

    kind: ClassVar[str] = "model config"
    arch: ClassVar[str] = ""
    tasks: ClassVar[tuple[str, ...]] = ()

    hidden_size: int = 384
    num_layers: int = 6
    num_heads: int = 12
    intermediate_size: int = 1536
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-12
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    num_groups: int | None = None  # None: one group per layer (no sharing)
    ffn_rank: int | None = None  # None: dense feed-forward; r: each FFN matrix is a rank-r LowRankLinear
    # None: hidden_size // num_heads. Set when heads were pruned (`edgept prune --heads-keep`): the
    # heads keep their width, so num_heads * attention_head_size falls below hidden_size.
    attention_head_size: int | None = None
    task: str = "feature-extraction"
    labels: tuple[str, ...] = ()
    classifier_dropout: float | None = None  # None: hidden_dropout
    initializer_range: float = 0.02

    def __post_init__(self) -> None:
        for name in ("hidden_size", "num_layers", "num_heads", "intermediate_size"):
            _require(getattr(self, name) > 0, f"{name} must be positive, got {getattr(self, name)}")
        _require(
            self.attention_head_size is not None or self.hidden_size % self.num_heads == 0,
            f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}",
        )
        _require(
            self.attention_head_size is None or self.attention_head_size > 0,
            f"attention_head_size must be positive or None, got {self.attention_head_size}",
        )
        _require(self.hidden_act in ACTIVATIONS, f"hidden_act {self.hidden_act!r} is not one of {ACTIVATIONS}")
        groups = self.groups
        _require(
            1 <= groups <= self.num_layers,
            f"num_groups must be between 1 and num_layers={self.num_layers}, got {groups}",
        )
        _require(
            self.ffn_rank is None or 1 <= self.ffn_rank <= min(self.hidden_size, self.intermediate_size),
            f"ffn_rank must be in 1..min(hidden_size, intermediate_size)="
            f"{min(self.hidden_size, self.intermediate_size)} or None, got {self.ffn_rank}",
        )
        _require(self.task in self.tasks, f"task {self.task!r} is not one of {self.tasks} for {self.arch}")
        needs_labels = self.task.endswith("classification")
        _require(
            not needs_labels or len(self.labels) >= 2,
            f"task {self.task!r} needs at least 2 labels, got {list(self.labels)}",
        )
        _require(len(set(self.labels)) == len(self.labels), f"labels must be unique, got {list(self.labels)}")
        for name in ("hidden_dropout", "attention_dropout"):
            _require(0.0 <= getattr(self, name) < 1.0, f"{name} must be in [0, 1), got {getattr(self, name)}")

    @property
    def groups(self) -> int:
        return self.num_layers if self.num_groups is None else self.num_groups

    @property
    def shared(self) -> bool:
        return self.groups < self.num_layers

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads if self.attention_head_size is None else self.attention_head_size

    @property
    def attention_width(self) -> int:
        """The width of the query/key/value projections: hidden_size unless heads were pruned."""
        return self.num_heads * self.head_dim

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    def group_of(self, layer: int) -> int:
        """The weight group that layer `layer` runs (ALBERT's mapping)."""
        return layer * self.groups // self.num_layers

    def to_dict(self) -> dict[str, Any]:
        return {"arch": self.arch, **super().to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Self:
        d = dict(d)
        arch = d.pop("arch", cls.arch)
        _require(arch == cls.arch, f"config is for arch {arch!r}, not {cls.arch!r}")
        return super().from_dict(d)


@dataclass(frozen=True, kw_only=True)
class BertConfig(EncoderConfig):
    """BERT, and ALBERT when `embedding_size < hidden_size` or layers share weights.

    With `embedding_size` E below `hidden_size` H, word, position and token-type embeddings live
    in E dimensions, are normalised there and then projected to H (ALBERT's factorization:
    V*E + E*H parameters instead of V*H).
    """

    arch: ClassVar[str] = "bert"
    tasks: ClassVar[tuple[str, ...]] = TEXT_TASKS

    vocab_size: int = 30522
    embedding_size: int | None = None  # None: hidden_size (plain BERT)
    embedding_projection: bool | None = None  # None: only when embedding_size != hidden_size (ALBERT always has one)
    max_position: int = 512
    type_vocab_size: int = 2
    pad_token_id: int = 0
    pooler: bool = True  # BERT's dense+tanh over [CLS]; the classification head reads it

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("vocab_size", "max_position", "type_vocab_size"):
            _require(getattr(self, name) > 0, f"{name} must be positive, got {getattr(self, name)}")
        e = self.emb_size
        _require(0 < e <= self.hidden_size, f"embedding_size must be in 1..hidden_size={self.hidden_size}, got {e}")
        _require(
            self.embedding_projection is not False or e == self.hidden_size,
            f"embedding_size {e} != hidden_size {self.hidden_size} needs the embedding projection",
        )
        _require(0 <= self.pad_token_id < self.vocab_size, f"pad_token_id {self.pad_token_id} outside the vocabulary")
        _require(
            self.task != "sequence-classification" or self.pooler,
            "sequence-classification reads the pooler; set pooler=True",
        )

    @property
    def emb_size(self) -> int:
        return self.hidden_size if self.embedding_size is None else self.embedding_size

    @property
    def factorized(self) -> bool:
        """Whether embeddings are projected from E to H (ALBERT's layout)."""
        if self.embedding_projection is None:
            return self.emb_size != self.hidden_size
        return self.embedding_projection


@dataclass(frozen=True, kw_only=True)
class ViTConfig(EncoderConfig):
    """ViT (pre-norm), covering DeiT (distillation token) and DINOv2 (LayerScale, mean-pooled head)."""

    arch: ClassVar[str] = "vit"
    tasks: ClassVar[tuple[str, ...]] = IMAGE_TASKS

    hidden_size: int = 192
    num_heads: int = 3
    intermediate_size: int = 768
    layer_norm_eps: float = 1e-12
    hidden_dropout: float = 0.0
    attention_dropout: float = 0.0
    image_size: tuple[int, int] = (224, 224)
    patch_size: int = 16
    num_channels: int = 3
    qkv_bias: bool = True
    layerscale_init: float | None = None  # DINOv2 / DeiT-III: per-channel residual scale
    distillation_token: bool = False  # DeiT: a second learned token after [CLS]
    pooler: bool = False  # HF ViTModel's dense+tanh over [CLS]
    head_pooling: str = "cls"  # "cls" (ViT, DeiT) or "cls+mean" (DINOv2: [CLS] concat mean of patches)

    def __post_init__(self) -> None:
        if isinstance(self.image_size, int):
            object.__setattr__(self, "image_size", (self.image_size, self.image_size))
        super().__post_init__()
        h, w = self.image_size
        _require(self.patch_size > 0, f"patch_size must be positive, got {self.patch_size}")
        _require(
            h % self.patch_size == 0 and w % self.patch_size == 0,
            f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}",
        )
        _require(self.head_pooling in ("cls", "cls+mean"), f"head_pooling must be 'cls' or 'cls+mean', got {self.head_pooling!r}")

    @property
    def grid(self) -> tuple[int, int]:
        return self.image_size[0] // self.patch_size, self.image_size[1] // self.patch_size

    @property
    def num_prefix_tokens(self) -> int:
        return 2 if self.distillation_token else 1


CONFIGS: dict[str, type[EncoderConfig]] = {"bert": BertConfig, "vit": ViTConfig}


def config_from_dict(d: dict[str, Any]) -> EncoderConfig:
    """Rebuild any edgept config from `to_dict()` output (e.g. a manifest or edgept.json)."""
    arch = d.get("arch")
    if arch not in CONFIGS:
        raise ConfigError(f"unknown arch {arch!r}; known: {sorted(CONFIGS)}")
    return CONFIGS[arch].from_dict(d)
