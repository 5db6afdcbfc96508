"""Target device profiles: `targets/*.toml` -> a frozen `Target` (schema in targets/README.md).

A target says what a device is (`[device]`), which backend runs on it (`[backend]`), how to build
for it (`[build]`, `[quantize]`), which input shapes to optimise for (`[shapes]`) and how to bench
it (`[bench]`). Device differences live here as data, never as if/elif on hardware names.
Standard library only: the runtime and the CLI's `targets` commands read targets without torch.
"""

from __future__ import annotations

import os
import platform
import tomllib
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any, get_type_hints

from edgept.errors import ConfigError
from edgept.resources import shipped

PRECISIONS = ("int8", "fp16", "fp32")
# What a family name alone means; `cpu` is special-cased to this machine (see resolve_target).
FAMILY_DEFAULTS = {"jetson": "jetson-orin-nano", "gpu": "gpu-ampere"}
CPUINFO = Path("/proc/cpuinfo")


def _version_tuple(v: str, where: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in v.split("."))
    except ValueError:
        raise ConfigError(f"{where}: {v!r} is not a version like '10.3'") from None


@dataclass(frozen=True, kw_only=True)
class DeviceSpec:
    """What the device is. `compute_capability` ("8.7") and `memory_gb` only for GPUs."""

    arch: str
    accelerator: str
    cpu_features: tuple[str, ...] = ()
    gpu: str | None = None
    compute_capability: str | None = None
    memory_gb: int | None = None
    dla_cores: int = 0
    jetpack: str | None = None

    def check(self, where: str) -> None:
        _one_of(self.arch, ("x86_64", "aarch64"), f"{where} [device] arch")
        _one_of(self.accelerator, ("cpu", "gpu"), f"{where} [device] accelerator")
        if self.accelerator == "gpu" and self.compute_capability is None:
            raise ConfigError(f"{where} [device]: a gpu target needs compute_capability, e.g. \"8.7\"")
        if self.compute_capability is not None:
            _version_tuple(self.compute_capability, f"{where} [device] compute_capability")


@dataclass(frozen=True, kw_only=True)
class BackendSpec:
    """Which engine runs the model: `ort` (ONNX Runtime) or `trt` (TensorRT), and what to fall back to."""

    name: str
    fallback: str = "none"
    ort_providers: tuple[str, ...] = ("CPUExecutionProvider",)
    tensorrt_min: str | None = None
    tensorrt_max: str | None = None

    def check(self, where: str) -> None:
        _one_of(self.name, ("ort", "trt"), f"{where} [backend] name")
        _one_of(self.fallback, ("ort", "none"), f"{where} [backend] fallback")
        if self.name == "trt" and self.tensorrt_min is None:
            raise ConfigError(f"{where} [backend]: a trt target needs tensorrt_min, e.g. \"10.3\"")
        for key in ("tensorrt_min", "tensorrt_max"):
            if getattr(self, key) is not None:
                _version_tuple(getattr(self, key), f"{where} [backend] {key}")

    def accepts_tensorrt(self, version: str) -> bool:
        """Whether TensorRT `version` ("10.3.0.30") lies in [tensorrt_min, tensorrt_max] (major.minor)."""
        have = _version_tuple(version, "tensorrt version")[:2]
        low = _version_tuple(self.tensorrt_min or "0", "tensorrt_min")[:2]
        high = _version_tuple(self.tensorrt_max, "tensorrt_max")[:2] if self.tensorrt_max else None
        return have >= low and (high is None or have <= high)


@dataclass(frozen=True, kw_only=True)
class BuildSpec:
    """How to build: allowed precisions in order of preference, TensorRT workspace and timing cache."""

    precisions: tuple[str, ...] = ("fp32",)
    workspace_mb: int = 1024
    opset: int = 17
    timing_cache: bool = True
    strongly_typed: bool = True

    def check(self, where: str) -> None:
        if not self.precisions:
            raise ConfigError(f"{where} [build] precisions is empty; allowed: {', '.join(PRECISIONS)}")
        for p in self.precisions:
            _one_of(p, PRECISIONS, f"{where} [build] precisions")
        if self.workspace_mb < 1:
            raise ConfigError(f"{where} [build] workspace_mb must be >= 1, got {self.workspace_mb}")


