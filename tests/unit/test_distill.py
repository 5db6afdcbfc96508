"""Distillation pieces on tiny models: layer maps, student init, the objective, augmentation."""

from __future__ import annotations

import json

import pytest
import torch

from edgept.compress.distill.augment import STOPWORDS, AugmentConfig, WordAugmenter
from edgept.compress.distill.layer_map import check_layer_map, parse_layer_map, uniform_layer_map
from edgept.compress.distill.objective import DistillObjective
from edgept.compress.distill.student import StudentShape, build_student
from edgept.errors import ConfigError
from edgept.models import build_model

# ---- layer map ------------------------------------------------------------------------------


def test_uniform_layer_map_is_tinybert_g():
    assert uniform_layer_map(4, 12) == (3, 6, 9, 12)
    assert uniform_layer_map(4, 6) == (1, 3, 4, 6)  # m * 6 // 4
    assert uniform_layer_map(3, 6) == (2, 4, 6)
    assert uniform_layer_map(2, 2) == (1, 2)


@pytest.mark.parametrize(
    ("text", "student", "match"),
    [
        ("2,4", 3, "has 2 entries but the student has 3 layers; .* e.g. 2,4,6"),
        ("2,4,6,6", 3, "has 4 entries but the student has 3 layers"),
        ("0,2,4", 3, "entry 1 is teacher layer 0, outside the teacher's layers 1..6"),
        ("2,4,7", 3, "entry 3 is teacher layer 7, outside the teacher's layers 1..6"),
        ("2,2,4", 3, r"strictly increasing, but entry 2 \(2\) follows 2"),
        ("4,2,6", 3, r"strictly increasing, but entry 2 \(2\) follows 4"),
        ("1,2,3,4,5,6,6", 7, "the student has 7 layers but the teacher only 6"),
    ],
)
def test_layer_map_errors_are_one_line(text, student, match):
    with pytest.raises(ConfigError, match=match) as e:
        check_layer_map(parse_layer_map(text), student, 6)
    assert "\n" not in str(e.value)


def test_layer_map_parse_error_and_a_valid_six_layer_student():
    with pytest.raises(ConfigError, match="comma-separated teacher layer numbers like 2,4,6; got '2,x'"):
        parse_layer_map("2,x")
    # huawei-noah/Pretrained-Language-Model#166: a 6-layer student of a 12-layer teacher
    assert check_layer_map(parse_layer_map("2,4,6,8,10,12"), 6, 12) == (2, 4, 6, 8, 10, 12)


# ---- student --------------------------------------------------------------------------------


@pytest.fixture
def teacher(tiny_bert_config):
    torch.manual_seed(1)
    return build_model(tiny_bert_config(num_layers=4)).eval()


def test_student_copies_the_mapped_teacher_layers(teacher):
    student, copied = build_student(teacher, StudentShape(num_layers=2), (2, 4))
    t, s = teacher.state_dict(), student.state_dict()
    assert set(copied) == set(s)  # same width: every module comes from the teacher
    for name, value in s.items():
        if name.startswith("encoder.blocks."):
            i, rest = name.split(".", 3)[2:]
            source = f"encoder.blocks.{(1, 3)[int(i)]}.{rest}"  # student 0 <- teacher layer 2, 1 <- 4
        else:
            source = name
        assert torch.equal(value, t[source]), name


