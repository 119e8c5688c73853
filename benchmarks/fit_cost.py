"""Where the one-line default fit spends its time, and how that grows with the rows.

    python benchmarks/fit_cost.py [--table nycflights] [--sizes 10000 100000 1000000]
                                  [--out benchmarks/results]

(1) Profile: the model the one-line form builds (``softzoo fit --data.path F --data.target
T``, the default recipe) on a peers table, one training epoch split into: reading the table
(roles, arrays), the numeric encoding, the categorical lookups, the members' forward
pass (the shared body), the heads and the loss, the backward pass and the optimiser step
(a raw loop over the epoch's own batches), then the same epoch through Lightning's Trainer
(its loop's cost is the difference), and one validation pass, with each metric computed at
validation timed alone (the metrics every epoch computes, and the ones left to the test).

(2) Scaling: synthetic tables of N rows x 20 columns (15 numeric, 5 text; a gamma target
with a known mean) fitted by the one-line form in this process: seconds per epoch, the
epoch of the best validation loss, the epochs run, and the whole fit's seconds.

The last line printed is one JSON object (also ``fit_cost.json`` and ``fit_cost.md``
under ``--out``) with the host.
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
from _results import host_info, write_results
from peers import TABLES, table_file

from softzoo.models.steps import make_optimizer

#: The text columns of the synthetic table: (name, number of categories).
TEXT_COLUMNS = (("colour", 4), ("size", 10), ("shop", 40), ("city", 100), ("product", 400))


def _clock() -> float:
    return time.perf_counter()


class _Epochs(pl.Callback):
    """The seconds of every training epoch (its batches, not its validation), and each
    validation's val_loss."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.val_losses: list[float] = []
        self.start = _clock()

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.start = _clock()

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.seconds.append(_clock() - self.start)

    def on_validation_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.val_losses.append(float(trainer.callback_metrics["val_loss"]))


def _table_args(name: str) -> list[str]:
    table = TABLES[name]
    return [
        "--data.path", str(table_file(name)), "--data.target", table.target,
        "--data.split_column", "split", "--model.family", table.family,
        "--data.ignore", json.dumps(list(table.ignore)),
        "--data.categorical", json.dumps(list(table.categorical)),
    ]  # fmt: skip


def _built(args: list[str], tmp: str):
    """The data module, model and Trainer the one-line form builds (not run)."""
    from softzoo.runner import QUIET_RUN, quiet_output, run_cli

    options = ["--trainer.logger", "false", "--trainer.default_root_dir", tmp]
    options += ["--checkpoint.dirpath", f"{tmp}/checkpoints", "--trainer.max_epochs", "1"]
    with quiet_output():
        cli = run_cli([*args, *options, *QUIET_RUN], run=False)
    return cli.datamodule, cli.model


def _raw_epoch(data, model) -> dict[str, float]:
    """One epoch of the data module's own batches through the parts of the model, each
    part timed: what the optimiser step costs without Lightning."""
    rows = torch.as_tensor(data.split_indices["train"])
    model.fit_scaling(data.features_tensor, data.target_tensor, rows)
    data.member_shuffles = model.hparams.ensemble_size  # one shuffle per member, as in fit
    hp = model.hparams
    optimizer = make_optimizer(hp.optimizer, list(model.parameters()), hp.lr, hp.weight_decay, True)
    inputs = model.inputs
    parts = dict.fromkeys(
        ("numeric encoding", "categorical lookups", "members forward", "heads and loss"), 0.0
    )
    parts |= {"backward": 0.0, "optimizer step": 0.0}
    batches = 0
    for group in data.train_dataloader():
        for x, y, *_ in group if isinstance(group, list) else [group]:
            target = ((y - model.y_shift) / model.y_scale).T if y.dim() == 2 else y
            start = _clock()
            numeric = torch.nan_to_num(x[..., : inputs.n_numeric])
            if inputs.numeric is not None:
                inputs.numeric(numeric)
            parts["numeric encoding"] += _clock() - start
            start = _clock()
            for j, embedding in enumerate(inputs.embeddings):
                embedding(x[..., inputs.n_numeric + j].long())
            parts["categorical lookups"] += _clock() - start
            start = _clock()
            hidden = model.body(model.inputs(x))
            parts["members forward"] += _clock() - start
            start = _clock()
            loss = model.family.loss(model.heads(hidden), target).mean()
            parts["heads and loss"] += _clock() - start
            start = _clock()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            parts["backward"] += _clock() - start
            start = _clock()
            optimizer.step()
            parts["optimizer step"] += _clock() - start
            batches += 1
    # the input layer ran twice per batch (once in parts, once in the forward)
    parts["members forward"] -= parts["numeric encoding"] + parts["categorical lookups"]
    return {**{k: round(v, 3) for k, v in parts.items()}, "batches": batches}


