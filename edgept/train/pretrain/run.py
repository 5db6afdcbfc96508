"""`pretrain_bert` and `pretrain_vit`: build a fresh model from a preset, train it with `fit`, and
write an HF checkpoint plus metrics.json.

Presets are the compact BERT sizes of Turc et al. 2019 ("Well-Read Students Learn Better"),
used for ViTs too (the same transformer widths):

    preset  layers  hidden  heads  ffn    encoder parameters (without embeddings)
    tiny    2       128     2      512    0.4M
    mini    4       256     4      1024   3.2M
    small   4       512     8      2048   12.6M
    base    12      768     12     3072   85M
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edgept.configs import DictConfig
from edgept.errors import ConfigError
from edgept.fileio import atomic_write_text
from edgept.train.pretrain.mae import MAEConfig
from edgept.train.pretrain.mlm import MaskingConfig

PRESETS: dict[str, dict[str, int]] = {
    "tiny": {"num_layers": 2, "hidden_size": 128, "num_heads": 2, "intermediate_size": 512},
    "mini": {"num_layers": 4, "hidden_size": 256, "num_heads": 4, "intermediate_size": 1024},
    "small": {"num_layers": 4, "hidden_size": 512, "num_heads": 8, "intermediate_size": 2048},
    "base": {"num_layers": 12, "hidden_size": 768, "num_heads": 12, "intermediate_size": 3072},
}
METRICS_FILE = "metrics.json"
TOKENIZER_DIR = "tokenizer"
PREPROCESSOR_DIR = "preprocessor"
DECODER_FILE = "mae_decoder.safetensors"
OBJECTIVES = ("mae", "supervised")


@dataclass(frozen=True, kw_only=True)
class Shape(DictConfig):
    """A preset's sizes, each overridable (None: the preset's)."""

    kind: ClassVar[str] = "model shape"

    preset: str = "mini"
    num_layers: int | None = None
    hidden_size: int | None = None
    num_heads: int | None = None
    intermediate_size: int | None = None

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ConfigError(f"preset {self.preset!r} is not one of: {', '.join(PRESETS)}")

    def sizes(self) -> dict[str, int]:
        """The model config fields: the preset's, with every given override."""
        given = {k: v for k, v in self.to_dict().items() if k != "preset" and v is not None}
        return {**PRESETS[self.preset], **given}


class _NestedConfig(DictConfig):
    """from_dict rebuilds the nested configs named in `_nested` from their dicts."""

    _nested: ClassVar[dict[str, type]] = {}

    @classmethod
    def _coerce(cls, d: dict[str, Any]) -> dict[str, Any]:
        return {k: cls._nested[k].from_dict(v) if k in cls._nested and isinstance(v, dict) else v for k, v in d.items()}


@dataclass(frozen=True, kw_only=True)
class BertPretrainConfig(_NestedConfig):
    """What `pretrain_bert` builds and how it masks. max_length: packed sequence length (and the
    model's position table); vocab_size/min_frequency/lowercase: the WordPiece tokenizer trained
    when none is given; sop: add ALBERT's sentence-order prediction; held_out: share of packed
    blocks kept for perplexity (drawn with seed 0, whatever the training seed); dropout: of the
    hidden states and attention probabilities (BERT's 0.1; the saved model keeps it for fine-tuning)."""

    kind: ClassVar[str] = "BERT pre-training config"

    shape: Shape = Shape()
    max_length: int = 128
    vocab_size: int = 8000
    min_frequency: int = 2
    lowercase: bool = True
    masking: MaskingConfig = MaskingConfig()
    sop: bool = False
    held_out: float = 0.05
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if isinstance(self.max_length, bool) or not isinstance(self.max_length, int) or self.max_length < 8:
            raise ConfigError(f"max_length must be a whole number >= 8, got {self.max_length!r}")
        if not 0 < self.held_out < 0.5:
            raise ConfigError(f"held_out must be a fraction in (0, 0.5), got {self.held_out!r}")

    _nested: ClassVar[dict[str, type]] = {"shape": Shape, "masking": MaskingConfig}


@dataclass(frozen=True, kw_only=True)
class ViTPretrainConfig(_NestedConfig):
    """What `pretrain_vit` builds: objective mae (self-supervised) or supervised (classification
    on the data's labels); image_size/num_channels None: 28 and 1 for fashion-mnist, else 224 and 3."""

    kind: ClassVar[str] = "ViT pre-training config"

    objective: str = "mae"
    shape: Shape = Shape(preset="tiny")
    image_size: int | None = None
    patch_size: int = 4
    num_channels: int | None = None
    mae: MAEConfig = MAEConfig()

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"objective {self.objective!r} is not one of: {', '.join(OBJECTIVES)}")

    _nested: ClassVar[dict[str, type]] = {"shape": Shape, "mae": MAEConfig}


