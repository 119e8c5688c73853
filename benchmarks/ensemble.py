"""What an ensemble costs: wall time to train 5 members in one vectorised pass against one
model, same data, epochs, width and batches.

    python benchmarks/ensemble.py [--rows 20000] [--epochs 5] [--rounds 3] [--out benchmarks/results]

Gaussian heads on Softplus 64×64 MLPs, 8 features of SyntheticDataModule, batch 256, one
thread, the `softzoo fit` training path (in-memory loader, 64 batches per Lightning step),
best of ``--rounds`` interleaved repetitions. The last line printed is one JSON object with
``ensemble5_over_single`` and the host it ran on.
"""

from __future__ import annotations

import argparse
import json
import time

import lightning.pytorch as pl
import torch
from _results import host_info, quiet_trainer, write_results

from softzoo.data import SyntheticDataModule
from softzoo.models import SoftRegressor


def train_seconds(rows: int, epochs: int, members: int) -> float:
    pl.seed_everything(0, verbose=False)
    data = SyntheticDataModule(n=rows, n_features=8, batch_size=256, val_fraction=0.05)
    model = SoftRegressor(8, hidden=[64, 64], ensemble_size=members, lr=3e-3)
    trainer = quiet_trainer(max_epochs=epochs, num_sanity_val_steps=0, limit_val_batches=0)
    start = time.perf_counter()
    trainer.fit(model, data)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    single, ensemble = [], []
    for _ in range(args.rounds):
        single.append(train_seconds(args.rows, args.epochs, 1))
        ensemble.append(train_seconds(args.rows, args.epochs, 5))
    result = {
        "host": host_info(),
        "rows": args.rows,
        "epochs": args.epochs,
        "single_s": round(min(single), 3),
        "ensemble5_s": round(min(ensemble), 3),
        "ensemble5_over_single": round(min(ensemble) / min(single), 3),
    }
    if args.out:
        write_results(args.out, "ensemble", result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
