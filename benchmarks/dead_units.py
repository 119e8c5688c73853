"""Dead hidden units, ReLU vs Softplus, at a high learning rate.

    python benchmarks/dead_units.py [--dataset kin8nm] [--lr 0.01 0.03 0.1] [--epochs 30]
                                    [--seeds 3] [--out benchmarks/results]

The same model (Gaussian heads, hidden layers 64×64, Adam, constant learning rate, batch
64) trained on a bundled data set with ReLU and with Softplus hidden layers, at each
learning rate and for several seeds (same seeds for both, so both start from the same initial weights). After each
validation epoch softzoo's DeadUnitMonitor logs the fraction of hidden units that were
never active on any validation row (ReLU: output 0 on every row; Softplus: derivative
sigmoid(z) below 1e-4 on every row). Reported per learning rate and activation: dead
fraction over the epochs (mean over seeds), final test NLL (median and worst seed — a
diverged run has an astronomically large NLL, which a mean would only echo) and RMSE,
written as a table, JSON and a PNG plot (one column per learning rate). The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
from _results import host_info, quiet_trainer, write_results
from lightning.pytorch.callbacks import Callback
from matplotlib.figure import Figure

from softzoo._io import atomic_write
from softzoo.callbacks import DeadUnitMonitor
from softzoo.data import TabularDataModule
from softzoo.models import SoftRegressor

ACTIVATIONS = ("relu", "softplus")


class _History(Callback):
    """The monitored metrics after every validation epoch (the sanity check excluded)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    def on_validation_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            metrics = trainer.callback_metrics
            keys = ("dead_units/all", "dead_units/layer_1", "dead_units/layer_2", "val_nll")
            self.rows.append({k: float(metrics[k]) for k in keys})


def run(dataset: str, activation: str, lr: float, epochs: int, seed: int) -> dict:
    """Train one model; its per-epoch history and final test metrics."""
    pl.seed_everything(seed, verbose=False)
    data = TabularDataModule(dataset=dataset, batch_size=64, seed=0)
    model = SoftRegressor(
        data.n_features, hidden=[64, 64], activation=activation, lr=lr, scheduler=None
    )
    history = _History()
    # the monitor must run before the history reads its metrics
    trainer = quiet_trainer(max_epochs=epochs, callbacks=[DeadUnitMonitor(), history])
    trainer.fit(model, data)
    test = model.evaluate(*data.tensors("test"))
    return {"history": history.rows, "test_nll": test["nll"], "test_rmse": test["rmse"]}


def _summary(runs: dict[str, list[dict]]) -> dict:
    out = {}
    for activation, seeds in runs.items():
        epochs = len(seeds[0]["history"])
        # dead fractions: mean over seeds; NLL: median (one diverged seed would swamp a mean)
        curve = {
            key: [
                (statistics.median if key == "val_nll" else statistics.mean)(
                    s["history"][e][key] for s in seeds
                )
                for e in range(epochs)
            ]
            for key in seeds[0]["history"][0]
        }
        nll = [s["test_nll"] for s in seeds]
        out[activation] = {
            "dead_final": curve["dead_units/all"][-1],
            "dead_max": max(curve["dead_units/all"]),
            "dead_final_per_seed": [s["history"][-1]["dead_units/all"] for s in seeds],
            "test_nll_median": statistics.median(nll),
            "test_nll_worst": max(nll),
            "test_rmse_median": statistics.median(s["test_rmse"] for s in seeds),
            "curves": curve,
        }
    return out


def _plot(by_lr: dict[float, dict], title: str, path: Path) -> None:
    figure = Figure(figsize=(4.2 * len(by_lr), 7), dpi=110, layout="constrained")
    grid = figure.subplots(2, len(by_lr), squeeze=False)
    for column, (lr, summary) in enumerate(by_lr.items()):
        dead_axes, nll_axes = grid[0][column], grid[1][column]
        best = min(min(e["curves"]["val_nll"]) for e in summary.values())
        for i, (activation, entry) in enumerate(summary.items()):
            curves = entry["curves"]
            epochs = range(1, len(curves["dead_units/all"]) + 1)
            dead = [100 * v for v in curves["dead_units/all"]]
            dead_axes.plot(epochs, dead, color=f"C{i}", linewidth=2, label=activation)
            nll_axes.plot(epochs, curves["val_nll"], color=f"C{i}", linewidth=2, label=activation)
        dead_axes.set(title=f"Adam lr {lr}", xlabel="epoch", ylabel="dead hidden units (%)")
        dead_axes.set_ylim(0, 100)
        # a diverging run would squash the others' curves: show 4 nats above the best
        nll_axes.set_ylim(best - 0.2, best + 4.0)
        nll_axes.set(xlabel="epoch", ylabel="validation NLL (nats per row)")
        for axes in (dead_axes, nll_axes):
            axes.grid(True, alpha=0.3)
            axes.legend()
    figure.suptitle(title)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    atomic_write(path, lambda tmp: tmp.write_bytes(buffer.getvalue()))


def _markdown(by_lr: dict[float, dict], args: argparse.Namespace, seconds: float) -> str:
    lines = [
        f"# Dead units: ReLU vs Softplus ({args.dataset}, Gaussian MLP 64×64, {args.epochs} "
        f"epochs, {args.seeds} seeds, {seconds:.0f} s)",
        "",
        "| Adam lr | hidden layers | dead units, last epoch | worst epoch | per seed (last) "
        "| test NLL, median | worst seed | test RMSE, median |",
        "|---:|---|---:|---:|---|---:|---:|---:|",
    ]
    for lr, summary in by_lr.items():
        for activation, e in summary.items():
            seeds = ", ".join(f"{100 * v:.0f} %" for v in e["dead_final_per_seed"])
            lines.append(
                f"| {lr} | {activation} | {100 * e['dead_final']:.1f} % | "
                f"{100 * e['dead_max']:.1f} % | {seeds} | {e['test_nll_median']:.3f} | "
                f"{e['test_nll_worst']:.4g} | {e['test_rmse_median']:.4g} |"
            )
    lines += [
        "",
        "Dead: never active on any validation row in that epoch (ReLU output 0; Softplus "
        "derivative below 1e-4), as a share of all 128 hidden units; mean over seeds.",
        "![dead units and validation NLL over the epochs](dead_units.png)",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="kin8nm")
    parser.add_argument("--lr", type=float, nargs="+", default=[0.01, 0.03, 0.1])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default=None, help="folder for dead_units.json/.md/.png")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    by_lr = {
        lr: _summary(
            {
                a: [run(args.dataset, a, lr, args.epochs, seed) for seed in range(args.seeds)]
                for a in ACTIVATIONS
            }
        )
        for lr in args.lr
    }
    seconds = time.perf_counter() - start
    table = _markdown(by_lr, args, seconds)
    print(table)
    result = {
        "host": host_info(),
        "dataset": args.dataset,
        "epochs": args.epochs,
        "seeds": args.seeds,
        "seconds": round(seconds, 1),
        "by_lr": {str(lr): summary for lr, summary in by_lr.items()},
    }
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        title = (
            f"{args.dataset}: dead units (mean of {args.seeds} seeds) and validation NLL "
            "(median seed), ReLU vs Softplus"
        )
        _plot(by_lr, title, out / "dead_units.png")
        write_results(out, "dead_units", result, table)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
