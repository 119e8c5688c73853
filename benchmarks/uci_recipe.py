"""Choose a recipe's open settings on UCI training rows only.

    python benchmarks/uci_recipe.py {protocol,default} [--splits 2] [--workers 2]
                                    [--datasets concrete yacht] [--out benchmarks/results]

For each data set and each of its first ``--splits`` standard splits, 20 % of the
TRAINING rows are set aside as selection rows; every candidate recipe trains on the other
80 % (the default recipe carves its own 10 % validation from those for early stopping) and
is scored by its Gaussian NLL on the selection rows. The test rows are never read.
Candidates are ranked by their mean rank over the data sets (each data set's NLL is the
mean over its splits), and the chosen one is the best ranked that never blows up: a
candidate blows up on a data set when its NLL there is more than BLOWUP_NATS above the
median candidate's (a good mean rank can hide one exploded data set, and a recipe that
sometimes explodes is no default). The worst selection NLL of any split is reported
beside it. The last line printed is one JSON object.

  protocol: the settings the published protocol leaves open (1×50, 40 epochs): learning
            rate, batch size, mean warm-up (a fraction of the epochs) and β-NLL.
  default:  softzoo's default recipe (2×64, up to 200 epochs, cosine schedule, early
            stopping): learning rate, warm-up, β-NLL, faithful.
  patience: the default recipe's early-stopping patience (20 or 50 epochs).
  embedding: the default recipe's numeric columns, piecewise-linear or none, and its
            members' first scaling, random signs or ones (the per-data-set NLL says
            where each helps).
  fast:     the recipe from 2,000 rows: its learning rate and first scaling.
  small:    the recipe below 320 rows: TabM-mini x8 with random signs or ones, 200 or 400
            epochs; one model or 5 independent ones; with ones, lr 1e-2 or batch 32.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from _results import host_info, write_results
from uci import (
    DEFAULT_UCI,
    _gaussian_scores,
    _holdout,
    _predict,
    datasets_to_run,
    default_recipe,
    fit_recipe,
    protocol_recipe,
)

from softzoo.data import UCISplitDataModule

#: The recipe's epochs and patience from 320 to 2,000 rows (below 320 too, before 2026-12).
_EPOCHS_200 = {"epochs": 200, "patience": 50}

#: The settings each grid tries: every combination of its axes, or its list of candidates.
GRIDS: dict[str, dict[str, list] | list[dict[str, Any]]] = {
    "protocol": {
        "lr": [1e-2, 3e-3],
        "batch_size": [100, 32],
        "warmup": [0.0, 0.25],
        "beta_nll": [0.0, 0.5],
    },
    "default": {
        "lr": [1e-3, 3e-3],
        "warmup": [0.0, 0.1],
        "beta_nll": [0.0, 0.5],
        "faithful": [False, True],
    },
    # the early-stopping patience of the default recipe, once the rest was chosen
    "patience": {"patience": [20, 50]},
    # the numeric columns of the default recipe (quantile bins, or the standardised
    # values) and how its members' first scaling starts
    "embedding": {
        "numeric_embedding": ["piecewise_linear", "none"],
        "first_scaling": ["random_signs", "ones"],
    },
    # the recipe from 2,000 rows (40 epochs): its learning rate and first scaling
    "fast": {"lr": [3e-3, 6e-3], "first_scaling": ["random_signs", "ones"]},
    # the recipe below 320 rows (no encoding): TabM's random signs or ones, 200 or 400
    # epochs, against one model, five, a higher learning rate and a smaller batch
    "small": [
        {"first_scaling": "random_signs", **_EPOCHS_200},
        {"first_scaling": "ones", **_EPOCHS_200},
        {"first_scaling": "random_signs", "epochs": 400, "patience": 100},
        {"first_scaling": "ones", "epochs": 400, "patience": 100},
        {"ensemble_type": "independent", "members": 1, **_EPOCHS_200},
        {"ensemble_type": "independent", "members": 5, **_EPOCHS_200},
        {"first_scaling": "ones", "lr": 1e-2, **_EPOCHS_200},
        {"first_scaling": "ones", "batch_size": 32, **_EPOCHS_200},
    ],
}
#: Each grid's base recipe, from the data set's name and its training rows.
RECIPES = {
    "protocol": lambda name, rows: protocol_recipe(name),
    "default": lambda name, rows: default_recipe(rows),
    "patience": lambda name, rows: default_recipe(rows),
    "embedding": lambda name, rows: default_recipe(rows),
    "fast": lambda name, rows: default_recipe(rows),
    "small": lambda name, rows: default_recipe(rows),
}
SELECTION_FRACTION = 0.2
#: How far above the median candidate's NLL on a data set counts as blowing up there.
BLOWUP_NATS = 1.0


def candidates(grid: str) -> list[dict[str, Any]]:
    """Every combination of the grid's settings (or its list of candidates)."""
    axes = GRIDS[grid]
    if isinstance(axes, list):
        return [dict(c) for c in axes]
    return [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]


