"""`edgept compile MODEL|BUNDLE --target NAME -o BUNDLE` and `edgept build-engine BUNDLE`."""

from __future__ import annotations

from pathlib import Path

import typer

from edgept.cli.console import err, out, working


def register(app: typer.Typer) -> None:
    app.command("compile")(compile_cmd)
    app.command("build-engine")(build_engine_cmd)


def compile_cmd(
    source: str = typer.Argument(..., help="A bundle, a checkpoint directory, or a shipped model name (minilm)."),
    target: str = typer.Option(..., "--target", "-t", help="A target (edgept targets list), a family (cpu, gpu, jetson) or a .toml path."),
    output: Path = typer.Option(..., "-o", "--output", help="Bundle directory to write."),
    precision: str = typer.Option("auto", help="auto (the target's first [build] precision) or int8 / fp16 / fp32, if the target allows it (`edgept targets show NAME`). int8 uses the target's [quantize] preset."),
    calibration: Path = typer.Option(None, help="Calibration set for int8-static/int8-qdq/fp16 (default: calibration/rt-polarity-256 when it fits a text model's vocabulary)."),
    min_cosine: float = typer.Option(None, help="Refuse an int8/fp16 bundle whose mean output cosine vs fp32 on fresh random inputs is below this (default 0.95 int8, 0.999 fp16)."),
    seq: str = typer.Option(None, help="TensorRT profile sequence lengths min,opt,max (default: the target's [shapes])."),
    tolerance: float = typer.Option(1e-4, help="Largest |optimised - unoptimised graph| accepted on random inputs (CPU targets)."),
    seed: int = typer.Option(0, help="Seed for export and parity inputs."),
    measure: bool = typer.Option(True, "--measure/--no-measure", help="With --precision auto on a CPU target: compile int8 and fp32, time both here, keep int8 only if it is --min-speedup times faster."),
    min_speedup: float = typer.Option(1.1, help="How much faster (p50) int8 must be than fp32 to be kept by --measure."),
    keep_reference: bool = typer.Option(False, "--keep-reference", help="int8/fp16: also ship the fp32 graph as model.fp32.onnx (default: only what runs; the manifest keeps its sha256)."),
    embeddings: str = typer.Option(None, help="int8: store the embedding tables int8 per row (the preset's default) | int4 (half the bytes; most of a small student's file) | fp32."),
    force: bool = typer.Option(False, "--force", help="Replace an existing bundle at --output."),
) -> None:
    """Compile a model or bundle for a target device: an optimised ORT bundle, or a TensorRT-ready one."""
    from edgept.cli.console import parse_ints
    from edgept.compile import CompileConfig, compile_for_target

    config = CompileConfig(
        target=target,
        precision=precision,
        sequence=parse_ints(seq, "--seq") if seq else None,
        tolerance=tolerance,
        min_cosine=min_cosine,
        keep_reference=keep_reference,
        measure=measure,
        min_speedup=min_speedup,
        embeddings=embeddings,
        seed=seed,
    )
    with working(f"compiling {source} for {target}") as say:
        bundle = compile_for_target(
            source, output, config, calibration=calibration, overwrite=force, progress=say,
        )
    note = bundle.passes[-1]["config"]["target_note"]
    if note:
        err.print(note, highlight=False)
    compiled = bundle.manifest["compiled"]
    metrics = bundle.passes[-1]["metrics"]
    line = f"wrote [bold]{bundle.path}[/]: target {compiled['target']}, {compiled['precision']}, backend {compiled['backend']}"
    if compiled["backend"] == "trt":
        line += f"; engine: {metrics['engine']} (copy the bundle there and run `edgept build-engine` or build_engine.sh)"
    else:
        line += f"; graph optimised (max |diff| {metrics['max_abs_diff']:.2e}), loads in {metrics['load_seconds']:.2f} s"
    out.print(line)
    if choice := metrics.get("precision_choice"):
        out.print(f"  precision by measurement: {choice['chosen']} ({choice['why']})")
    for part, m in (metrics.get("vs_fp32") or {}).items():
        if isinstance(m, dict):
            out.print(f"  vs fp32, {part:>12}: cosine {m['cosine']:.5f} (per example: mean {m['cosine_mean']:.5f}, min {m['cosine_min']:.5f}), max |diff| {m['max_abs_diff']:.3g}")


def build_engine_cmd(
    bundle: Path = typer.Argument(..., help="A bundle made by `edgept compile --target <TensorRT target>`."),
    target: str = typer.Option(None, "--target", "-t", help="Which engine plan to build, when the bundle holds several."),
) -> None:
    """Build the bundle's TensorRT engine on this device (needs TensorRT and the GPU it is for)."""
    import logging

    from edgept.compile import build_engines

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with working(f"building the TensorRT engine for {bundle} (minutes)"):
        built = build_engines(bundle, target)
    for name, entry in built.manifest["engines"].items():
        out.print(f"{name}: {entry['status']}, TensorRT {entry.get('tensorrt')}, compute capability {entry.get('compute_capability')}")
