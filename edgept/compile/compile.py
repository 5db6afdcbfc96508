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
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from edgept.backends import BACKENDS, trt
from edgept.bundle import MANIFEST, Bundle, BundleWriter
from edgept.compile import measure
from edgept.compile.config import CompileConfig
from edgept.errors import ConfigError, EdgeptError, ParityError
from edgept.resources import shipped
from edgept.runtime.engines import cuda_device
from edgept.runtime.tensorrt import import_tensorrt
from edgept.targets import PRECISIONS, Target, resolve_target

if TYPE_CHECKING:
    from edgept.quantize import QuantizeConfig

Progress = Callable[[str], None]
DEFAULT_CALIBRATION = "rt-polarity-256"  # under the shipped calibration/ (edgept.resources)
MAX_UNKNOWN = 0.05  # above this share of [UNK] tokens, the shipped English set does not fit the vocabulary
# Mean pooled-output cosine vs fp32 on fresh random inputs below which a compiled bundle is refused:
# a gate against broken graphs, not a quality claim (real-data agreement is recorded beside it).
MIN_COSINE = {"int8": 0.95, "fp16": 0.999}


def available_precisions() -> tuple[str, ...]:
    """Precisions this edgept can produce: int8 (the target's preset), fp16 (with the guard), fp32."""
    return PRECISIONS


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


def quantize_config(
    target: Target, precision: str, seed: int = 0, keep_reference: bool = False, embeddings: str | None = None
) -> QuantizeConfig | None:
    """The QuantizeConfig `precision` means on `target` (None for fp32), its int8 embedding tables
    stored as `embeddings` says when given; a TensorRT target must get standard ONNX ops (Q/DQ,
    casts), so an ONNX Runtime preset there is a one-line ConfigError."""
    from edgept.quantize.presets import FP16, STANDARD_OP_MODES, preset

    if precision == "fp32":
        return None
    config = FP16 if precision == "fp16" else preset(target.quantize.preset)
    if target.uses_tensorrt and config.mode not in STANDARD_OP_MODES:
        raise ConfigError(
            f"target {target.name} builds TensorRT engines but its [quantize] preset {target.quantize.preset!r} "
            f"makes ONNX Runtime contrib ops; set preset = \"trt-int8-qdq\" in {target.source or target.name}"
        )
    if embeddings is not None and precision == "int8":
        config = config.replace(embeddings=embeddings)
    return config.replace(seed=seed, keep_reference=keep_reference)


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

    default = shipped("calibration") / DEFAULT_CALIBRATION
    share = unknown_share(bundle, read_texts(default / "texts.jsonl"))
    if share is not None and share <= MAX_UNKNOWN:
        return default
    why = "it is not a text model" if share is None else (
        f"{share:.0%} of its tokens are unknown to the bundle's vocabulary (> {MAX_UNKNOWN:.0%})")
    raise ConfigError(
        f"{what} needs calibration data and the shipped {DEFAULT_CALIBRATION} does not fit {bundle.path} "
        f"({why}); pass --calibration DIR, made with `edgept calibration make --data YOUR.jsonl -o DIR`"
    )


def _quantized(
    bundle: Bundle, workdir: Path, target: Target, cfg: CompileConfig, precision: str,
    calibration: str | os.PathLike | None, progress: Progress | None,
) -> tuple[Bundle, dict | None]:
    """`bundle` quantized for `precision` on `target` (as is for fp32), and its agreement with fp32."""
    from edgept.quantize import quantize

    qcfg = quantize_config(target, precision, cfg.seed, cfg.keep_reference, cfg.embeddings)
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


def _open_source(source: str | os.PathLike, workdir: Path, seed: int, progress: Progress | None) -> Bundle:
    """A bundle as is, or a model/checkpoint exported into `workdir` first."""
    path = Path(source)
    if (path / MANIFEST).is_file():
        return Bundle.open(path)
    from edgept.export import ExportConfig, export
    from edgept.zoo import resolve

    return export(resolve(source), workdir / "source.edgept", ExportConfig(seed=seed), progress=progress)


