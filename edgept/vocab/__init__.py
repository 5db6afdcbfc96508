"""Vocabulary trimming: a text bundle's word table cut to the rows a task uses, ids remapped in the graph.

    from edgept.vocab import TrimConfig, trim_vocab
    result = trim_vocab("student.edgept", "student.trim.edgept", TrimConfig(vocab_size=8000), data="rt-polarity")
    result.coverage      # share of each split's tokens kept
"""

from __future__ import annotations

from edgept.vocab.config import TrimConfig
from edgept.vocab.trim import TrimResult, trim_vocab

__all__ = ["TrimConfig", "TrimResult", "trim_vocab"]