def _validation(data, model) -> dict[str, float]:
    """One validation pass: the forward, and each metric's update and compute alone."""
    x, y = data.tensors("val")
    seconds = {}
    with torch.no_grad():
        start = _clock()
        scaled = model.scaled_params(x)
        seconds["forward"] = _clock() - start
        params = model.family.unscale(scaled, model.y_shift, model.y_scale)
        every_epoch = set(model.eval_metrics["val"])
        for name, metric in model._make_metrics().items():
            single = torch.nn.ModuleDict({name: metric}) if name != "loss" else None
            start = _clock()
            if single is None:
                model.validation_loss(scaled, (y - model.y_shift) / model.y_scale).mean()
            else:
                metric.update(
                    *((model.family.mean(params), y) if name in ("rmse", "mae") else (params, y))
                )
                metric.compute()
            when = "every epoch" if name in every_epoch else "test only"
            seconds[f"{name} ({when})"] = _clock() - start
    return {k: round(v, 4) for k, v in seconds.items()}


def profile(name: str) -> dict:
    """Part (1) on a peers table."""
    from softzoo.data import TabularDataModule
    from softzoo.runner import fit_in_process

    table = TABLES[name]
    start = _clock()
    table_data = TabularDataModule(
        path=str(table_file(name)), target=table.target, split_column="split",
        ignore=list(table.ignore), categorical=list(table.categorical),
    )  # fmt: skip
    assert len(table_data.arrays.target)  # read now, timed
    read = _clock() - start
    with tempfile.TemporaryDirectory() as tmp:
        data, model = _built(_table_args(name), tmp)
        torch.manual_seed(0)
        raw = _raw_epoch(data, model)
        validation = _validation(data, model)
        epochs = _Epochs()
        one = ["--trainer.max_epochs", "1", "--trainer.limit_val_batches", "0"]
        one += ["--early_stopping_patience", "0"]
        fit_in_process(
            None, tmp + "/lightning", args=[*_table_args(name), *one], callbacks=[epochs]
        )
    lightning_epoch = epochs.seconds[0]
    raw_total = sum(v for k, v in raw.items() if k != "batches")
    hp = model.hparams
    return {
        "table": name,
        "train_rows": data.train_rows,
        "model": f"{hp.ensemble_type} x{hp.ensemble_size}, {list(hp.hidden)}, "
        f"{hp.numeric_embedding} ({hp.numeric_bins} bins), batch {data.batch_size}",
        "read_table_s": round(read, 3),
        "raw_epoch_s": raw,
        "raw_epoch_total_s": round(raw_total, 3),
        "lightning_epoch_s": round(lightning_epoch, 3),
        "lightning_loop_s": round(lightning_epoch - raw_total, 3),
        "validation_s": validation,
    }


