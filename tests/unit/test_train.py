"""edgept.train: the schedule, determinism, resume == uninterrupted, 2-process data parallelism, early stopping."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from edgept.data import ClassificationData, collate_for
from edgept.errors import ConfigError
from edgept.models import build_model
from edgept.models.hf import load_model, read_config, save_model
from edgept.train import ClassificationObjective, TrainConfig, fit
from edgept.train.schedule import WarmupLinear, parameter_groups

GOOD, BAD = ["good", "great", "fun"], ["bad", "boring", "dull"]


def toy_data(n: int = 40, seed: int = 0) -> ClassificationData:
    rng = np.random.default_rng(seed)
    texts = [" ".join(["the", "movie", *rng.choice(GOOD if i % 2 else BAD, size=1 + i % 4)]) for i in range(n)]
    return ClassificationData("text", texts, np.arange(n) % 2, ("negative", "positive"), "toy", np.arange(1, n + 1))


@pytest.fixture
def no_dropout_dir(tmp_path, tiny_bert_config, tiny_bert_dir):
    torch.manual_seed(1)
    model = build_model(tiny_bert_config(hidden_dropout=0.0, attention_dropout=0.0))
    return save_model(model, tmp_path / "no-dropout", source=tiny_bert_dir)


def train(model_dir, out, config, *, data=None, evaluate=None, collate=None, resume=False):
    model = load_model(model_dir)
    collate = collate or collate_for(model_dir, model.config, "text")
    objective = ClassificationObjective(model)
    result = fit(objective, data or toy_data(), config, out, collate=collate, evaluate=evaluate, resume=resume, progress=False, source=model_dir)
    return objective.model, result


def weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def max_diff(a, b) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


def log(out):
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


def test_warmup_then_linear_decay_values():
    f = WarmupLinear(warmup_steps=2, total_steps=10)
    assert [f(s) for s in range(11)] == [0.0, 0.5, 1.0, 7 / 8, 6 / 8, 5 / 8, 4 / 8, 3 / 8, 2 / 8, 1 / 8, 0.0]
    assert WarmupLinear(0, 4)(0) == 1.0


def test_logged_lr_follows_the_schedule(tmp_path, tiny_bert_dir):
    # 40 examples / batch 8 = 5 steps per epoch; 2 epochs = 10 steps; warm-up ceil(0.2 * 10) = 2.
    config = TrainConfig(lr=1e-3, warmup=0.2, epochs=2, batch_size=8)
    _, result = train(tiny_bert_dir, tmp_path / "run", config)
    lrs = [r["lr"] for r in log(tmp_path / "run") if r["kind"] == "train"]
    expected = [1e-3 * WarmupLinear(2, 10)(s) for s in range(10)]
    assert result.steps == 10 and np.allclose(lrs, expected, rtol=0, atol=1e-12)


def test_no_weight_decay_on_biases_and_layernorm(tiny_bert_config):
    model = build_model(tiny_bert_config())
    decay, no_decay = parameter_groups(model, 0.01)
    names = {id(p): n for n, p in model.named_parameters()}
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert all(not names[id(p)].endswith("bias") and "norm" not in names[id(p)] for p in decay["params"])
    assert {names[id(p)] for p in no_decay["params"]} >= {"embeddings.norm.weight", "embeddings.norm.bias"}
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_same_seed_same_model_other_seed_differs(tmp_path, tiny_bert_dir):
    config = TrainConfig(lr=1e-3, epochs=1, batch_size=8)
    a, _ = train(tiny_bert_dir, tmp_path / "a", config)
    b, _ = train(tiny_bert_dir, tmp_path / "b", config)
    c, _ = train(tiny_bert_dir, tmp_path / "c", config.replace(seed=1))
    assert max_diff(weights(a), weights(b)) == 0.0
    assert max_diff(weights(a), weights(c)) > 1e-4
    losses = [[r["loss"] for r in log(tmp_path / d) if r["kind"] == "train"] for d in "ab"]
    assert losses[0] == losses[1]


class Interrupt(Exception):
    pass


class InterruptingCollate:
    """The training collate, raising after `calls` batches: a crash in the middle of an epoch."""

    def __init__(self, collate, calls):
        self.collate, self.calls = collate, calls

    def __call__(self, examples):
        if self.calls == 0:
            raise Interrupt
        self.calls -= 1
        return self.collate(examples)


def test_resume_equals_uninterrupted(tmp_path, tiny_bert_dir):
    # Dropout is on (0.1), so an exact match also shows the RNG states were restored.
    from edgept.eval import TorchEvaluator

    data = toy_data()
    collate = collate_for(tiny_bert_dir, read_config(tiny_bert_dir), "text")
    dev = TorchEvaluator(toy_data(10, seed=1), collate)
    config = TrainConfig(lr=1e-3, epochs=3, batch_size=8, eval_every=4, save_every=3)  # 15 steps
    full, full_result = train(tiny_bert_dir, tmp_path / "full", config, data=data, evaluate=dev)
    with pytest.raises(Interrupt):  # dies in step 8 (epoch 2), after the step-6 checkpoint
        train(tiny_bert_dir, tmp_path / "cut", config, data=data, evaluate=dev, collate=InterruptingCollate(collate, 7))
    assert sorted(p.name for p in (tmp_path / "cut" / "checkpoints").iterdir()) == ["step-3", "step-6"]
    resumed, result = train(tiny_bert_dir, tmp_path / "cut", config, data=data, evaluate=dev, resume=True)
    assert max_diff(weights(full), weights(resumed)) <= 1e-6
    assert (result.steps, result.best_step, result.best_metric) == (full_result.steps, full_result.best_step, full_result.best_metric)
    strip = lambda rs: [{k: v for k, v in r.items() if k != "examples_per_s"} for r in rs]  # noqa: E731
    assert strip(log(tmp_path / "cut")) == strip(log(tmp_path / "full"))
    # The checkpoint is plain tensors and containers.
    state = torch.load(tmp_path / "full" / "checkpoints" / "step-15" / "state.pt", weights_only=True)
    assert state["step"] == 15 and len(state["rng"]) == 1


def test_resume_refuses_other_settings_and_fresh_run_refuses_old_checkpoints(tmp_path, tiny_bert_dir):
    config = TrainConfig(lr=1e-3, epochs=1, batch_size=8)
    train(tiny_bert_dir, tmp_path / "run", config)
    with pytest.raises(ConfigError, match="lr differ"):
        train(tiny_bert_dir, tmp_path / "run", config.replace(lr=2e-3), resume=True)
    with pytest.raises(ConfigError, match="pass --resume"):
        train(tiny_bert_dir, tmp_path / "run", config)


def test_bf16_autocast_trains_like_fp32_and_is_deterministic(tmp_path, no_dropout_dir):
    config = TrainConfig(lr=1e-3, epochs=2, batch_size=8)  # 10 steps
    fp32, _ = train(no_dropout_dir, tmp_path / "fp32", config)
    bf16, _ = train(no_dropout_dir, tmp_path / "bf16", config.replace(precision="bf16"))
    again, _ = train(no_dropout_dir, tmp_path / "again", config.replace(precision="bf16"))
    losses = {d: [r["loss"] for r in log(tmp_path / d) if r["kind"] == "train"] for d in ("fp32", "bf16")}
    # bfloat16 keeps 8 bits of mantissa: the same losses to about 1%, but not bit for bit.
    assert np.allclose(losses["bf16"], losses["fp32"], rtol=0.02, atol=0)
    assert losses["bf16"] != losses["fp32"]
    assert max_diff(weights(bf16), weights(fp32)) > 0.0
    assert max_diff(weights(bf16), weights(again)) == 0.0
    # Autocast covers the forward pass only: the weights stay fp32.
    assert all(v.dtype == torch.float32 for v in bf16.state_dict().values() if v.is_floating_point())


def test_resume_of_a_checkpoint_from_before_a_setting_existed(tmp_path, tiny_bert_dir):
    config = TrainConfig(lr=1e-3, epochs=1, batch_size=8)
    train(tiny_bert_dir, tmp_path / "run", config)
    path = tmp_path / "run" / "checkpoints" / "step-5" / "state.pt"
    state = torch.load(path, weights_only=True)
    del state["config"]["precision"]  # as written before TrainConfig had it
    torch.save(state, path)
    _, result = train(tiny_bert_dir, tmp_path / "run", config, resume=True)  # the default is what it ran with
    assert result.steps == 5
    with pytest.raises(ConfigError, match="precision differ"):
        train(tiny_bert_dir, tmp_path / "run", config.replace(precision="bf16"), resume=True)


class Flat:
    """A dev 'evaluation' that never improves: early stopping must end the run."""

    def __init__(self):
        self.calls = 0

    def __call__(self, model):
        self.calls += 1
        return {"accuracy": 0.5}


def test_early_stopping(tmp_path, tiny_bert_dir):
    flat = Flat()
    config = TrainConfig(lr=1e-3, epochs=10, batch_size=8, eval_every=2, patience=2)  # 50 steps planned
    _, result = train(tiny_bert_dir, tmp_path / "run", config, evaluate=flat)
    # eval at 2 (best), 4 (1 bad), 6 (2 bad -> stop)
    assert (result.steps, result.best_step, flat.calls) == (6, 2, 3)
    assert [r["early_stop"] for r in result.history] == [False, False, True]


def test_two_processes_match_one_on_the_same_global_batch(tmp_path, no_dropout_dir):
    # 42 examples, batch 8: the last batch (2) splits 1 + 1; shares of 4 + 4 otherwise. Without
    # dropout the only difference is the order of float sums in the all-reduce.
    data = toy_data(42)
    config = TrainConfig(lr=1e-3, epochs=2, batch_size=8, grad_clip=0.5)
    one, r1 = train(no_dropout_dir, tmp_path / "one", config, data=data)
    two, r2 = train(no_dropout_dir, tmp_path / "two", config.replace(nproc=2), data=data)
    assert r1.steps == r2.steps == 12
    assert max_diff(weights(one), weights(two)) < 1e-5
    l1 = [r["loss"] for r in log(tmp_path / "one") if r["kind"] == "train"]
    l2 = [r["loss"] for r in log(tmp_path / "two") if r["kind"] == "train"]
    assert np.allclose(l1, l2, rtol=0, atol=1e-5)
    assert l1[0] != l1[-1]  # it trained


def test_train_config_validation():
    with pytest.raises(ConfigError, match="warmup"):
        TrainConfig(warmup=1.5)
    with pytest.raises(ConfigError, match="nproc"):
        TrainConfig(batch_size=2, nproc=4)
    with pytest.raises(ConfigError, match="max_steps"):
        TrainConfig(max_steps=0)
    with pytest.raises(ConfigError, match="precision must be one of fp32, bf16"):
        TrainConfig(precision="fp16")
    c = TrainConfig(lr=1e-4, patience=3)
    assert TrainConfig.from_dict(c.to_dict()) == c


def test_load_model_labels_give_a_fresh_head_only_when_they_differ(tiny_bert_dir):
    saved = load_model(tiny_bert_dir)
    same = load_model(tiny_bert_dir, labels=("negative", "positive"))
    assert max_diff(weights(saved), weights(same)) == 0.0  # the trained head is kept
    torch.manual_seed(0)
    three = load_model(tiny_bert_dir, task="sequence-classification", labels=("a", "b", "c"))
    assert three.config.labels == ("a", "b", "c") and three.head.classifier.weight.shape == (3, 32)
    body = {k: v for k, v in weights(saved).items() if not k.startswith("head.")}
    assert max_diff(body, {k: v for k, v in weights(three).items() if k in body}) == 0.0
    with pytest.raises(ConfigError, match="labels= needs a classification task"):
        load_model(tiny_bert_dir, task="feature-extraction", labels=("a", "b"))
