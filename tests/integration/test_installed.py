"""An installed edgept (a wheel in a fresh venv, run from outside the checkout) finds its shipped
targets and calibration set through importlib.resources and compiles for a target."""

from __future__ import annotations

import json
import shutil
import site
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*cmd: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def test_a_wheel_installed_outside_the_checkout_lists_targets_and_compiles(tmp_path, tiny_bert_dir):
    src = tmp_path / "src"  # a copy: building must not leave build/ or *.egg-info in the checkout
    shutil.copytree(ROOT, src, symlinks=True, ignore=shutil.ignore_patterns(".venv", ".git", "out", "build", "*.egg-info", "__pycache__", "tests"))
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist", src, cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("edgept-*.whl")
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    (site_dir,) = venv.glob("lib/python*/site-packages")
    # The dependencies (torch, onnxruntime, ...) come from the test's own environment, appended after
    # the fresh venv's site-packages: its edgept is the wheel's, not the checkout's editable one.
    (site_dir / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    python = venv / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps", wheel, cwd=tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = run(python, "-c", "import edgept, edgept.resources as r; print(edgept.__file__); print(r.shipped('calibration'))", cwd=elsewhere)
    package, calibration = where.stdout.split()
    assert Path(package).is_relative_to(venv) and Path(calibration).is_relative_to(venv)
    assert (Path(calibration) / "rt-polarity-256" / "texts.jsonl").is_file()
    edgept = venv / "bin" / "edgept"
    listed = run(edgept, "targets", "list", cwd=elsewhere).stdout
    assert "cpu-x86_64" in listed and "jetson-orin-nano" in listed
    run(edgept, "compile", tiny_bert_dir, "--target", "cpu", "--precision", "fp32", "-o", "fp32.edgept", cwd=elsewhere)
    # An explicit int8: with auto, the CPU's measurement may keep fp32 for a tiny model on CI's machine.
    run(edgept, "compile", tiny_bert_dir, "--target", "cpu", "--precision", "int8",
        "--calibration", Path(calibration) / "rt-polarity-256", "-o", "int8.edgept", cwd=elsewhere)
    manifest = json.loads((elsewhere / "int8.edgept" / "manifest.json").read_text())
    assert manifest["compiled"]["precision"] == "int8" and manifest["compiled"]["backend"] == "ort"
