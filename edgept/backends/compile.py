"""`compile_for_target(model_or_bundle, dest, CompileConfig(target=...))`: what a named device needs.

int8 and fp16 first go through `edgept.quantize` (int8: the target's `[quantize] preset`; fp16: the
fp16 guard), scored against the fp32 bundle and refused below `min_cosine`. Then:
CPU targets (backend `ort`): the graph optimised offline, checked against its (quantized) source.
TensorRT targets: the explicit-precision ONNX (standard Q/DQ or casts only), the engine plan in the
manifest, and `build_engine.sh`; the engine itself is built on the device (`build_engines`, i.e.
`edgept build-engine`), since engines are not portable.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from edgept.backends import ort as ort_backend
from edgept.backends import trt
from edgept.bundle import MANIFEST, Bundle, BundleWriter
from edgept.configs import DictConfig
from edgept.errors import ConfigError, EdgeptError, ParityError
from edgept.fileio import atomic_write_text
from edgept.targets import PRECISIONS, Target, resolve_target

if TYPE_CHECKING:
    from edgept.quantize import QuantizeConfig

Progress = Callable[[str], None]
DEFAULT_CALIBRATION = Path(__file__).resolve().parents[2] / "calibration" / "rt-polarity-256"
MAX_UNKNOWN = 0.05  # above this share of [UNK] tokens, the shipped English set does not fit the vocabulary
# Mean pooled-output cosine vs fp32 on fresh random inputs below which a compiled bundle is refused:
# a gate against broken graphs, not a quality claim (real-data agreement is recorded beside it).
MIN_COSINE = {"int8": 0.95, "fp16": 0.999}


def available_precisions() -> tuple[str, ...]:
    """Precisions this edgept can produce: int8 (the target's preset), fp16 (with the guard), fp32."""
    return PRECISIONS


@dataclass(frozen=True, kw_only=True)
class CompileConfig(DictConfig):
    """How to compile. `target`: a shipped name, a family (`jetson`, `gpu`, `cpu`) or a TOML path.
    `precision`: auto (the target's most preferred one this edgept can produce) or an explicit one.
    `sequence`: (min, opt, max) for the TensorRT profile, e.g. from `trt.sequence_profile(lengths)`;
    None uses the target's [shapes]. `tolerance`: max |optimised - unoptimised| graph on fresh random
    inputs (CPU targets). `min_cosine`: least output cosine (edgept.quantize.compare) of an int8/fp16 bundle vs fp32
    on fresh random inputs (None: MIN_COSINE for the precision)."""

    kind: ClassVar[str] = "compile config"

    target: str
    precision: str = "auto"
    sequence: tuple[int, int, int] | None = None
    tolerance: float = 1e-4
    min_cosine: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        allowed = ("auto", *PRECISIONS)
        if self.precision not in allowed:
            raise ConfigError(f"precision {self.precision!r} is not one of: {', '.join(allowed)}")
        if not self.tolerance > 0:
            raise ConfigError(f"tolerance must be positive, got {self.tolerance}")
        if self.min_cosine is not None and not -1.0 <= self.min_cosine <= 1.0:
            raise ConfigError(f"--min-cosine must be in [-1, 1] (e.g. 0.98), got {self.min_cosine}")
        if self.sequence is not None:
            object.__setattr__(self, "sequence", tuple(int(s) for s in self.sequence))
            if len(self.sequence) != 3 or not 1 <= self.sequence[0] <= self.sequence[1] <= self.sequence[2]:
                raise ConfigError(f"sequence must be (min, opt, max) with 1 <= min <= opt <= max, got {self.sequence}")


def choose_precision(target: Target, requested: str, available: tuple[str, ...]) -> str:
    """`requested` checked against the target and this edgept, or for auto the target's first available one."""
    if requested == "auto":
        for p in target.build.precisions:
            if p in available:
                return p
        raise ConfigError(
            f"target {target.name} allows {', '.join(target.build.precisions)} but this edgept produces only "
            f"{', '.join(available)}"
        )
    target.check_precision(requested)
    if requested not in available:
        raise ConfigError(
            f"precision {requested!r} is not one this edgept produces; available: {', '.join(available)} (or auto)"
        )
    return requested


def quantize_config(target: Target, precision: str, seed: int = 0) -> QuantizeConfig | None:
    """The QuantizeConfig `precision` means on `target` (None for fp32); a TensorRT target must get
    standard ONNX ops (Q/DQ, casts), so an ONNX Runtime preset there is a one-line ConfigError."""
    from edgept.quantize.presets import FP16, STANDARD_OP_MODES, preset

    if precision == "fp32":
        return None
    config = FP16 if precision == "fp16" else preset(target.quantize.preset)
    if target.uses_tensorrt and config.mode not in STANDARD_OP_MODES:
        raise ConfigError(
            f"target {target.name} builds TensorRT engines but its [quantize] preset {target.quantize.preset!r} "
            f"makes ONNX Runtime contrib ops; set preset = \"trt-int8-qdq\" in {target.source or target.name}"
        )
    return config.replace(seed=seed)


def unknown_share(bundle: Bundle, texts: list[str]) -> float | None:
    """The share of real tokens of `texts` the bundle's tokenizer maps to its unknown token
    (None: the bundle has no text tokenizer)."""
    from edgept.preprocess import TextPreprocessor, from_manifest

    pre = from_manifest(bundle.preprocess, bundle.path) if bundle.preprocess else None
    if not isinstance(pre, TextPreprocessor):
        return None
    unk = getattr(pre.tokenizer.model, "unk_token", None)
    unk_id = pre.tokenizer.token_to_id(unk) if unk else None
    if unk_id is None:
        return 0.0
    feeds = pre(texts)
    real = feeds["attention_mask"].astype(bool)
    return float((feeds["input_ids"][real] == unk_id).mean())


def default_calibration(bundle: Bundle, what: str) -> Path:
    """The shipped calibration set when it fits `bundle` (a text model whose vocabulary knows the
    words); else a one-line ConfigError asking for `--calibration`."""
    from edgept.quantize.calibration import read_texts

    share = unknown_share(bundle, read_texts(DEFAULT_CALIBRATION / "texts.jsonl"))
    if share is not None and share <= MAX_UNKNOWN:
        return DEFAULT_CALIBRATION
    why = "it is not a text model" if share is None else (
        f"{share:.0%} of its tokens are unknown to the bundle's vocabulary (> {MAX_UNKNOWN:.0%})")
    raise ConfigError(
        f"{what} needs calibration data and the shipped {DEFAULT_CALIBRATION.name} does not fit {bundle.path} "
        f"({why}); pass --calibration DIR, made with `edgept calibration make --data YOUR.jsonl -o DIR`"
    )


def _quantized(
    bundle: Bundle, workdir: Path, target: Target, cfg: CompileConfig, precision: str,
    calibration: str | os.PathLike | None, progress: Progress | None,
) -> tuple[Bundle, dict | None]:
    """`bundle` quantized for `precision` on `target` (as is for fp32), and its agreement with fp32."""
    from edgept.quantize import quantize

    qcfg = quantize_config(target, precision, cfg.seed)
    if qcfg is None:
        return bundle, None
    what = f"{precision} for {target.name} ({qcfg.mode})"
    if calibration is None:
        try:
            calibration = default_calibration(bundle, what)
        except ConfigError:
            if qcfg.mode != "int8-dynamic":
                raise
            # int8-dynamic needs no calibration; the shipped set would only have scored it on real text.
    out = quantize(bundle, workdir / "quantized.edgept", qcfg, calibration=calibration, progress=progress)
    metrics = out.passes[-1]["metrics"]
    floor = cfg.min_cosine if cfg.min_cosine is not None else MIN_COSINE[precision]
    got = metrics["fresh_random"]["cosine"]
    if not got >= floor:
        raise ParityError(
            f"{what}: output cosine vs fp32 on fresh random inputs is {got:.4f}, below {floor:g}; "
            "check the calibration set, or pass a lower --min-cosine if you accept it"
        )
    parity_keys = ("fresh_random", "calibration")
    return out, {"mode": qcfg.mode, "min_cosine": floor, **{k: metrics[k] for k in parity_keys if k in metrics}}


def _open_source(source: str | os.PathLike, workdir: Path, seed: int) -> Bundle:
    """A bundle as is, or a model/checkpoint exported into `workdir` first."""
    path = Path(source)
    if (path / MANIFEST).is_file():
        return Bundle.open(path)
    from edgept.export import ExportConfig, export
    from edgept.zoo import resolve

    return export(resolve(source), workdir / "source.edgept", ExportConfig(seed=seed))


def parity(reference: Path, candidate: Path, bundle: Bundle, seed: int) -> float:
    """Max |candidate - reference| over every output, both in ORT CPU, on seeded random inputs."""
    import onnxruntime as ort

    from edgept.bench.feeds import is_image, make_feeds

    seq = None if is_image(bundle.inputs) else min(37, int(bundle.limits.get("max_sequence") or 37))
    feeds = make_feeds(bundle.inputs, bundle.limits, 2, seq, np.random.default_rng(seed + 7))
    outs = []
    for model in (reference, candidate):
        sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        wanted = {i.name for i in sess.get_inputs()}
        outs.append(sess.run(None, {k: v for k, v in feeds.items() if k in wanted}))
    return max(float(np.max(np.abs(a.astype(np.float64) - b))) for a, b in zip(*outs, strict=True))


def _compile_ort(bundle: Bundle, w: BundleWriter, target: Target, cfg: CompileConfig, precision: str) -> dict:
    import onnxruntime as ort

    done = ort_backend.optimize_offline(bundle.model_path, w.path("model.onnx"), target)
    diff = parity(bundle.model_path, w.dir / "model.onnx", bundle, cfg.seed)
    if not diff <= cfg.tolerance:  # `not <=` also catches NaN
        raise ParityError(
            f"the offline-optimised graph differs from {bundle.path} by {diff:.3g} (tolerance {cfg.tolerance:g}); "
            "compile with a looser --tolerance only if you accept that"
        )
    w.manifest["compiled"] = {
        "target": target.name,
        "backend": "ort",
        "precision": precision,
        "providers": ort_backend.providers_for(target, ort.get_available_providers()),
    }
    return {
        "max_abs_diff": diff,
        "tolerance": cfg.tolerance,
        "graph_optimization": done,
        "load_seconds": ort_backend.load_seconds(w.dir / "model.onnx", target),
    }


def _tensorrt_range(target: Target) -> str:
    low, high = target.backend.tensorrt_min, target.backend.tensorrt_max
    return f"{low}" if low == high else f">= {low}" + (f", <= {high}" if high else "")


def _check_source(bundle: Bundle, target: Target) -> None:
    done = (bundle.manifest.get("compiled") or {}).get("target")
    if target.uses_tensorrt and done and (bundle.manifest.get("compiled") or {}).get("backend") == "ort":
        # ONNX Runtime's offline graph holds its own fused ops (com.microsoft), which TensorRT cannot parse.
        raise ConfigError(
            f"{bundle.path} was compiled for {done} (ONNX Runtime graph); compile for {target.name} from the "
            "exported bundle or the model instead"
        )


def _compile_trt(bundle: Bundle, w: BundleWriter, target: Target, cfg: CompileConfig, precision: str) -> dict:
    plan = trt.plan_engine(bundle.inputs, bundle.limits, target, precision, sequence=cfg.sequence)
    script = w.path(trt.SCRIPT)
    atomic_write_text(script, trt.build_script(plan, _tensorrt_range(target)))
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    engines = dict(w.manifest.get("engines") or {})
    engines[target.name] = {
        "status": trt.TO_BUILD,
        "file": plan.engine,
        "script": trt.SCRIPT,
        "tensorrt_range": _tensorrt_range(target),
        "compute_capability": target.device.compute_capability,
        "plan": plan.to_dict(),
    }
    w.manifest["engines"] = engines
    w.manifest["compiled"] = {"target": target.name, "backend": "trt", "precision": precision}
    return {"engine": trt.TO_BUILD, "profiles": [p["name"] for p in plan.to_dict()["profiles"]]}


def compile_for_target(
    source: str | os.PathLike,
    dest: str | os.PathLike,
    config: CompileConfig,
    *,
    calibration: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> tuple[Bundle, str | None]:
    """Compile a bundle (or a model, exported first) for `config.target` into a new bundle at `dest`.

    int8/fp16 quantize first, calibrated on `calibration` (a set made by `edgept calibration make`;
    None: the shipped rt-polarity-256 when it fits a text model, else a ConfigError asking for one).
    Returns (bundle, note): the note says which profile a family name resolved to (None otherwise).
    """
    target, note = resolve_target(config.target)
    precision = choose_precision(target, config.precision, available_precisions())
    Path(dest).absolute().parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=Path(dest).absolute().parent, prefix=".edgept-compile-") as tmp:
        bundle = _open_source(source, Path(tmp), config.seed)
        _check_source(bundle, target)
        bundle, vs_fp32 = _quantized(bundle, Path(tmp), target, config, precision, calibration, progress)
        if progress:
            progress("optimising the graph" if not target.uses_tensorrt else "planning the TensorRT engine")
        with BundleWriter(dest, overwrite=overwrite, base=bundle) as w:
            compile_fn = _compile_trt if target.uses_tensorrt else _compile_ort
            metrics = compile_fn(bundle, w, target, config, precision)
            if vs_fp32 is not None:
                metrics["vs_fp32"] = vs_fp32
            w.add_pass(
                "compile",
                {**config.to_dict(), "resolved_target": target.name, "precision": precision,
                 "target_profile": target.to_dict()},
                metrics,
            )
    return Bundle.open(dest), note


def build_engines(path: str | os.PathLike, target: str | None = None) -> Bundle:
    """Build the bundle's pending TensorRT engine on this machine (TensorRT and a GPU needed) and
    record TensorRT version and compute capability in the manifest; the bundle is replaced atomically."""
    from edgept.runtime.engines import cuda_device

    bundle = Bundle.open(path)
    engines = bundle.manifest.get("engines") or {}
    if not engines:
        raise ConfigError(f"{path} holds no engine plan; make one with `edgept compile ... --target <trt target>`")
    if target is None and len(engines) == 1:
        target = next(iter(engines))
    if target not in engines:
        raise ConfigError(f"{path} has engine plans for {', '.join(sorted(engines))}; pass --target with one of them")
    trt.import_tensorrt()  # fail with the install hint before touching anything
    cc, gpu = cuda_device()
    if cc is None:
        raise EdgeptError("no CUDA GPU found (libcuda could not be loaded or reports no device); run this on the device")
    plan = trt.EnginePlan.from_dict(engines[target]["plan"])
    with BundleWriter(bundle.path, overwrite=True, base=bundle) as w:
        facts = trt.build_engine(plan, bundle.path, w.dir)
        entry = {
            **engines[target],
            "status": "built",
            "tensorrt": facts["tensorrt"],
            "compute_capability": cc,
            "gpu": gpu,
            "built": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        w.manifest["engines"] = {**engines, target: entry}
        w.add_pass("build-engine", {"target": target, "plan": plan.to_dict()}, {
            "tensorrt": facts["tensorrt"], "compute_capability": cc, "gpu": gpu, "engine_bytes": facts["bytes"]})
    return Bundle.open(bundle.path)


__all__ = ["CompileConfig", "available_precisions", "build_engines", "choose_precision", "compile_for_target"]
