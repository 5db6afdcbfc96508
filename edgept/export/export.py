"""`export(model_or_checkpoint, "model.edgept")`: a PyTorch encoder traced to ONNX, checked against
PyTorch on fresh inputs, and written as a bundle with its tokenizer or image preprocessing."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import onnx
import torch
from torch import nn

from edgept.bundle import Bundle, BundleWriter
from edgept.errors import ConfigError, ParityError
from edgept.export.config import ExportConfig
from edgept.export.onnx_export import IOSignature, eval_mode, example_inputs, signature, to_onnx
from edgept.fileio import sha256_file
from edgept.models import BertConfig, EncoderConfig, parameter_breakdown
from edgept.parity import max_abs_diff
from edgept.runtime import ort


def parity(proto: onnx.ModelProto, model: nn.Module, config: EncoderConfig, cfg: ExportConfig) -> dict:
    """Max |ONNX Runtime - PyTorch| of the primary output on seeded random inputs of a new shape."""
    sig = signature(config)
    length = cfg.check_length if isinstance(config, BertConfig) else 3 * config.patch_size
    feeds = example_inputs(sig, config, cfg.check_batch, length, seed=cfg.seed + 1)
    got = ort.run(ort.open_session(proto.SerializeToString()), feeds)[0]
    with eval_mode(model), torch.inference_mode():
        out = model(*(torch.from_numpy(feeds[n]) for n, _, _ in sig.inputs))
    ref = (out.logits if sig.outputs[0][0] == "logits" else out.last_hidden_state).numpy()
    return {
        "max_abs_diff": max_abs_diff([got], [ref]),
        "tolerance": cfg.tolerance,
        "inputs": {k: list(v.shape) for k, v in feeds.items()},
        "reference": "torch fp32 eager",
    }


def _limits(config: EncoderConfig) -> dict:
    if isinstance(config, BertConfig):
        return {"vocab_size": config.vocab_size, "type_vocab_size": config.type_vocab_size, "max_sequence": config.max_position}
    return {"image_size": list(config.image_size), "patch_size": config.patch_size, "channels": config.num_channels}


def _preprocess(config: EncoderConfig, source: Path | None, writer: BundleWriter, cfg: ExportConfig) -> dict | None:
    """Save the source's tokenizer / image pre-processing into the bundle, if the source has one."""
    from edgept.preprocess import ImagePreprocessor, TextPreprocessor

    if isinstance(config, BertConfig):
        if source is None or not ((source / "tokenizer.json").exists() or (source / "vocab.txt").exists()):
            return None
        max_length = min(cfg.max_length, config.max_position)
        tok = TextPreprocessor.from_checkpoint(source, max_length=max_length)
        if tok.vocab_size > config.vocab_size:
            raise ConfigError(
                f"the tokenizer in {source} has {tok.vocab_size} tokens but the model's vocabulary is "
                f"{config.vocab_size}; use the tokenizer the model was trained with"
            )
        tok.save(writer.path("tokenizer.json"))
        return tok.to_dict()
    if source is None:
        return None
    return ImagePreprocessor.from_checkpoint(source, config).to_dict()


def export(
    model: nn.Module | str | os.PathLike,
    dest: str | os.PathLike,
    config: ExportConfig = ExportConfig(),
    *,
    overwrite: bool = False,
    preprocess_from: str | os.PathLike | None = None,
    progress: Callable[[str], None] | None = None,
) -> Bundle:
    """Export a model (an edgept module, or a checkpoint directory) to a bundle at `dest`.

    An edgept module is bundled with the tokenizer or image preprocessor of `preprocess_from` (the
    checkpoint directory it was derived from) when given, so apps can `predict` from raw text or
    images; the manifest's model source stays empty, as the weights are the module's own.

    The ONNX graph is checked against PyTorch right away on fresh random inputs; a difference above
    `config.tolerance` raises `ParityError` and writes nothing. The max difference is recorded in the
    manifest's `export` pass. `progress(message)` is told each step.
    """
    source: Path | None = None
    if not isinstance(model, nn.Module):
        from edgept.models.hf import load_model

        source = Path(model).resolve()
        if progress:
            progress(f"loading {source}")
        model = load_model(source)
    mcfg: EncoderConfig = model.config
    torch.manual_seed(config.seed)
    if progress:
        progress("tracing to ONNX")
    proto = to_onnx(model, mcfg, opset=config.opset, seed=config.seed)
    if progress:
        progress("checking the graph against PyTorch on fresh inputs")
    metrics = parity(proto, model, mcfg, config)
    if not metrics["max_abs_diff"] <= config.tolerance:  # `not <=` also catches NaN
        raise ParityError(
            f"exported ONNX differs from PyTorch by {metrics['max_abs_diff']:.3g} (tolerance {config.tolerance:g}); "
            "the model uses an op the exporter mistranslates — please report it with `edgept info` output"
        )
    sig: IOSignature = signature(mcfg)
    with BundleWriter(dest, overwrite=overwrite) as w:
        onnx.save_model(proto, str(w.path("model.onnx")))
        preprocess = _preprocess(mcfg, source or (Path(preprocess_from) if preprocess_from else None), w, config)
        w.manifest["model"] = {
            "arch": mcfg.arch,
            "task": mcfg.task,
            "labels": list(mcfg.labels) or None,
            "params": parameter_breakdown(model)["total"],
            "source": _source(source),
            "config": mcfg.to_dict(),
        }
        w.manifest["io"] = {**sig.to_dict(), "limits": _limits(mcfg)}
        w.manifest["preprocess"] = preprocess
        w.manifest["seed"] = config.seed
        w.add_pass("export", config.to_dict(), metrics)
    return Bundle.open(dest)


def _source(source: Path | None) -> dict | None:
    if source is None:
        return None
    weights = next((source / f for f in ("model.safetensors", "pytorch_model.bin") if (source / f).exists()), None)
    return {"path": str(source), "sha256": sha256_file(weights) if weights else None}


__all__ = ["ExportConfig", "export", "parity", "to_onnx"]
