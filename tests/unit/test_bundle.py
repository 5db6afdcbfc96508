"""Bundle directory: atomic writes, overwrite, inheritance from a base, and every refusal on read."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from edgept.bundle import SCHEMA, Bundle, BundleWriter, IOSpec
from edgept.errors import BundleError
from edgept.fileio import atomic_write_bytes, atomic_write_text, sha256_file

IO = {
    "inputs": [
        {"name": "input_ids", "dtype": "int64", "dims": ["batch", "sequence"]},
        {"name": "attention_mask", "dtype": "int64", "dims": ["batch", "sequence"]},
    ],
    "outputs": [{"name": "logits", "dtype": "float32", "dims": ["batch", 2]}],
    "limits": {"vocab_size": 30, "type_vocab_size": 2, "max_sequence": 16},
}


def write(dest, model=b"fake onnx bytes", overwrite=False, extra=None):
    """A minimal bundle: the writer only needs a non-empty model.onnx, not a valid graph."""
    with BundleWriter(dest, overwrite=overwrite) as w:
        (w.dir / "model.onnx").write_bytes(model)
        (w.dir / "tokenizer.json").write_text("{}")
        for name, data in (extra or {}).items():
            (w.dir / name).parent.mkdir(parents=True, exist_ok=True)
            (w.dir / name).write_bytes(data)
        w.manifest["model"] = {"arch": "bert", "task": "sequence-classification", "labels": ["neg", "pos"]}
        w.manifest["io"] = IO
        w.manifest["preprocess"] = {
            "kind": "text",
            "tokenizer": "tokenizer.json",
            "max_length": 8,
            "pad_id": 0,
        }
        w.manifest["seed"] = 7
        w.add_pass("export", {"opset": 17}, {"max_abs_diff": 1e-6})
    return Bundle.open(dest)


def leftovers(parent):
    return sorted(p.name for p in parent.iterdir() if ".tmp-" in p.name or ".old-" in p.name)


def one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_roundtrip_fills_manifest(tmp_path):
    b = write(tmp_path / "m.edgept", extra={"bench/cpu.json": b"{}"})
    m = b.manifest
    assert list(m)[:3] == ["schema", "edgept_version", "created"]
    assert m["schema"] == SCHEMA and m["edgept_version"] == "0.1.0" and m["created"].endswith("Z")
    assert set(m["artifacts"]) == {"model.onnx", "tokenizer.json", "bench/cpu.json"}
    art = m["artifacts"]["model.onnx"]
    assert art == {"sha256": hashlib.sha256(b"fake onnx bytes").hexdigest(), "bytes": 15}
    prov = m["provenance"]
    assert prov["seed"] == 7 and {"python", "platform", "torch", "onnx", "onnxruntime"} <= set(prov)
    assert "seed" not in m
    assert m["passes"] == [{"pass": "export", "config": {"opset": 17}, "metrics": {"max_abs_diff": 1e-6}}]
    raw = (b.path / "manifest.json").read_text()
    assert raw.startswith('{\n  "schema": 1') and raw.endswith("}\n")
    assert b.inputs[0] == IOSpec("input_ids", "int64", ("batch", "sequence"))
    assert b.outputs == [IOSpec("logits", "float32", ("batch", 2))]
    assert (
        b.limits["max_sequence"] == 16 and b.task == "sequence-classification" and b.labels == ["neg", "pos"]
    )
    assert b.preprocess["tokenizer"] == "tokenizer.json"
    assert b.model_path == b.path / "model.onnx" and b.file("bench/cpu.json").read_bytes() == b"{}"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_exception_inside_with_leaves_nothing(tmp_path, exc):
    dest = tmp_path / "m.edgept"
    with pytest.raises(exc):
        with BundleWriter(dest) as w:
            (w.dir / "model.onnx").write_bytes(b"x")
            assert w.dir.name.startswith(".m.edgept.tmp-") and w.dir.parent == tmp_path
            raise exc()
    assert not dest.exists() and list(tmp_path.iterdir()) == []


def test_exception_keeps_existing_dest(tmp_path):
    dest = tmp_path / "m.edgept"
    before = write(dest, model=b"old").manifest
    with pytest.raises(RuntimeError):
        with BundleWriter(dest, overwrite=True) as w:
            (w.dir / "model.onnx").write_bytes(b"new")
            raise RuntimeError
    assert Bundle.open(dest).manifest == before and leftovers(tmp_path) == []


def test_existing_dest_needs_overwrite(tmp_path):
    dest = tmp_path / "m.edgept"
    write(dest, model=b"old")
    with pytest.raises(BundleError) as e:
        write(dest, model=b"new")
    assert "already exists" in one_line(e) and "--force" in str(e.value)
    assert (dest / "model.onnx").read_bytes() == b"old"
    write(dest, model=b"new", overwrite=True)
    assert (dest / "model.onnx").read_bytes() == b"new" and leftovers(tmp_path) == []


def test_overwrite_refuses_a_non_bundle_dir(tmp_path):
    dest = tmp_path / "precious"
    dest.mkdir()
    (dest / "thesis.tex").write_text("years of work")
    with pytest.raises(BundleError) as e:
        write(dest, overwrite=True)
    assert "not an edgept bundle" in one_line(e)
    assert (dest / "thesis.tex").read_text() == "years of work" and leftovers(tmp_path) == []


def test_writer_requires_a_model(tmp_path):
    with pytest.raises(BundleError) as e:
        with BundleWriter(tmp_path / "m.edgept") as w:
            (w.dir / "model.onnx").write_bytes(b"")
    assert "model.onnx" in one_line(e) and list(tmp_path.iterdir()) == []


def test_base_is_inherited_and_left_untouched(tmp_path):
    base = write(tmp_path / "a.edgept")
    base_manifest = json.loads((base.path / "manifest.json").read_text())
    with BundleWriter(tmp_path / "b.edgept", base=base) as w:
        assert (w.dir / "tokenizer.json").read_text() == "{}"
        atomic_write_bytes(w.path("model.onnx"), b"quantized")
        (w.path("model.fp32.onnx")).write_bytes(b"fake onnx bytes")
        w.add_pass("quantize", {"mode": "dynamic"}, {"accuracy": 0.9})
    b = Bundle.open(tmp_path / "b.edgept")
    assert [p["pass"] for p in b.passes] == ["export", "quantize"]
    assert b.manifest["model"] == base.manifest["model"] and b.manifest["provenance"]["seed"] == 7
    assert set(b.manifest["artifacts"]) == {"model.onnx", "model.fp32.onnx", "tokenizer.json"}
    assert (b.path / "model.onnx").read_bytes() == b"quantized"
    assert json.loads((base.path / "manifest.json").read_text()) == base_manifest
    Bundle.open(base.path)  # still verifies: the base's model.onnx was not written through a hard link


def test_in_place_write_to_inherited_link_is_caught(tmp_path):
    base = write(tmp_path / "a.edgept")
    dest = tmp_path / "b.edgept"
    with pytest.raises(BundleError) as e:
        with BundleWriter(dest, base=base) as w:
            if not os.path.samefile(w.dir / "model.onnx", base.model_path):
                pytest.skip("filesystem without hard links: nothing is shared")
            with open(w.dir / "model.onnx", "wb") as f:  # the mistake BundleWriter.path() prevents
                f.write(b"oops")
    assert "hard-linked" in one_line(e) and not dest.exists()


def test_tampered_or_truncated_file_is_refused(tmp_path):
    b = write(tmp_path / "m.edgept")
    (b.path / "tokenizer.json").write_text("{ }")  # same size would slip a size-only check
    with pytest.raises(BundleError) as e:
        Bundle.open(b.path)
    assert "tokenizer.json does not match its manifest hash (tampered or truncated)" in one_line(e)
    assert "edgept export" in str(e.value)
    assert Bundle.open(b.path, verify=False).task == "sequence-classification"
    (b.path / "model.onnx").write_bytes(b"fake")
    with pytest.raises(BundleError, match=r"model\.onnx does not match its manifest hash"):
        Bundle.open(b.path)


def test_empty_model_is_refused_even_without_verify(tmp_path):
    b = write(tmp_path / "m.edgept")
    (b.path / "model.onnx").write_bytes(b"")
    with pytest.raises(BundleError) as e:
        Bundle.open(b.path, verify=False)
    assert "model.onnx is empty" in one_line(e)


def edit_manifest(b: Bundle, **changes) -> None:
    m = dict(b.manifest, **changes)
    (b.path / "manifest.json").write_text(json.dumps(m))


def test_newer_schema_is_refused(tmp_path):
    b = write(tmp_path / "m.edgept")
    edit_manifest(b, schema=SCHEMA + 1)
    with pytest.raises(BundleError) as e:
        Bundle.open(b.path)
    assert (
        one_line(e)
        == f"bundle schema {SCHEMA + 1} is newer than this edgept (knows {SCHEMA}); upgrade edgept"
    )


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda p: p / "nope.edgept", "does not exist"),
        (lambda p: (p / "f.onnx").write_bytes(b"x") and p / "f.onnx", "is a file, not a bundle"),
        (lambda p: (p / "d").mkdir() or p / "d", "not an edgept bundle (no manifest.json)"),
    ],
)
def test_not_a_bundle(tmp_path, make, expected):
    with pytest.raises(BundleError) as e:
        Bundle.open(make(tmp_path))
    assert expected in one_line(e)


def test_invalid_json_and_bad_entries(tmp_path):
    b = write(tmp_path / "m.edgept")
    good = (b.path / "manifest.json").read_text()
    (b.path / "manifest.json").write_text(good[:-10])
    with pytest.raises(BundleError) as e:
        Bundle.open(b.path)
    assert "manifest.json is not valid JSON" in one_line(e)
    (b.path / "manifest.json").write_text(good)
    edit_manifest(b, artifacts={**b.manifest["artifacts"], "../../etc/passwd": {"sha256": "0", "bytes": 1}})
    with pytest.raises(BundleError, match="not a relative path inside the bundle"):
        Bundle.open(b.path)
    edit_manifest(b, artifacts={**b.manifest["artifacts"], "gone.bin": {"sha256": "0", "bytes": 1}})
    with pytest.raises(BundleError, match="gone.bin is listed in the manifest but missing"):
        Bundle.open(b.path)


def test_file_and_io_errors(tmp_path):
    b = write(tmp_path / "m.edgept")
    (b.path / "stray.txt").write_text("not listed")
    with pytest.raises(BundleError) as e:
        b.file("stray.txt")
    assert "no artifact 'stray.txt'" in one_line(e) and "model.onnx" in str(e.value)
    bad_io = {**IO, "inputs": [{"name": "input_ids", "dtype": "int65", "dims": ["batch"]}]}
    edit_manifest(b, io=bad_io)
    with pytest.raises(BundleError) as e:
        _ = Bundle.open(b.path).inputs
    assert "'int65'" in one_line(e) and "int64" in str(e.value)


def test_fileio_helpers(tmp_path):
    p = tmp_path / "x.txt"
    atomic_write_text(p, "héllo")
    assert (
        p.read_bytes() == "héllo".encode() and sha256_file(p) == hashlib.sha256("héllo".encode()).hexdigest()
    )
    with pytest.raises(TypeError):
        atomic_write_bytes(p, "not bytes")  # fails mid-write
    assert p.read_text() == "héllo" and [q.name for q in tmp_path.iterdir()] == ["x.txt"]
