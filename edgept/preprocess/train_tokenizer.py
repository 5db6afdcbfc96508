"""Train a BERT WordPiece tokenizer on a corpus with `tokenizers` (when `edgept pretrain` has none).

The result is a checkpoint-style tokenizer directory that both edgept (`TextPreprocessor.
from_checkpoint`) and transformers (`AutoTokenizer.from_pretrained`) read: tokenizer.json, vocab.txt,
tokenizer_config.json and special_tokens_map.json.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from edgept.errors import ConfigError
from edgept.fileio import atomic_write_text

# In this order, so [PAD] is id 0 (BertConfig.pad_token_id's default) as in BERT's own vocabulary.
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def train_wordpiece(
    texts: Iterable[str],
    out_dir: str | os.PathLike,
    *,
    vocab_size: int = 8000,
    min_frequency: int = 2,
    lowercase: bool = True,
) -> Path:
    """Train a WordPiece vocabulary of at most `vocab_size` tokens (special tokens included) on
    `texts` and write the tokenizer files to `out_dir` (created; files written atomically).

    Normalisation and pre-tokenization are BERT's (lowercase and strip accents when `lowercase`,
    split on whitespace and punctuation); encoding adds [CLS] ... [SEP] (and [SEP] between a pair).
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < len(SPECIAL_TOKENS) + 1:
        raise ConfigError(f"vocab_size must be an int > {len(SPECIAL_TOKENS)} (the special tokens), got {vocab_size!r}")
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        continuing_subword_prefix="##",
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vocab = sorted(tok.get_vocab().items(), key=lambda kv: kv[1])
    atomic_write_text(out / "tokenizer.json", tok.to_str())
    atomic_write_text(out / "vocab.txt", "".join(t + "\n" for t, _ in vocab))
    specials = {f"{name}_token": f"[{name.upper()}]" for name in ("unk", "sep", "pad", "cls", "mask")}
    config = {"tokenizer_class": "BertTokenizer", "do_lower_case": lowercase, "model_max_length": 512, **specials}
    atomic_write_text(out / "tokenizer_config.json", json.dumps(config, indent=2) + "\n")
    atomic_write_text(out / "special_tokens_map.json", json.dumps(specials, indent=2) + "\n")
    return out
