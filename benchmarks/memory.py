"""Peak memory and throughput of `softzoo fit` on a table bigger than the zoo's.

    python benchmarks/memory.py [--rows 10000000] [--processes 1] [--out benchmarks/results]

A synthetic Parquet file (generated here in row groups of 1,000,000, never committed) of
``--rows`` rows × 32 numeric columns (float64, 1 % empty cells) + 4 text columns (3 to
1,000 categories, 1 % empty) + a positive target. `softzoo fit` trains a gamma model on it
for one epoch (batch 4096, validation 1 %, no test split) in a child process; its peak
resident memory (``ru_maxrss`` of the child) is reported over the float32 size of the
features (rows × 36 × 4 bytes; target ≤ 2.5), with rows per second of the whole command
and of the epoch alone (from its log). ``--processes N`` trains under DDP with
``--data.shard_row_groups true`` (each process holds only its row groups): the peak is then
the largest of the processes', reported over the whole features and over one process's
share. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _results import host_info, write_results

NUMERIC, TEXT = 32, 4
CATEGORIES = (3, 12, 100, 1000)
ROW_GROUP = 1_000_000


def write_table(path: Path, rows: int, seed: int = 0) -> None:
    """The synthetic table, one row group at a time (the generator holds one group)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    weights = rng.standard_normal(NUMERIC) / np.sqrt(NUMERIC)
    writer = None
    for start in range(0, rows, ROW_GROUP):
        n = min(ROW_GROUP, rows - start)
        numeric = rng.standard_normal((n, NUMERIC))
        mean = np.exp(0.5 * numeric @ weights)
        columns = {}
        for j in range(NUMERIC):
            values = numeric[:, j].copy()
            values[rng.random(n) < 0.01] = np.nan
            columns[f"x{j}"] = pa.array(values, from_pandas=True)
        for j, k in enumerate(CATEGORIES):
            codes = rng.integers(0, k, n)
            labels = np.array([f"level-{i}" for i in range(k)], dtype=object)[codes]
            labels[rng.random(n) < 0.01] = None
            columns[f"c{j}"] = pa.array(labels, type=pa.string())
        columns["y"] = pa.array(rng.gamma(4.0, mean / 4.0))
        table = pa.table(columns)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=ROW_GROUP)
    writer.close()


def fit_once(table: Path, workdir: Path, processes: int) -> tuple[float, float, str]:
    """Wall seconds, the largest peak RSS of the child processes in bytes and the log."""
    command = [
        sys.executable,
        "-m",
        "softzoo.cli",
        "fit",
        "--data.path",
        str(table),
        "--data.target",
        "y",
        "--data.batch_size",
        "4096",
        "--data.val_fraction",
        "0.01",
        "--data.test_fraction",
        "0",
        "--model.family",
        "gamma",
        "--trainer.max_epochs",
        "1",
        "--trainer.logger",
        "false",
        "--trainer.enable_progress_bar",
        "false",
        "--checkpoint.dirpath",
        str(workdir / "ckpt"),
    ]
    if processes > 1:
        command += ["--data.shard_row_groups", "true", "--trainer.strategy", "ddp"]
        command += ["--trainer.devices", str(processes), "--trainer.accelerator", "cpu"]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=workdir)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"softzoo fit failed ({done.returncode}):\n{done.stderr[-3000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # KiB on Linux
    return seconds, peak, done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        table = workdir / "big.parquet"
        start = time.perf_counter()
        write_table(table, args.rows)
        generate = time.perf_counter() - start
        seconds, peak, _ = fit_once(table, workdir, args.processes)
        file_bytes = os.path.getsize(table)
    features = args.rows * (NUMERIC + TEXT) * 4
    result = {
        "host": host_info(),
        "rows": args.rows,
        "columns": {"numeric": NUMERIC, "text": TEXT, "categories": list(CATEGORIES)},
        "parquet_bytes": file_bytes,
        "features_float32_bytes": features,
        "peak_rss_bytes": peak,
        "processes": args.processes,
        "peak_rss_over_features": round(peak / features, 3),
        "peak_rss_over_share": round(peak / (features / args.processes), 3),
        "fit_seconds": round(seconds, 1),
        "rows_per_second": round(args.rows / seconds),
        "generate_seconds": round(generate, 1),
    }
    print(
        f"{args.rows:,} rows: peak RSS {peak / 2**30:.2f} GiB = "
        f"{result['peak_rss_over_features']}x the float32 features "
        f"({features / 2**30:.2f} GiB; {args.processes} process(es), largest peak over one "
        f"share {result['peak_rss_over_share']}x); fit (load + 1 epoch) {seconds:.0f} s, "
        f"{result['rows_per_second']:,} rows/s"
    )
    if args.out:
        name = "memory" if args.processes == 1 else f"memory_{args.processes}_processes"
        write_results(args.out, name, result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
