"""TinyBERT's data augmentation (Jiao et al. 2020, Sec. 3.3 and Alg. 1): word-level replacement.

Each word is split by the teacher's own normaliser and pre-tokenizer. A word that is one
WordPiece gets its K candidates from the teacher's MLM head (the word masked in its sentence)
when the teacher has one; every other word, and every word of a teacher without an MLM head,
gets the K nearest whole words by cosine in the teacher's word-embedding space (a multi-piece
word is the mean of its pieces' vectors; TinyBERT uses GloVe there). Each of the N copies of a
sentence then replaces each word, with probability p_t, by one of its candidates drawn uniformly.

Batched so that it scales: neighbours are computed once per distinct word, as one matmul per
chunk of words against the whole candidate vocabulary, and all masked sentences of a corpus go
through the MLM in large padded batches. Candidates are whole alphabetic vocabulary words, never
special tokens, word pieces or stop words, so an augmented sentence keeps its [CLS]/[SEP]
framing, its word boundaries and its negations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgept.configs import DictConfig
from edgept.errors import ConfigError
from edgept.models.bert import MaskedLMHead
from edgept.models.layers import mask_bias

# Function words are never replaced nor used as replacements: swapping "not" for "very" flips a
# label (TinyBERT skips a similar list).
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below between
    both but by can could did do does doing down during each few for from further had has have having he her here
    hers herself him himself his how i if in into is it its itself just me more most my myself no nor not now of
    off on once only or other our ours ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up very was we were what
    when where which while who whom why will with would you your yours yourself yourselves""".split()
)


@dataclass(frozen=True, kw_only=True)
class AugmentConfig(DictConfig):
    """copies: N augmented sentences per input (TinyBERT: 20); prob: p_t, the chance each word
    is replaced (0.4); candidates: K per word (15); seed: the sampling seed; batch_size: masked
    sentences per MLM forward; max_length: pieces per masked sentence (words past it use the
    embedding neighbours)."""

    kind: ClassVar[str] = "augment config"

    copies: int = 20
    prob: float = 0.4
    candidates: int = 15
    seed: int = 0
    batch_size: int = 256
    max_length: int = 128

    def __post_init__(self) -> None:
        for name in ("copies", "candidates", "batch_size", "max_length"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"augment {name} must be a whole number >= 1, got {v!r}")
        if not (isinstance(self.prob, int | float) and 0 < self.prob <= 1):
            raise ConfigError(f"augment prob (p_t) must be in (0, 1], got {self.prob!r}")


