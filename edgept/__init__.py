"""edgept: make BERT and ViT encoders small and fast, and ship them to the edge.

`import edgept` stays light: torch and onnx are imported only when a verb that needs them is used.
"""

from __future__ import annotations

__version__ = "0.1.0"

# Name -> module that defines it; resolved on first attribute access (PEP 562) so that
# `import edgept` and `edgept --help` pull in neither torch nor onnx. The stage verbs (export,
# quantize, bench, ...) are not here: `edgept.export` is the stage package, and importing any of
# its modules would rebind the attribute from the function to the package. Import a verb from
# its stage: `from edgept.export import export`.
_LAZY = {
    "load_model": "edgept.models",
    "load": "edgept.runtime",
    "Bundle": "edgept.bundle",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edgept' has no attribute {name!r}")


__all__ = ["__version__", *_LAZY]
