"""`edgept targets`, `edgept compile`, `edgept build-engine`: output and one-line errors."""

from __future__ import annotations

import pytest

from tests.cli.test_cli import assert_one_line_error, edgept


def test_targets_list_shows_every_profile_and_the_family_choices(monkeypatch, capsys):
    code, out, _ = edgept(monkeypatch, capsys, "targets", "list")
    assert code == 0
    for name in ("cpu-x86_64-vnni", "jetson-orin-nano", "gpu-hopper"):
        assert name in out
    assert "target 'jetson' resolved to jetson-orin-nano" in out and "target 'cpu' resolved to cpu-" in out


def test_targets_show(monkeypatch, capsys):
    code, out, err = edgept(monkeypatch, capsys, "targets", "show", "jetson")
    assert code == 0 and "jetson-orin-nano" in err
    assert "compute_capability = 8.7" in out and "tensorrt_min = 10.3" in out and "[shapes]" in out


def test_targets_show_unknown_is_one_line(monkeypatch, capsys):
    code, _, err = edgept(monkeypatch, capsys, "targets", "show", "jetson-tx9")
    assert_one_line_error(code, err, "unknown target 'jetson-tx9'")


@pytest.fixture
def tiny_bundle(tmp_path, tiny_bert_dir):
    from edgept.export import export

    return export(tiny_bert_dir, tmp_path / "tiny.edgept").path


def test_compile_for_jetson_then_build_engine_without_tensorrt(monkeypatch, capsys, tmp_path, tiny_bundle):
    out_dir = tmp_path / "orin.edgept"
    code, out, err = edgept(monkeypatch, capsys, "compile", tiny_bundle, "--target", "jetson-orin-nano",
                          "--precision", "fp32", "-o", out_dir)
    assert code == 0, err
    assert "engine: to be built on device" in out and (out_dir / "build_engine.sh").is_file()
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        code, _, err = edgept(monkeypatch, capsys, "build-engine", out_dir)
        assert_one_line_error(code, err, "TensorRT is not installed")


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("--target", "cpu-x86_64", "--precision", "fp16"), "does not support precision 'fp16'"),
        (("--target", "cpu-x86_64", "--min-cosine", "2"), "--min-cosine must be in [-1, 1]"),
        (("--target", "cpu-x86_64", "--precision", "bf16"), "'bf16' is not one of"),
        (("--target", "nano"), "unknown target 'nano'"),
    ],
)
def test_compile_errors_are_one_line(monkeypatch, capsys, tmp_path, args, match):
    code, _, err = edgept(monkeypatch, capsys, "compile", tmp_path / "nothing", *args, "-o", tmp_path / "x.edgept")
    assert_one_line_error(code, err, match)
