"""Writing benchmark results: one JSON and optionally one Markdown file, each atomically."""

from __future__ import annotations

import json
from pathlib import Path

from softzoo._io import atomic_write


def write_results(out: str | Path, stem: str, data: dict, markdown: str | None = None) -> None:
    """``out/stem.json`` (and ``out/stem.md``); a crash leaves the previous files."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(
        out / f"{stem}.json", lambda tmp: tmp.write_text(json.dumps(data, indent=2) + "\n")
    )
    if markdown is not None:
        atomic_write(out / f"{stem}.md", lambda tmp: tmp.write_text(markdown + "\n"))


def result_stem(name: str) -> str:
    """``name``, or ``name_avx2`` (…) when ``ATEN_CPU_CAPABILITY`` makes torch emulate
    another host class, so that the two classes' results stand side by side."""
    import os

    emulated = os.environ.get("ATEN_CPU_CAPABILITY", "").strip().lower()
    return f"{name}_{emulated}" if emulated and emulated != "default" else name


def host_info() -> dict:
    """What the figures depend on: CPU model, the kernels torch dispatches to, the
    onnxruntime version and the thread count."""
    import os
    import platform

    import onnxruntime
    import torch

    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [
            ln.split(":", 1)[1].strip()
            for ln in cpuinfo.read_text().splitlines()
            if ln.startswith("model name")
        ]
        model = names[0] if names else model
    return {
        "cpu": model,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def quiet_trainer(**options):
    """A Lightning Trainer with no logger, checkpoints, progress bar or model summary."""
    import lightning.pytorch as pl

    quiet = {
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
    }
    return pl.Trainer(**{**quiet, **options})
