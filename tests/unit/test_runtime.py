"""edgept.runtime on tiny hand-built ONNX models: feed validation, predict/embed vs numpy, import hygiene."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgept.bundle import BundleWriter
from edgept.errors import BundleError, ConfigError, FeedError
from edgept.preprocess import TextPreprocessor
from edgept.runtime import Prediction, load

REPO = Path(__file__).resolve().parents[2]
VOCAB = "[PAD] [UNK] [CLS] [SEP] [MASK] good bad movie the was very plot ##s".split()
V, H, MAX_SEQ = len(VOCAB), 4, 16
TEXT_IO = ["input_ids", "attention_mask", "token_type_ids"]
RNG = np.random.default_rng(0)
WORD = RNG.normal(size=(V, H)).astype(np.float32)
TYPE = RNG.normal(size=(2, H)).astype(np.float32)
W_OUT = RNG.normal(size=(H, 2)).astype(np.float32)
B_OUT = np.array([0.1, -0.2], dtype=np.float32)
W_IMG = RNG.normal(size=(3, 2)).astype(np.float32)


def text_graph(task: str, with_types: bool) -> onnx.ModelProto:
    """Embedding lookup (+ token types); masked mean -> linear logits, or the hidden states themselves."""
    i64 = ["batch", "sequence"]
    inputs = [
        helper.make_tensor_value_info(n, TensorProto.INT64, i64) for n in TEXT_IO[: 3 if with_types else 2]
    ]
    inits = [
        numpy_helper.from_array(a, n) for a, n in [(WORD, "word"), (TYPE, "type"), (W_OUT, "w"), (B_OUT, "b")]
    ]
    inits += [numpy_helper.from_array(np.array(a, np.int64), n) for a, n in [([-1], "last"), ([1], "seq")]]
    nodes = [helper.make_node("Gather", ["word", "input_ids"], ["e"])]
    if with_types:
        nodes += [
            helper.make_node("Gather", ["type", "token_type_ids"], ["t"]),
            helper.make_node("Add", ["e", "t"], ["x"]),
        ]
    else:
        nodes += [helper.make_node("Identity", ["e"], ["x"])]
    if task == "feature-extraction":
        nodes += [helper.make_node("Identity", ["x"], ["last_hidden_state"])]
        outputs = [
            helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", H])
        ]
    else:
        nodes += [
            helper.make_node("Cast", ["attention_mask"], ["mf"], to=TensorProto.FLOAT),
            helper.make_node("Unsqueeze", ["mf", "last"], ["m"]),
            helper.make_node("Mul", ["x", "m"], ["xm"]),
            helper.make_node("ReduceSum", ["xm", "seq"], ["s"], keepdims=0),
            helper.make_node("ReduceSum", ["m", "seq"], ["c"], keepdims=0),
            helper.make_node("Div", ["s", "c"], ["pooled"]),
            helper.make_node("MatMul", ["pooled", "w"], ["mm"]),
            helper.make_node("Add", ["mm", "b"], ["logits"]),
        ]
        outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2])]
    graph = helper.make_graph(nodes, "tiny", inputs, outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def image_graph() -> onnx.ModelProto:
    x = helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch", 3, "height", "width"])
    nodes = [
        helper.make_node("ReduceMean", ["pixel_values"], ["p"], axes=[2, 3], keepdims=0),
        helper.make_node("MatMul", ["p", "w"], ["logits"]),
    ]
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2])
    graph = helper.make_graph(nodes, "tiny_img", [x], [out], [numpy_helper.from_array(W_IMG, "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def make_bundle(tmp_path, task="sequence-classification", with_types=True, declared=TEXT_IO, name="t.edgept"):
    """A text bundle whose manifest declares `declared` inputs (the graph may consume fewer)."""
    vocab_dir = tmp_path / "ckpt"
    vocab_dir.mkdir(exist_ok=True)
    (vocab_dir / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    tp = TextPreprocessor.from_checkpoint(vocab_dir, max_length=32)  # longer than MAX_SEQ on purpose
    with BundleWriter(tmp_path / name) as w:
        onnx.save(text_graph(task, with_types), w.dir / "model.onnx")
        tp.save(w.dir / "tokenizer.json")
        out = (
            {"name": "last_hidden_state", "dtype": "float32", "dims": ["batch", "sequence", H]}
            if task == "feature-extraction"
            else {"name": "logits", "dtype": "float32", "dims": ["batch", 2]}
        )
        w.manifest["model"] = {
            "arch": "bert",
            "task": task,
            "labels": ["negative", "positive"] if task != "feature-extraction" else None,
        }
        w.manifest["io"] = {
            "inputs": [{"name": n, "dtype": "int64", "dims": ["batch", "sequence"]} for n in declared],
            "outputs": [out],
            "limits": {"vocab_size": V, "type_vocab_size": 2, "max_sequence": MAX_SEQ},
        }
        w.manifest["preprocess"] = tp.to_dict()
    return tmp_path / name


def make_image_bundle(tmp_path):
    with BundleWriter(tmp_path / "img.edgept") as w:
        onnx.save(image_graph(), w.dir / "model.onnx")
        w.manifest["model"] = {"arch": "vit", "task": "image-classification", "labels": ["shirt", "shoe"]}
        w.manifest["io"] = {
            "inputs": [{"name": "pixel_values", "dtype": "float32", "dims": ["batch", 3, "height", "width"]}],
            "outputs": [{"name": "logits", "dtype": "float32", "dims": ["batch", 2]}],
            "limits": {"image_size": [8, 8], "channels": 3},
        }
        w.manifest["preprocess"] = {
            "kind": "image",
            "size": [8, 8],
            "mean": [0.5] * 3,
            "std": [0.5] * 3,
            "rescale": 1 / 255,
            "resample": "bilinear",
            "channels": 3,
        }
    return tmp_path / "img.edgept"


def reference_logits(ids, mask, types):
    x = WORD[ids] + TYPE[types]
    m = mask[..., None].astype(np.float64)
    pooled = (x * m).sum(1) / m.sum(1)
    return pooled @ W_OUT + B_OUT


@pytest.fixture
def sess(tmp_path):
    return load(make_bundle(tmp_path), threads=1)


def feeds(batch=2, seq=5, dtype=np.int64):
    ids = np.random.default_rng(1).integers(5, V, size=(batch, seq)).astype(dtype)
    return {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}


def test_run_matches_numpy_and_int32_is_accepted(sess):
    f = feeds()
    out = sess.run(f)
    assert list(out) == ["logits"] and out["logits"].shape == (2, 2)
    np.testing.assert_allclose(out["logits"], reference_logits(*f.values()), atol=1e-5)
    out32 = sess.run(feeds(dtype=np.int32))
    np.testing.assert_array_equal(out32["logits"], out["logits"])
    assert sess.providers == ["CPUExecutionProvider"] and [s.name for s in sess.inputs] == TEXT_IO


def test_spinning_off_reaches_onnxruntime_and_keeps_outputs(tmp_path, sess):
    """The bench opens every session with spinning off; it must change scheduling, never results."""
    quiet = load(make_bundle(tmp_path, name="quiet.edgept"), threads=1, spinning=False)
    key = "session.intra_op.allow_spinning"
    assert quiet._exec._sess.get_session_options().get_session_config_entry(key) == "0"
    with pytest.raises(RuntimeError, match=key):  # the default leaves ORT's own setting (spinning on)
        sess._exec._sess.get_session_options().get_session_config_entry(key)
    np.testing.assert_array_equal(quiet.run(feeds())["logits"], sess.run(feeds())["logits"])


def feed_error(sess, f) -> str:
    with pytest.raises(FeedError) as e:
        sess.run(f)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_unknown_and_missing_inputs(sess):
    msg = feed_error(sess, {**feeds(), "position_ids": np.zeros((2, 5), np.int64)})
    assert "unknown input 'position_ids'" in msg and "input_ids, attention_mask, token_type_ids" in msg
    f = feeds()
    del f["attention_mask"]
    assert "missing input 'attention_mask'" in feed_error(sess, f)
    assert "feeds must be a dict" in feed_error(sess, [f])


def test_dtype_rank_and_dims(sess):
    msg = feed_error(sess, {**feeds(), "attention_mask": np.ones((2, 5), np.float32)})
    assert "'attention_mask' has dtype float32; expected int64" in msg
    msg = feed_error(sess, {**feeds(), "input_ids": np.full(5, 6, np.int64)})
    assert "'input_ids' has rank 1" in msg and "expected rank 2" in msg
    msg = feed_error(sess, {**feeds(), "attention_mask": np.ones((3, 5), np.int64)})
    assert "'attention_mask' has batch=3 but input 'input_ids' has batch=2" in msg


def test_token_ranges_and_sequence_limit(sess):
    f = feeds()
    f["input_ids"][1, 3] = V
    msg = feed_error(sess, f)
    assert f"'input_ids' has value {V} at (1, 3) outside [0, {V})" in msg
    f = feeds()
    f["input_ids"][0, 0] = -1
    assert "value -1" in feed_error(sess, f)
    f = feeds()
    f["token_type_ids"][0, 1] = 2
    assert "'token_type_ids' has value 2 at (0, 1) outside [0, 2)" in feed_error(sess, f)
    msg = feed_error(sess, feeds(seq=20))
    assert (
        f"sequence length 20 exceeds the model's maximum {MAX_SEQ}; truncate with max_length≤{MAX_SEQ}" in msg
    )


def test_image_feeds(tmp_path):
    s = load(make_image_bundle(tmp_path))
    assert "axis 1 is 1; the model needs 3" in feed_error(
        s, {"pixel_values": np.zeros((1, 1, 8, 8), np.float32)}
    )
    assert "is 4x8 (HxW); the model takes 8x8" in feed_error(
        s, {"pixel_values": np.zeros((1, 3, 4, 8), np.float32)}
    )
    assert "float64; expected float32" in feed_error(s, {"pixel_values": np.zeros((1, 3, 8, 8))})
    imgs = [np.random.default_rng(i).integers(0, 256, (8, 8, 3), dtype=np.uint8) for i in range(3)]
    preds = s.predict(imgs, batch_size=2)
    x = np.stack([(im / 255 - 0.5) / 0.5 for im in imgs]).mean(axis=(1, 2)) @ W_IMG
    assert [p.index for p in preds] == x.argmax(1).tolist()
    assert all(p.label == ["shirt", "shoe"][p.index] for p in preds)


def test_predict_matches_reference(sess):
    texts = ["good movie", "the plot was very bad", "bad bad plots", "good"]
    preds = sess.predict(texts, batch_size=3)
    tp = TextPreprocessor.from_checkpoint(sess.bundle.path.parent / "ckpt")
    enc = tp(texts, max_length=MAX_SEQ)
    logits = reference_logits(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert all(isinstance(p, Prediction) for p in preds) and len(preds) == 4
    for p, ref in zip(preds, probs, strict=True):
        assert list(p.probs) == ["negative", "positive"] and sum(p.probs.values()) == pytest.approx(1.0)
        np.testing.assert_allclose(list(p.probs.values()), ref, atol=1e-5)
        assert p.label == ["negative", "positive"][int(ref.argmax())] and p.score == pytest.approx(ref.max())
    assert sess.predict("good movie") == preds[:1]


def test_predict_truncates_to_max_sequence(sess):
    long_text = " ".join(["good"] * 40)  # preprocess max_length is 32 > max_sequence 16
    assert len(sess.predict([long_text, "bad"])) == 2


def test_graph_without_token_types(tmp_path):
    s = load(make_bundle(tmp_path, with_types=False))
    f = feeds()
    with_types = s.run(f)["logits"]
    del f["token_type_ids"]
    np.testing.assert_array_equal(s.run(f)["logits"], with_types)
    f["token_type_ids"] = np.full((2, 5), 7, np.int64)  # still validated, then dropped
    assert "'token_type_ids' has value 7" in feed_error(s, f)
    assert len(s.predict(["good movie"])) == 1


def test_embed_and_non_classification_predict(tmp_path):
    s = load(make_bundle(tmp_path, task="feature-extraction"))
    with pytest.raises(BundleError) as e:
        s.predict(["good"])
    assert "'feature-extraction'" in str(e.value) and "embed(texts) or run(feeds)" in str(e.value)
    texts = ["good movie", "the plot was very bad plots"]
    emb = s.embed(texts)
    assert emb.shape == (2, H) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-6)
    ids = [TextPreprocessor.from_checkpoint(tmp_path / "ckpt")(t)["input_ids"][0] for t in texts]
    ref = np.stack([(WORD[i] + TYPE[0]).mean(0) for i in ids])
    np.testing.assert_allclose(emb, ref / np.linalg.norm(ref, axis=1, keepdims=True), atol=1e-5)
    np.testing.assert_allclose(s.embed(texts, batch_size=1), emb, atol=1e-6)  # padding must not leak in
    assert s.embed([]).shape == (0, H)


def test_load_errors(tmp_path):
    path = make_bundle(tmp_path)
    with pytest.raises(ConfigError, match="TPUExecutionProvider.*CPUExecutionProvider"):
        load(path, providers=["TPUExecutionProvider"])
    with pytest.raises(ConfigError, match="threads must be an int >= 1"):
        load(path, threads=0)
    with pytest.raises(ConfigError, match="batch_size must be an int >= 1"):
        load(path).predict(["good"], batch_size=0)
    (path / "tokenizer.json").write_text("{}")
    with pytest.raises(BundleError, match="tokenizer.json does not match its manifest hash"):
        load(path)
    undeclared = make_bundle(tmp_path, declared=TEXT_IO[:2], name="u.edgept")
    with pytest.raises(BundleError, match="takes input 'token_type_ids' that .* does not declare"):
        load(undeclared)


def run_py(code: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_runtime_pulls_in_no_torch_or_onnx(tmp_path):
    path = make_bundle(tmp_path)
    result = run_py(f"""
        import json, sys
        import numpy as np
        import edgept.runtime
        s = edgept.runtime.load({str(path)!r})
        ids = np.array([[2, 5, 7, 3]])
        out = s.run({{"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}})
        s.predict(["good movie"])
        mods = ("torch", "transformers", "onnx", "onnxruntime")
        print(json.dumps({{"loaded": [m for m in mods if m in sys.modules], "shape": list(out["logits"].shape)}}))
    """)
    assert result == {"loaded": ["onnxruntime"], "shape": [1, 2]}


def test_import_edgept_is_light():
    result = run_py("""
        import json, sys
        import edgept
        print(json.dumps([m for m in ("torch", "onnx", "onnxruntime", "transformers") if m in sys.modules]))
    """)
    assert result == []