def held_out_split(n: int, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) indices: a seeded (0) random `fraction` of n items, at least one each side."""
    if n < 2:
        raise ConfigError(f"the corpus packs into {n} block(s); pre-training needs at least 2 (one held out): add text or lower --max-length")
    order = np.random.default_rng(0).permutation(n)
    k = min(max(1, round(fraction * n)), n - 1)
    return np.sort(order[k:]), np.sort(order[:k])


def _write_metrics(out: Path, metrics: dict[str, Any]) -> dict[str, Any]:
    atomic_write_text(out / METRICS_FILE, json.dumps(metrics, indent=2) + "\n")
    return metrics


def pretrain_bert(
    corpus: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    config: BertPretrainConfig,
    train: Any,
    *,
    tokenizer: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Masked-LM pre-training of a fresh BERT on `corpus` (.txt files, folders, or `austen`).

    `tokenizer`: a directory with tokenizer.json or vocab.txt to reuse; None trains a WordPiece
    tokenizer on the corpus into out_dir/tokenizer. `train` (a TrainConfig) sets the budget;
    its metric becomes held-out perplexity (lower is better). Writes out_dir/model (an HF
    BertForMaskedLM checkpoint with the tokenizer), checkpoints/, train_log.jsonl and
    metrics.json (held-out perplexity before training and at every evaluation), which it returns.
    """
    import torch

    from edgept.data.corpus import pack, read_corpus
    from edgept.models import BertConfig, build_model, parameter_breakdown
    from edgept.preprocess import TextPreprocessor
    from edgept.preprocess.train_tokenizer import train_wordpiece
    from edgept.train.loop import MODEL_DIR, fit
    from edgept.train.pretrain.mlm import HeldOutPerplexity, MLMCollate, MLMObjective, Vocab

    started = time.perf_counter()
    out = Path(out_dir)
    docs = read_corpus(corpus)
    source = Path(tokenizer) if tokenizer is not None else out / TOKENIZER_DIR
    if tokenizer is None and not (resume and (source / "tokenizer.json").is_file()):
        train_wordpiece(
            (line for d in docs for line in d.lines), source,
            vocab_size=config.vocab_size, min_frequency=config.min_frequency, lowercase=config.lowercase,
        )  # fmt: skip
    pre = TextPreprocessor.from_checkpoint(source, max_length=config.max_length)
    vocab = Vocab(pre.tokenizer)
    packed = pack(docs, pre, config.max_length, reserve=3 if config.sop else 2)
    train_idx, held_idx = held_out_split(len(packed), config.held_out)
    model_config = BertConfig(
        **config.shape.sizes(), vocab_size=vocab.size, max_position=config.max_length, task="masked-lm",
        pooler=config.sop, pad_token_id=vocab.pad, hidden_dropout=config.dropout, attention_dropout=config.dropout,
    )  # fmt: skip
    torch.manual_seed(train.seed)
    model = build_model(model_config)
    collate = MLMCollate(vocab, config.masking, sop=config.sop)
    evaluate = HeldOutPerplexity(packed.subset(held_idx), collate)
    initial = evaluate(model)
    train = train.replace(metric="perplexity", greater_is_better=False)
    result = fit(
        MLMObjective(model, sop=config.sop), packed.subset(train_idx), train, out,
        collate=collate, evaluate=evaluate, resume=resume, progress=progress, source=source,
    )  # fmt: skip
    curve = [{"step": 0, "perplexity": initial["perplexity"]}] + [
        {"step": r["step"], "perplexity": r["perplexity"]} for r in result.history
    ]
    return _write_metrics(out, {
        "corpus": [d.name for d in docs],
        "tokenizer": str(source),
        "blocks": {"train": len(train_idx), "held_out": len(held_idx), "tokens": packed.tokens},
        "model": model_config.to_dict(),
        "params": parameter_breakdown(model),
        "pretrain": config.to_dict(),
        "train": train.to_dict(),
        "steps": result.steps,
        "held_out_perplexity": curve,
        "best_step": result.best_step,
        "output": str(out / MODEL_DIR),
        "seconds": round(time.perf_counter() - started, 1),
    })  # fmt: skip


def _image_defaults(config: ViTPretrainConfig, data: str) -> tuple[int, int]:
    fashion = data == "fashion-mnist"
    size = config.image_size or (28 if fashion else 224)
    channels = config.num_channels or (1 if fashion else 3)
    return size, channels