def run_split(job: tuple[str, str, str, int]) -> tuple[str, int, list[float]]:
    """The selection NLL of every candidate on one split's training rows."""
    grid, root, name, split = job
    torch.set_num_threads(1)
    x, y = UCISplitDataModule(root, name, split).tensors("train")
    seed = 1000 * split
    x_fit, y_fit, x_sel, y_sel = _holdout(x, y, SELECTION_FRACTION, seed + 1)
    scores = []
    for changes in candidates(grid):
        model = fit_recipe(x_fit, y_fit, {**RECIPES[grid](name, len(x_fit)), **changes}, seed)
        scores.append(_gaussian_scores(*_predict(model, x_sel), y_sel)["nll"])
    return name, split, scores


def summarise(grid: str, raw: dict[str, list[list[float]]]) -> dict[str, Any]:
    """Per candidate: its settings, mean NLL per data set, mean rank, worst split."""
    options = candidates(grid)
    means = {
        n: [statistics.mean(s[i] for s in splits) for i in range(len(options))]
        for n, splits in raw.items()
    }
    ranks = {n: _ranks(v) for n, v in means.items()}
    medians = {n: statistics.median(v) for n, v in means.items()}
    table = []
    for i, changes in enumerate(options):
        table.append(
            {
                "settings": changes,
                "mean_rank": statistics.mean(r[i] for r in ranks.values()),
                "nll": {n: v[i] for n, v in means.items()},
                "worst_split_nll": max(s[i] for splits in raw.values() for s in splits),
                "blows_up_on": [n for n, v in means.items() if v[i] > medians[n] + BLOWUP_NATS],
                "split_nll": {n: [s[i] for s in splits] for n, splits in raw.items()},
            }
        )
    table.sort(key=lambda c: c["mean_rank"])
    stable = [c for c in table if not c["blows_up_on"]] or table
    return {"grid": grid, "candidates": table, "chosen": stable[0]["settings"]}


def _ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    for rank, i in enumerate(order, start=1):
        ranks[i] = float(rank)
    return ranks


def _markdown(summary: dict[str, Any]) -> str:
    names = list(summary["candidates"][0]["nll"])
    short = [n.split("-")[0][:8] for n in names]
    lines = [
        f"# Recipe selection: {summary['grid']} ({summary['protocol']}, {summary['seconds']} s)",
        "",
        "Gaussian NLL on selection rows carved from the training splits (scaled to original "
        "units; lower is better). Test rows are never read. Sorted by mean rank.",
        "",
        "| settings | mean rank | worst split | blows up on | " + " | ".join(short) + " |",
        "|---|---:|---:|---|" + "---:|" * len(names),
    ]
    for c in summary["candidates"]:
        settings = ", ".join(f"{k}={v}" for k, v in c["settings"].items()) or "the recipe"
        cells = [f"{c['nll'][n]:.3f}" for n in names]
        lines.append(
            f"| {settings} | {c['mean_rank']:.2f} | {c['worst_split_nll']:.2f} | "
            f"{', '.join(n.split('-')[0][:8] for n in c['blows_up_on']) or '-'} | "
            + " | ".join(cells)
            + " |"
        )
    lines += [
        "",
        f"Chosen (the best mean rank that blows up nowhere, i.e. never more than "
        f"{BLOWUP_NATS} nat above the median candidate on a data set): {summary['chosen']}.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("grid", choices=sorted(GRIDS))
    parser.add_argument("--root", default=str(DEFAULT_UCI))
    parser.add_argument("--splits", type=int, default=2, help="first N splits per data set")
    parser.add_argument("--datasets", nargs="*", default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default=None, help="folder for uci_recipe_<grid>.json / .md")
    args = parser.parse_args()
    root = Path(args.root)
    names = datasets_to_run(root, args.datasets)
    if names is None:
        return
    jobs = [(args.grid, str(root), n, s) for n in names for s in range(args.splits)]
    jobs.sort(key=lambda j: -(root / j[2] / "data.txt").stat().st_size)
    start = time.perf_counter()
    raw: dict[str, list[list[float]]] = {n: [] for n in names}
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        for name, split, scores in pool.imap_unordered(run_split, jobs):
            raw[name].append(scores)
            print(f"  {name} split {split}: best {min(scores):.3f}", file=sys.stderr, flush=True)
    summary = {
        "host": host_info(),
        **summarise(args.grid, raw),
        "protocol": f"first {args.splits} splits",
        "seconds": round(time.perf_counter() - start, 1),
    }
    table = _markdown(summary)
    print(table)
    if args.out:
        write_results(args.out, f"uci_recipe_{args.grid}", summary, table)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
