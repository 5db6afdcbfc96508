"""Structured pruning: FFN neurons scored by Taylor importance on the task, cut to a dense, narrower model.

    from edgept.compress.prune import PruneConfig, prune_checkpoint
    from edgept.data import DataConfig
    prune_checkpoint("teacher/model", "pruned", PruneConfig(ffn_keep=0.5), data=DataConfig(source="rt-polarity"))

`edgept.compress.recover.prune_and_recover` prunes, then distills from the unpruned model.
"""

from __future__ import annotations

from edgept.compress.prune.config import PruneConfig
from edgept.compress.prune.prune import (
    REPORT_FILE,
    PruneReport,
    kept_heads,
    kept_width,
    load_pruned,
    prune_checkpoint,
    report_json,
)

__all__ = [
    "REPORT_FILE",
    "PruneConfig",
    "PruneReport",
    "kept_heads",
    "kept_width",
    "load_pruned",
    "prune_checkpoint",
    "report_json",
]
