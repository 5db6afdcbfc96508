"""`edgept distill` end to end on a tiny teacher: stages, outputs, seeding, one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from edgept.models.hf import load_model
from tests.cli.test_cli import assert_one_line_error, edgept

POSITIVE, NEGATIVE = "great good fun film acting".split(), "bad boring dull plot story".split()


@pytest.fixture
def data_file(tmp_path):
    return write_reviews(tmp_path)


def write_reviews(tmp_path):
    """A JSONL set whose labels follow its words, in the tiny teacher's label names."""
    g = torch.Generator().manual_seed(0)
    rows = []
    for i in range(60):
        words, label = (POSITIVE, "positive") if i % 2 else (NEGATIVE, "negative")
        picks = torch.randint(0, len(words), (4,), generator=g).tolist()
        rows.append({"text": "the movie was " + " ".join(words[p] for p in picks), "label": label})
    path = tmp_path / "reviews.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


SMALL = ["--layers", "1", "--hidden", "16", "--heads", "2", "--max-steps", "4", "--batch-size", "8", "-q"]


def test_both_stages_write_a_student_and_metrics_and_the_seed_repeats(monkeypatch, capsys, tmp_path, tiny_bert_dir, data_file):
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        code, stdout, err = edgept(
            monkeypatch, capsys, "distill", "--teacher", tiny_bert_dir, "--data", data_file, "-o", out, *SMALL, "--augment", "2"
        )
        assert code == 0, err
        assert "test accuracy" in stdout and "parameters" in stdout
        runs.append(load_model(out / "model"))
    student = runs[0]
    assert (student.config.num_layers, student.config.hidden_size, student.config.labels) == (1, 16, ("negative", "positive"))
    assert all(torch.equal(x, y) for x, y in zip(*(r.state_dict().values() for r in runs), strict=True))
    assert (tmp_path / "a" / "intermediate" / "model" / "config.json").is_file()
    assert (tmp_path / "a" / "model" / "vocab.txt").is_file()  # the teacher's tokenizer goes with the student
    m = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert [s["stage"] for s in m["stages"]] == ["intermediate", "prediction"]
    assert [s["steps"] for s in m["stages"]] == [4, 4]
    assert m["layer_map"] == [2] and m["augment"]["augmented"] > m["augment"]["examples"] == 48
    assert m["student"]["params"]["total"] < m["teacher"]["params"]["total"]
    assert m["student"]["bytes"] < m["teacher"]["bytes"]
    for who in ("teacher", "student"):
        assert set(m[who]["test"]) == {"accuracy", "macro_f1"} and set(m[who]["dev"]) == {"accuracy", "macro_f1"}


def test_general_stage_on_a_corpus(monkeypatch, capsys, tmp_path, tiny_bert_dir):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the film was fun\n\nthe plot was dull and boring\na great story\n" * 5)
    code, stdout, err = edgept(
        monkeypatch, capsys, "distill", "--teacher", tiny_bert_dir, "--stage", "general", "--corpus", corpus,
        "-o", tmp_path / "g", "--layers", "1", "--max-steps", "2", "--batch-size", "4", "-q",
    )  # fmt: skip
    assert code == 0, err
    m = json.loads((tmp_path / "g" / "metrics.json").read_text())
    assert m["data"]["lines"] == 15 and m["copied_from_teacher"] > 0 and "test" not in m["student"]


