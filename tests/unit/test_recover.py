"""Recovery distillation of a factorized model (`factorize_and_recover`) and `distill(student=...)`."""

from __future__ import annotations

import json

import pytest
import torch

from edgept.compress.distill import DistillConfig, StudentShape, distill
from edgept.compress.factorize import FactorizeConfig, load_factorized
from edgept.compress.recover import factorize_and_recover, recovery_stage
from edgept.data import DataConfig
from edgept.errors import ConfigError, InputError
from edgept.models import build_model
from edgept.models.hf import load_model, save_model
from edgept.train import TrainConfig
from tests.cli.test_distill_cli import data_file  # noqa: F401  (a fixture)

FACTORIZE = FactorizeConfig(embedding_size=8, share="all")
TRAIN = TrainConfig(lr=3e-3, max_steps=12, batch_size=8, warmup=0.0, seed=0)


@pytest.fixture
def encoder_dir(tmp_path, tiny_bert_config, tiny_bert_dir):
    """A tiny encoder (no head) with trained-looking LayerNorms, saved with the tiny tokenizer."""
    torch.manual_seed(2)
    model = build_model(tiny_bert_config(task="feature-extraction", labels=()))
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 1:
                p.add_(0.3 * torch.randn_like(p))
    return save_model(model, tmp_path / "encoder", source=tiny_bert_dir)


def _hidden_mse(teacher, student, seed: int = 5) -> float:
    """Mean squared distance of the last hidden states on fresh random inputs (padding excluded)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, teacher.config.vocab_size, (6, 11), generator=g)
    mask = torch.ones_like(ids)
    mask[:3, 8:] = 0
    with torch.no_grad():
        t = teacher.eval()(ids, mask).last_hidden_state
        s = student.eval()(ids, mask).last_hidden_state
    return float(((t - s).pow(2).mean(-1) * mask).sum() / mask.sum())


def test_recovery_brings_an_encoder_back_towards_its_original(tmp_path, encoder_dir, data_file):  # noqa: F811
    teacher = load_model(encoder_dir)
    before, _ = load_factorized(encoder_dir, FACTORIZE)
    m = factorize_and_recover(encoder_dir, tmp_path / "r", FACTORIZE, TRAIN, data=DataConfig(source=str(data_file)), progress=False)
    after = load_model(tmp_path / "r" / "model")
    assert [s["stage"] for s in m["stages"]] == ["intermediate"]  # an encoder has no logits to match
    assert m["layer_map"] == [1, 2] and m["copied_from_teacher"] is None
    assert (after.config.emb_size, after.config.groups) == (8, 1)  # still factorized and shared
    assert json.loads((tmp_path / "r" / "model" / "config.json").read_text())["model_type"] == "albert"
    assert _hidden_mse(teacher, after) < 0.5 * _hidden_mse(teacher, before)


def test_classifier_recovery_runs_both_stages_and_reports_teacher_vs_recovered(tmp_path, tiny_bert_dir, data_file):  # noqa: F811
    out = tmp_path / "r"
    m = factorize_and_recover(tiny_bert_dir, out, FACTORIZE, TRAIN, data=DataConfig(source=str(data_file)), progress=False)
    assert [s["stage"] for s in m["stages"]] == ["intermediate", "prediction"]
    assert (out / "intermediate" / "model" / "config.json").is_file()
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["factorize"]["embedding_size"] == 8 and saved["factorize"]["groups"] == 1
    assert saved["student"]["params"]["total"] == saved["factorize"]["params_after"] < saved["teacher"]["params"]["total"]
    assert {"accuracy", "macro_f1"} <= set(saved["student"]["test"]) and "accuracy" in saved["teacher"]["test"]
    assert json.loads((out / "model" / "factorize_report.json").read_text())["groups"] == 1
    with pytest.raises(InputError, match="already exists"):
        factorize_and_recover(tiny_bert_dir, out, FACTORIZE, TRAIN, data=DataConfig(source=str(data_file)), progress=False)


def test_recovery_stage_follows_the_task():
    assert recovery_stage("sequence-classification") == "both"
    assert recovery_stage("image-classification") == "both"
    assert recovery_stage("feature-extraction") == "intermediate"


def test_distill_takes_a_ready_made_student_as_a_module_or_a_directory(tmp_path, tiny_bert_dir, data_file):  # noqa: F811
    student, _ = load_factorized(tiny_bert_dir, FACTORIZE)
    start = {k: v.clone() for k, v in student.state_dict().items()}
    config = DistillConfig(stage="prediction")
    data = DataConfig(source=str(data_file))
    m = distill(tiny_bert_dir, tmp_path / "a", config, TRAIN, data=data, progress=False, student=student)
    trained = student.state_dict()
    assert any(not torch.equal(start[k], trained[k]) for k in start)  # trained in place
    saved = load_model(tmp_path / "a" / "model")
    assert all(torch.equal(trained[k], v) for k, v in saved.state_dict().items())
    assert m["copied_from_teacher"] is None and m["student"]["params"]["total"] < m["teacher"]["params"]["total"]
    # the same student from its checkpoint dir, trained again from there
    again = distill(tiny_bert_dir, tmp_path / "b", config, TRAIN, data=data, progress=False, student=tmp_path / "a" / "model")
    assert again["student"]["params"] == m["student"]["params"]
    with pytest.raises(ConfigError, match="not both"):
        distill(tiny_bert_dir, tmp_path / "c", DistillConfig(student=StudentShape(num_layers=1)), TRAIN, data=data,
                progress=False, student=student)