@dataclass(frozen=True, kw_only=True)
class QuantizeSpec:
    """The int8 preset compile applies: a name in edgept.quantize.presets (fp16 always uses the fp16 guard)."""

    preset: str = "ort-int8-dynamic"


@dataclass(frozen=True, kw_only=True)
class ShapeSpec:
    """Optimization profile ranges as [min, opt, max]: batch, sequence (text), image side (vision)."""

    batch: tuple[int, ...] = (1, 1, 8)
    sequence: tuple[int, ...] = (1, 128, 512)
    image: tuple[int, ...] = (224, 224, 224)

    def check(self, where: str) -> None:
        for key in ("batch", "sequence", "image"):
            v = getattr(self, key)
            if len(v) != 3 or not (1 <= v[0] <= v[1] <= v[2]):
                raise ConfigError(
                    f"{where} [shapes] {key} = {list(v)}; expected [min, opt, max] with 1 <= min <= opt <= max"
                )


@dataclass(frozen=True, kw_only=True)
class BenchSpec:
    """Default `edgept bench` shapes for this device; threads 0 = every usable CPU."""

    batches: tuple[int, ...] = (1, 8)
    seqs: tuple[int, ...] = (128,)
    threads: int = 0


SECTIONS = {
    "device": DeviceSpec,
    "backend": BackendSpec,
    "build": BuildSpec,
    "quantize": QuantizeSpec,
    "shapes": ShapeSpec,
    "bench": BenchSpec,
}
_TOP_KEYS = ("name", "description", "family", *SECTIONS)


@dataclass(frozen=True, kw_only=True)
class Target:
    """One device profile. Build with `load_target(path)` or `resolve_target(name)`."""

    name: str
    description: str
    family: str
    device: DeviceSpec
    backend: BackendSpec
    build: BuildSpec
    quantize: QuantizeSpec = QuantizeSpec()
    shapes: ShapeSpec = ShapeSpec()
    bench: BenchSpec = BenchSpec()
    source: str = ""

    def __post_init__(self) -> None:
        where = self.source or self.name
        for section in (self.device, self.backend, self.build, self.shapes):
            section.check(where)

    @property
    def uses_tensorrt(self) -> bool:
        """True when the target's engine is a TensorRT engine built on the device."""
        return self.backend.name == "trt"

    def check_precision(self, precision: str) -> str:
        """`precision` if this target allows it; else a one-line ConfigError with the allowed set."""
        if precision not in self.build.precisions:
            raise ConfigError(
                f"target {self.name} does not support precision {precision!r}; allowed: "
                f"{', '.join(self.build.precisions)} (or auto)"
            )
        return precision

    def to_dict(self) -> dict[str, Any]:
        """The TOML structure as a dict (tuples as lists), plus `source`."""
        return _lists(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "") -> Target:
        """Validate a parsed TOML document; unknown or mistyped keys are one-line ConfigErrors."""
        where = source or str(data.get("name", "target"))
        _no_unknown(data, _TOP_KEYS, where, "top level")
        top = {k: _typed(data.get(k), str, f"{where} {k}") for k in ("name", "description", "family")}
        for k, v in top.items():
            if v is None:
                raise ConfigError(f"{where}: missing required key {k!r} (a string)")
        for required in ("device", "backend"):
            if required not in data:
                raise ConfigError(f"{where}: the [{required}] section is missing; see targets/README.md")
        sections = {k: _section(spec, data.get(k, {}), where, k) for k, spec in SECTIONS.items()}
        return cls(**top, **sections, source=source)


def _lists(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_lists(v) for v in value]
    return value


def _one_of(value: str, allowed: tuple[str, ...], where: str) -> None:
    if value not in allowed:
        raise ConfigError(f"{where} = {value!r}; allowed: {', '.join(allowed)}")


def _no_unknown(data: dict[str, Any], allowed: tuple[str, ...] | list[str], where: str, section: str) -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ConfigError(
            f"{where} {section}: unknown key {unknown[0]!r}; allowed: {', '.join(allowed)}"
        )


def _typed(value: Any, kind: type, where: str) -> Any:
    if value is None:
        return None
    # bool is an int in Python; a TOML `true` where a number belongs is still a mistake.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{where} = {value!r}; expected {kind.__name__}")
    return value


