"""Text classification rows from a user's JSONL, CSV or TSV file.

Every row is checked when the file is read, so a bad row stops the command before training
starts, with the file, the line number, what is wrong and how to fix it.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from edgept.data.dataset import ClassificationData, sorted_labels
from edgept.errors import InputError

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "tsv"}


def read_text_table(path: str | Path, text_column: str = "text", label_column: str = "label") -> ClassificationData:
    """Read (text, label) rows from a .jsonl, .csv or .tsv file (UTF-8, a BOM is allowed).

    Labels may be strings or integers (both become label names); the label set is sorted
    (numerically when all are integers). Empty lines of a JSONL file are skipped.
    """
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(
            f"{path}: unknown data file type {path.suffix or '(none)'!r}; use one of {', '.join(FORMATS)} "
            "or an image folder (one subfolder per class)"
        )
    text = _decode(path)
    if not text.strip():
        raise InputError(f"{path} is empty; it needs one example per row with {text_column!r} and {label_column!r}")
    rows = _jsonl(path, text) if fmt == "jsonl" else _delimited(path, text, "," if fmt == "csv" else "\t")
    texts, names, lines = [], [], []
    for line, row in rows:
        texts.append(_field(path, line, row, text_column, "text"))
        names.append(_label(path, line, row, label_column))
        lines.append(line)
    if not texts:
        raise InputError(f"{path} has a header but no rows; add examples")
    labels = sorted_labels(set(names))
    if len(labels) < 2:
        raise InputError(
            f"{path}: every row has label {labels[0]!r}; classification needs at least 2 labels in {label_column!r}"
        )
    ids = {name: i for i, name in enumerate(labels)}
    return ClassificationData(
        "text",
        texts,
        np.array([ids[n] for n in names], dtype=np.int64),
        labels,
        str(path),
        np.array(lines, dtype=np.int64),
    )


def _decode(path: Path, missing: str = "pass a .jsonl/.csv/.tsv file, an image folder or a shipped set name") -> str:
    """A UTF-8 file's text (a BOM is allowed); missing, unreadable or non-UTF-8: one InputError line."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file; {missing}") from None
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise InputError(
            f"{path}:{line}: not UTF-8 (byte 0x{raw[e.start]:02x} at offset {e.start}); re-save the file as UTF-8"
        ) from None


def _jsonl(path: Path, text: str) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}:{line}: not valid JSON ({e.msg}, column {e.colno}); one JSON object per line") from None
        if not isinstance(row, dict):
            raise InputError(f"{path}:{line}: expected a JSON object per line, got {type(row).__name__}")
        rows.append((line, row))
    return rows


def _delimited(path: Path, text: str, delimiter: str) -> list[tuple[int, dict[str, Any]]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
        rows = []
        start = reader.line_num + 1
        for cells in reader:
            line, start = start, reader.line_num + 1  # a quoted field may span lines: report where the row starts
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(header):
                raise InputError(
                    f"{path}:{line}: {len(cells)} fields but the header has {len(header)} ({', '.join(header)}); "
                    "quote fields that contain the delimiter"
                )
            rows.append((line, dict(zip(header, cells, strict=True))))
    except csv.Error as e:
        raise InputError(f"{path}:{reader.line_num}: malformed {'CSV' if delimiter == ',' else 'TSV'} ({e})") from None
    return rows


def _field(path: Path, line: int, row: dict[str, Any], column: str, what: str) -> str:
    if column not in row:
        raise InputError(
            f"{path}:{line}: no {what} column {column!r} (columns: {', '.join(map(str, row))}); "
            f"name it with --{what}-column"
        )
    value = row[column]
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{path}:{line}: {what} column {column!r} is {value!r}; it must be a non-empty string")
    return value


def _label(path: Path, line: int, row: dict[str, Any], column: str) -> str:
    if column not in row:
        raise InputError(
            f"{path}:{line}: no label column {column!r} (columns: {', '.join(map(str, row))}); name it with --label-column"
        )
    value = row[column]
    if isinstance(value, bool) or not isinstance(value, str | int) or (isinstance(value, str) and not value.strip()):
        raise InputError(
            f"{path}:{line}: label {column!r} is {value!r}; labels must be non-empty strings or integers"
        )
    return str(value).strip()
