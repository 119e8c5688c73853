"""``softzoo bench``: run the benchmark scripts of a softzoo checkout and print their JSON.

The benchmarks live in the repository's ``benchmarks/`` folder, not in the installed
package (they need the UCI data and write ``benchmarks/results/``), so the command runs
from a checkout: ``softzoo bench`` in the repository root is what ``make bench`` does.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

__all__ = ["BENCHMARKS", "bench_main"]

#: name → the script's arguments (``--quick`` keeps the UCI suite to a few minutes)
BENCHMARKS: dict[str, list[str]] = {
    "uci": ["uci.py", "--quick"],
    "train_throughput": ["train_throughput.py"],
    "onnx_latency": ["onnx_latency.py"],
    "dead_units": ["dead_units.py"],
    "tables": ["tables.py"],
    "ensemble": ["ensemble.py"],
}
_DEFAULT = ("uci", "train_throughput", "onnx_latency")


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


def bench_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="softzoo bench",
        description="Run benchmarks/*.py of a softzoo checkout and print each one's JSON line.",
    )
    parser.add_argument(
        "names", nargs="*", help=f"among {', '.join(BENCHMARKS)} (default: {' '.join(_DEFAULT)})"
    )
    parser.add_argument("--repo", default=".", help="the softzoo checkout (default: here)")
    parser.add_argument("--out", default=None, help="write results here, e.g. benchmarks/results")
    parser.add_argument("--uci-root", default=None, help="the UCI data folder for uci.py")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        raise ValueError(f"unknown benchmark {unknown[0]!r}; choose among: {', '.join(BENCHMARKS)}")
    folder = Path(args.repo) / "benchmarks"
    if not (folder / "uci.py").is_file():
        raise ValueError(
            f"no softzoo benchmarks under {str(folder)!r}: softzoo bench runs the scripts of a "
            "softzoo checkout; run it from the repository root or pass --repo"
        )
    status = 0
    for name in args.names or _DEFAULT:
        command = [sys.executable, str(folder / BENCHMARKS[name][0]), *BENCHMARKS[name][1:]]
        command += ["--out", args.out] if args.out else []
        command += ["--root", args.uci_root] if name == "uci" and args.uci_root else []
        result = subprocess.run(command, capture_output=True, text=True, cwd=folder.parent)
        if result.returncode != 0:
            print(f"softzoo bench: {name} failed:\n{result.stderr[-2000:]}", file=sys.stderr)
            status = 1
            continue
        print(_last_line(result.stdout), flush=True)
    return status
