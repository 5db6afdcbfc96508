"""A second, 6-class text task for `edgept optimize`: which of Jane Austen's six novels a passage is from.

    .venv/bin/python scripts/austen_task.py -o out/austen6.jsonl [--per-class 600] [--words 40]

Reads the shipped `austen` corpus (`make corpus`: Debian r-cran-janeaustenr) through edgept's public
corpus reader, cuts each novel's running text into consecutive non-overlapping passages of --words
words (chapter and volume headings dropped, so no passage names its book), draws --per-class of them
per novel with --seed, and writes one JSON object per line: {"text": ..., "label": <novel>}. edgept's
shared split then holds out dev and test per class.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys

from edgept.data.corpus import read_corpus
from edgept.fileio import atomic_write_text

# Chapter/volume lines, and lines with no lower-case letter (titles, "THE END", roman numerals).
HEADING = re.compile(r"^(CHAPTER|Chapter|VOLUME|Volume)\b|^[^a-z]*$")


def passages(lines: tuple[str, ...], words: int) -> list[str]:
    stream = [w for line in lines if not HEADING.search(line) for w in line.split()]
    return [" ".join(stream[i : i + words]) for i in range(0, len(stream) - words + 1, words)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--per-class", type=int, default=600)
    parser.add_argument("--words", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    rows = []
    for doc in read_corpus(["austen"]):
        label = doc.name.split(":", 1)[1]
        chunks = passages(doc.lines, args.words)
        rows += [{"text": t, "label": label} for t in rng.sample(chunks, min(args.per_class, len(chunks)))]
        print(f"{label}: {len(chunks)} passages, {min(args.per_class, len(chunks))} kept", file=sys.stderr)
    rng.shuffle(rows)
    atomic_write_text(args.output, "".join(json.dumps(r) + "\n" for r in rows))
    print(f"wrote {len(rows)} examples to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
