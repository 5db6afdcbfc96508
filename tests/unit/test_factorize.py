"""ALBERT-style factorization: exact at full rank, SVD-optimal, real sharing, HF ALBERT round trip."""

from __future__ import annotations

import json

import pytest
import torch

from edgept.compress.factorize import FactorizeConfig, factorize
from edgept.compress.factorize.embedding import embedding_spectrum, stacked_tables
from edgept.compress.factorize.svd import low_rank_factors, rank_for_energy
from edgept.errors import ConfigError, InputError
from edgept.models import build_model

TOL = 1e-5
VOCAB = 60  # above hidden_size 32, like a real vocabulary


@pytest.fixture
def bert(tiny_bert_config):
    torch.manual_seed(0)
    cfg = tiny_bert_config(vocab_size=VOCAB, num_layers=4)
    model = build_model(cfg).eval()
    with torch.no_grad():  # trained-looking LayerNorms, so folding γ, β into the projection is tested
        for p in model.parameters():
            if p.ndim == 1:
                p.add_(0.3 * torch.randn_like(p))
    return model


def _inputs(seed: int, vocab: int = VOCAB) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (3, 13), generator=g)
    mask = torch.ones_like(ids)
    mask[2, 7:] = 0
    return ids, mask, torch.randint(0, 2, ids.shape, generator=g)


def _max_diff(a, b, seed: int = 1) -> float:
    x = _inputs(seed)
    with torch.no_grad():
        oa, ob = a(*x), b(*x)
    return max((oa.last_hidden_state - ob.last_hidden_state).abs().max().item(), (oa.logits - ob.logits).abs().max().item())


@pytest.mark.parametrize(
    "config",
    [
        FactorizeConfig(embedding_size=32),
        FactorizeConfig(ffn_rank=32),
        FactorizeConfig(embedding_size=32, ffn_rank=32),
        FactorizeConfig(embedding_energy=1.0),
    ],
    ids=["embedding-E=H", "ffn-full-rank", "both", "energy-1"],
)
def test_full_rank_is_the_identity(bert, config):
    new, report = factorize(bert, config)
    assert _max_diff(bert, new) <= TOL
    assert new.config.factorized == (config.ffn_rank is None or config.embedding_size is not None)
    assert report.embedding_energy in (None, pytest.approx(1.0))


def test_lower_rank_changes_the_model_and_shrinks_it(bert):
    new, report = factorize(bert, FactorizeConfig(embedding_size=8, ffn_rank=8))
    assert _max_diff(bert, new) > 1e-2  # the identity test above can tell
    assert report.params_after < report.params_before
    assert 0 < report.embedding_energy < 1 and 0 < report.ffn_energy < 1


def test_embedding_reconstruction_error_is_the_discarded_energy(bert):
    """Eckart–Young: the E-dim tables reproduce the truncated SVD of the stacked tables, whose
    squared error is the sum of the discarded squared singular values (from svdvals, not ours)."""
    e = 10
    state = bert.state_dict()
    m = stacked_tables(state)
    basis = embedding_spectrum(state, 32).basis[:, : e - 1]
    err = (m - m @ basis @ basis.T).square().sum()
    sigma2 = torch.linalg.svdvals(m).square()
    assert err.item() == pytest.approx(sigma2[e - 1 :].sum().item(), rel=1e-4)
    # ...and the factorized model's embedding output is LayerNorm of exactly that projection
    new, report = factorize(bert, FactorizeConfig(embedding_size=e))
    assert report.embedding_energy == pytest.approx((sigma2[: e - 1].sum() / sigma2.sum()).item(), rel=1e-6)
    ids, _, types = _inputs(3)
    emb = bert.embeddings
    x = emb.word(ids) + emb.position(torch.arange(ids.shape[1]))[None] + emb.token_type(types)
    x = (x - x.mean(-1, keepdim=True)).double() @ basis @ basis.T
    want = torch.nn.functional.layer_norm(x.float(), (32,), emb.norm.weight, emb.norm.bias, emb.norm.eps)
    with torch.no_grad():
        assert (new.embeddings(ids, types) - want).abs().max().item() <= TOL