@pytest.mark.parametrize(
    ("flags", "match"),
    [
        (["--layers", "2", "--layer-map", "2,1"], "strictly increasing, but entry 2 (1) follows 2"),
        (["--layers", "2", "--layer-map", "1,3"], "entry 2 is teacher layer 3, outside the teacher's layers 1..2"),
        (["--layers", "1", "--layer-map", "1,2"], "has 2 entries but the student has 1 layers"),
        (["--layers", "3"], "the student has 3 layers but the teacher only 2"),
        (["--layer-map", "a"], "comma-separated teacher layer numbers"),
        (["--hidden", "30"], "hidden_size 30 is not divisible by num_heads 4"),
        (["--stage", "final"], "--stage 'final' is not one of intermediate, prediction, both, general"),
        (["--stage", "general"], "--stage general distills on unlabeled text: give --corpus FILES"),
        (["--student-config", "s.json", "--layers", "1"], "either as --layers/--hidden/--heads/--ffn or as --student-config"),
    ],
)
def test_bad_flags_fail_in_one_line_before_training(monkeypatch, capsys, tmp_path, tiny_bert_dir, data_file, flags, match):
    out = tmp_path / "never"
    code, _, err = edgept(monkeypatch, capsys, "distill", "--teacher", tiny_bert_dir, "--data", data_file, "-o", out, *flags)
    assert_one_line_error(code, err, match)
    assert not out.exists()  # nothing trained, nothing written


def test_prediction_needs_a_classifier_teacher(monkeypatch, capsys, tmp_path, tiny_bert_config, data_file):
    from edgept.models import build_model
    from edgept.models.hf import save_model

    plain = save_model(build_model(tiny_bert_config(task="feature-extraction", labels=())), tmp_path / "plain")
    code, _, err = edgept(monkeypatch, capsys, "distill", "--teacher", plain, "--data", data_file, "-o", tmp_path / "o")
    assert_one_line_error(code, err, "--stage both needs a classifier teacher but this one is 'feature-extraction'")


def test_two_processes_match_one(tmp_path, tiny_bert_config, data_file):
    """nproc=2 gives the 1-process losses on the same global batches: the frozen teacher (kept out
    of the module tree) travels to the workers, and the losses are means over examples even with
    texts of different lengths (so shards with more padding are not over-weighted)."""
    from edgept.compress.distill import DistillConfig, StudentShape, distill
    from edgept.data import DataConfig
    from edgept.models import build_model
    from edgept.models.hf import save_model
    from edgept.train import TrainConfig
    from tests.conftest import tiny_vocab

    (tmp_path / "tok").mkdir()
    (tmp_path / "tok" / "vocab.txt").write_text("\n".join(tiny_vocab()) + "\n")
    torch.manual_seed(0)
    teacher = save_model(
        build_model(tiny_bert_config(hidden_dropout=0.0, attention_dropout=0.0)), tmp_path / "t", source=tmp_path / "tok"
    )
    lines = data_file.read_text().splitlines()
    short = [json.dumps({**json.loads(row), "text": "bad"}) if i % 3 == 0 else row for i, row in enumerate(lines)]
    data_file.write_text("\n".join(short) + "\n")
    losses = {}
    for n in (1, 2):
        distill(
            teacher, tmp_path / f"o{n}", DistillConfig(stage="intermediate", student=StudentShape(num_layers=1, hidden_size=16)),
            TrainConfig(max_steps=2, batch_size=8, nproc=n, warmup=0.0), data=DataConfig(source=str(data_file)), progress=False,
        )  # fmt: skip
        log = [json.loads(r) for r in (tmp_path / f"o{n}" / "train_log.jsonl").read_text().splitlines()]
        losses[n] = [r["loss"] for r in log if r["kind"] == "train"]
    assert len(losses[1]) == 2
    assert losses[2] == pytest.approx(losses[1], rel=1e-5, abs=1e-6)


@pytest.fixture
def image_folder(tmp_path):
    """10 PNGs per class whose colour says the class: enough for a 1-per-class dev and test split."""
    from PIL import Image

    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    for c, name in enumerate(("bird", "cat", "dog")):
        (root / name).mkdir(parents=True)
        for i in range(10):
            pixels = rng.integers(0, 60, (32, 32, 3), dtype=np.uint8)
            pixels[..., c] += 150
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


@pytest.fixture
def tiny_vit_dir(tmp_path, tiny_vit_config):
    from edgept.models import build_model
    from edgept.models.hf import save_model

    torch.manual_seed(0)
    return save_model(build_model(tiny_vit_config(labels=("bird", "cat", "dog"))), tmp_path / "tiny-vit")


