"""The CLI: user errors are one line on stderr with a non-zero exit; --help is light."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from edgept.cli.main import main


def edgept(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["edgept", *map(str, args)])
    code = 0
    try:
        main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, match: str) -> None:
    assert code != 0
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error:") and match in lines[0], lines[0]


def _corrupt(tiny_bert_dir, kind: str):
    ckpt = tiny_bert_dir
    if kind == "missing":
        return ckpt.parent / "nope"
    if kind == "truncated safetensors":
        data = (ckpt / "model.safetensors").read_bytes()
        (ckpt / "model.safetensors").write_bytes(data[: len(data) // 2])
    elif kind == "invalid config.json":
        (ckpt / "config.json").write_text('{"model_type": "bert",\n "hidden_size": }')
    elif kind == "unsupported model_type":
        cfg = json.loads((ckpt / "config.json").read_text())
        cfg["model_type"] = "gpt2"
        (ckpt / "config.json").write_text(json.dumps(cfg))
    elif kind == "shape mismatch":
        cfg = json.loads((ckpt / "config.json").read_text())
        cfg["hidden_size"], cfg["intermediate_size"] = 48, 96
        cfg.pop("edgept", None)
        (ckpt / "config.json").write_text(json.dumps(cfg))
    return ckpt


@pytest.mark.parametrize(
    ("kind", "match"),
    [
        ("missing", "no such file or directory"),
        ("truncated safetensors", "model.safetensors"),
        ("invalid config.json", "config.json"),
        ("unsupported model_type", "gpt2"),
        ("shape mismatch", "do not match"),
    ],
)
@pytest.mark.parametrize("command", ["info", "export"])
def test_bad_checkpoint_is_one_line(monkeypatch, capsys, tmp_path, tiny_bert_dir, kind, match, command):
    path = _corrupt(tiny_bert_dir, kind)
    args = [command, path] + (["-o", tmp_path / "out.edgept"] if command == "export" else [])
    code, _, err = edgept(monkeypatch, capsys, *args)
    assert_one_line_error(code, err, match)
    assert not (tmp_path / "out.edgept").exists()


@pytest.fixture
def tiny_bundle(tmp_path, tiny_bert_dir):
    from edgept.export import export

    return export(tiny_bert_dir, tmp_path / "tiny.edgept").path


def test_export_info_run_happy_path(monkeypatch, capsys, tmp_path, tiny_bert_dir):
    bundle = tmp_path / "b.edgept"
    code, out, err = edgept(monkeypatch, capsys, "export", tiny_bert_dir, "-o", bundle)
    assert code == 0, err
    assert "max |onnx - torch|" in out
    code, out, _ = edgept(monkeypatch, capsys, "info", bundle)
    assert code == 0 and "export" in out and "sequence-classification" in out
    code, out, _ = edgept(monkeypatch, capsys, "run", bundle, "the film was great", "--json", tmp_path / "p.json")
    assert code == 0
    preds = json.loads((tmp_path / "p.json").read_text())
    assert preds[0]["label"] in ("negative", "positive")
    assert sum(preds[0]["probs"].values()) == pytest.approx(1.0)
    code, _, err = edgept(monkeypatch, capsys, "export", tiny_bert_dir, "-o", bundle)
    assert_one_line_error(code, err, "--force")


@pytest.mark.parametrize(
    ("damage", "match"),
    [("empty model.onnx", "model.onnx"), ("tampered tokenizer.json", "tokenizer.json")],
)
def test_damaged_bundle_is_one_line(monkeypatch, capsys, tiny_bundle, damage, match):
    if damage == "empty model.onnx":
        (tiny_bundle / "model.onnx").write_bytes(b"")
    else:
        (tiny_bundle / "tokenizer.json").write_text((tiny_bundle / "tokenizer.json").read_text() + " ")
    for args in (["info", tiny_bundle], ["run", tiny_bundle, "the film"]):
        code, _, err = edgept(monkeypatch, capsys, *args)
        assert_one_line_error(code, err, match)


def test_bad_flags_are_one_line(monkeypatch, capsys, tiny_bundle):
    code, _, err = edgept(monkeypatch, capsys, "bench", tiny_bundle, "--batch", "1,x")
    assert_one_line_error(code, err, "--batch")
    code, _, err = edgept(monkeypatch, capsys, "bench", tiny_bundle, "--baseline", "tensorflow")
    assert_one_line_error(code, err, "tensorflow")
    code, _, err = edgept(monkeypatch, capsys, "run", tiny_bundle)
    assert_one_line_error(code, err, "nothing to run")


def test_bench_tiny_bundle_against_torch(monkeypatch, capsys, tmp_path, tiny_bundle):
    report = tmp_path / "bench.json"
    code, out, err = edgept(
        monkeypatch, capsys, "bench", tiny_bundle, "--baseline", "torch", "--batch", "1,2", "--seq", "8",
        "--warmup", "1", "--runs", "4", "--rounds", "2", "--threads", "1", "--no-memory", "--json", report,
    )
    assert code == 0, err
    data = json.loads(report.read_text())
    names = {r["variant"] for r in data["results"]}
    assert len(names) == 2 and len(data["results"]) == 4  # 2 variants x 2 batch sizes
    assert data["method"]["threads"] == 1


def test_doctor_lists_components(monkeypatch, capsys):
    code, out, _ = edgept(monkeypatch, capsys, "doctor")
    assert code == 0
    for name in ("onnxruntime", "tensorrt", "CUDA GPU", "model: minilm"):
        assert name in out


def test_help_is_light():
    """`edgept --help` must not import torch or onnx: it runs on every shell completion and typo."""
    code = (
        "import sys\n"
        "from edgept.cli.main import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'onnx', 'onnxruntime', 'transformers', 'tensorrt') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in res.stdout, res.stdout
