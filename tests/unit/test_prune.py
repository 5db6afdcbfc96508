"""Structured FFN-neuron and attention-head pruning on tiny classifiers: the Taylor scores, the cut
(exact when nothing is cut, equal to zeroing the dropped neurons or heads otherwise), the
checkpoint (exports and quantizes with parity, loads in transformers when only FFNs were cut, a
shared block stays one weight set), recovery, and the CLI's errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from edgept.compress.prune import PruneConfig, load_pruned, prune_checkpoint
from edgept.compress.prune.prune import importance, kept_heads, kept_width, prune_model
from edgept.compress.recover import prune_and_recover
from edgept.data import DataConfig
from edgept.errors import ConfigError, InputError
from edgept.models import build_model
from edgept.models.hf import load_model, save_model
from edgept.train import TrainConfig
from tests.cli.test_cli import assert_one_line_error, edgept
from tests.cli.test_distill_cli import data_file, image_folder, tiny_vit_dir  # noqa: F401  (fixtures)

SCORE = dict(examples=24, batch_size=8)  # a few batches: the sums must cross batch boundaries


def random_batch(model, seed: int, n: int = 4, seq: int = 9) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, model.config.vocab_size, (n, seq), generator=g)
    mask = torch.ones_like(ids)
    mask[: n // 2, seq - 3 :] = 0
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.randint(0, 2, (n,), generator=g)}


def logits(model, batch) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(batch["input_ids"], batch["attention_mask"]).logits


@pytest.fixture
def classifier(tiny_bert_config):
    torch.manual_seed(3)
    return build_model(tiny_bert_config()).eval()


def test_kept_width_is_a_multiple_of_8_within_the_ffn():
    assert [kept_width(1536, k) for k in (1.0, 0.5, 0.25, 0.3, 0.001)] == [1536, 768, 384, 464, 8]
    assert kept_width(4, 0.5) == 4  # a narrower FFN than one lane is kept whole
    for bad in (0, -0.5, 1.5):
        with pytest.raises(ConfigError, match="--ffn-keep"):
            PruneConfig(ffn_keep=bad)


def test_taylor_scores_are_the_per_token_mask_gradients(classifier):
    """|a * dL/da| per token equals |dL/dm| for a per-token mask m = 1 multiplied into the activation:
    an independent computation of the same first-order estimate."""
    batches = [random_batch(classifier, seed) for seed in (1, 2)]
    scores = importance(classifier, batches).ffn
    expected = [torch.zeros_like(s) for s in scores]
    masks: list[torch.Tensor] = []

    def hook(_m, _i, out):
        mask = torch.ones_like(out, requires_grad=True)
        masks.append(mask)
        return out * mask

    for batch in batches:
        masks.clear()

        handles = [b.ffn.act.register_forward_hook(hook) for b in classifier.encoder.blocks]
        out = classifier(batch["input_ids"], batch["attention_mask"]).logits
        torch.nn.functional.cross_entropy(out, batch["labels"]).backward()
        for h in handles:
            h.remove()
        for i, m in enumerate(masks):
            expected[i] += m.grad.abs().sum(dim=(0, 1)).double()
        classifier.zero_grad(set_to_none=True)
    for s, e in zip(scores, expected, strict=True):
        assert s.shape == (classifier.config.intermediate_size,) and s.min() >= 0 and s.max() > 0
        torch.testing.assert_close(s, e, rtol=1e-5, atol=1e-9)


def test_keeping_every_neuron_is_exact_in_any_order(classifier):
    width = classifier.config.intermediate_size
    g = torch.Generator().manual_seed(0)
    shuffled = [torch.randperm(width, generator=g) for _ in classifier.encoder.blocks]
    same = prune_model(classifier, ffn=shuffled)
    batch = random_batch(classifier, seed=7)
    # Permuting a hidden layer's neurons (up's rows with down's columns) changes only the sum's order.
    torch.testing.assert_close(logits(same, batch), logits(classifier, batch), rtol=0, atol=1e-6)


def assert_cut_equals_masking(model, pruned, handles) -> None:
    """`pruned` computes what `model` does with the masking hooks `handles` (removed here), and not
    what it does without them."""
    batch = random_batch(model, seed=8)
    try:
        masked = logits(model, batch)
    finally:
        for h in handles:
            h.remove()
    torch.testing.assert_close(logits(pruned, batch), masked, rtol=0, atol=1e-5)
    assert (logits(pruned, batch) - logits(model, batch)).abs().max() > 1e-4  # the cut did change it


def test_a_cut_equals_zeroing_the_dropped_neurons(classifier):
    width = classifier.config.intermediate_size
    g = torch.Generator().manual_seed(1)
    keep = [torch.sort(torch.randperm(width, generator=g)[:24]).values for _ in classifier.encoder.blocks]
    pruned = prune_model(classifier, ffn=keep)
    assert pruned.config.intermediate_size == 24 and pruned.encoder.blocks[0].ffn.up.weight.shape == (24, 32)

    def zero_dropped(i):
        mask = torch.zeros(width)
        mask[keep[i]] = 1.0
        return lambda _m, _i, out: out * mask

    assert_cut_equals_masking(classifier, pruned, [b.ffn.act.register_forward_hook(zero_dropped(i)) for i, b in enumerate(classifier.encoder.blocks)])


def gate_heads(model, gates: list[torch.Tensor]):
    """Hooks multiplying each head's context by `gates[i][head]` before block i's output projection."""

    def hook(i):
        def pre(_m, inputs):
            ctx = inputs[0]
            return (ctx.unflatten(-1, (len(gates[i]), -1)) * gates[i][:, None]).flatten(-2)

        return pre

    return [b.attn.o.register_forward_pre_hook(hook(i)) for i, b in enumerate(model.encoder.blocks)]


def test_head_scores_are_the_per_example_gate_gradients(classifier):
    """Michel et al.'s |dL/dg| for a per-example gate g = 1 on each head's output, computed with the
    gates as real leaves: the same figure as the scores from the context and its gradient."""
    batches = [random_batch(classifier, seed) for seed in (1, 2)]
    scores = importance(classifier, batches).heads
    n = classifier.config.num_heads
    expected = [torch.zeros(n, dtype=torch.float64) for _ in scores]
    for batch in batches:
        for row in range(len(batch["labels"])):  # one example at a time: |.| is taken per example
            gates = [torch.ones(n, requires_grad=True) for _ in classifier.encoder.blocks]
            handles = gate_heads(classifier, gates)
            try:
                out = classifier(batch["input_ids"], batch["attention_mask"]).logits
            finally:
                for h in handles:
                    h.remove()
            # The batch loss is the mean over examples: example `row` carries 1/len of it.
            loss = torch.nn.functional.cross_entropy(out, batch["labels"], reduction="none")[row] / len(batch["labels"])
            loss.backward()
            for i, g in enumerate(gates):
                expected[i] += g.grad.abs().double()
            classifier.zero_grad(set_to_none=True)
    for s, e in zip(scores, expected, strict=True):
        assert s.shape == (n,) and s.min() >= 0 and s.max() > 0
        torch.testing.assert_close(s, e, rtol=1e-4, atol=1e-9)


def test_keeping_every_head_is_exact_in_any_order(classifier):
    n = classifier.config.num_heads
    g = torch.Generator().manual_seed(5)
    same = prune_model(classifier, heads=[torch.randperm(n, generator=g) for _ in classifier.encoder.blocks])
    assert same.config == classifier.config  # all heads left: a plain BERT again
    batch = random_batch(classifier, seed=7)
    torch.testing.assert_close(logits(same, batch), logits(classifier, batch), rtol=0, atol=1e-6)


def test_a_head_cut_equals_zeroing_the_dropped_heads(classifier):
    with torch.no_grad():  # heads of a 0.02-scale init barely move the logits; make them count
        for b in classifier.encoder.blocks:
            b.attn.v.weight.mul_(10)
            b.attn.o.weight.mul_(10)
    n, d = classifier.config.num_heads, classifier.config.head_dim
    keep = [torch.tensor([0, 3]), torch.tensor([1, 2])]
    pruned = prune_model(classifier, heads=keep)
    assert (pruned.config.num_heads, pruned.config.attention_head_size, pruned.config.hidden_size) == (2, d, 32)
    assert pruned.encoder.blocks[0].attn.q.weight.shape == (2 * d, 32) and pruned.encoder.blocks[0].attn.o.weight.shape == (32, 2 * d)
    gates = [torch.zeros(n).index_fill(0, k, 1.0) for k in keep]
    assert_cut_equals_masking(classifier, pruned, gate_heads(classifier, gates))
    both = prune_model(classifier, ffn=[torch.arange(0, 64, 2)] * 2, heads=keep)
    assert (both.config.intermediate_size, both.config.num_heads) == (32, 2)


def test_pruned_heads_save_natively_export_and_quantize_with_parity(tmp_path, tiny_bert_dir, data_file):  # noqa: F811
    """Narrower query/key/value than hidden: edgept's own layout, an exact reload, fp32 export
    parity, and ORT's attention fusion (told the narrower width) still fusing and matching."""
    import onnx

    from edgept.export import export
    from edgept.quantize import Int8Dynamic, quantize
    from edgept.runtime import load

    out = tmp_path / "heads"
    report = prune_checkpoint(tiny_bert_dir, out, PruneConfig(ffn_keep=1.0, heads_keep=0.5, **SCORE), data=DataConfig(source=str(data_file)))
    assert (report.heads_before, report.heads_after, report.intermediate_after) == (4, 2, 64) and 0 < report.drop < 1
    assert json.loads((out / "config.json").read_text())["model_type"] == "edgept"
    pruned = load_model(out)
    assert (pruned.config.num_heads, pruned.config.attention_width) == (2, 16)
    assert sum(p.numel() for p in pruned.parameters()) == report.params_after

    bundle = export(out, tmp_path / "heads.edgept")
    batch = random_batch(pruned, seed=10, n=3, seq=12)
    feeds = {"input_ids": batch["input_ids"].numpy(), "attention_mask": batch["attention_mask"].numpy(),
             "token_type_ids": np.zeros_like(batch["input_ids"].numpy())}
    ref = logits(pruned, batch).numpy()
    np.testing.assert_allclose(load(bundle).run(feeds)["logits"], ref, atol=1e-4, rtol=0)  # fp32 export tolerance
    q = quantize(bundle, tmp_path / "q.edgept", Int8Dynamic())
    assert "QAttention" in {n.op_type for n in onnx.load(str(q.model_path)).graph.node}  # fused at the narrower width
    np.testing.assert_allclose(load(q).run(feeds)["logits"], ref, atol=0.05, rtol=0)  # int8 tolerance on logits
    assert tmp_path.joinpath("heads", "prune_report.json").is_file()


