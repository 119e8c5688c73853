"""onnxruntime vs eager PyTorch latency, and the cost of Softplus, side by side in one process.

    python benchmarks/onnx_latency.py [--repeats 7] [--out benchmarks/results]

MLP 16→64→64→2 (Gaussian heads) with Softplus hidden layers and its ReLU twin; batch
sizes 1, 64, 4096; one thread for torch and for onnxruntime (spinning off). Softplus is
exported both with softzoo's exact lowering and as onnxruntime's plain Softplus op.
Each figure is the median over repeats of the mean latency of a timed loop; all variants
are timed round-robin inside every repeat so that machine noise hits them alike.
Op by op: ns per element of each onnxruntime op the exact Softplus lowering uses (one op
per graph, a 4096 x 64 float32 input, as one hidden layer at batch 4096), their sum, and
torch's softplus on the same tensor: the floor any lowering made of these ops meets.
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
from _results import host_info, result_stem, write_results

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


#: The ops of softzoo's exact Softplus lowering for beta = 1 (softzoo.onnx.lowering).
EXACT_SOFTPLUS_OPS = ("Abs", "Neg", "Exp", "Add", "Log", "Sub", "Sub", "Add", "Relu", "Add")
_BINARY = {"Add", "Sub", "Mul", "Div"}


def _one_op_session(op: str, shape: tuple[int, int]):
    import onnx
    import onnxruntime
    from onnx import TensorProto, helper

    value = lambda name: helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))  # noqa: E731
    inputs = ["x", "x"] if op in _BINARY else ["x"]
    graph = helper.make_graph([helper.make_node(op, inputs, ["y"])], op, [value("x")], [value("y")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(model.SerializeToString(), options)


def op_costs(repeats: int, shape: tuple[int, int] = (4096, 64)) -> dict[str, float]:
    """ns per element of each onnxruntime op of the exact lowering, of onnxruntime's own
    Softplus, and of torch's softplus, relu and log1p, timed round-robin."""
    torch.set_num_threads(1)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32) * 3
    positive = np.abs(x) + 1.0  # Log's input in the lowering lies in [1, 2]
    runners = {}
    for op in sorted(set(EXACT_SOFTPLUS_OPS) | {"Softplus"}):
        sess = _one_op_session(op, shape)
        arg = positive if op == "Log" else x
        runners[f"ort {op}"] = lambda _, s=sess, a=arg: s.run(None, {"x": a})
    xt = torch.from_numpy(x)
    for name in ("softplus", "relu", "log1p"):
        fn = getattr(torch.nn.functional, name, None) or getattr(torch, name)
        arg = torch.from_numpy(positive) if name == "log1p" else xt
        runners[f"torch {name}"] = lambda _, f=fn, a=arg: f(a)
    samples: dict[str, list[float]] = {}
    for _ in range(repeats):
        for name, fn in runners.items():
            samples.setdefault(name, []).append(_timer(fn, None, 50) / x.size * 1e9)
    costs = {k: round(statistics.median(v), 3) for k, v in samples.items()}
    costs["ort exact lowering (sum of its ops)"] = round(
        sum(costs[f"ort {op}"] for op in EXACT_SOFTPLUS_OPS), 3
    )
    return costs


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
    ops = op_costs(args.repeats)
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
        "softplus_ns_per_element": ops,
        "exact_lowering_over_torch_softplus": round(
            ops["ort exact lowering (sum of its ops)"] / ops["torch softplus"], 3
        ),
    }
    table = "\n".join(lines)
    print("MLP 16→64→64→2 (Gaussian), 1 thread, median of", args.repeats, "repeats\n")
    print(table + "\n")
    print("ns per element (4096 x 64):", ", ".join(f"{k} {v}" for k, v in ops.items()) + "\n")
    if args.out:
        write_results(
            args.out,
            result_stem("onnx_latency"),
            {"summary": summary, "seconds": {"|".join(map(str, k)): v for k, v in t.items()}},
            f"# ONNX latency\n\n{table}\n\n```json\n{json.dumps(summary, indent=2)}\n```",
        )
    print(json.dumps(summary))


if __name__ == "__main__":
    np.random.seed(0)
    main()