def test_a_vit_teacher_distills_on_an_image_folder(monkeypatch, capsys, tmp_path, tiny_vit_dir, image_folder):
    out = tmp_path / "vit-student"
    code, stdout, err = edgept(
        monkeypatch, capsys, "distill", "--teacher", tiny_vit_dir, "--data", image_folder, "-o", out,
        "--layers", "1", "--max-steps", "3", "--batch-size", "6", "-q",
    )  # fmt: skip
    assert code == 0, err
    assert "test accuracy" in stdout
    student, teacher = load_model(out / "model"), load_model(tiny_vit_dir)
    assert (student.config.arch, student.config.num_layers, student.config.labels) == ("vit", 1, ("bird", "cat", "dog"))
    assert student.config.patch_size == teacher.config.patch_size
    m = json.loads((out / "metrics.json").read_text())
    assert m["layer_map"] == [2] and m["copied_from_teacher"] > 0
    assert [s["steps"] for s in m["stages"]] == [3, 3]
    assert m["data"]["sizes"] == {"train": 24, "dev": 3, "test": 3}
    # The prediction stage trained the student away from the teacher's copied layer 2.
    assert not torch.equal(student.encoder.blocks[0].attn.q.weight, teacher.encoder.blocks[1].attn.q.weight)


def test_augment_is_refused_for_images(monkeypatch, capsys, tmp_path, tiny_vit_dir, image_folder):
    code, _, err = edgept(
        monkeypatch, capsys, "distill", "--teacher", tiny_vit_dir, "--data", image_folder, "-o", tmp_path / "o", "--augment", "2"
    )
    assert_one_line_error(code, err, "--augment replaces words, so it is for text data")


@pytest.fixture
def general_student(tmp_path, tiny_bert_config, tiny_bert_dir):
    """A 1-layer encoder without a head (what --stage general leaves), weights unlike the teacher's."""
    from edgept.models import build_model
    from edgept.models.hf import save_model

    torch.manual_seed(123)
    model = build_model(tiny_bert_config(num_layers=1, task="feature-extraction", labels=()))
    return save_model(model, tmp_path / "general", source=tiny_bert_dir)


def test_student_starts_from_a_given_checkpoint_with_the_teachers_head(monkeypatch, capsys, tmp_path, tiny_bert_dir, data_file, general_student):
    out = tmp_path / "task"
    code, _, err = edgept(
        monkeypatch, capsys, "distill", "--teacher", tiny_bert_dir, "--student", general_student, "--data", data_file,
        "-o", out, "--stage", "intermediate", "--max-steps", "1", "--lr", "1e-12", "--batch-size", "8", "-q",
    )  # fmt: skip
    assert code == 0, err
    got, given, teacher = load_model(out / "model"), load_model(general_student), load_model(tiny_bert_dir)
    assert (got.config.task, got.config.labels) == ("sequence-classification", ("negative", "positive"))
    # lr 1e-12: one step leaves the given encoder as it was (not the teacher's layer 2, which
    # a student built from the teacher would have copied).
    given_qkv = given.encoder.blocks[0].attn.q.weight
    torch.testing.assert_close(got.encoder.blocks[0].attn.q.weight, given_qkv, atol=1e-6, rtol=0)
    assert not torch.allclose(given_qkv, teacher.encoder.blocks[1].attn.q.weight, atol=1e-3)
    assert json.loads((out / "metrics.json").read_text())["copied_from_teacher"] is None


def test_student_and_shape_flags_exclude_each_other(monkeypatch, capsys, tmp_path, tiny_bert_dir, data_file, general_student):
    code, _, err = edgept(
        monkeypatch, capsys, "distill", "--teacher", tiny_bert_dir, "--student", general_student, "--layers", "1",
        "--data", data_file, "-o", tmp_path / "o",
    )  # fmt: skip
    assert_one_line_error(code, err, "give the student either as a shape (--layers/--hidden/...) or ready-made, not both")