def test_narrow_student_starts_fresh_and_is_seeded(teacher):
    a, copied = build_student(teacher, StudentShape(num_layers=2, hidden_size=16), (2, 4), seed=3)
    b, _ = build_student(teacher, StudentShape(num_layers=2, hidden_size=16), (2, 4), seed=3)
    assert copied == []
    assert a.config.intermediate_size == 32  # the teacher's ffn/hidden ratio (64/32)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_student_shape_from_json_and_errors(tmp_path, teacher):
    path = tmp_path / "student.json"
    path.write_text(json.dumps({"num_layers": 1, "hidden_size": 16, "num_heads": 2}))
    cfg = StudentShape.from_json(path).config_for(teacher.config)
    assert (cfg.num_layers, cfg.hidden_size, cfg.num_heads, cfg.labels) == (1, 16, 2, teacher.config.labels)
    path.write_text(json.dumps({"layers": 1}))
    with pytest.raises(ConfigError, match="unknown key.* layers; allowed: num_layers"):
        StudentShape.from_json(path)
    with pytest.raises(ConfigError, match=r"student shape \(.*--hidden 30.*\) is invalid: hidden_size 30 is not divisible by num_heads 4"):
        StudentShape(hidden_size=30).config_for(teacher.config)
    with pytest.raises(ConfigError, match="--layers"):
        StudentShape(num_layers=0)


# ---- objective ------------------------------------------------------------------------------