class WordAugmenter:
    """Augments sentences for one teacher (an edgept BERT) and its `tokenizers.Tokenizer`."""

    def __init__(self, teacher: nn.Module, tokenizer: Any, config: AugmentConfig):
        self.teacher = teacher.eval()
        self.tok = tokenizer
        self.config = config
        vocab = tokenizer.get_vocab(with_added_tokens=True)
        self.id_to_token = {i: t for t, i in vocab.items()}
        ids = sorted(i for t, i in vocab.items() if _is_word(t) and i < teacher.config.vocab_size)
        if not ids:
            raise ConfigError("the teacher's vocabulary has no whole alphabetic words to substitute; cannot augment")
        self.candidate_ids = torch.tensor(ids)
        self.embeddings = teacher.embeddings.word.weight.detach().float()
        self.unit = F.normalize(self.embeddings[self.candidate_ids], dim=-1)
        self.cls_id, self.sep_id, self.mask_id, self.unk_id = (vocab.get(t) for t in ("[CLS]", "[SEP]", "[MASK]", "[UNK]"))
        has_mlm = isinstance(getattr(teacher, "head", None), MaskedLMHead)
        self.use_mlm = has_mlm and None not in (self.cls_id, self.sep_id, self.mask_id)

    def words(self, text: str) -> list[str]:
        """The teacher tokenizer's words of `text` (normalised: lower-cased for uncased models)."""
        normalizer, pre = self.tok.normalizer, self.tok.pre_tokenizer
        text = normalizer.normalize_str(text) if normalizer is not None else text
        return [w for w, _ in pre.pre_tokenize_str(text)] if pre is not None else text.split()

    def augment(self, texts: Sequence[str]) -> list[list[str]]:
        """For each text: the text itself, then up to `copies` distinct augmented sentences (words
        joined by single spaces). The same texts, teacher and seed give the same output."""
        sentences = [self.words(t) for t in texts]
        pieces = self._pieces({w for ws in sentences for w in ws})
        neighbours = self._neighbours(
            {w: ids for w, ids in pieces.items() if _is_word(w) and ids and self.unk_id not in ids}
        )
        in_context = self._mlm_candidates(sentences, pieces) if self.use_mlm else {}
        rng = np.random.default_rng(self.config.seed)
        out = []
        for i, (text, words) in enumerate(zip(texts, sentences, strict=True)):
            slots = [
                (j, in_context.get((i, j)) or neighbours[w]) for j, w in enumerate(words) if neighbours.get(w)
            ]
            out.append(self._sample(text, words, slots, rng))
        return out

    def _sample(self, text: str, words: list[str], slots: list[tuple[int, list[str]]], rng: np.random.Generator) -> list[str]:
        n = self.config.copies
        # Drawn for every slot of every copy, used or not: the stream stays aligned across sentences.
        replace = rng.random((n, len(slots))) < self.config.prob
        choice = rng.integers(0, 1 << 30, size=(n, len(slots)))
        result, seen = [text], {" ".join(words)}
        for c in range(n):
            new = list(words)
            for s, (j, cands) in enumerate(slots):
                if replace[c, s]:
                    new[j] = cands[choice[c, s] % len(cands)]
            sentence = " ".join(new)
            if sentence not in seen:
                seen.add(sentence)
                result.append(sentence)
        return result

    def _pieces(self, words: set[str]) -> dict[str, list[int]]:
        """Word -> its WordPiece ids, one batched tokenizer call for all distinct words."""
        ordered = sorted(words)
        encs = self.tok.encode_batch([[w] for w in ordered], is_pretokenized=True, add_special_tokens=False)
        return {w: e.ids for w, e in zip(ordered, encs, strict=True)}

    def _neighbours(self, pieces: dict[str, list[int]], chunk: int = 1024) -> dict[str, list[str]]:
        """Word -> its K nearest whole words by cosine (itself excluded), one matmul per chunk."""
        words = list(pieces)
        result: dict[str, list[str]] = {}
        for start in range(0, len(words), chunk):
            part = words[start : start + chunk]
            vecs = torch.stack([self.embeddings[pieces[w]].mean(0) for w in part])
            sims = F.normalize(vecs, dim=-1) @ self.unit.T
            result.update(zip(part, self._top(sims, [pieces[w] for w in part]), strict=True))
        return result

    def _top(self, scores: Tensor, own: list[list[int]]) -> list[list[str]]:
        """The K best-scoring candidate words per row, never the row's own (single-piece) word."""
        for r, ids in enumerate(own):
            if len(ids) == 1:
                scores[r, self.candidate_ids == ids[0]] = float("-inf")
        k = min(self.config.candidates, scores.shape[1] - 1)
        top = scores.topk(k, dim=-1).indices
        return [[self.id_to_token[int(self.candidate_ids[t])] for t in row] for row in top]

    @torch.no_grad()
    def _mlm_candidates(
        self, sentences: list[list[str]], pieces: dict[str, list[int]]
    ) -> dict[tuple[int, int], list[str]]:
        """(sentence, word) -> the MLM's top K for that single-piece word masked in its sentence
        (words cut off by max_length keep their embedding neighbours)."""
        rows = []  # (sentence, word, ids with the word masked, masked position)
        for i, words in enumerate(sentences):
            ids, where = [self.cls_id], {}
            for j, w in enumerate(words):
                where[j] = len(ids)
                ids.extend(pieces[w])
            ids = ids[: self.config.max_length - 1] + [self.sep_id]
            for j, w in enumerate(words):
                if len(pieces[w]) == 1 and _is_word(w) and pieces[w][0] != self.unk_id and where[j] < len(ids) - 1:
                    masked = list(ids)
                    masked[where[j]] = self.mask_id
                    rows.append((i, j, masked, where[j]))
        rows.sort(key=lambda r: len(r[2]))  # similar lengths together: little padding
        result = {}
        pad = self.teacher.config.pad_token_id
        for start in range(0, len(rows), self.config.batch_size):
            part = rows[start : start + self.config.batch_size]
            width = len(part[-1][2])
            ids = torch.full((len(part), width), pad, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for r, (_, _, seq, _) in enumerate(part):
                ids[r, : len(seq)], mask[r, : len(seq)] = torch.tensor(seq), 1
            logits = self._masked_logits(ids, mask, torch.tensor([p for *_, p in part]))
            originals = [[pieces[sentences[i][j]][0]] for i, j, _, _ in part]
            tops = self._top(logits[:, self.candidate_ids], originals)
            result.update({(i, j): top for (i, j, _, _), top in zip(part, tops, strict=True)})
        return result

    def _masked_logits(self, ids: Tensor, mask: Tensor, positions: Tensor) -> Tensor:
        """MLM logits at one position per row; the vocabulary projection runs at that position
        only (the full forward would project every token onto the whole vocabulary)."""
        t = self.teacher
        x = t.embeddings(ids, torch.zeros_like(ids))
        x, _, _ = t.encoder(x, mask_bias(mask, x.dtype))
        return t.head(x[torch.arange(len(ids)), positions], t.embeddings.word.weight)


def _is_word(token: str) -> bool:
    """A whole alphabetic word of 2+ letters that is not a stop word (the "s" of "it's" is not a
    word): what may be replaced, and what may replace."""
    return len(token) > 1 and token.isalpha() and token.lower() not in STOPWORDS