def test_ffn_low_rank_error_is_the_discarded_energy():
    torch.manual_seed(0)
    w = torch.randn(48, 20)
    a, b, sigma2 = low_rank_factors(w, 7)
    err = (w.double() - b @ a).square().sum()
    assert err.item() == pytest.approx(torch.linalg.svdvals(w.double())[7:].square().sum().item(), rel=1e-4)
    assert rank_for_energy(sigma2, 1.0) == 20 and rank_for_energy(sigma2, sigma2[0].item() / sigma2.sum().item()) == 1


def test_energy_picks_the_smallest_embedding_size(bert):
    spectrum = embedding_spectrum(bert.state_dict(), 32)
    _, report = factorize(bert, FactorizeConfig(embedding_energy=0.8))
    e = report.embedding_size
    assert spectrum.energy(e) >= 0.8 > spectrum.energy(e - 1)


@pytest.mark.parametrize(("share", "groups"), [("all", 1), ("groups:2", 2)])
def test_sharing_shares_storage_and_accumulates_gradients(bert, share, groups):
    new, report = factorize(bert, FactorizeConfig(share=share))
    assert report.groups == groups == len(new.encoder.blocks)
    ptrs = {new.encoder.blocks[new.config.group_of(i)].ffn.up.weight.data_ptr() for i in range(4)}
    assert len(ptrs) == groups
    # The shared weight's gradient is the sum of what each layer that runs it contributes:
    # make layer 0's and layer 1's FFN output independent copies, then compare.
    new.train(False)
    ids, mask, types = _inputs(5)
    new.zero_grad()
    new(ids, mask, types).logits.sum().backward()
    total = new.encoder.blocks[0].ffn.up.weight.grad.clone()
    per_layer = torch.zeros_like(total)
    for layer in [i for i in range(4) if new.config.group_of(i) == 0]:
        copy, _ = factorize(bert, FactorizeConfig(share=share))
        per_layer += _grad_of_one_use(copy, layer, (ids, mask, types))
    assert torch.allclose(total, per_layer, atol=1e-6, rtol=1e-5)
    assert per_layer.abs().max() > 0


def _grad_of_one_use(model, layer: int, inputs) -> torch.Tensor:
    """The gradient reaching group 0's FFN weight through layer `layer` alone: that one call
    uses an independent copy of the weight, whose gradient is returned."""
    ffn = model.encoder.blocks[0].ffn
    spare = torch.nn.Parameter(ffn.up.weight.detach().clone())
    original, calls = ffn.forward, iter(range(model.config.num_layers))

    def forward(x):
        if next(calls) != layer:
            return original(x)
        return ffn.down(ffn.act(torch.nn.functional.linear(x, spare, ffn.up.bias)))

    ffn.forward = forward
    model(*inputs).logits.sum().backward()
    return spare.grad


def test_share_init_choices(bert):
    blocks = bert.encoder.blocks
    for init, want in (
        ("first", blocks[0].attn.q.weight),
        ("middle", blocks[1].attn.q.weight),
        ("mean", (blocks[0].attn.q.weight + blocks[1].attn.q.weight) / 2),
    ):
        new, _ = factorize(bert, FactorizeConfig(share="groups:2", share_init=init))
        assert torch.allclose(new.encoder.blocks[0].attn.q.weight, want, atol=1e-7)