def test_head_counts_round_and_keep_at_least_one():
    assert [kept_heads(12, k) for k in (1.0, 0.5, 0.25, 0.3, 0.01)] == [12, 6, 3, 4, 1]
    for bad in (0, 1.5):
        with pytest.raises(ConfigError, match="--heads-keep"):
            PruneConfig(heads_keep=bad)


def test_ffn_keep_one_gives_the_exact_model_and_the_report_says_so(tmp_path, tiny_bert_dir, data_file):  # noqa: F811
    data = DataConfig(source=str(data_file))
    model, report = load_pruned(tiny_bert_dir, PruneConfig(ffn_keep=1.0, **SCORE), data=data)
    original = load_model(tiny_bert_dir)
    batch = random_batch(original, seed=9)
    torch.testing.assert_close(logits(model, batch), logits(original, batch), rtol=0, atol=1e-6)
    assert report.intermediate_after == report.intermediate_before == 64 and report.drop == 0
    assert report.heads_after == report.heads_before == 4
    assert report.dev_accuracy_pruned == report.dev_accuracy_before and report.examples == 24


def test_pruned_checkpoint_exports_with_parity_and_loads_in_transformers(tmp_path, tiny_bert_dir, data_file):  # noqa: F811
    from edgept.export import export
    from edgept.runtime import load

    out = tmp_path / "pruned"
    report = prune_checkpoint(tiny_bert_dir, out, PruneConfig(ffn_keep=0.5, **SCORE), data=DataConfig(source=str(data_file)))
    assert (report.intermediate_before, report.intermediate_after) == (64, 32) and 0 < report.drop < 1
    saved = json.loads((out / "prune_report.json").read_text())
    assert saved["config"]["ffn_keep"] == 0.5 and saved["intermediate_after"] == 32
    assert (out / "vocab.txt").read_text() == (tiny_bert_dir / "vocab.txt").read_text()
    assert json.loads((out / "config.json").read_text())["intermediate_size"] == 32
    pruned = load_model(out)
    assert sum(p.numel() for p in pruned.parameters()) == report.params_after
    # A second run is the same cut: the scoring draw and the ranking are deterministic.
    again, _ = load_pruned(tiny_bert_dir, PruneConfig(ffn_keep=0.5, **SCORE), data=DataConfig(source=str(data_file)))
    for (name, a), b in zip(pruned.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), name

    bundle = export(out, tmp_path / "pruned.edgept")
    batch = random_batch(pruned, seed=10, n=3, seq=12)
    feeds = {"input_ids": batch["input_ids"].numpy(), "attention_mask": batch["attention_mask"].numpy(),
             "token_type_ids": np.zeros_like(batch["input_ids"].numpy())}
    got = load(bundle).run(feeds)["logits"]
    np.testing.assert_allclose(got, logits(pruned, batch).numpy(), atol=1e-4, rtol=0)  # fp32 export tolerance

    transformers = pytest.importorskip("transformers")
    theirs = transformers.AutoModelForSequenceClassification.from_pretrained(out, attn_implementation="eager").eval()
    with torch.no_grad():
        hf = theirs(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    torch.testing.assert_close(hf, logits(pruned, batch), rtol=0, atol=1e-5)


def test_a_shared_albert_block_is_scored_over_its_uses_and_stays_one_weight_set(tmp_path, tiny_bert_config, tiny_bert_dir, data_file):  # noqa: F811
    from safetensors import safe_open

    torch.manual_seed(4)
    shared = save_model(build_model(tiny_bert_config(num_layers=3, num_groups=1)), tmp_path / "albert", source=tiny_bert_dir)
    out = tmp_path / "pruned-albert"
    prune_checkpoint(shared, out, PruneConfig(ffn_keep=0.25, **SCORE), data=DataConfig(source=str(data_file)))
    pruned = load_model(out)
    assert (pruned.config.groups, pruned.config.num_layers, pruned.config.intermediate_size) == (1, 3, 16)
    with safe_open(out / "model.safetensors", "pt") as f:
        ffn = [k for k in f.keys() if "ffn" in k and k.endswith("weight")]  # noqa: SIM118
    assert len(ffn) == 2, ffn  # one up and one down matrix for all three layers
    model = load_model(shared)
    assert [s.shape for s in importance(model, [random_batch(model, seed=11)]).ffn] == [(64,)]  # one score per block
    # Cutting the one block equals zeroing its dropped neurons in every layer that runs it.
    keep = [torch.sort(torch.randperm(64, generator=torch.Generator().manual_seed(2))[:16]).values]
    mask = torch.zeros(64)
    mask[keep[0]] = 1.0
    batch = random_batch(model, seed=12)
    handle = model.encoder.blocks[0].ffn.act.register_forward_hook(lambda _m, _i, out: out * mask)
    try:
        masked = logits(model, batch)
    finally:
        handle.remove()
    torch.testing.assert_close(logits(prune_model(model, ffn=keep), batch), masked, rtol=0, atol=1e-5)


def test_a_vit_prunes_on_an_image_folder(tmp_path, tiny_vit_dir, image_folder):  # noqa: F811
    out = tmp_path / "vit"
    report = prune_checkpoint(tiny_vit_dir, out, PruneConfig(ffn_keep=0.5, examples=12, batch_size=4), data=DataConfig(source=str(image_folder)))
    assert report.intermediate_after == 32 and load_model(out).config.intermediate_size == 32


def test_prune_refuses_what_it_cannot_score_or_cut(tmp_path, tiny_bert_config, tiny_bert_dir, data_file):  # noqa: F811
    data = DataConfig(source=str(data_file))
    encoder = save_model(build_model(tiny_bert_config(task="feature-extraction", labels=())), tmp_path / "enc", source=tiny_bert_dir)
    with pytest.raises(ConfigError, match="fine-tune it first"):
        load_pruned(encoder, PruneConfig(), data=data)
    low_rank = save_model(build_model(tiny_bert_config(ffn_rank=8)), tmp_path / "lr", source=tiny_bert_dir)
    with pytest.raises(ConfigError, match="low-rank FFNs"):
        load_pruned(low_rank, PruneConfig(), data=data)
    (tmp_path / "taken").mkdir()
    with pytest.raises(InputError, match="already exists"):
        prune_checkpoint(tiny_bert_dir, tmp_path / "taken", PruneConfig(), data=data)


def test_prune_and_recover_distills_the_cut_model_and_reports_both(tmp_path, tiny_bert_dir, data_file):  # noqa: F811
    train = TrainConfig(lr=3e-3, max_steps=6, batch_size=8, warmup=0.0, seed=0)
    out = tmp_path / "r"
    m = prune_and_recover(tiny_bert_dir, out, PruneConfig(ffn_keep=0.5, **SCORE), train,
                          data=DataConfig(source=str(data_file)), progress=False)
    assert [s["stage"] for s in m["stages"]] == ["intermediate", "prediction"]
    assert m["prune"]["intermediate_after"] == 32 and m["student"]["params"]["total"] == m["prune"]["params_after"]
    assert json.loads((out / "model" / "prune_report.json").read_text())["intermediate_after"] == 32
    recovered, cut = load_model(out / "model"), load_pruned(tiny_bert_dir, PruneConfig(ffn_keep=0.5, **SCORE),
                                                            data=DataConfig(source=str(data_file)))[0]
    assert recovered.config.intermediate_size == 32
    assert any(not torch.equal(a, b) for a, b in zip(recovered.state_dict().values(), cut.state_dict().values(), strict=True))


def test_recovering_pruned_heads_pairs_them_with_the_heads_they_were(tmp_path, tiny_bert_dir, data_file):  # noqa: F811
    train = TrainConfig(lr=3e-3, max_steps=3, batch_size=8, warmup=0.0, seed=0)
    m = prune_and_recover(tiny_bert_dir, tmp_path / "r", PruneConfig(ffn_keep=1.0, heads_keep=0.5, **SCORE), train,
                          data=DataConfig(source=str(data_file)), progress=False)
    head_map = [list(h) for h in m["prune"]["head_map"]]
    assert len(head_map) == 2 and all(len(h) == 2 and h == sorted(h) for h in head_map)
    assert [list(h) for h in m["distill"]["head_map"]] == head_map
    saved = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert saved["prune"]["head_map"] == saved["distill"]["head_map"] == head_map
    assert load_model(tmp_path / "r" / "model").config.num_heads == 2


def test_cli_prunes_and_says_what_it_cut_and_errors_are_one_line(monkeypatch, capsys, tmp_path, tiny_bert_dir, data_file):  # noqa: F811
    code, out, err = edgept(monkeypatch, capsys, "prune", tiny_bert_dir, "--data", data_file, "--ffn-keep", "0.5",
                            "--examples", "16", "-o", tmp_path / "p")
    assert code == 0, err
    line = " ".join(out.split())  # rich wraps at the terminal's width
    assert "FFN 64 -> 32 neurons, 4 -> 4 heads" in line and "dev accuracy" in line and (tmp_path / "p" / "prune_report.json").is_file()
    code, out, err = edgept(monkeypatch, capsys, "prune", tiny_bert_dir, "--data", data_file, "--examples", "16", "--recover",
                            "--max-steps", "2", "--batch-size", "8", "--augment", "2", "-q", "-o", tmp_path / "r")
    assert code == 0, err
    assert "test accuracy" in " ".join(out.split()) and load_model(tmp_path / "r" / "model").config.intermediate_size == 32
    augment = json.loads((tmp_path / "r" / "metrics.json").read_text())["augment"]  # recovery trained on the copies
    assert augment["copies"] == 2 and augment["augmented"] > augment["examples"]
    code, _, err = edgept(monkeypatch, capsys, "prune", tiny_bert_dir, "--data", data_file, "--ffn-keep", "2", "-o", tmp_path / "q")
    assert_one_line_error(code, err, "--ffn-keep")
    code, _, err = edgept(monkeypatch, capsys, "prune", tmp_path / "nothing", "--data", data_file, "-o", tmp_path / "q")
    assert_one_line_error(code, err, "nothing")
    code, _, err = edgept(monkeypatch, capsys, "prune", tiny_bert_dir, "--data", data_file, "--resume", "-o", tmp_path / "q")
    assert_one_line_error(code, err, "--recover")
    code, _, err = edgept(monkeypatch, capsys, "prune", tiny_bert_dir, "--data", data_file, "--augment", "2", "-o", tmp_path / "q")
    assert_one_line_error(code, err, "--augment adds copies to --recover's training data")
    assert not (tmp_path / "q").exists()
