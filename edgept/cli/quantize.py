"""`edgept quantize BUNDLE -o BUNDLE --mode int8-dynamic|int8-static|fp16|auto|int8-qdq`."""

from __future__ import annotations

from pathlib import Path

import typer

from edgept.cli.console import out, working
from edgept.errors import ConfigError


def register(app: typer.Typer) -> None:
    app.command("quantize")(quantize_cmd)


def quantize_cmd(
    bundle: Path = typer.Argument(..., help="The fp32 bundle to quantize."),
    output: Path = typer.Option(..., "-o", "--output", help="Bundle directory to write."),
    mode: str = typer.Option("auto", help="int8-dynamic | int8-static | fp16 | auto (static, best method, budget) | int8-qdq (standard Q/DQ ONNX for TensorRT)."),
    calibration: Path = typer.Option(None, help="Calibration set directory (calibration/README.md); needed except for int8-dynamic."),
    holdout: Path = typer.Option(None, help="Another calibration-format set, scored only (never used to choose)."),
    data: str = typer.Option(None, help="Labelled data (shipped name or .jsonl/.csv/.tsv) whose dev split --max-drop scores; the manifest records its accuracy."),
    force: bool = typer.Option(False, "--force", help="Replace an existing bundle at --output."),
    keep_reference: bool = typer.Option(None, "--keep-reference/--no-keep-reference", help="Also ship the fp32 graph as model.fp32.onnx (default: only what runs; the manifest keeps its sha256)."),
    # The options below map onto the mode's config fields (edgept.quantize.config); one left out keeps
    # the config's default, and one the mode does not take is an error.
    method: str = typer.Option(None, help="Activation ranges (int8-static, auto, int8-qdq): minmax (default) | entropy | percentile."),
    percentile: float = typer.Option(None, help="|x| percentile kept by --method percentile (default 99.99)."),
    min_cosine: float = typer.Option(None, help="Budget: keep the most sensitive nodes in float until the output cosine vs fp32 (whole-tensor for logits) reaches this (auto: 0.999)."),
    max_drop: float = typer.Option(None, help="Budget: at most this many accuracy points lost on --data's dev split (classifiers)."),
    smooth: str = typer.Option(None, help="SmoothQuant alpha in [0, 1] (e.g. 0.5): move activation outliers into the int8 weights (exact in fp32); auto: try 0.3..0.8, keep the closest to fp32 on --data's dev split (else the calibration set)."),
    per_token: bool = typer.Option(None, "--per-token/--no-per-token", help="Scale the FFN down-projections' input (GELU output) per token at run time, around the same int8 GEMM: most of the INT8 error of a BERT, for ~4% of its speed."),
    bias_correction: bool = typer.Option(None, "--bias-correction/--no-bias-correction", help="Fold each INT8 MatMul's mean output shift on the calibration set into its bias (int8-static, auto; default on; no run-time cost)."),
    gptq: bool = typer.Option(None, "--gptq/--round-to-nearest", help="Choose the int8 weight integers by GPTQ on the calibration inputs instead of rounding each to nearest (int8-static, auto; default on; same speed, lower error)."),
    per_token_scope: str = typer.Option(None, help="With --per-token: ffn-down (GELU-fed GEMMs; default) | all (every MatMul outside the fused attention; ~6% slower, lower error)."),
    keep_float: str = typer.Option(None, help="Comma-separated node names to keep in float."),
    per_channel: bool = typer.Option(None, "--per-channel/--per-tensor", help="Weight scales per output channel (default) or per tensor."),
    symmetric: bool = typer.Option(None, "--symmetric/--asymmetric", help="Activation ranges symmetric (zero point 128) or asymmetric (default)."),
    reduce_range: bool = typer.Option(None, "--reduce-range/--full-range", help="7-bit weights (avoids u8s8 saturation on AVX2 CPUs without VNNI); default: 7-bit when --smooth or --per-token is given."),
    weight_type: str = typer.Option(None, help="int8 (u8s8 kernels, fastest; default) | uint8 (u8u8: 8-bit weights without AVX2's int16 saturation, slower)."),
    embeddings: str = typer.Option(None, help="INT8 modes: store the embedding tables int8 per row (default) | int4 (half the bytes; check the accuracy) | fp32."),
    fp16_tolerance: float = typer.Option(None, help="fp16: the largest relative error per node output before the node is kept in fp32 (default 0.01)."),
    seed: int = typer.Option(None, help="Seed for the fresh random check inputs (default 0)."),
) -> None:
    """Quantize a bundle (ONNX -> ONNX) and record what it cost against the fp32 model."""
    from edgept.quantize import config_for, quantize

    options = {
        "method": method, "percentile": percentile, "min_cosine": min_cosine, "max_drop": max_drop,
        "smooth": _alpha(smooth), "per_token": per_token, "per_token_scope": per_token_scope,
        "bias_correction": bias_correction, "gptq": gptq, "per_channel": per_channel, "symmetric": symmetric,
        "reduce_range": reduce_range, "weight_type": weight_type, "embeddings": embeddings,
        "fp16_tolerance": fp16_tolerance, "seed": seed, "keep_reference": keep_reference,
        "keep_float": None if keep_float is None else tuple(n for n in keep_float.split(",") if n),
    }
    config = config_for(mode, **{k: v for k, v in options.items() if v is not None})
    with working(f"quantizing {bundle} ({mode})") as say:
        result = quantize(
            bundle, output, config, calibration=calibration, holdout=holdout, data=data, overwrite=force,
            progress=say,
        )
    metrics = result.passes[-1]["metrics"]
    size = result.artifacts["model.onnx"]["bytes"] / 2**20
    out.print(f"wrote [bold]{result.path}[/] ({size:.1f} MiB), method {metrics.get('method')}")
    if metrics.get("embeddings"):
        names = ", ".join(f"{t['table']} (int{t['bits']})" for t in metrics["embeddings"])
        out.print(f"  embeddings per row: {names}")
    for part in ("calibration", "holdout", "fresh_random"):
        if part in metrics:
            m = metrics[part]
            out.print(f"  {part:>12}: cosine {m['cosine']:.5f} (per example: mean {m['cosine_mean']:.5f}, min {m['cosine_min']:.5f}), max |diff| {m['max_abs_diff']:.3g}")
    if "task" in metrics:
        t = metrics["task"]
        out.print(f"  {t['split']} accuracy on {t['data']}: {100 * t['accuracy']:.2f} vs fp32 {100 * t['fp32_accuracy']:.2f} "
                  f"({t['drop_points']:+.2f} points lost)")
    corrected = [r for r in metrics.get("bias_correction") or [] if "mean_abs_shift" in r]
    if corrected:
        worst = max(r["max_abs_shift"] for r in corrected)
        out.print(f"  bias correction: {len(corrected)} biases moved by the INT8 mean shift (largest {worst:.3g})")
    rounded = metrics.get("gptq") or []
    if rounded:
        rtn, gptq_err = (sum(r[k] for r in rounded) / len(rounded) for k in ("rtn_error", "gptq_error"))
        out.print(f"  GPTQ rounding: {len(rounded)} weights, mean relative GEMM output error {rtn:.3g} (nearest) -> {gptq_err:.3g}")
    search = (metrics.get("smoothing") or {}).get("search")
    if search:
        tried = ", ".join(f"{s['alpha']:g}: {s['cosine']:.5f}" for s in search["scores"])
        out.print(f"  smoothing alpha {metrics['smoothing']['alpha']:g}, chosen by output cosine on the {search['judge']} ({tried})")
    for row in metrics["float_nodes"]:
        out.print(f"  kept in float: {row['node']} ({row['reason']})")


def _alpha(text: str | None) -> float | str | None:
    """--smooth's value: None, "auto" or an alpha."""
    if text is None or text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"--smooth takes SmoothQuant's alpha in [0, 1] (e.g. 0.5) or auto, got {text!r}") from None
