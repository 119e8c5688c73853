"""Whole-batch in-memory loader vs DataLoader(TensorDataset), side by side in one process.

    python benchmarks/loader.py [--rows 200000] [--features 16] [--batch 256] [--repeats 3]

Measures (a) one epoch of pure iteration and (b) one epoch of training steps (MLP 16→64→64,
Gaussian head, Adam) with each loader, single thread; prints a table and, as its last line,
one JSON object with the ratios (DataLoader time / softzoo loader time).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from _results import host_info
from torch.utils.data import DataLoader, TensorDataset

from softzoo.data import InMemoryBatchLoader
from softzoo.families import get_family
from softzoo.nn import MLP, ParameterHeads


def _epoch_seconds(loader, step) -> float:
    start = time.perf_counter()
    for x, y in loader:
        step(x, y)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=16)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    x, y = torch.randn(args.rows, args.features), torch.randn(args.rows)
    loaders = {
        "DataLoader(TensorDataset)": DataLoader(
            TensorDataset(x, y), batch_size=args.batch, shuffle=True
        ),
        "InMemoryBatchLoader": InMemoryBatchLoader(x, y, batch_size=args.batch, shuffle=True),
    }
    family = get_family("gaussian")
    body = MLP(args.features, (64, 64), "softplus")
    heads = ParameterHeads(64, family.head_specs())
    optimizer = torch.optim.Adam([*body.parameters(), *heads.parameters()], lr=1e-3)

    def train_step(xb: torch.Tensor, yb: torch.Tensor) -> None:
        loss = family.loss(heads(body(xb)), yb).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    results = {}
    for task, step in (("iterate", lambda xb, yb: None), ("train", train_step)):
        for name, loader in loaders.items():
            times = [_epoch_seconds(loader, step) for _ in range(args.repeats)]
            results[(task, name)] = statistics.median(times)
    print(
        f"{args.rows} x {args.features}, batch {args.batch}, 1 thread, "
        f"median of {args.repeats} epochs"
    )
    print(f"{'task':<10}{'loader':<28}{'epoch s':>10}")
    for (task, name), seconds in results.items():
        print(f"{task:<10}{name:<28}{seconds:>10.3f}")
    summary = {
        f"dataloader_over_inmemory_{task}": round(
            results[(task, "DataLoader(TensorDataset)")] / results[(task, "InMemoryBatchLoader")], 2
        )
        for task in ("iterate", "train")
    }
    summary["host"] = host_info()
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
