"""``softzoo tune`` against softzoo's one-line default, on the tables of the peers
benchmark (the same pinned files, the same train/val/test rows), in one run.

    python benchmarks/tune.py [--tables yrbss ...] [--trials 50] [--trial-minutes M]
                              [--out benchmarks/results]

Per table: the default (``softzoo fit`` as peers.py runs it) and the tuned model (``softzoo
tune`` with the same options and ``--tune.trials``; each trial judged on the val rows, the
best one tested once): test NLL, RMSE, PICP90, width, and the seconds each took.
``--trial-minutes`` caps a trial's training time (Lightning's ``max_time``; the best
trial's config keeps the cap). The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time

from _results import host_info, write_results
from peers import CACHE, TABLES, run_softzoo, table_file


def run_tuned(name: str, trials: int, minutes: float | None) -> dict:
    from softzoo.cli import main

    table = TABLES[name]
    output = CACHE / f"tune-{name}"
    args = [
        "tune", "--data.path", str(table_file(name)), "--data.target", table.target,
        "--data.split_column", "split", "--model.family", table.family,
        "--data.ignore", json.dumps(list(table.ignore)),
        "--data.categorical", json.dumps(list(table.categorical)),
        "--tune.trials", str(trials), "--tune.output", str(output),
    ]  # fmt: skip
    if minutes is not None:
        args += ["--trainer.max_time", f"00:00:{int(minutes):02d}:{round(minutes % 1 * 60):02d}"]
    start = time.perf_counter()
    if main(args) != 0:
        raise RuntimeError(f"softzoo tune failed on {name}")
    seconds = time.perf_counter() - start
    metrics = json.loads((output / "softzoo" / "best_test.json").read_text())
    return {
        "nll": metrics.get("test_nll"), "rmse": metrics["test_rmse"],
        "picp90": metrics.get("test_picp_90"), "width90": metrics.get("test_width_90"),
        "tune_s": seconds, "trials": trials,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", nargs="*", default=list(TABLES))
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--trial-minutes", type=float, default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    results = {}
    for name in args.tables:
        default = run_softzoo(name, table_file(name))
        tuned = run_tuned(name, args.trials, args.trial_minutes)
        results[name] = {"default": default, "tuned": tuned}
        print(f"{name}: default {default}\n{name}: tuned {tuned}", flush=True)
    summary = {
        "host": host_info(),
        "trials": args.trials,
        "trial_minutes": args.trial_minutes,
        "tables": results,
        "nll_tuned_minus_default": {
            n: r["tuned"]["nll"] - r["default"]["nll"]
            for n, r in results.items()
            if r["tuned"]["nll"] is not None
        },
        "rmse_tuned_over_default": {
            n: r["tuned"]["rmse"] / r["default"]["rmse"] for n, r in results.items()
        },
    }
    if args.out:
        write_results(args.out, "tune", summary)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