def _text_batch(vocab: int, batch: int = 4, seq: int = 7, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(batch, seq, dtype=torch.long)
    mask[0, 4:] = 0
    mask[1, 6:] = 0
    return {
        "input_ids": torch.randint(5, vocab, (batch, seq), generator=g) * mask,
        "attention_mask": mask,
        "token_type_ids": torch.zeros(batch, seq, dtype=torch.long),
        "labels": torch.randint(0, 2, (batch,), generator=g),
    }


def _counting(module: torch.nn.Module) -> list[int]:
    calls = [0]
    module.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


@pytest.mark.parametrize("stage", ["intermediate", "prediction"])
def test_teacher_is_frozen_and_runs_once_per_batch(teacher, stage):
    student, _ = build_student(teacher, StudentShape(num_layers=2, hidden_size=16, num_heads=2), (2, 4))
    obj = DistillObjective(teacher, student, stage=stage, layer_map=(2, 4), hard_weight=0.5)
    teacher_calls, student_calls = _counting(teacher), _counting(student)
    obj.train()
    assert not teacher.training and student.training
    for step in range(3):
        loss, logs = obj(_text_batch(teacher.config.vocab_size, seed=step))
        loss.backward()
    assert teacher_calls[0] == 3 and student_calls[0] == 3
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    # what the stage's loss reads trains (the intermediate stage never reaches pooler and head)
    unused = ("model.pooler.", "model.head.") if stage == "intermediate" else ()
    for name, p in obj.named_parameters():
        assert (p.grad is None) == name.startswith(unused), name
    assert not any(k.startswith("teacher") for k in obj.state_dict())  # checkpoints hold what trains
    assert set(logs) == ({"embedding", "attention", "hidden"} if stage == "intermediate" else {"soft_ce", "hard_ce"})
    assert loss.item() == pytest.approx(sum(logs.values()), rel=1e-5)


def test_projections_exist_iff_widths_differ(teacher):
    same, _ = build_student(teacher, StudentShape(num_layers=2), (2, 4))
    obj = DistillObjective(teacher, same, stage="intermediate", layer_map=(2, 4))
    assert obj.embedding_projection is None and obj.hidden_projection is None and not obj.average_heads
    narrow, _ = build_student(teacher, StudentShape(num_layers=2, hidden_size=16, num_heads=2), (2, 4))
    obj = DistillObjective(teacher, narrow, stage="intermediate", layer_map=(2, 4))
    assert obj.hidden_projection.in_features == 16 and obj.hidden_projection.out_features == 32
    assert obj.embedding_projection is not obj.hidden_projection and obj.average_heads
    # the projections are what the loss reads: zeroing W_h changes it
    batch = _text_batch(teacher.config.vocab_size)
    before = obj(batch)[1]["hidden"]
    with torch.no_grad():
        obj.hidden_projection.weight.zero_()
    assert obj(batch)[1]["hidden"] != pytest.approx(before)


def test_a_head_map_pairs_each_pruned_head_with_the_teacher_head_it_was(tiny_bert_config):
    """A one-layer teacher with heads 1 and 3 kept is, in its only layer, those two heads exactly:
    paired by the head map the attention loss is zero; averaged over heads it is not."""
    from edgept.compress.prune.prune import prune_model

    torch.manual_seed(2)
    one = build_model(tiny_bert_config(num_layers=1)).eval()
    student = prune_model(one, heads=[torch.tensor([1, 3])])
    batch = _text_batch(one.config.vocab_size)
    paired = DistillObjective(one, student, stage="intermediate", layer_map=(1,), head_map=((1, 3),))
    assert not paired.average_heads and paired(batch)[1]["attention"] == pytest.approx(0.0, abs=1e-10)
    averaged = DistillObjective(one, student, stage="intermediate", layer_map=(1,))
    assert averaged.average_heads and averaged(batch)[1]["attention"] > 1e-6
    for bad in (((1,),), ((1, 4),), ((1, 3), (0, 2))):  # too few heads, no head 4, one layer too many
        with pytest.raises(ConfigError, match="head_map needs"):
            DistillObjective(one, student, stage="intermediate", layer_map=(1,), head_map=bad)


def test_objective_rejects_bad_pairs_before_training(teacher, tiny_bert_config):
    student, _ = build_student(teacher, StudentShape(num_layers=2), (2, 4))
    with pytest.raises(ConfigError, match="strictly increasing"):
        DistillObjective(teacher, student, stage="intermediate", layer_map=(4, 2))
    with pytest.raises(ConfigError, match="stage 'final' is not one of intermediate, prediction, general"):
        DistillObjective(teacher, student, stage="final", layer_map=(2, 4))
    plain = build_model(tiny_bert_config(task="feature-extraction", labels=()))
    with pytest.raises(ConfigError, match="stage 'prediction' needs a classification teacher"):
        DistillObjective(plain, build_model(tiny_bert_config(task="feature-extraction", labels=(), num_layers=1)),
                         stage="prediction", layer_map=(2,))


@pytest.mark.parametrize("stage", ["intermediate", "prediction"])
def test_distillation_decreases_the_loss(teacher, stage):
    torch.manual_seed(0)
    with torch.no_grad():  # a confident teacher, so the soft targets carry a signal
        teacher.head.classifier.weight.mul_(50.0)
    student, _ = build_student(teacher, StudentShape(num_layers=2, hidden_size=16, num_heads=2), (2, 4))
    obj = DistillObjective(teacher, student, stage=stage, layer_map=(2, 4), temperature=2.0)
    batches = [_text_batch(teacher.config.vocab_size, batch=8, seed=s) for s in range(2)]
    opt = torch.optim.AdamW([p for p in obj.parameters() if p.requires_grad], lr=3e-3)
    obj.train()

    def total() -> float:
        """The loss above its floor: soft CE's minimum is the entropy of the teacher's targets."""
        obj.eval()
        with torch.no_grad():
            value = sum(obj(b)[0].item() for b in batches)
            if stage == "prediction":
                for b in batches:
                    target = torch.softmax(teacher(b["input_ids"], b["attention_mask"]).logits / 2.0, -1)
                    value += (target * target.log()).sum(-1).mean().item()
        obj.train()
        return value

    start = total()
    for step in range(40):
        loss, _ = obj(batches[step % 2])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert total() < 0.5 * start


def test_vit_student_distills(tiny_vit_config):
    torch.manual_seed(0)
    teacher = build_model(tiny_vit_config(num_layers=2)).eval()
    student, copied = build_student(teacher, StudentShape(num_layers=1, hidden_size=16, num_heads=2), (2,))
    assert copied == []
    batch = {"pixel_values": torch.randn(4, 3, 32, 32), "labels": torch.tensor([0, 1, 2, 0])}
    for stage in ("intermediate", "prediction"):
        obj = DistillObjective(teacher, student, stage=stage, layer_map=(2,))
        opt = torch.optim.AdamW([p for p in obj.parameters() if p.requires_grad], lr=3e-3)
        first = obj(batch)[0].item()
        for _ in range(15):
            loss, _ = obj(batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
        assert loss.item() < first, stage
    wrong = build_model(tiny_vit_config(num_layers=1, patch_size=16))
    with pytest.raises(ConfigError, match="must see the same tokens"):
        DistillObjective(teacher, wrong, stage="intermediate", layer_map=(2,))


# ---- augmentation ---------------------------------------------------------------------------


@pytest.fixture
def augment_setup(tiny_bert_config, tmp_path):
    """A tiny masked-LM teacher and its tokenizer, with one multi-piece word ("films" = film ##s)."""
    from tokenizers import Tokenizer
    from tokenizers.implementations import BertWordPieceTokenizer

    from tests.conftest import tiny_vocab

    vocab = [*tiny_vocab(), "##s", "movies"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = Tokenizer.from_str(BertWordPieceTokenizer(str(tmp_path / "vocab.txt"), lowercase=True).to_str())
    torch.manual_seed(0)
    model = build_model(tiny_bert_config(vocab_size=len(vocab), task="masked-lm", labels=())).eval()
    return model, tok, {t: i for i, t in enumerate(vocab)}


TEXTS = ["The film was great, not boring!", "A dull story and bad acting.", "Fun films."]


def test_augmentation_is_seeded_and_keeps_words_and_specials(augment_setup):
    model, tok, vocab = augment_setup
    a = WordAugmenter(model, tok, AugmentConfig(copies=8, seed=1)).augment(TEXTS)
    assert a == WordAugmenter(model, tok, AugmentConfig(copies=8, seed=1)).augment(TEXTS)
    assert a != WordAugmenter(model, tok, AugmentConfig(copies=8, seed=2)).augment(TEXTS)
    aug = WordAugmenter(model, tok, AugmentConfig(copies=8, seed=1))
    specials = {vocab[t] for t in ("[CLS]", "[SEP]", "[MASK]", "[PAD]", "[UNK]")}
    for text, group in zip(TEXTS, a, strict=True):
        assert group[0] == text and len(group) > 1 and len(set(group)) == len(group)
        words = aug.words(text)
        for sentence in group[1:]:
            new = sentence.split(" ")
            assert len(new) == len(words)  # one word for one word: boundaries unchanged
            for old, w in zip(words, new, strict=True):
                if old != w:
                    assert w.isalpha() and w not in STOPWORDS and old not in STOPWORDS and old.isalpha()
            ids = tok.encode(sentence).ids
            assert ids[0] == vocab["[CLS]"] and ids[-1] == vocab["[SEP]"]
            assert not specials & set(ids[1:-1]) - {vocab["[UNK]"]}
            assert ids.count(vocab["[UNK]"]) == tok.encode(text).ids.count(vocab["[UNK]"])  # the "!", ","
        assert all(("not" in s.split()) == ("not" in words) for s in group)  # negations stay


def test_single_piece_words_use_the_mlm_and_multi_piece_words_the_embeddings(augment_setup):
    model, tok, vocab = augment_setup
    with torch.no_grad():
        model.head.bias[vocab["great"]] = 100.0  # the MLM now always says "great" first
        emb = model.embeddings.word.weight
        emb[vocab["movies"]] = emb[vocab["film"]] + emb[vocab["##s"]]  # "films" = film ##s, nearest "movies"
    config = AugmentConfig(copies=20, candidates=1, prob=1.0)
    fun_films = WordAugmenter(model, tok, config).augment(["Fun films."])[0]
    assert fun_films[1] == "great movies ."  # fun -> MLM's "great"; films -> embedding neighbour
    model.task_head, model.head = model.head, None  # without an MLM head: embeddings for every word
    no_mlm = WordAugmenter(model, tok, config).augment(["Fun films."])[0]
    assert "great" not in no_mlm[1].split() and no_mlm[1].endswith("movies .")
