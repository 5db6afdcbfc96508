"""Classification data: user files (JSONL/CSV/TSV, image folders), the shipped sets, the shared
split, and the collate functions that turn examples into model inputs.

    splits = load_splits(DataConfig(source="rt-polarity"))
    collate = collate_for(model_dir, model.config, splits.kind, max_length=64)
"""

from __future__ import annotations

from edgept.data.collate import ImageCollate, TextCollate, collate_for
from edgept.data.dataset import ClassificationData
from edgept.data.shipped import SHIPPED
from edgept.data.split import SPLITS, DataConfig, Splits, load_data, load_splits, stratified_split

__all__ = [
    "SHIPPED",
    "SPLITS",
    "ClassificationData",
    "DataConfig",
    "ImageCollate",
    "Splits",
    "TextCollate",
    "collate_for",
    "load_data",
    "load_splits",
    "stratified_split",
]
