"""ALBERT-style factorization: low-rank embeddings, cross-layer sharing, low-rank FFNs (torch -> torch).

    from edgept.compress.factorize import FactorizeConfig, factorize_checkpoint
    factorize_checkpoint("teacher/model", "student-e128", FactorizeConfig(embedding_size=128))
"""

from __future__ import annotations

from edgept.compress.factorize.config import FactorizeConfig
from edgept.compress.factorize.factorize import (
    REPORT_FILE,
    FactorizeReport,
    factorize,
    factorize_checkpoint,
    load_factorized,
    report_json,
)

__all__ = [
    "REPORT_FILE", "FactorizeConfig", "FactorizeReport", "factorize", "factorize_checkpoint",
    "load_factorized", "report_json",
]
