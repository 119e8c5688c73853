"""onnxruntime vs eager PyTorch latency, and the cost of Softplus, side by side in one process.

    python benchmarks/onnx_latency.py [--repeats 7] [--out benchmarks/results]

MLP 16→64→64→2 (Gaussian heads) with Softplus hidden layers and its ReLU twin; batch
sizes 1, 64, 4096; one thread for torch and for onnxruntime (spinning off). Softplus is
exported both with softzoo's exact lowering and as onnxruntime's plain Softplus op.
Each figure is the median over repeats of the mean latency of a timed loop; all variants
are timed round-robin inside every repeat so that machine noise hits them alike.
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _results import host_info, write_results

from softzoo.models import SoftRegressor
from softzoo.onnx import export, session

BATCHES = (1, 64, 4096)
CALLS = {1: 2000, 64: 500, 4096: 40}


def _models() -> dict[str, SoftRegressor]:
    models = {}
    for activation in ("softplus", "relu"):
        torch.manual_seed(0)
        model = SoftRegressor(16, family="gaussian", hidden=[64, 64], activation=activation)
        model.fit_scaling(torch.randn(1000, 16), torch.randn(1000))
        with torch.no_grad():  # trained-looking weights: heads not at their zero init
            for p in model.parameters():
                p.add_(0.1 * torch.randn_like(p))
        models[activation] = model.eval()
    return models


def _timer(fn, x, calls: int) -> float:
    fn(x)
    start = time.perf_counter()
    for _ in range(calls):
        fn(x)
    return (time.perf_counter() - start) / calls


def run(repeats: int) -> dict:
    torch.set_num_threads(1)
    models = _models()
    folder = Path(tempfile.mkdtemp())
    runners = {}
    for activation, model in models.items():
        runners[("torch", activation)] = lambda x, m=model: m(x)
        lowerings = ("exact", "plain") if activation == "softplus" else ("exact",)
        for lowering in lowerings:
            path = export(model, folder / f"{activation}-{lowering}.onnx", softplus=lowering)
            sess = session(path, "cpu", threads=1)
            runners[(f"ort-{lowering}", activation)] = lambda x, s=sess: s.run(
                None, {"features": x}
            )
    inputs = {b: torch.randn(b, 16) for b in BATCHES}
    samples: dict[tuple, list[float]] = {}
    with torch.inference_mode():
        for _ in range(repeats):
            for b in BATCHES:
                for key, fn in runners.items():
                    x = inputs[b] if key[0] == "torch" else inputs[b].numpy()
                    samples.setdefault((*key, b), []).append(_timer(fn, x, CALLS[b]))
    return {k: statistics.median(v) for k, v in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--out", default=None, help="folder for onnx_latency.json/.md")
    args = parser.parse_args()
    t = run(args.repeats)
    lines = [
        "| batch | hidden | torch µs | ORT exact µs | ORT plain µs | ORT exact / torch |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    micro = lambda key: f"{t[key] * 1e6:.1f}" if key in t else "–"  # noqa: E731
    for b in BATCHES:
        for act in ("softplus", "relu"):
            torch_key, exact_key = ("torch", act, b), ("ort-exact", act, b)
            cells = [
                str(b),
                act,
                micro(torch_key),
                micro(exact_key),
                micro(("ort-plain", act, b)),
                f"{t[exact_key] / t[torch_key]:.2f}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    ratio = lambda a, b: round(t[a] / t[b], 3)  # noqa: E731
    summary = {
        "host": host_info(),
        "ort_over_torch_b1": ratio(("ort-exact", "softplus", 1), ("torch", "softplus", 1)),
        "ort_over_torch_b64": ratio(("ort-exact", "softplus", 64), ("torch", "softplus", 64)),
        "ort_over_torch_b4096": ratio(("ort-exact", "softplus", 4096), ("torch", "softplus", 4096)),
        "softplus_over_relu_ort_b4096": ratio(
            ("ort-exact", "softplus", 4096), ("ort-exact", "relu", 4096)
        ),
        "plain_ort_over_torch_b4096": ratio(
            ("ort-plain", "softplus", 4096), ("torch", "softplus", 4096)
        ),
        "plain_softplus_over_relu_ort_b4096": ratio(
            ("ort-plain", "softplus", 4096), ("ort-exact", "relu", 4096)
        ),
        "exact_over_plain_ort_b4096": ratio(
            ("ort-exact", "softplus", 4096), ("ort-plain", "softplus", 4096)
        ),
    }
    table = "\n".join(lines)
    print("MLP 16→64→64→2 (Gaussian), 1 thread, median of", args.repeats, "repeats\n")
    print(table + "\n")
    if args.out:
        write_results(
            args.out,
            "onnx_latency",
            {"summary": summary, "seconds": {"|".join(map(str, k)): v for k, v in t.items()}},
            f"# ONNX latency\n\n{table}\n\n```json\n{json.dumps(summary, indent=2)}\n```",
        )
    print(json.dumps(summary))


if __name__ == "__main__":
    np.random.seed(0)
    main()
