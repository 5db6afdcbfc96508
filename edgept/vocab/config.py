"""`TrimConfig`: how many word-table rows a trimmed bundle keeps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from edgept.configs import DictConfig
from edgept.errors import ConfigError

FALLBACKS = ("nearest", "unk")


@dataclass(frozen=True, kw_only=True)
class TrimConfig(DictConfig):
    """vocab_size: rows the word table keeps, special tokens included (None: exactly the tokens the
    train split uses). Kept first: the special tokens, then every token of the train split by its
    count there; rows left over are filled by original id order ([unused*] skipped), so a larger size
    only adds coverage. fallback: what a dropped token reads: "nearest" (the kept row closest to its
    own embedding in cosine) or "unk" ([UNK]'s row). Tokens are counted as the bundle's own tokenizer and
    length cut them, i.e. as the runtime will see them."""

    kind: ClassVar[str] = "trim-vocab config"

    vocab_size: int | None = None
    fallback: str = "nearest"

    def __post_init__(self) -> None:
        if self.vocab_size is not None and (isinstance(self.vocab_size, bool) or self.vocab_size < 2):
            raise ConfigError(f"--vocab-size must be a whole number >= 2, got {self.vocab_size!r}")
        if self.fallback not in FALLBACKS:
            raise ConfigError(f"--fallback {self.fallback!r} is not one of: {', '.join(FALLBACKS)}")
