"""README's Python API block runs as written, on a tiny checkpoint standing in for a real one."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def python_blocks(section: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", body, re.S)


def test_the_python_api_example_runs(tmp_path, tiny_bert_config, monkeypatch):
    import torch

    from edgept.models import build_model
    from edgept.models.hf import save_model
    from tests.conftest import tiny_vocab

    (tmp_path / "tok").mkdir()
    (tmp_path / "tok" / "vocab.txt").write_text("\n".join(tiny_vocab()) + "\n")
    torch.manual_seed(0)
    checkpoint = save_model(build_model(tiny_bert_config(max_position=128)), tmp_path / "ckpt", source=tmp_path / "tok")
    (code,) = python_blocks("Python API")
    assert "path/to/checkpoint" in code and "calibration/rt-polarity-256" in code  # what is stood in for
    code = code.replace("path/to/checkpoint", str(checkpoint))
    code = code.replace('"calibration/rt-polarity-256"', repr(str(ROOT / "calibration" / "rt-polarity-256")))
    ids = np.array([[2, 5, 6, 3]], dtype=np.int64)
    scope = {"ids": ids, "mask": np.ones_like(ids), "types": np.zeros_like(ids)}
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - the README is this repo's own text
    assert scope["cpu"].manifest["compiled"]["backend"] == "ort"
    assert "model.fp32.onnx" not in scope["int8"].artifacts
    assert [v["name"] for v in scope["report"].variants][0] == "torch eager"
    assert {r.batch for r in scope["report"].results} == {1, 8}
