"""Target profiles: every shipped TOML parses and cites its sources; bad input is one clear line."""

from __future__ import annotations

import shutil

import pytest

from edgept.errors import ConfigError
from edgept.targets import (
    FAMILY_DEFAULTS,
    MachineFacts,
    load_target,
    resolve_target,
    shipped_targets,
)

REQUIRED = {
    "cpu-x86_64", "cpu-x86_64-vnni", "cpu-arm64", "jetson-orin-nano", "jetson-agx-orin",
    "jetson-xavier-nx", "gpu-turing", "gpu-ampere", "gpu-ada", "gpu-hopper",
}
# Vendor figures (CUDA GPUs table, JetPack 6.2 = TensorRT 10.3) the profiles must agree with.
COMPUTE_CAPABILITY = {
    "jetson-orin-nano": "8.7", "jetson-agx-orin": "8.7", "jetson-xavier-nx": "7.2",
    "gpu-turing": "7.5", "gpu-ampere": "8.0", "gpu-ada": "8.9", "gpu-hopper": "9.0",
}


def one_line(e: pytest.ExceptionInfo) -> str:
    text = str(e.value)
    assert "\n" not in text, text
    return text


def test_every_required_profile_is_shipped():
    assert REQUIRED <= set(shipped_targets())


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_shipped_target_parses_and_cites_sources(name):
    path = shipped_targets()[name]
    target = load_target(path)
    assert target.name == name == path.stem
    assert target.build.precisions and set(target.build.precisions) <= {"int8", "fp16", "fp32"}
    assert target.device.compute_capability == COMPUTE_CAPABILITY.get(name)
    assert (target.backend.name == "trt") == (name in COMPUTE_CAPABILITY)
    text = path.read_text()
    assert "# Sources" in text
    assert name not in COMPUTE_CAPABILITY or "https://" in text  # device facts cite a source
    assert target.from_dict(_toml(path), source=str(path)) == target


def _toml(path):
    import tomllib

    return tomllib.loads(path.read_text())


def test_jetpack_62_profiles_pin_tensorrt_103():
    for name in ("jetson-orin-nano", "jetson-agx-orin"):
        backend = load_target(shipped_targets()[name]).backend
        assert backend.accepts_tensorrt("10.3.0.30")
        assert not backend.accepts_tensorrt("10.7.0") and not backend.accepts_tensorrt("8.6.2")


def _user_toml(tmp_path, old: str, new: str):
    src = shipped_targets()["jetson-orin-nano"].read_text()
    assert old in src
    path = tmp_path / "mine.toml"
    path.write_text(src.replace(old, new))
    return path


def test_unknown_key_lists_the_allowed_ones(tmp_path):
    path = _user_toml(tmp_path, "dla_cores = 0", "dla_cores = 0\ntensor_cores = 32")
    with pytest.raises(ConfigError) as e:
        load_target(path)
    msg = one_line(e)
    assert "'tensor_cores'" in msg and "compute_capability" in msg and "[device]" in msg and str(path) in msg


def test_unknown_top_level_section(tmp_path):
    path = _user_toml(tmp_path, "[bench]", "[benchmark]")
    with pytest.raises(ConfigError) as e:
        load_target(path)
    assert "'benchmark'" in one_line(e) and "bench" in one_line(e)


def test_wrong_type_and_bad_value_are_one_line(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_target(_user_toml(tmp_path, "memory_gb = 8", 'memory_gb = "8"'))
    assert "memory_gb" in one_line(e) and "int" in one_line(e)
    with pytest.raises(ConfigError) as e:
        load_target(_user_toml(tmp_path, '"int8", "fp16", "fp32"', '"int4", "fp32"'))
    assert "'int4'" in one_line(e) and "int8, fp16, fp32" in one_line(e)
    with pytest.raises(ConfigError) as e:
        load_target(_user_toml(tmp_path, "batch = [1, 1, 8]", "batch = [8, 1, 1]"))
    assert "min <= opt <= max" in one_line(e)


def test_unknown_target_lists_the_known_ones():
    with pytest.raises(ConfigError) as e:
        resolve_target("jetson-nano-2gb")
    msg = one_line(e)
    assert "'jetson-nano-2gb'" in msg and "jetson-orin-nano" in msg and "cpu-x86_64" in msg and "families" in msg


def test_unsupported_precision_is_one_line():
    target, _ = resolve_target("cpu-x86_64")
    assert target.check_precision("int8") == "int8"
    with pytest.raises(ConfigError) as e:
        target.check_precision("fp16")
    assert "cpu-x86_64" in one_line(e) and "'fp16'" in one_line(e) and "int8, fp32" in one_line(e)


@pytest.mark.parametrize(
    ("arch", "flags", "expected"),
    [
        ("x86_64", {"avx2", "avx512f", "avx512_vnni"}, "cpu-x86_64-vnni"),
        ("x86_64", {"avx2"}, "cpu-x86_64"),
        ("aarch64", {"asimd"}, "cpu-arm64"),
    ],
)
def test_cpu_family_follows_this_machine(arch, flags, expected):
    target, note = resolve_target("cpu", facts=MachineFacts(arch, frozenset(flags)))
    assert target.name == expected
    assert note.startswith("target 'cpu' resolved to " + expected)


@pytest.mark.parametrize("family", sorted(FAMILY_DEFAULTS))
def test_family_names_resolve_to_the_stated_default(family):
    target, note = resolve_target(family)
    assert target.name == FAMILY_DEFAULTS[family] and target.family == family
    assert FAMILY_DEFAULTS[family] in note


def test_a_user_toml_path_works_where_a_name_does(tmp_path):
    path = tmp_path / "orin-nano-4gb.toml"
    shutil.copy(shipped_targets()["jetson-orin-nano"], path)
    path.write_text(path.read_text().replace('name = "jetson-orin-nano"', 'name = "orin-nano-4gb"')
                    .replace("memory_gb = 8", "memory_gb = 4"))
    target, note = resolve_target(str(path))
    assert (target.name, target.device.memory_gb, note) == ("orin-nano-4gb", 4, None)
    with pytest.raises(ConfigError) as e:
        resolve_target(str(tmp_path / "missing.toml"))
    assert "missing.toml" in one_line(e)
