"""Training throughput: softzoo's fit path vs a raw PyTorch loop vs naive Lightning.

    python benchmarks/train_throughput.py [--rows 200000] [--epochs 3] [--rounds 3]
                                          [--out benchmarks/results]

Same model (MLP 16→64→64, Gaussian heads, Adam 1e-3), same data (rows × 16 synthetic),
batch 256, one thread, one process. Steady-state seconds per step, timed from the start
of epoch 2 to the end of training (start-up and the first epoch excluded), best of
``--rounds`` interleaved repetitions of the four paths:
  raw        a plain loop over shuffled whole-batch slices
  softzoo    `softzoo fit`'s path: SoftRegressor + TabularDataModule (in-memory loader),
             Trainer with the CLI's default CSV + TensorBoard loggers and checkpointing
  naive      the same module and Trainer, fed by DataLoader(TensorDataset)
  softzoo_relu   the softzoo path with ReLU hidden layers
  softzoo_compiled   the softzoo path with ``compile=True`` (torch.compile of the training
             loss and the evaluation forward; compiling happens in epoch 1, not timed)
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
from _results import host_info, result_stem, write_results
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

from softzoo.data import InMemoryBatchLoader, TabularDataModule
from softzoo.models import SoftRegressor
from softzoo.runner import CHECKPOINT_DEFAULTS, default_loggers

BATCH = 256


class _SteadyTimer(Callback):
    """Seconds per training step from the start of epoch 2 on."""

    def __init__(self) -> None:
        self.start = self.steps_at_start = None

    def on_train_epoch_start(self, trainer, module) -> None:
        if trainer.current_epoch == 1:
            self.start, self.steps_at_start = time.perf_counter(), trainer.global_step

    def on_train_end(self, trainer, module) -> None:
        self.per_step = (time.perf_counter() - self.start) / (
            trainer.global_step - self.steps_at_start
        )


def _model(activation: str = "softplus", compile: bool = False) -> SoftRegressor:
    torch.manual_seed(0)
    return SoftRegressor(
        16,
        family="gaussian",
        hidden=[64, 64],
        activation=activation,
        lr=1e-3,
        scheduler=None,
        compile=compile,
    )


def raw(x: torch.Tensor, y: torch.Tensor, epochs: int) -> float:
    model = _model()
    model.fit_scaling(x, y)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)  # as configure_optimizers
    loader = InMemoryBatchLoader(x, y, batch_size=BATCH, shuffle=True)
    start, steps = None, 0
    for epoch in range(epochs):
        if epoch == 1:
            start = time.perf_counter()
        loader.sampler.set_epoch(epoch)
        for xb, yb in loader:
            loss = model.family.loss(
                model.scaled_params(xb), (yb - model.y_shift) / model.y_scale
            ).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += epoch >= 1
    return (time.perf_counter() - start) / steps


def _trainer(workdir: Path, epochs: int, timer: _SteadyTimer) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=epochs,
        logger=default_loggers(workdir),
        default_root_dir=workdir,
        callbacks=[timer, ModelCheckpoint(dirpath=workdir / "ckpt", **CHECKPOINT_DEFAULTS)],
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )


def softzoo_path(
    table: Path, workdir: Path, epochs: int, activation: str, compile: bool = False
) -> float:
    data = TabularDataModule(
        path=str(table), target="y", batch_size=BATCH, val_fraction=0.01, test_fraction=0.0
    )
    model = _model(activation, compile)
    timer = _SteadyTimer()
    _trainer(workdir / f"{activation}{'_compiled' * compile}", epochs, timer).fit(model, data)
    return timer.per_step


def naive(table: Path, workdir: Path, epochs: int) -> float:
    data = TabularDataModule(
        path=str(table), target="y", batch_size=BATCH, val_fraction=0.01, test_fraction=0.0
    )
    x, y = data.tensors("train")
    model = _model()
    model.fit_scaling(x, y)
    timer = _SteadyTimer()
    train = DataLoader(TensorDataset(x, y), batch_size=BATCH, shuffle=True)
    val = DataLoader(TensorDataset(*data.tensors("val")), batch_size=4096)
    _trainer(workdir / "naive", epochs, timer).fit(model, train, val)
    return timer.per_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    features = rng.standard_normal((args.rows, 16))
    target = features @ rng.standard_normal(16) + np.exp(
        0.3 * features[:, 0]
    ) * rng.standard_normal(args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        table = workdir / "data.parquet"
        pd.DataFrame(features, columns=[f"f{i}" for i in range(16)]).assign(y=target).to_parquet(
            table
        )
        x = torch.tensor(features, dtype=torch.float32)
        y = torch.tensor(target, dtype=torch.float32)
        paths = {
            "raw": lambda: raw(x, y, args.epochs),
            "softzoo": lambda: softzoo_path(table, workdir, args.epochs, "softplus"),
            "naive": lambda: naive(table, workdir, args.epochs),
            "softzoo_relu": lambda: softzoo_path(table, workdir, args.epochs, "relu"),
            "softzoo_compiled": lambda: softzoo_path(
                table, workdir, args.epochs, "softplus", compile=True
            ),
        }
        # interleaved rounds, best of each (as timeit): on a shared machine noise only ever
        # adds time, and interleaving spreads slow spells over every path
        rounds = [{name: run() for name, run in paths.items()} for _ in range(args.rounds)]
        seconds = {name: min(r[name] for r in rounds) for name in paths}
    print(
        f"{args.rows} x 16, batch {BATCH}, 1 thread, steady state from epoch 2 of "
        f"{args.epochs}, best of {args.rounds} interleaved rounds"
    )
    print(f"{'path':<14}{'ms/step':>10}")
    for name, value in seconds.items():
        print(f"{name:<14}{value * 1e3:>10.3f}")
    summary = {
        "host": host_info(),
        "softzoo_over_raw": round(seconds["softzoo"] / seconds["raw"], 3),
        "naive_over_softzoo": round(seconds["naive"] / seconds["softzoo"], 3),
        "softplus_over_relu": round(seconds["softzoo"] / seconds["softzoo_relu"], 3),
        "softzoo_compiled_over_raw": round(seconds["softzoo_compiled"] / seconds["raw"], 3),
        "ms_per_step": {k: round(v * 1e3, 4) for k, v in seconds.items()},
        "rounds": args.rounds,
    }
    if args.out:
        write_results(args.out, result_stem("train_throughput"), summary)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
