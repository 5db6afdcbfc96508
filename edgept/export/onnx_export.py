"""torch -> ONNX for edgept's encoders: dynamic axes, one copy of every shared weight."""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import onnx
import torch
from torch import nn

from edgept.errors import ConfigError
from edgept.models import BertConfig, EncoderConfig
from edgept.onnxutil import dedupe_initializers

TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass(frozen=True)
class IOSignature:
    """Names and symbolic dims of an exported graph's inputs and outputs (what goes in the manifest)."""

    inputs: tuple[tuple[str, str, tuple[int | str, ...]], ...]
    outputs: tuple[tuple[str, str, tuple[int | str, ...]], ...]

    def to_dict(self) -> dict:
        def rows(items):
            return [{"name": n, "dtype": d, "dims": list(dims)} for n, d, dims in items]

        return {"inputs": rows(self.inputs), "outputs": rows(self.outputs)}


def signature(config: EncoderConfig) -> IOSignature:
    """The exported graph's I/O for a config: text models take the three BERT inputs, image models
    `pixel_values`; the output is `logits` for a task head, else `last_hidden_state`."""
    if isinstance(config, BertConfig):
        inputs = tuple((n, "int64", ("batch", "sequence")) for n in TEXT_INPUTS)
        tokens: int | str = "sequence"
    else:
        inputs = (("pixel_values", "float32", ("batch", config.num_channels, "height", "width")),)
        tokens = "tokens"
    if config.task == "masked-lm":
        out = ("logits", "float32", ("batch", tokens, config.vocab_size))
    elif config.task.endswith("classification"):
        out = ("logits", "float32", ("batch", config.num_labels))
    else:
        out = ("last_hidden_state", "float32", ("batch", tokens, config.hidden_size))
    return IOSignature(inputs, (out,))


class ExportWrapper(nn.Module):
    """Positional inputs in, the one primary output tensor out: the shape ONNX wants."""

    def __init__(self, model: nn.Module, output: str):
        super().__init__()
        self.model = model
        self.field = "logits" if output == "logits" else "last_hidden_state"

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return getattr(self.model(*inputs), self.field)


def example_inputs(sig: IOSignature, config: EncoderConfig, batch: int, length: int, seed: int) -> dict[str, np.ndarray]:
    """Random inputs for tracing and parity checks; text gets a padded tail on the last row so the
    attention mask is exercised, images get `length` as their side in pixels."""
    rng = np.random.default_rng(seed)
    if isinstance(config, BertConfig):
        ids = rng.integers(1, config.vocab_size, size=(batch, length), dtype=np.int64)
        mask = np.ones((batch, length), dtype=np.int64)
        if batch > 1 and length > 2:
            mask[-1, length // 2 :] = 0
            ids[-1, length // 2 :] = config.pad_token_id
        types = rng.integers(0, config.type_vocab_size, size=(batch, length), dtype=np.int64)
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    shape = (batch, config.num_channels, length, length)
    return {"pixel_values": rng.standard_normal(shape, dtype=np.float32)}


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run in eval mode and give the caller back the mode it had: exporting a model mid-training
    must not silently switch its dropout off (torch.onnx.export itself can leave it flipped)."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def to_onnx(model: nn.Module, config: EncoderConfig, *, opset: int = 17, seed: int = 0) -> onnx.ModelProto:
    """Trace `model` into an ONNX model with dynamic batch and sequence (or image size) axes.

    The TorchScript exporter is used rather than dynamo: ONNX Runtime's transformer optimizer fuses
    full Attention only from its graphs, and that fusion is what the quantization stage builds on.
    """
    if opset < 17:
        raise ConfigError(f"opset {opset} is too old: LayerNormalization needs opset >= 17")
    sig = signature(config)
    side = 2 * config.patch_size if not isinstance(config, BertConfig) else 8
    feeds = example_inputs(sig, config, batch=2, length=side, seed=seed)
    args = tuple(torch.from_numpy(feeds[name]) for name, _, _ in sig.inputs)
    dynamic = {name: {i: d for i, d in enumerate(dims) if isinstance(d, str)} for name, _, dims in sig.inputs + sig.outputs}
    buf = io.BytesIO()
    with eval_mode(model), warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice, not the user's concern
        torch.onnx.export(
            ExportWrapper(model, sig.outputs[0][0]),
            args,
            buf,
            dynamo=False,
            opset_version=opset,
            input_names=[n for n, _, _ in sig.inputs],
            output_names=[n for n, _, _ in sig.outputs],
            dynamic_axes=dynamic,
            do_constant_folding=True,
        )
    proto = onnx.load_from_string(buf.getvalue())
    dedupe_initializers(proto)
    onnx.checker.check_model(proto)
    return proto
