"""The ``softzoo`` command: LightningCLI for fit/validate/test/predict, plus the deployment
and zoo tools. ``softzoo --help`` lists them all; each has its own ``--help``.

Bad input ends with one line ``softzoo CMD: error: …`` and exit status 2 (set
``SOFTZOO_DEBUG=1`` for the traceback).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable

from softzoo import __version__
from softzoo._io import WriteError
from softzoo._names import did_you_mean
from softzoo.runner import LIGHTNING_COMMANDS

__all__ = ["COMMANDS", "INTERRUPTED_STATUS", "main", "run_lightning"]

#: Exit status of a command stopped by Ctrl-C (128 + SIGINT, as a shell reports it).
INTERRUPTED_STATUS = 130

#: name → ("module:function", help). A handler takes argv and returns an exit status.
COMMANDS: dict[str, tuple[str, str]] = {
    **{name: ("softzoo.cli:run_lightning", text) for name, text in LIGHTNING_COMMANDS.items()},
    "export": (
        "softzoo.onnx.cli:export_main",
        "export a checkpoint to ONNX (the zoo's own are in export/)",
    ),
    "parity": ("softzoo.onnx.cli:parity_main", "certify an ONNX file against its PyTorch module"),
    "zoo": ("softzoo.zoo.cli:zoo_main", "list the pretrained models, show a model card"),
    "reproduce": (
        "softzoo.reproduce:reproduce_main",
        "retrain a zoo model from its recipe and check it",
    ),
    "report": (
        "softzoo.report.cli:report_main",
        "calibration and prediction plots (PNG) and report.md of a model",
    ),
    "bench": ("softzoo.bench:bench_main", "run the benchmarks and print their JSON lines"),
    "config": ("softzoo.configs:config_main", "list or show the shipped example configs"),
    "demo": ("softzoo.demo:demo_main", "train, test, export and certify an example (make demo)"),
    "tune": (
        "softzoo.tune:tune_main",
        "tune the recipe's settings with Optuna (--tune.trials N; a study in a database)",
    ),
}

HELP = "\n".join(
    [
        f"usage: softzoo <command> [options]      (softzoo {__version__})",
        "",
        "A PyTorch Lightning model zoo for positive outputs.",
        "",
        "commands:",
        *(f"  {name:<10} {text}" for name, (_, text) in COMMANDS.items()),
        "",
        "Run 'softzoo <command> --help' for a command's options.",
    ]
)


def run_lightning(argv: list[str]) -> int:
    """Run a LightningCLI subcommand (fit, validate, test, predict); a run stopped by
    SIGTERM (Lightning saves what it saves, then stops) exits with status 143, so that a
    scheduler does not take it for a success."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from softzoo.runner import SIGTERM_STATUS, run_cli

    try:
        run_cli(argv)
    except SIGTERMException:
        print(
            f"softzoo {argv[0]}: stopped by SIGTERM; the checkpoints written so far are kept "
            "(resume a fit with --ckpt_path last)",
            file=sys.stderr,
        )
        return SIGTERM_STATUS
    return 0


def _handler(name: str) -> Callable[[list[str]], int]:
    module_name, function = COMMANDS[name][0].split(":")
    handler = getattr(importlib.import_module(module_name), function)
    return (lambda argv: handler([name, *argv])) if function == "run_lightning" else handler


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``softzoo`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(HELP)
        return 0
    if argv[0] in ("-V", "--version"):
        print(f"softzoo {__version__}")
        return 0
    name = argv[0]
    if name not in COMMANDS:
        hint = did_you_mean(name, list(COMMANDS))
        print(f"softzoo: error: unknown command {name!r}.{hint}\n\n{HELP}", file=sys.stderr)
        return 2
    try:
        return int(_handler(name)(argv[1:]) or 0)
    except (ValueError, FileNotFoundError, PermissionError, WriteError) as err:
        if os.environ.get("SOFTZOO_DEBUG"):
            raise
        print(f"softzoo {name}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"softzoo {name}: interrupted (Ctrl-C)", file=sys.stderr)
        return INTERRUPTED_STATUS


if __name__ == "__main__":
    raise SystemExit(main())