def _section(cls: type, data: Any, where: str, name: str) -> Any:
    """Build section dataclass `cls` from a TOML table, checking keys and value types."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: [{name}] must be a table, got {data!r}")
    names = [f.name for f in fields(cls)]
    _no_unknown(data, names, where, f"[{name}]")
    missing = [f.name for f in fields(cls) if f.default is MISSING and f.name not in data]
    if missing:
        raise ConfigError(f"{where} [{name}]: missing required key {missing[0]!r}; see targets/README.md")
    hints = get_type_hints(cls)
    values = {}
    for key, value in data.items():
        hint, at = hints[key], f"{where} [{name}] {key}"
        if getattr(hint, "__origin__", None) is tuple:
            item = hint.__args__[0]
            if not isinstance(value, list):
                raise ConfigError(f"{at} = {value!r}; expected a list of {item.__name__}")
            values[key] = tuple(_typed(v, item, at) for v in value)
        else:
            kinds = [a for a in getattr(hint, "__args__", (hint,)) if a is not type(None)]
            values[key] = _typed(value, kinds[0], at)
    return cls(**values)


def load_target(path: str | os.PathLike) -> Target:
    """Read and validate one target TOML file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"cannot read target file {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path} is not valid TOML: {e}") from None
    return Target.from_dict(data, source=str(path))


def shipped_targets(directory: Path | None = None) -> dict[str, Path]:
    """{name: path} of the profiles shipped in `targets/` (the file stem is the name)."""
    return {p.stem: p for p in sorted((directory or shipped("targets")).glob("*.toml"))}


@dataclass(frozen=True)
class MachineFacts:
    """What `cpu` resolution looks at: the machine architecture and the CPU flags."""

    arch: str
    cpu_flags: frozenset[str]

    @classmethod
    def probe(cls) -> MachineFacts:
        """This machine's `platform.machine()` and /proc/cpuinfo flags (empty where unreadable)."""
        flags: set[str] = set()
        try:
            for line in CPUINFO.read_text().splitlines():
                if line.startswith(("flags", "Features")) and ":" in line:
                    flags = set(line.split(":", 1)[1].split())
                    break
        except OSError:
            pass
        return cls(platform.machine().lower(), frozenset(flags))


def cpu_profile(facts: MachineFacts) -> tuple[str, str]:
    """(profile name, why) for this machine's CPU."""
    if facts.arch in ("aarch64", "arm64"):
        return "cpu-arm64", f"this machine is {facts.arch}"
    if "avx512_vnni" in facts.cpu_flags:
        return "cpu-x86_64-vnni", "this CPU has AVX-512 VNNI"
    return "cpu-x86_64", f"this CPU is {facts.arch} without AVX-512 VNNI"


def resolve_target(spec: str | os.PathLike, facts: MachineFacts | None = None) -> tuple[Target, str | None]:
    """A target from a shipped name, a family name (`jetson`, `gpu`, `cpu`) or a path to a TOML.

    Returns (target, note): the note says which profile a family name chose and why (None otherwise).
    `facts` overrides this machine's CPU facts (tests; cross-compiling).
    """
    text = str(spec)
    shipped = shipped_targets()
    if text.endswith(".toml") or os.sep in text:
        return load_target(text), None
    if text in shipped:
        return load_target(shipped[text]), None
    if text == "cpu":
        name, why = cpu_profile(facts or MachineFacts.probe())
        return load_target(shipped[name]), f"target 'cpu' resolved to {name} ({why})"
    if text in FAMILY_DEFAULTS:
        name = FAMILY_DEFAULTS[text]
        return load_target(shipped[name]), f"target {text!r} resolved to {name} (the {text} family's default)"
    families = ", ".join(["cpu", *FAMILY_DEFAULTS])
    raise ConfigError(
        f"unknown target {text!r}; known: {', '.join(shipped)}; families: {families}; or a path to a .toml"
    )


__all__ = [
    "FAMILY_DEFAULTS",
    "PRECISIONS",
    "MachineFacts",
    "Target",
    "cpu_profile",
    "load_target",
    "resolve_target",
    "shipped_targets",
]
