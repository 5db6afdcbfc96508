"""Hugging Face checkpoint interop: read and write transformers' checkpoint directories.

`load_model(dir)` gives an edgept model from a BERT, ALBERT, ViT, DeiT or DINOv2 checkpoint
(config.json + model.safetensors / sharded / pytorch_model.bin); `save_model(model, dir)` writes
one that transformers loads with its own classes. transformers itself is never imported: the
mappings are tables in `bert.py` and `vit.py`, the file handling is in `checkpoint.py`.
"""

from __future__ import annotations

from edgept.models.hf.checkpoint import TOKENIZER_FILES, CheckpointFiles, checkpoint_files
from edgept.models.hf.convert import SUPPORTED_MODEL_TYPES, describe, load_model, read_config, save_model

__all__ = [
    "SUPPORTED_MODEL_TYPES",
    "TOKENIZER_FILES",
    "CheckpointFiles",
    "checkpoint_files",
    "describe",
    "load_model",
    "read_config",
    "save_model",
]