def write_preprocessor(directory: Path, size: int, channels: int) -> Path:
    """An HF ViTImageProcessor config (resize to size x size, scale to [-1, 1]) that edgept and
    transformers read, for the checkpoint to carry."""
    directory.mkdir(parents=True, exist_ok=True)
    pp = {
        "image_processor_type": "ViTImageProcessor", "do_resize": True, "size": {"height": size, "width": size},
        "resample": 2, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
        "image_mean": [0.5] * channels, "image_std": [0.5] * channels,
    }  # fmt: skip
    atomic_write_text(directory / "preprocessor_config.json", json.dumps(pp, indent=2) + "\n")
    return directory


def pretrain_vit(
    data: str,
    out_dir: str | os.PathLike,
    config: ViTPretrainConfig,
    train: Any,
    *,
    resume: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Pre-train a fresh ViT on `data` (fashion-mnist or an image folder, the shared split).

    mae: masked autoencoding on the train split's images (labels unused); out_dir/model is the
    encoder alone (an HF ViTModel), the decoder goes to out_dir/mae_decoder.safetensors (and is in
    every training checkpoint), and metrics.json records the held-out (dev) reconstruction loss.
    supervised: classification with dev accuracy for model selection; out_dir/model is an HF
    ViTForImageClassification and metrics.json has dev and test accuracy.
    """
    import torch

    from edgept.data import DataConfig, ImageCollate, load_splits
    from edgept.eval import TorchEvaluator
    from edgept.models import ViTConfig, build_model, parameter_breakdown
    from edgept.preprocess import ImagePreprocessor
    from edgept.train.loop import CHECKPOINTS, MODEL_DIR, fit
    from edgept.train.objectives import ClassificationObjective
    from edgept.train.pretrain.mae import MAEObjective
    from edgept.train.state import load_latest

    started = time.perf_counter()
    out = Path(out_dir)
    splits = load_splits(DataConfig(source=data))
    if splits.kind != "image":
        raise ConfigError(f"{data} is a text data set; pretrain vit needs images (fashion-mnist or an image folder)")
    size, channels = _image_defaults(config, data)
    source = write_preprocessor(out / PREPROCESSOR_DIR, size, channels)
    collate = ImageCollate(ImagePreprocessor(size=(size, size), channels=channels, mean=(0.5,) * channels, std=(0.5,) * channels))
    supervised = config.objective == "supervised"
    model_config = ViTConfig(
        **config.shape.sizes(), image_size=(size, size), patch_size=config.patch_size, num_channels=channels,
        task="image-classification" if supervised else "feature-extraction", labels=splits.labels if supervised else (),
    )  # fmt: skip
    torch.manual_seed(train.seed)
    model = build_model(model_config)
    metrics: dict[str, Any] = {"data": splits.describe(), "model": model_config.to_dict(), "params": parameter_breakdown(model)}
    if supervised:
        dev = TorchEvaluator(splits.dev, collate)
        result = fit(ClassificationObjective(model), splits.train, train, out, collate=collate, evaluate=dev, resume=resume, progress=progress, source=source)
        metrics.update(dev=dev(model), test=TorchEvaluator(splits.test, collate)(model), best_step=result.best_step)
    else:
        objective = MAEObjective(model, config.mae)
        result = fit(objective, splits.train, train, out, collate=collate, resume=resume, progress=progress, source=source)
        # With nproc > 1 the decoder trained in the workers: the last checkpoint holds its weights.
        objective.load_state_dict(load_latest(out / CHECKPOINTS)["objective"])
        _save_decoder(objective, out / DECODER_FILE)
        metrics["held_out_mae_loss"] = objective.held_out_loss(splits.dev, collate)
        metrics["decoder"] = str(out / DECODER_FILE)
    return _write_metrics(out, {
        **metrics, "pretrain": config.to_dict(), "train": train.to_dict(), "steps": result.steps,
        "output": str(out / MODEL_DIR), "seconds": round(time.perf_counter() - started, 1),
    })  # fmt: skip


def _save_decoder(objective: Any, path: Path) -> None:
    """The MAE decoder's weights (safetensors, its MAEConfig in the metadata), atomically."""
    from safetensors.torch import save

    from edgept.fileio import atomic_write_bytes

    tensors = {k: v.detach().cpu().contiguous() for k, v in objective.decoder.state_dict().items()}
    atomic_write_bytes(path, save(tensors, metadata={"format": "pt", "mae": json.dumps(objective.config.to_dict())}))
