"""Errors a user can cause. The CLI prints these as one line and exits non-zero, without a traceback."""

from __future__ import annotations


class EdgeptError(Exception):
    """Base class for every error that is the user's input, not edgept's bug.

    The message says what is wrong, where, and how to fix it, in one line.
    """

    exit_code = 2


class InputError(EdgeptError):
    """A missing, unreadable or malformed file or directory given by the user."""


class ConfigError(EdgeptError):
    """An invalid configuration value (a flag, a config.json field, a TOML key)."""


class ParityError(EdgeptError):
    """A transformed model no longer matches its reference within the stated tolerance."""

    exit_code = 3


class BundleError(EdgeptError):
    """A bundle that is incomplete, tampered with, or from a newer edgept."""


class FeedError(EdgeptError):
    """Inputs given to a runtime session that do not match the bundle's declared inputs."""


class MissingDependencyError(EdgeptError):
    """An optional dependency (tensorrt, matplotlib, ...) is needed but not installed."""
