"""Text -> int64 input_ids / attention_mask / token_type_ids with a `tokenizers.Tokenizer` (imported lazily)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgept.errors import ConfigError, InputError
from edgept.fileio import atomic_write_text, read_json

PAD_TO = ("longest", "max_length")
_KEYS = ("kind", "tokenizer", "max_length", "pad_id")


class TextPreprocessor:
    """Tokenize text into int64 `input_ids`, `attention_mask`, `token_type_ids` numpy arrays.

    Truncation and padding are set explicitly on every call, never taken from what a
    tokenizer.json happened to be saved with, so the torch side and the runtime agree.
    """

    def __init__(self, tokenizer: Any, max_length: int = 128, pad_id: int | None = None):
        from tokenizers import Tokenizer

        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
            raise ConfigError(f"max_length must be an int >= 1, got {max_length!r}")
        saved_padding = tokenizer.padding
        # A private copy stripped of saved settings; per-call settings live on cached clones.
        self._tok = Tokenizer.from_str(tokenizer.to_str())
        self._tok.no_truncation()
        self._tok.no_padding()
        self.max_length = max_length
        if saved_padding is not None:
            self.pad_token, default_id = saved_padding["pad_token"], saved_padding["pad_id"]
        else:
            self.pad_token = next(
                (t for t in ("[PAD]", "<pad>") if self._tok.token_to_id(t) is not None), None
            )
            default_id = self._tok.token_to_id(self.pad_token) if self.pad_token else 0
            self.pad_token = self.pad_token or self._tok.id_to_token(0) or "[PAD]"
        self.pad_id = default_id if pad_id is None else int(pad_id)
        self._configured: dict[tuple[int, str], Any] = {}

    @classmethod
    def from_file(
        cls, path: str | os.PathLike, max_length: int = 128, pad_id: int | None = None
    ) -> TextPreprocessor:
        """Load a `tokenizers` tokenizer.json."""
        from tokenizers import Tokenizer

        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as e:  # tokenizers raises plain Exception for unreadable or malformed files
            raise InputError(
                f"cannot load tokenizer {path} ({e}); pass a tokenizer.json saved by `tokenizers`"
            ) from None
        return cls(tok, max_length=max_length, pad_id=pad_id)

    @classmethod
    def from_checkpoint(cls, directory: str | os.PathLike, max_length: int = 128) -> TextPreprocessor:
        """Load a checkpoint dir's tokenizer.json, or build a WordPiece tokenizer from its vocab.txt.

        For vocab.txt, `do_lower_case`, `strip_accents` and `tokenize_chinese_chars` are read from
        tokenizer_config.json when present (HF BertTokenizer defaults otherwise: lowercase True).
        """
        d = Path(directory)
        if not d.is_dir():
            raise InputError(f"checkpoint directory {d} does not exist; check the path")
        if (d / "tokenizer.json").is_file():
            return cls.from_file(d / "tokenizer.json", max_length=max_length)
        if not (d / "vocab.txt").is_file():
            raise InputError(
                f"no tokenizer in {d}: expected tokenizer.json or vocab.txt; copy them from the source checkpoint"
            )
        from tokenizers.implementations import BertWordPieceTokenizer

        cfg = read_json(d / "tokenizer_config.json") if (d / "tokenizer_config.json").is_file() else {}
        wordpiece = BertWordPieceTokenizer(
            str(d / "vocab.txt"),
            lowercase=bool(cfg.get("do_lower_case", True)),
            strip_accents=cfg.get("strip_accents"),
            handle_chinese_chars=bool(cfg.get("tokenize_chinese_chars", True)),
        )
        from tokenizers import Tokenizer

        return cls(Tokenizer.from_str(wordpiece.to_str()), max_length=max_length)

    @property
    def tokenizer(self) -> Any:
        """The underlying `tokenizers.Tokenizer`, without truncation or padding set."""
        return self._tok

    @property
    def vocab_size(self) -> int:
        """Number of token ids, added tokens included: every id produced is < vocab_size."""
        return self._tok.get_vocab_size(with_added_tokens=True)

    def _for(self, max_length: int, pad_to: str) -> Any:
        key = (max_length, pad_to)
        tok = self._configured.get(key)
        if tok is None:
            from tokenizers import Tokenizer

            tok = Tokenizer.from_str(self._tok.to_str())
            tok.enable_truncation(max_length=max_length)
            tok.enable_padding(
                pad_id=self.pad_id,
                pad_token=self.pad_token,
                length=max_length if pad_to == "max_length" else None,
            )
            self._configured[key] = tok
        return tok

    def __call__(
        self,
        texts: str | Sequence[str],
        max_length: int | None = None,
        pad_to: str = "longest",
        *,
        text_pairs: Sequence[str] | None = None,
    ) -> dict[str, np.ndarray]:
        """Tokenize a batch (or one string) into `(batch, sequence)` int64 arrays.

        `text_pairs` gives each text a second segment (token_type_ids 1); pairs are truncated
        longest-first. `pad_to="longest"` pads to the longest row, `"max_length"` to `max_length`.
        """
        if isinstance(texts, str):
            texts = [texts]
        if isinstance(text_pairs, str):
            text_pairs = [text_pairs]
        max_length = self.max_length if max_length is None else max_length
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
            raise ConfigError(f"max_length must be an int >= 1, got {max_length!r}")
        if pad_to not in PAD_TO:
            raise ConfigError(f"pad_to {pad_to!r} is not one of: {', '.join(PAD_TO)}")
        for name, seq in (("texts", texts), ("text_pairs", text_pairs or [])):
            for i, t in enumerate(seq):
                if not isinstance(t, str):
                    raise InputError(
                        f"{name}[{i}] is {type(t).__name__}, expected str; pass a list of strings"
                    )
        batch: list[Any] = list(texts)
        if text_pairs is not None:
            if len(text_pairs) != len(texts):
                raise InputError(
                    f"text_pairs has {len(text_pairs)} items but texts has {len(texts)}; give one pair per text"
                )
            batch = list(zip(texts, text_pairs, strict=True))
        try:
            encs = self._for(max_length, pad_to).encode_batch(batch)
        except Exception as e:  # e.g. a pair that cannot be truncated to a tiny max_length
            raise InputError(
                f"tokenizing failed with max_length={max_length} ({e}); use a larger max_length"
            ) from None
        cols = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}
        return {
            k: np.array([getattr(e, a) for e in encs], dtype=np.int64).reshape(len(encs), -1)
            for k, a in cols.items()
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the tokenizer as tokenizer.json (atomically); truncation and padding are not saved."""
        return atomic_write_text(path, self._tok.to_str())

    def to_dict(self, tokenizer_file: str = "tokenizer.json") -> dict[str, Any]:
        """The manifest `preprocess` section; `tokenizer_file` is where `save` put the tokenizer."""
        return {
            "kind": "text",
            "tokenizer": tokenizer_file,
            "max_length": self.max_length,
            "pad_id": self.pad_id,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], root: str | os.PathLike) -> TextPreprocessor:
        """Rebuild from a `preprocess` section; the tokenizer file is read relative to `root` (the bundle)."""
        unknown = sorted(set(d) - set(_KEYS))
        if unknown:
            raise ConfigError(
                f"unknown key(s) {', '.join(unknown)} in the text preprocess section; allowed: {', '.join(_KEYS)}"
            )
        if d.get("kind") != "text" or not isinstance(d.get("tokenizer"), str):
            raise ConfigError(
                f"a text preprocess section needs kind 'text' and a 'tokenizer' file name, got {d!r}"
            )
        return cls.from_file(
            Path(root) / d["tokenizer"], max_length=d.get("max_length", 128), pad_id=d.get("pad_id")
        )
