"""Unlabeled text for pre-training: read .txt files (or the shipped `austen` corpus), tokenize,
and pack the token stream into fixed-length blocks.

    docs = read_corpus(["austen"])                       # or [Path("a.txt"), Path("dir/")]
    packed = pack(docs, preprocessor, max_length=128)    # blocks of <= max_length - 2 tokens

Packing follows RoBERTa's FULL-SENTENCES: each document's lines are tokenized and concatenated,
then cut into blocks that fill the sequence (the last block of a document is shorter), so
almost no position is padding. Each block records where its lines begin, so sentence-order
prediction can cut it into two segments at a line boundary.
"""

from __future__ import annotations

import gzip
import lzma
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgept.data.tabular import _decode
from edgept.errors import InputError, MissingDependencyError

AUSTEN_DIR = Path("/usr/lib/R/site-library/janeaustenr/data")
AUSTEN_INSTALL = (
    "apt-get download r-cran-janeaustenr && dpkg-deb -x r-cran-janeaustenr_*.deb / && pip install rdata "
    "(apt-get install -y r-cran-janeaustenr works too but pulls in all of R)"
)
SHIPPED_CORPORA = {"austen": "Jane Austen's six novels (Debian r-cran-janeaustenr, public domain), about 73k lines"}
SHIPPED_TEXT_SETS = ("rt-polarity",)  # labelled sets whose train-split texts serve as a corpus


@dataclass(frozen=True)
class Document:
    """One source of running text: its non-empty lines (stripped), and where they came from."""

    name: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Packed:
    """Token blocks (without [CLS]/[SEP]); `starts[i]`: offsets in block i where a line begins."""

    blocks: tuple[np.ndarray, ...]
    starts: tuple[np.ndarray, ...]
    tokens: int

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return self.blocks[i], self.starts[i]

    def subset(self, indices: Sequence[int] | np.ndarray) -> Packed:
        blocks = tuple(self.blocks[int(i)] for i in indices)
        return Packed(blocks, tuple(self.starts[int(i)] for i in indices), sum(len(b) for b in blocks))


def _files(source: str | os.PathLike) -> list[Path]:
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.txt") if p.is_file())
        if not files:
            raise InputError(f"corpus folder {path} holds no .txt files; put UTF-8 text files in it")
        return files
    return [path]


def read_corpus(sources: Sequence[str | os.PathLike]) -> list[Document]:
    """Documents from `sources`: .txt files, folders (every .txt under them), a shipped corpus
    (austen), or a shipped text data set (rt-polarity): the texts of its shared *train* split
    only, labels dropped, so pre-training on it never sees the dev or test examples that
    fine-tuning is scored on. Empty lines are dropped; a source with no text at all is an InputError."""
    if not sources:
        raise InputError(f"no corpus given; pass --corpus with .txt files, a folder of them, or {', '.join(SHIPPED_CORPORA)}")
    docs: list[Document] = []
    for source in sources:
        if str(source) in SHIPPED_CORPORA and not Path(source).exists():
            docs.extend(load_austen())
            continue
        if str(source) in SHIPPED_TEXT_SETS and not Path(source).exists():
            docs.append(_train_texts(str(source)))
            continue
        for path in _files(source):
            text = _decode(path, missing=f"pass .txt files, a folder of them, or {', '.join(SHIPPED_CORPORA)}")
            lines = tuple(s for s in (line.strip() for line in text.splitlines()) if s)
            if not lines:
                raise InputError(f"corpus file {path} is empty (no non-blank lines); remove it or add text")
            docs.append(Document(str(path), lines))
    return docs


def _train_texts(name: str) -> Document:
    from edgept.data.split import DataConfig, load_splits

    train = load_splits(DataConfig(source=name)).train
    return Document(f"{name} (train split)", tuple(t.strip() for t in train.items if t.strip()))


def pack(docs: Sequence[Document], preprocessor: Any, max_length: int, reserve: int = 2) -> Packed:
    """Tokenize `docs` with `preprocessor` (a TextPreprocessor) and cut each document's token stream
    into blocks of `max_length - reserve` tokens (reserve: room for [CLS], [SEP], ...)."""
    size = max_length - reserve
    if size < 2:
        raise InputError(f"max_length {max_length} leaves {size} tokens per block; use at least {reserve + 2}")
    tok = preprocessor.tokenizer
    blocks, starts = [], []
    for doc in docs:
        encs = tok.encode_batch(list(doc.lines), add_special_tokens=False)
        lengths = np.array([len(e.ids) for e in encs], dtype=np.int64)
        stream = np.fromiter((i for e in encs for i in e.ids), dtype=np.int64, count=int(lengths.sum()))
        line_starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])[lengths > 0]
        for begin in range(0, len(stream), size):
            block = stream[begin : begin + size]
            inside = line_starts[(line_starts >= begin) & (line_starts < begin + len(block))] - begin
            blocks.append(block)
            starts.append(inside)
    if not blocks:
        raise InputError(f"the corpus ({', '.join(d.name for d in docs)}) tokenizes to nothing; give text with words in it")
    return Packed(tuple(blocks), tuple(starts), int(sum(len(b) for b in blocks)))


def load_austen(root: Path = AUSTEN_DIR) -> list[Document]:
    """Jane Austen's six novels, one document each, from the R package's lazy-load database
    (Rdata.rdx: the gzipped index; Rdata.rdb: one compressed serialized R object per novel)."""
    if not (root / "Rdata.rdx").is_file():
        raise InputError(f"corpus 'austen' comes from a package that is not installed ({root} is missing); run: {AUSTEN_INSTALL}")
    try:
        import rdata
        from rdata.parser import parse_data
    except ImportError:
        raise MissingDependencyError("corpus 'austen' is stored as R data, read with the rdata package; run: pip install rdata") from None
    import warnings

    def convert(raw: bytes) -> Any:
        with warnings.catch_warnings():  # rdata warns that a bare serialization is "assumed RDS": it is
            warnings.simplefilter("ignore")
            return rdata.conversion.convert(parse_data(raw))

    index = convert(gzip.decompress((root / "Rdata.rdx").read_bytes()))
    db = (root / "Rdata.rdb").read_bytes()
    docs = []
    for name, (offset, length) in sorted(index["variables"].items()):
        lines = convert(_unpack_rdb(db[int(offset) : int(offset) + int(length)]))
        docs.append(Document(f"austen:{name}", tuple(s for s in (str(x).strip() for x in lines) if s)))
    return docs


def _unpack_rdb(chunk: bytes) -> bytes:
    """One lazy-load entry: a 4-byte length, then zlib data, or a type byte (Z, 2, X) and the data."""
    kind = chunk[4:5]
    if kind == b"X":
        return lzma.decompress(chunk[5:])
    if kind == b"2":
        import bz2

        return bz2.decompress(chunk[5:])
    return zlib.decompress(chunk[5:] if kind == b"Z" else chunk[4:])
