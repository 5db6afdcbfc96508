"""Quantization-aware training: fake-quant fine-tuning from the PTQ ranges, exported as QDQ ONNX.

`prepare_qat` turns every nn.Linear of the encoder into a `FakeQuantLinear`: its input is
fake-quantized to uint8 with a range calibrated exactly as edgept's static PTQ does it (same
calibration feeds, same minmax/entropy/percentile code in `edgept.quantize.ranges`, padding
masked out), and its weight to int8 per output channel (symmetric, amax/127), with
straight-through gradients. Training then runs through `edgept.train.fit` like any fine-tune; the
state dict keeps the plain names (the scales are non-persistent buffers), so the result saves as
an ordinary checkpoint. `export_qdq` writes the trained model as an ONNX graph with standard
QuantizeLinear/DequantizeLinear pairs, which ONNX Runtime runs with its integer kernels.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import onnx
import torch
from torch import Tensor, nn

from edgept.bundle import Bundle, BundleWriter
from edgept.configs import DictConfig
from edgept.errors import ConfigError
from edgept.quantize.ranges import METHODS, TensorStats, tensor_range, uint8_params

TARGETS = ("fp32", "labels")


@dataclass(frozen=True, kw_only=True)
class QATConfig(DictConfig):
    """How the fake-quant ranges start: `method` (minmax|entropy|percentile) and `percentile` over
    the calibration feeds, as `edgept quantize --mode int8-static` chooses them; and what the
    fine-tuning fits, `targets`:

    - `fp32` (default): the fp32 model's own logits, by their mean squared error (the fp32 model
      as teacher). QAT is there to make the INT8 model agree with the fp32 one; soft
      cross-entropy would leave the logits' scale free (saturated probabilities give it no
      gradient), and labels pull the model toward a different one;
    - `labels`: cross-entropy with the data's labels, as a plain fine-tune (Q8BERT's recipe).

    Measured on the fine-tuned MiniLM teacher (fp32 targets, 300 steps at lr 2e-5, 7-bit weights):
    fake-quant test accuracy 84.20 -> 85.62 (fp32: 85.24), dev logit cosine to fp32 0.9973 -> 0.9952.
    It recovers accuracy, not closeness to the fp32 logits (docs/quantize.md).
    """

    kind: ClassVar[str] = "qat config"

    method: str = "minmax"  # on MiniLM percentile clipping costs more than it saves (docs/quantize.md)
    percentile: float = 99.99
    targets: str = "fp32"
    # 7: weights in [-63, 63]. ONNX Runtime's u8s8 GEMM on AVX2 without VNNI adds pairs of u8 x s8
    # products in int16 with saturation (vpmaddubsw); with 8-bit weights the real MiniLM teacher's
    # ORT output was 0.11 away from the fake-quant model (export refused), so the grid QAT trains on
    # must be one the kernel computes exactly. 8 for VNNI, ARM and GPU targets.
    weight_bits: int = 7

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"--method {self.method!r} is not one of: {', '.join(METHODS)}")
        if not 50.0 < self.percentile <= 100.0:
            raise ConfigError(f"--percentile must be in (50, 100], got {self.percentile}")
        if self.targets not in TARGETS:
            raise ConfigError(f"--targets {self.targets!r} is not one of: {', '.join(TARGETS)}")
        if self.weight_bits not in (7, 8):
            raise ConfigError(f"--weight-bits must be 7 or 8, got {self.weight_bits}")

    @property
    def weight_levels(self) -> int:
        """The largest weight level: 63 (7 bits) or 127 (8 bits), symmetric."""
        return 2 ** (self.weight_bits - 1) - 1


def weight_scale(w_t: Tensor, levels: int) -> Tensor:
    """Per output column of `w_t`: amax / levels (ORT's symmetric per-channel QInt8 at 8 or 7 bits)."""
    return (w_t.detach().abs().amax(0) / levels).clamp_min(1e-12).float()


def fake_quant_weight(w_t: Tensor, levels: int = 127, scale: Tensor | None = None) -> Tensor:
    """`w_t` (in, out: the transposed Linear weight, the layout ONNX MatMul reads) rounded to int8
    per output column with scale amax/levels (or the given frozen `scale`); straight-through gradients."""
    if scale is None:
        scale = weight_scale(w_t, levels)
    zero = torch.zeros(len(scale), dtype=torch.int32, device=w_t.device)
    # ONNX's Q/DQ takes (-128, 127) only; with scale amax/levels no value passes +-levels anyway.
    return torch.fake_quantize_per_channel_affine(w_t, scale, zero, 1, -128, 127)


class FakeQuantLinear(nn.Linear):
    """nn.Linear with a uint8 fake-quantized input (fixed calibrated scale) and an int8 per-channel weight.

    The weight is quantized transposed so the export reads Q(constant W^T) -> DQ -> MatMul, the
    pattern ONNX Runtime folds into an int8 initializer and runs on its integer GEMM."""

    act_scale: Tensor
    act_zero_point: Tensor
    weight_levels: int = 127
    frozen_scale: Tensor | None = None  # set by export_qdq so the export holds no scale arithmetic

    def forward(self, x: Tensor) -> Tensor:
        xq = torch.fake_quantize_per_tensor_affine(x, self.act_scale, self.act_zero_point, 0, 255)
        y = torch.matmul(xq, fake_quant_weight(self.weight.t(), self.weight_levels, self.frozen_scale))
        return y + self.bias if self.bias is not None else y


def _encoder_linears(model: nn.Module) -> dict[str, nn.Linear]:
    """The encoder's Linear layers (attention and FFN): what edgept's INT8 graphs quantize."""
    return {n: m for n, m in model.named_modules() if type(m) is nn.Linear and ".blocks." in f".{n}"}


@torch.no_grad()
def prepare_qat(model: nn.Module, batches: Iterable[Mapping[str, np.ndarray]], config: QATConfig = QATConfig()) -> nn.Module:
    """Calibrate each encoder Linear's input range on `batches` (feed dicts), then make it a
    FakeQuantLinear in place. Returns `model`."""
    linears = _encoder_linears(model)
    if not linears:
        raise ConfigError(f"{type(model).__name__} has no encoder Linear layers to quantize")
    batches = list(batches)
    stats = {n: TensorStats() for n in linears}
    mask: list[Tensor | None] = [None]

    def rows(x: Tensor) -> np.ndarray:
        m = mask[0]
        return (x[m.bool()] if m is not None and x.shape[:2] == m.shape else x).float().numpy()

    was_training = model.training
    model.eval()
    for observe in (TensorStats.observe_range, TensorStats.observe_hist):
        hooks = [m.register_forward_pre_hook(lambda _m, a, n=n, f=observe: f(stats[n], rows(a[0]))) for n, m in linears.items()]
        for feeds in batches:
            inputs = {k: torch.from_numpy(np.asarray(v)) for k, v in feeds.items()}
            mask[0] = inputs.get("attention_mask")
            model(**inputs)
        for h in hooks:
            h.remove()
    model.train(was_training)
    for name, m in linears.items():
        scale, zp = uint8_params(*tensor_range(stats[name], config.method, config.percentile), symmetric=False)
        m.__class__ = FakeQuantLinear
        m.register_buffer("act_scale", torch.tensor(scale, dtype=torch.float32), persistent=False)
        m.register_buffer("act_zero_point", torch.tensor(zp, dtype=torch.int32), persistent=False)
        m.weight_levels = config.weight_levels
    return model


QDQ_TOLERANCE = 2e-2  # |ORT - torch fake-quant| on the primary output; see export_qdq


@contextlib.contextmanager
def _frozen_weight_scales(model: nn.Module) -> Iterator[None]:
    """Weight scales as constants while exporting, so the graph holds Q(constant W) and no scale arithmetic."""
    fq = [m for m in model.modules() if isinstance(m, FakeQuantLinear)]
    if not fq:
        raise ConfigError("the model has no fake-quant layers; call prepare_qat first")
    for m in fq:
        m.frozen_scale = weight_scale(m.weight.t(), m.weight_levels)
    try:
        yield
    finally:
        for m in fq:
            m.frozen_scale = None


def _fold_constants(path: Path) -> onnx.ModelProto:
    """ONNX Runtime's basic (hardware-independent) constant folding: Q(constant W) becomes the int8
    initializer DequantizeLinear reads, so the file holds int8 weights."""
    from edgept.runtime.ort import open_session

    folded = path.with_suffix(".folded.onnx")
    open_session(path, level="basic", save_to=folded, quiet=True)
    proto = onnx.load(str(folded))
    folded.unlink()
    return proto


def export_qdq(
    model: nn.Module, dest: str | os.PathLike, *, tolerance: float = QDQ_TOLERANCE, overwrite: bool = False,
    source: str | os.PathLike | None = None,
) -> Bundle:
    """Export a prepared (and trained) model as a bundle whose model.onnx has Q/DQ pairs: uint8
    activations with the calibrated constants, int8 per-channel weights behind DequantizeLinear.

    Parity: edgept.export's check compares ONNX Runtime with the fake-quant PyTorch model on fresh
    random inputs of a new shape and refuses a max |diff| above `tolerance`. The two differ by more
    than fp32 reordering: a pre-quantization value that lands within rounding of a level boundary
    can round one level apart, so the default allows 2e-2 on outputs of order 1."""
    from edgept.errors import ParityError
    from edgept.export import ExportConfig, export

    levels = {m.weight_levels for m in model.modules() if isinstance(m, FakeQuantLinear)}
    with _frozen_weight_scales(model):
        try:
            bundle = export(model, dest, ExportConfig(tolerance=tolerance), overwrite=overwrite, preprocess_from=source)
        except ParityError as e:
            hint = ("with 8-bit weights ONNX Runtime's u8s8 kernels saturate on CPUs without VNNI: train with --weight-bits 7"
                    if 127 in levels else "its integer kernels do not compute the fake-quant grid on this CPU")
            raise ParityError(f"the QAT model's Q/DQ export does not match it in ONNX Runtime ({str(e).split(';')[0]}); {hint}") from None
    with tempfile.TemporaryDirectory(prefix="edgept-qat-") as tmp:
        raw = Path(tmp) / "model.onnx"
        shutil.copyfile(bundle.model_path, raw)
        folded = _fold_constants(raw)
    with BundleWriter(dest, overwrite=True, base=bundle) as w:
        onnx.save(folded, str(w.path("model.onnx")))
        bits = "7-bit" if levels == {63} else "8-bit"
        w.add_pass("qat", {"format": "QDQ", "activations": "uint8 per tensor, calibrated", "weights": f"{bits} per output channel, symmetric",
                           "source": str(source) if source else None}, {})
    return Bundle.open(dest)


def _calibration_batches(calibration: str | os.PathLike, collate: Any, batch_size: int = 8) -> list[dict[str, np.ndarray]]:
    """A texts.jsonl calibration set tokenized by the training collate (the labels it adds are dropped)."""
    from edgept.quantize.calibration import read_texts

    path = Path(calibration) / "texts.jsonl"
    if not path.is_file():
        raise ConfigError(f"--calibration {calibration} has no texts.jsonl; QAT calibrates text models from a text set")
    texts = read_texts(path)
    batches = []
    for i in range(0, len(texts), batch_size):
        batch = collate([(t, 0) for t in texts[i : i + batch_size]])
        batches.append({k: v.numpy() for k, v in batch.items() if k != "labels"})
    return batches


def _fp32_teacher(fp32: nn.Module, net: nn.Module) -> nn.Module:
    """Logit-matching distillation with the unquantized model as teacher."""
    from edgept.compress.distill.objective import DistillObjective

    layers = tuple(range(1, net.config.num_layers + 1))
    return DistillObjective(fp32, net, stage="prediction", layer_map=layers, prediction_loss="logit_mse")


def qat(
    model: str | os.PathLike,
    data: Any,
    calibration: str | os.PathLike,
    out_dir: str | os.PathLike,
    train: Any,
    config: QATConfig = QATConfig(),
    *,
    max_length: int = 128,
    progress: bool = True,
) -> dict[str, Any]:
    """Fake-quant fine-tune a classifier checkpoint (`model`) on `data` (a DataConfig) with
    `edgept.train.fit` (`train`: a TrainConfig; a few hundred steps at a small lr is typical),
    towards `config.targets` (the fp32 model's logits, or the labels),
    starting from the PTQ ranges of `calibration`; write out_dir/model (checkpoint),
    out_dir/model.edgept (the QDQ bundle) and out_dir/metrics.json (dev/test accuracy in PyTorch
    fake-quant, and the whole-tensor cosine of its dev logits to the fp32 model's, before and
    after). Returns the metrics."""
    import json

    from edgept.data import collate_for, load_splits
    from edgept.eval import TorchEvaluator
    from edgept.fileio import atomic_write_text
    from edgept.models.hf import load_model
    from edgept.parity import tensor_cosine
    from edgept.train.loop import MODEL_DIR, fit
    from edgept.train.objectives import ClassificationObjective
    from edgept.zoo import resolve

    source = resolve(model)
    splits = load_splits(data)
    net = load_model(source)
    if not net.config.task.endswith("classification"):
        raise ConfigError(f"qat fine-tunes a classifier; {source} is a {net.config.task} model (make one with `edgept finetune`)")
    collate = collate_for(source, net.config, splits.kind, max_length=max_length)
    prepare_qat(net, _calibration_batches(calibration, collate), config)
    dev, test = TorchEvaluator(splits.dev.relabel(net.config.labels), collate), TorchEvaluator(splits.test.relabel(net.config.labels), collate)
    fp32 = load_model(source)
    fp32_logits = dev.logits(fp32)

    def scores() -> dict[str, Any]:
        return {"dev": dev(net), "test": test(net), "dev_logit_cosine": tensor_cosine([fp32_logits], [dev.logits(net)])}

    before = scores()
    out = Path(out_dir)
    if config.targets == "fp32":
        # The target is a deterministic function: dropout noise in the student would be fitted as error.
        for m in net.modules():
            if isinstance(m, nn.Dropout):
                m.p = 0.0
    objective = ClassificationObjective(net) if config.targets == "labels" else _fp32_teacher(fp32, net)
    result = fit(objective, splits.train.relabel(net.config.labels), train, out, collate=collate,
                 evaluate=dev, progress=progress, source=source)
    bundle = export_qdq(net, out / "model.edgept", overwrite=True, source=source)
    metrics = {"model": str(source), "output": str(out / MODEL_DIR), "bundle": str(bundle.path), "qat": config.to_dict(),
               "train": train.to_dict(), "steps": result.steps, "best_step": result.best_step,
               "ptq_fake_quant": before, "qat_fake_quant": scores(),
               "export_parity": next(p["metrics"] for p in bundle.passes if p["pass"] == "export")}
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return metrics