def synthetic_rows(n: int, seed: int = 0) -> pd.DataFrame:
    """n rows x 20 columns (15 numeric, 5 text, some empty cells) and a gamma target whose
    log mean is a sum of smooth effects of six numeric columns and of the text columns."""
    rng = np.random.default_rng(seed)
    numeric = rng.standard_normal((n, 15))
    log_mean = 1.0 + 0.4 * numeric[:, 0] - 0.3 * numeric[:, 1] ** 2 + 0.5 * np.sin(numeric[:, 2])
    log_mean += 0.2 * numeric[:, 3] * numeric[:, 4] + 0.3 * np.abs(numeric[:, 5])
    frame = pd.DataFrame(numeric, columns=[f"x{i:02d}" for i in range(15)])
    for name, size in TEXT_COLUMNS:
        effects = rng.normal(0.0, 0.3, size)
        codes = rng.integers(size, size=n)
        log_mean += effects[codes]
        frame[name] = np.array([f"{name[0]}{i}" for i in range(size)], dtype=object)[codes]
    frame.loc[rng.random(n) < 0.05, "x07"] = np.nan
    frame.loc[rng.random(n) < 0.05, "colour"] = None
    frame["y"] = rng.gamma(10.0, np.exp(log_mean) / 10.0)
    return frame


def scaling(rows: int, folder: Path) -> dict:
    """Part (2): the one-line fit of a synthetic table of ``rows`` rows."""
    from softzoo.runner import fit_in_process

    path = folder / f"synthetic_{rows}.parquet"
    synthetic_rows(rows).to_parquet(path, index=False)
    epochs = _Epochs()
    args = ["--data.path", str(path), "--data.target", "y", "--model.family", "gamma"]
    start = _clock()
    result = fit_in_process(None, folder / f"run_{rows}", args=args, callbacks=[epochs])
    seconds = _clock() - start
    per_epoch = epochs.seconds or [np.nan]
    return {
        "rows": rows,
        "train_rows": result.datamodule.train_rows,
        "batch_size": result.datamodule.batch_size,
        "seconds_per_epoch": round(float(np.median(per_epoch)), 2),
        "epochs_run": len(epochs.seconds),
        "best_epoch": int(np.argmin(epochs.val_losses)) + 1 if epochs.val_losses else None,
        "fit_s": round(seconds, 1),
        "fit_s_per_1000_rows": round(1000 * seconds / rows, 3),
    }


def _markdown(result: dict) -> str:
    p = result["profile"]
    lines = [
        f"# Where the default fit's time goes ({p['table']}, {p['train_rows']} training rows)",
        "",
        f"Model: {p['model']}. Host: {result['host']['cpu']} ({result['host']['cpu_capability']}),"
        f" {result['host']['torch_threads']} torch threads. Command: `python benchmarks/fit_cost.py"
        f" --table {p['table']} --out benchmarks/results`.",
        "",
        "| part of one epoch | seconds |",
        "|---|---:|",
        f"| reading the table (roles, arrays; once per fit) | {p['read_table_s']} |",
        *(f"| {k} | {v} |" for k, v in p["raw_epoch_s"].items() if k != "batches"),
        f"| Lightning's loop (the Trainer's epoch minus the raw parts) | {p['lightning_loop_s']} |",
        f"| the Trainer's epoch, validation excluded | {p['lightning_epoch_s']} |",
        "",
        "| validation pass | seconds |",
        "|---|---:|",
        *(f"| {k} | {v} |" for k, v in p["validation_s"].items()),
        "",
        "| rows | train rows | batch | s/epoch | best epoch | epochs run | fit s | s per 1000 rows |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {r['rows']} | {r['train_rows']} | {r['batch_size']} | {r['seconds_per_epoch']} | "
            f"{r['best_epoch']} | {r['epochs_run']} | {r['fit_s']} | {r['fit_s_per_1000_rows']} |"
            for r in result["scaling"]
        ),
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", default="nycflights", choices=list(TABLES))
    parser.add_argument("--sizes", nargs="*", type=int, default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    result = {"host": host_info(), "profile": profile(args.table)}
    print(json.dumps(result["profile"]), flush=True)
    result["scaling"] = []
    with tempfile.TemporaryDirectory() as tmp:
        for rows in args.sizes:
            result["scaling"].append(scaling(rows, Path(tmp)))
            print(json.dumps(result["scaling"][-1]), flush=True)
    if args.out:
        write_results(args.out, "fit_cost", result, _markdown(result))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
