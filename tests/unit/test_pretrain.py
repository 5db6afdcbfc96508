"""edgept.train.pretrain: masking statistics, loss on masked positions only, whole-word masking,
MAE masking and target, tokenizer training, corpus reading and packing, resume, HF round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgept.data.corpus import Document, pack, read_corpus
from edgept.errors import ConfigError, InputError
from edgept.preprocess import TextPreprocessor
from edgept.preprocess.train_tokenizer import SPECIAL_TOKENS, train_wordpiece
from edgept.train.pretrain.mae import MAEConfig, MAEObjective, mae_loss, mae_target, patchify, random_masking
from edgept.train.pretrain.mlm import IGNORE, MaskingConfig, MLMCollate, Vocab, mask_tokens, mlm_loss

TEXT = [
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife.",
    "However little known the feelings or views of such a man may be on his first entering a neighbourhood,",
    "this truth is so well fixed in the minds of the surrounding families, that he is considered the rightful property.",
    "Emma Woodhouse, handsome, clever, and rich, with a comfortable home and happy disposition, seemed to unite blessings.",
] * 5


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    return train_wordpiece(TEXT, tmp_path_factory.mktemp("tok"), vocab_size=120, min_frequency=1)


def test_tokenizer_training_gives_special_tokens_and_round_trips(tok_dir):
    pre = TextPreprocessor.from_checkpoint(tok_dir)
    vocab = pre.tokenizer.get_vocab()
    assert [vocab[t] for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    assert len(vocab) <= 120
    enc = pre.tokenizer.encode("a single man, a good fortune")
    assert enc.tokens[0] == "[CLS]" and enc.tokens[-1] == "[SEP]"
    assert any(t.startswith("##") for t in pre.tokenizer.encode("universally acknowledged").tokens)  # a small vocab splits words
    assert pre.tokenizer.decode(enc.ids) == "a single man, a good fortune"
    assert (tok_dir / "vocab.txt").read_text().split("\n")[:5] == list(SPECIAL_TOKENS)


def _ids(n_rows=400, width=128, vocab=1000, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(10, vocab, (n_rows, width), generator=g)


def test_masking_statistics_15_percent_80_10_10():
    ids = _ids()  # 51,200 tokens; binomial std of the 15% rate is 0.16 points, so 0.5 points is > 3 sigma
    maskable = torch.ones_like(ids, dtype=torch.bool)
    maskable[:, :2] = False
    random_ids = torch.arange(10, 1000)
    inputs, labels = mask_tokens(ids, maskable, MaskingConfig(), mask_id=4, random_ids=random_ids, generator=torch.Generator().manual_seed(1))
    chosen = labels != IGNORE
    assert abs(chosen.sum().item() / maskable.sum().item() - 0.15) < 0.005
    assert torch.equal(labels[chosen], ids[chosen])
    n = chosen.sum().item()  # ~7,700 chosen: 1 point is > 2.5 sigma for the 10% shares
    masked = (inputs == 4) & chosen
    unchanged = (inputs == ids) & chosen
    replaced = chosen & ~masked & ~unchanged
    assert abs(masked.sum().item() / n - 0.8) < 0.015
    assert abs(replaced.sum().item() / n - 0.1) < 0.01
    assert abs(unchanged.sum().item() / n - 0.1) < 0.015  # includes random picks that drew the same id (1/990)
    assert torch.equal(inputs[~chosen], ids[~chosen])  # nothing else changes
    assert bool(((inputs[replaced] >= 10) & (inputs[replaced] < 1000)).all())


def test_padding_and_special_tokens_are_never_masked(tok_dir):
    pre = TextPreprocessor.from_checkpoint(tok_dir)
    vocab = Vocab(pre.tokenizer)
    packed = pack([Document("t", tuple(TEXT))], pre, max_length=24)
    examples = [packed[i] for i in range(len(packed))]
    collate = MLMCollate(vocab, MaskingConfig(probability=0.9), generator=torch.Generator().manual_seed(0))
    for _ in range(5):
        batch = collate(examples)
        picked = batch["labels"] != IGNORE
        original = torch.where(picked, batch["labels"], batch["input_ids"])
        special = torch.from_numpy(vocab.special)[original]
        assert (batch["attention_mask"] == 0).any()  # the last block is short: there is padding
        assert not bool((picked & ((batch["attention_mask"] == 0) | special)).any())
        assert bool(picked.any())


def test_loss_is_on_masked_positions_only():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 10, 50, generator=g)
    labels = torch.full((3, 10), IGNORE)
    labels[0, 2], labels[1, 5], labels[2, 9] = 7, 3, 49
    base = mlm_loss(logits, labels)
    other = logits.clone()
    other[labels == IGNORE] = torch.randn(other[labels == IGNORE].shape, generator=g) * 10
    assert mlm_loss(other, labels).item() == pytest.approx(base.item(), abs=0)
    picked = labels != IGNORE
    expected = torch.nn.functional.cross_entropy(logits[picked], labels[picked])
    assert base.item() == pytest.approx(expected.item(), rel=1e-6)
    changed = logits.clone()
    changed[0, 2, 7] += 1.0
    assert mlm_loss(changed, labels).item() != base.item()


def test_objective_loss_equals_full_logits_oracle(tok_dir):
    from edgept.models import BertConfig, build_model
    from edgept.train.pretrain import MLMObjective

    pre = TextPreprocessor.from_checkpoint(tok_dir)
    vocab = Vocab(pre.tokenizer)
    torch.manual_seed(0)
    model = build_model(BertConfig(hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64, vocab_size=vocab.size, max_position=32, task="masked-lm", pooler=False)).eval()
    batch = MLMCollate(vocab, MaskingConfig(), generator=torch.Generator().manual_seed(0))([pack([Document("t", tuple(TEXT))], pre, 32)[i] for i in range(4)])
    loss, _ = MLMObjective(model).eval()(batch)
    full = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).logits
    assert loss.item() == pytest.approx(mlm_loss(full, batch["labels"]).item(), rel=1e-5)


def test_whole_word_masking_masks_all_pieces_together():
    # Words of 1-4 pieces: word_start marks each first piece; the pieces of a word are chosen together.
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 5, (2000,), generator=g)
    starts = torch.zeros(int(lengths.sum()), dtype=torch.bool)
    starts[torch.cumsum(lengths, 0) - lengths] = True
    width = 100
    rows = starts.numel() // width
    word_start = starts[: rows * width].view(rows, width)
    word_start[:, 0] = True  # a row begins a word
    ids = torch.randint(10, 500, word_start.shape, generator=g)
    maskable = torch.ones_like(word_start)
    config = MaskingConfig(whole_word=True)
    _, labels = mask_tokens(ids, maskable, config, mask_id=4, random_ids=torch.arange(10, 500), word_start=word_start, generator=g)
    chosen = labels != IGNORE
    word_id = torch.cumsum(word_start.long(), dim=1)
    mixed = 0
    for r in range(rows):
        for w in torch.unique(word_id[r]):
            c = chosen[r][word_id[r] == w]
            mixed += int(c.any() and not c.all())
    assert mixed == 0
    n_words = int(word_start.sum())
    chosen_words = int((chosen & word_start).sum())
    assert abs(chosen_words / n_words - 0.15) < 0.03  # ~6k words: 3 points is > 6 sigma
    # Token-level masking on the same words does split them.
    _, token_labels = mask_tokens(ids, maskable, MaskingConfig(), mask_id=4, random_ids=torch.arange(10, 500), generator=g)
    c = token_labels != IGNORE
    assert any(bool(c[r][word_id[r] == w].any()) and not bool(c[r][word_id[r] == w].all()) for r in range(rows) for w in torch.unique(word_id[r]))


def test_mae_mask_ratio_is_exact():
    keep, mask = random_masking(64, 49, MAEConfig().masked_count(49), torch.Generator().manual_seed(0))
    assert MAEConfig().masked_count(49) == 37  # round(0.75 * 49)
    assert mask.sum(dim=1).tolist() == [37] * 64
    assert keep.shape == (64, 12)
    assert not bool(mask.gather(1, keep).any())  # kept patches are exactly the unmasked ones
    assert len({tuple(k.tolist()) for k in keep}) > 60  # a different subset per image


def test_mae_target_is_the_masked_patches_pixels():
    g = torch.Generator().manual_seed(0)
    pixels = torch.randn(2, 3, 8, 12, generator=g)
    p = 4
    patches = patchify(pixels, p)
    assert patches.shape == (2, 6, 48)
    for b in range(2):  # oracle: patch (i, j) row-major, pixels row by row, channels last
        for i in range(2):
            for j in range(3):
                expected = pixels[b, :, i * p : (i + 1) * p, j * p : (j + 1) * p].permute(1, 2, 0).reshape(-1)
                assert torch.equal(patches[b, i * 3 + j], expected)
    normed = mae_target(pixels, p, norm_pix=True)
    ref = (patches - patches.mean(-1, keepdim=True)) / (patches.var(-1, keepdim=True) + 1e-6) ** 0.5
    assert torch.allclose(normed, ref, atol=1e-6)
    assert torch.allclose(normed.mean(-1), torch.zeros(2, 6), atol=1e-5)
    mask = torch.tensor([[True, False, True, False, False, True], [False] * 5 + [True]])
    prediction = torch.randn(2, 6, 48, generator=g)
    loss = mae_loss(prediction, patches, mask)
    assert loss.item() == pytest.approx(((prediction[mask] - patches[mask]) ** 2).mean().item(), rel=1e-6)
    prediction[~mask] = 100.0  # visible patches do not count
    assert mae_loss(prediction, patches, mask).item() == pytest.approx(loss.item(), rel=1e-6)


def test_mae_objective_trains_and_keeps_decoder_apart(tiny_vit_config):
    from edgept.models import build_model

    torch.manual_seed(0)
    vit = build_model(tiny_vit_config(task="feature-extraction", labels=(), patch_size=8))
    objective = MAEObjective(vit, MAEConfig(decoder_hidden=32))
    pixels = torch.randn(4, 3, 32, 32)
    loss, _ = objective({"pixel_values": pixels})
    loss.backward()
    assert vit.embeddings.patch.weight.grad is not None and objective.decoder.pred.weight.grad is not None
    assert not any(k.startswith("decoder") for k in vit.state_dict())


def test_pretrain_dropout_is_validated():
    from edgept.train.pretrain import BertPretrainConfig

    with pytest.raises(ConfigError, match=r"dropout must be in \[0, 1\)"):
        BertPretrainConfig(dropout=1.0)


def test_read_corpus_errors_are_one_line(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    with pytest.raises(InputError, match="empty.txt is empty") as e:
        read_corpus([empty])
    assert "\n" not in str(e.value)
    with pytest.raises(InputError, match=r"latin.txt:1: not UTF-8 \(byte 0xe9") as e:
        read_corpus([latin])
    assert "\n" not in str(e.value)
    with pytest.raises(InputError, match="missing.txt: no such file; pass .txt files"):
        read_corpus([tmp_path / "missing.txt"])


def test_packing_fills_blocks_and_records_line_starts(tok_dir, tmp_path):
    (tmp_path / "a.txt").write_text("\n".join(TEXT[:4]) + "\n\n")
    docs = read_corpus([tmp_path])
    pre = TextPreprocessor.from_checkpoint(tok_dir)
    packed = pack(docs, pre, max_length=18)
    stream = np.concatenate([pre.tokenizer.encode(t, add_special_tokens=False).ids for t in TEXT[:4]])
    assert np.array_equal(np.concatenate(packed.blocks), stream)  # nothing lost, nothing added, order kept
    assert all(len(b) == 16 for b in packed.blocks[:-1]) and 0 < len(packed.blocks[-1]) <= 16
    line_starts = np.cumsum([0] + [len(pre.tokenizer.encode(t, add_special_tokens=False).ids) for t in TEXT[:3]])
    found = np.concatenate([s + 16 * i for i, s in enumerate(packed.starts)])
    assert np.array_equal(found, line_starts)


def test_sop_batches_swap_segments_and_set_token_types(tok_dir):
    pre = TextPreprocessor.from_checkpoint(tok_dir)
    vocab = Vocab(pre.tokenizer)
    packed = pack([Document("t", tuple(TEXT))], pre, max_length=40, reserve=3)
    batch = MLMCollate(vocab, MaskingConfig(), sop=True, generator=torch.Generator().manual_seed(0))([packed[i] for i in range(8)])
    assert set(batch["sop_labels"].tolist()) == {0, 1}
    for row, tt, mask in zip(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"], strict=True):
        n = int(mask.sum())
        seps = (row[:n] == vocab.sep).nonzero().flatten().tolist()
        assert row[0] == vocab.cls and seps[-1] == n - 1 and len(seps) == 2
        assert tt[: seps[0] + 1].eq(0).all() and tt[seps[0] + 1 : n].eq(1).all()


def _tiny_corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(TEXT * 3) + "\n")
    return path


def test_resume_equals_uninterrupted_and_transformers_loads_bert(tmp_path):
    import shutil

    from edgept.models.hf import load_model
    from edgept.train import TrainConfig
    from edgept.train.pretrain import BertPretrainConfig, MaskingConfig, Shape, pretrain_bert

    corpus = _tiny_corpus(tmp_path)
    config = BertPretrainConfig(
        shape=Shape(preset="tiny", hidden_size=32, num_heads=2, intermediate_size=64), max_length=24, vocab_size=150,
        min_frequency=1, masking=MaskingConfig(whole_word=True), sop=True, held_out=0.2, dropout=0.05,
    )  # fmt: skip
    train = TrainConfig(lr=3e-3, max_steps=6, batch_size=4, eval_every=3, save_every=3)
    full = pretrain_bert([corpus], tmp_path / "full", config, train, progress=False)
    # The same run cut after its step-3 checkpoint (dropout, masking and SOP swaps all draw from the RNG).
    shutil.copytree(tmp_path / "full", tmp_path / "cut")
    shutil.rmtree(tmp_path / "cut" / "checkpoints" / "step-6")
    shutil.rmtree(tmp_path / "cut" / "model")
    cut = pretrain_bert([corpus], tmp_path / "cut", config, train, resume=True, progress=False)
    a, b = load_model(tmp_path / "full" / "model").state_dict(), load_model(tmp_path / "cut" / "model").state_dict()
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-6
    assert cut["held_out_perplexity"] == full["held_out_perplexity"]
    curve = [c["perplexity"] for c in full["held_out_perplexity"]]
    assert curve[0] > curve[-1] and [c["step"] for c in full["held_out_perplexity"]] == [0, 3, 6]

    transformers = pytest.importorskip("transformers")
    hf = transformers.AutoModelForMaskedLM.from_pretrained(tmp_path / "full" / "model").eval()
    tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "full" / "model")
    ours = load_model(tmp_path / "full" / "model")
    enc = tok(["a single man in want of a wife"], return_tensors="pt")
    with torch.no_grad():
        ref = hf(**enc).logits
        got = ours(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]).logits
    assert type(hf).__name__ == "BertForMaskedLM"
    assert ours.config.hidden_dropout == ours.config.attention_dropout == 0.05 == hf.config.hidden_dropout_prob
    assert enc["input_ids"][0].tolist() == TextPreprocessor.from_checkpoint(tmp_path / "full" / "model")("a single man in want of a wife")["input_ids"][0].tolist()
    assert (ref - got).abs().max().item() < 1e-4


def test_mae_vit_checkpoint_loads_in_transformers(tmp_path, tiny_vit_config, monkeypatch):
    from edgept.data import ClassificationData
    from edgept.train import TrainConfig
    from edgept.train.pretrain import Shape, ViTPretrainConfig, pretrain_vit
    from edgept.train.pretrain import run as run_module

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(40, 16, 16), dtype=np.uint8)
    data = ClassificationData("image", images, np.arange(40) % 2, ("a", "b"), "toy", np.arange(1, 41))

    class Splits:
        kind, labels, train, dev, test = "image", ("a", "b"), data, data.subset(range(8)), data.subset(range(8))

        def describe(self):
            return {"source": "toy"}

    monkeypatch.setattr("edgept.data.load_splits", lambda config: Splits())
    config = ViTPretrainConfig(objective="mae", shape=Shape(preset="tiny", hidden_size=32, num_heads=2, intermediate_size=64), image_size=16, patch_size=4, num_channels=1)
    m = pretrain_vit("toy", tmp_path / "mae", config, TrainConfig(lr=1e-3, max_steps=3, batch_size=8), progress=False)
    assert (tmp_path / "mae" / run_module.DECODER_FILE).is_file() and m["held_out_mae_loss"] > 0
    transformers = pytest.importorskip("transformers")
    from edgept.models.hf import load_model

    hf = transformers.ViTModel.from_pretrained(tmp_path / "mae" / "model", add_pooling_layer=False).eval()
    ours = load_model(tmp_path / "mae" / "model")
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        diff = (hf(pixel_values=x).last_hidden_state - ours(x).last_hidden_state).abs().max().item()
    assert diff < 1e-4


@pytest.mark.slow
def test_a_shipped_data_set_as_corpus_is_its_train_texts_only():
    from edgept.data import DataConfig, load_splits

    (doc,) = read_corpus(["rt-polarity"])
    s = load_splits(DataConfig(source="rt-polarity"))
    assert doc.name == "rt-polarity (train split)" and len(doc.lines) == len(s.train)
    held_out = {t.strip() for t in (*s.dev.items, *s.test.items)}
    assert set(doc.lines) == {t.strip() for t in s.train.items} and len(held_out - set(doc.lines)) > 2000