def test_albert_round_trip_through_transformers(tmp_path, bert):
    transformers = pytest.importorskip("transformers")
    from edgept.models.hf import load_model, save_model

    new, _ = factorize(bert, FactorizeConfig(embedding_size=12, share="groups:2"))
    path = save_model(new, tmp_path / "albert")
    hf = transformers.AlbertForSequenceClassification.from_pretrained(path).eval()
    ids, mask, types = _inputs(7)
    with torch.no_grad():
        want = new(ids, mask, types).logits
        got = hf(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
    assert (got - want).abs().max().item() <= TOL
    assert _max_diff(new, load_model(path)) <= TOL


def test_export_keeps_sharing_and_low_rank(tmp_path, tiny_bert_config):
    from edgept.export import export

    torch.manual_seed(0)
    cfg = tiny_bert_config(num_layers=12, hidden_size=256, intermediate_size=1024, task="feature-extraction", labels=())
    new, report = factorize(build_model(cfg).eval(), FactorizeConfig(embedding_size=64, share="all", ffn_rank=64))
    param_bytes = 4 * report.params_after
    bundle = export(new, tmp_path / "f.edgept")  # raises ParityError beyond 1e-4
    assert bundle.artifacts["model.onnx"]["bytes"] <= 1.1 * param_bytes


def test_low_rank_ffn_saves_in_edgept_layout_loads_exactly_and_transformers_refuses_it(tmp_path, bert):
    from edgept.models.hf import describe, load_model, save_model

    new, report = factorize(bert, FactorizeConfig(embedding_size=8, share="all", ffn_rank=4))
    path = save_model(new, tmp_path / "x")
    config = json.loads((path / "config.json").read_text())
    assert config["model_type"] == "edgept" and config["edgept"]["ffn_rank"] == 4
    back = load_model(path)
    ids = torch.randint(1, 20, (3, 9))
    torch.testing.assert_close(back(input_ids=ids).logits, new.eval()(input_ids=ids).logits, rtol=0, atol=0)
    shared = [p for n, p in back.named_parameters() if "blocks" in n or "groups" in n]
    assert sum(p.numel() for p in back.parameters()) == report.params_after and shared
    info = describe(path)
    assert info["model_type"] == "edgept" and info["params"]["total"] == report.params_after
    transformers = pytest.importorskip("transformers")
    with pytest.raises(ValueError, match="edgept"):
        transformers.AutoConfig.from_pretrained(str(path))
    with pytest.raises(ConfigError, match="fine-tune before factorizing"):
        load_model(path, labels=("a", "b", "c"))
    config["edgept"]["ffn_rank"] = 3
    (path / "config.json").write_text(json.dumps(config))
    for read in (load_model, describe):
        with pytest.raises(InputError, match="re-save the model") as e:
            read(path)
        assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"embedding_size": 0}, "embedding_size must be at least 2"),
        ({"embedding_size": -3}, "embedding_size must be at least 2"),
        ({"embedding_energy": 0.0}, r"embedding_energy must be a fraction in \(0, 1\]"),
        ({"embedding_energy": 1.5}, r"embedding_energy must be a fraction in \(0, 1\]"),
        ({"ffn_energy": -0.1}, r"ffn_energy must be a fraction in \(0, 1\]"),
        ({"ffn_rank": 0}, "ffn_rank must be a positive integer"),
        ({"embedding_size": 8, "embedding_energy": 0.5}, "not both"),
        ({"share": "groups:0"}, "groups:N"),
        ({"share": "some"}, "share must be 'none', 'all' or 'groups:N'"),
        ({"share_init": "last"}, "share_init must be one of mean, first, middle"),
    ],
)
def test_bad_config_is_one_line(kwargs, match):
    with pytest.raises(ConfigError, match=match) as e:
        FactorizeConfig(**kwargs)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"share": "groups:3"}, r"3 groups do not divide the model's 4 layers; use one of groups:\[1, 2, 4\]"),
        ({"embedding_size": 33}, "larger than hidden_size 32"),
        ({"ffn_rank": 33}, "exceeds min"),
    ],
)
def test_bad_config_for_the_model(bert, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        factorize(bert, FactorizeConfig(**kwargs))


def test_refactorizing_is_refused(bert):
    new, _ = factorize(bert, FactorizeConfig(embedding_size=8, share="all"))
    with pytest.raises(ConfigError, match="already factorized"):
        factorize(new, FactorizeConfig(embedding_size=4))
    with pytest.raises(ConfigError, match="already shares layers"):
        factorize(new, FactorizeConfig(share="all"))


def test_config_round_trips():
    c = FactorizeConfig(embedding_size=128, share="groups:3", share_init="mean")
    assert FactorizeConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ConfigError, match="unknown factorize config keys"):
        FactorizeConfig.from_dict({"rank": 3})
