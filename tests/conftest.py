"""Shared test set-up: slow tests (real models) run only when asked for."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny models are dominated by thread hand-off: one thread runs them ~400x faster on a busy
    2-core machine. Benchmarks set their own thread count."""
    import torch

    torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    if os.environ.get("EDGEPT_SLOW") == "1" or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with EDGEPT_SLOW=1 or -m slow (make test-slow)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


WORDS = "the a film movie plot great good bad boring fun dull story acting was is and not very".split()


def tiny_vocab() -> list[str]:
    """A WordPiece vocabulary: BERT's special tokens, then a handful of words."""
    return ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]


def _factory(cls, **base):
    """A fixture value: call it with field changes to get a config of `cls` built on `base`."""
    return lambda **changes: cls(**{**base, **changes})


_SMALL = dict(hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64)


@pytest.fixture
def tiny_bert_config():
    from edgept.models import BertConfig

    return _factory(
        BertConfig,
        **_SMALL,
        vocab_size=len(tiny_vocab()),
        max_position=64,
        task="sequence-classification",
        labels=("negative", "positive"),
    )


@pytest.fixture
def tiny_vit_config():
    from edgept.models import ViTConfig

    return _factory(
        ViTConfig, **_SMALL, image_size=(32, 32), patch_size=8, task="image-classification", labels=("cat", "dog", "bird")
    )


@pytest.fixture
def tiny_bert_dir(tmp_path, tiny_bert_config):
    """A Hugging Face checkpoint directory of a random tiny BERT classifier, with a vocab.txt."""
    import torch

    from edgept.models import build_model
    from edgept.models.hf import save_model

    tok = tmp_path / "tok"
    tok.mkdir()
    (tok / "vocab.txt").write_text("\n".join(tiny_vocab()) + "\n")
    torch.manual_seed(0)
    model = build_model(tiny_bert_config())
    return save_model(model, tmp_path / "tiny-bert", source=tok)