def _check_source(bundle: Bundle, target: Target) -> None:
    done = (bundle.manifest.get("compiled") or {}).get("target")
    if target.uses_tensorrt and done and (bundle.manifest.get("compiled") or {}).get("backend") == "ort":
        # ONNX Runtime's offline graph holds its own fused ops (com.microsoft), which TensorRT cannot parse.
        raise ConfigError(
            f"{bundle.path} was compiled for {done} (ONNX Runtime graph); compile for {target.name} from the "
            "exported bundle or the model instead"
        )


def compile_for_target(
    source: str | os.PathLike,
    dest: str | os.PathLike,
    config: CompileConfig,
    *,
    calibration: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> Bundle:
    """Compile a bundle (or a model, exported first) for `config.target` into a new bundle at `dest`.

    int8/fp16 quantize first, calibrated on `calibration` (a set made by `edgept calibration make`;
    None: the shipped rt-polarity-256 when it fits a text model, else a ConfigError asking for one).
    The compile pass records which profile the target named (`resolved_target`) and, for a family
    name, why that one (`target_note`).
    """
    target, note = resolve_target(config.target)
    available = available_precisions()
    precision = choose_precision(target, config.precision, available)
    Path(dest).absolute().parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=Path(dest).absolute().parent, prefix=".edgept-compile-") as tmp:
        bundle = _open_source(source, Path(tmp), config.seed, progress)
        _check_source(bundle, target)
        recorded = {**config.to_dict(), "resolved_target": target.name, "target_note": note,
                    "target_profile": target.to_dict()}
        if not measure.measures(target, config, available):
            _compile_one(bundle, dest, Path(tmp), target, config, precision, calibration, recorded, progress, overwrite)
            return Bundle.open(dest)
        built: dict[str, Path] = {}
        rejected: dict[str, str] = {}
        for candidate in ("int8", "fp32"):
            workdir = Path(tmp) / candidate
            workdir.mkdir()
            try:
                built[candidate] = _compile_one(bundle, workdir / "compiled.edgept", workdir, target, config, candidate,
                                                calibration, recorded, progress).path
            except (ParityError, ConfigError) as e:
                if candidate == "fp32":
                    raise
                rejected[candidate] = str(e)
        if progress:
            progress("timing int8 against fp32 on this machine")
        choice = measure.choose(built, rejected, target, config)
        with BundleWriter(dest, overwrite=overwrite, base=built[choice["chosen"]]) as w:
            w.manifest["passes"][-1]["metrics"]["precision_choice"] = choice
    return Bundle.open(dest)


def _compile_one(
    bundle: Bundle, dest: str | os.PathLike, workdir: Path, target: Target, config: CompileConfig, precision: str,
    calibration: str | os.PathLike | None, recorded: dict, progress: Progress | None, overwrite: bool = False,
) -> Bundle:
    """`bundle` quantized for `precision` (checked against fp32) and built by the target's backend into `dest`."""
    bundle, vs_fp32 = _quantized(bundle, workdir, target, config, precision, calibration, progress)
    if progress:
        progress(f"{precision}: " + ("optimising the graph" if not target.uses_tensorrt else "planning the TensorRT engine"))
    with BundleWriter(dest, overwrite=overwrite, base=bundle) as w:
        build = BACKENDS.get(target.backend.name)
        metrics = build(bundle, w, target, precision, tolerance=config.tolerance, seed=config.seed,
                        sequence=config.sequence)
        if vs_fp32 is not None:
            metrics["vs_fp32"] = vs_fp32
        if target.device.accelerator == "cpu":
            metrics["cpu"] = measure.cpu_facts()
        w.add_pass("compile", {**recorded, "precision": precision}, metrics)
    return Bundle.open(dest)


def build_engines(path: str | os.PathLike, target: str | None = None) -> Bundle:
    """Build the bundle's pending TensorRT engine on this machine (TensorRT and a GPU needed) and
    record TensorRT version and compute capability in the manifest; the bundle is replaced atomically."""
    bundle = Bundle.open(path)
    engines = bundle.manifest.get("engines") or {}
    if not engines:
        raise ConfigError(f"{path} holds no engine plan; make one with `edgept compile ... --target <trt target>`")
    if target is None and len(engines) == 1:
        target = next(iter(engines))
    if target not in engines:
        raise ConfigError(f"{path} has engine plans for {', '.join(sorted(engines))}; pass --target with one of them")
    import_tensorrt()  # fail with the install hint before touching anything
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


__all__ = ["available_precisions", "build_engines", "choose_precision", "compile_for_target", "quantize_config"]
