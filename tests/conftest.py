"""Shared test set-up: slow tests (real models) run only when asked for."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config, items):
    if os.environ.get("EDGEPT_SLOW") == "1" or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with EDGEPT_SLOW=1 or -m slow (make test-slow)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
