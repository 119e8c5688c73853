"""The ``softzoo`` command: LightningCLI for fit/validate/test/predict, plus the deployment
and zoo tools. ``softzoo --help`` lists them all; each has its own ``--help``.

Bad input ends with one line ``softzoo CMD: error: …`` and exit status 2 (set
``SOFTZOO_DEBUG=1`` for the traceback).
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from softzoo import __version__

__all__ = ["COMMANDS", "main", "run_cli"]

LIGHTNING_COMMANDS = {
    "fit": "train a model (LightningCLI; --config configs/examples/gaussian.yaml)",
    "validate": "evaluate on the validation split (--ckpt_path)",
    "test": "evaluate on the test split (--ckpt_path)",
    "predict": "write predictions to a CSV (--ckpt_path, --output)",
}

#: name → ("module:function", help). A handler takes argv and returns an exit status.
COMMANDS: dict[str, tuple[str, str]] = {
    **{name: ("softzoo.cli:run_lightning", text) for name, text in LIGHTNING_COMMANDS.items()},
    "export": ("softzoo.onnx.cli:export_main", "export a checkpoint or zoo model to ONNX"),
    "parity": ("softzoo.onnx.cli:parity_main", "certify an ONNX file against its PyTorch module"),
    "zoo": ("softzoo.zoo.cli:zoo_main", "list the pretrained models, show a model card"),
    "reproduce": (
        "softzoo.zoo.cli:reproduce_main",
        "retrain a zoo model from its recipe and check it",
    ),
    "report": (
        "softzoo.report.cli:report_main",
        "calibration and prediction plots (PNG) and report.md of a model",
    ),
    "bench": ("softzoo.bench:bench_main", "run the benchmarks and print their JSON lines"),
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


#: The checkpoint callback every run gets (a "checkpoint:" section in the YAML).
CHECKPOINT_DEFAULTS = {
    "monitor": "val_loss",
    "mode": "min",
    "save_top_k": 1,
    "save_last": True,
    "filename": "best-{epoch}",
}


def default_loggers() -> list:
    """CSV + TensorBoard under ./runs, used when the config leaves trainer.logger unset;
    configs/trainer.yaml writes the same out (a test keeps them equal)."""
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    return [
        CSVLogger(save_dir="runs", name="csv"),
        TensorBoardLogger(save_dir="runs", name="tensorboard"),
    ]


def _last_checkpoint(trainer: Any) -> Path | None:
    """The newest ``last*.ckpt`` of earlier runs when checkpoints live in per-run logger
    folders (the default: runs/csv/version_N/checkpoints). Lightning itself only looks in
    the new run's folder, finds nothing and silently starts from scratch; None when the
    checkpoint callback has its own ``dirpath`` or there is no logger (Lightning finds
    those)."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    callbacks = [c for c in trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint)]
    if not trainer.loggers or any(c.dirpath for c in callbacks):
        return None
    root = Path(trainer.loggers[0].root_dir)
    found = sorted(root.glob("version_*/checkpoints/last*.ckpt"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise ValueError(
            f"--ckpt_path last: no last.ckpt under {root}/version_*/checkpoints to resume from; "
            "give a checkpoint file, or run without --ckpt_path to start afresh"
        )
    return found[-1]


def _check_manual_optimization(trainer: Any) -> None:
    """SoftRegressor steps its optimiser itself (several batches per Lightning step), so the
    Trainer's clipping and accumulation do not apply; say what to use instead."""
    if trainer.gradient_clip_val:
        raise ValueError(
            "--trainer.gradient_clip_val does not apply to softzoo models (they optimise "
            "manually); use --model.gradient_clip_val instead"
        )
    if trainer.accumulate_grad_batches != 1:
        raise ValueError(
            "--trainer.accumulate_grad_batches is not supported (softzoo models optimise "
            "manually); raise --data.init_args.batch_size instead"
        )


def _as_list(value: Any) -> list:
    return [] if value is None else list(value) if isinstance(value, list) else [value]


def _cli_class() -> type:
    from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar
    from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

    from softzoo.callbacks import AtomicCheckpointIO, PredictionCSVWriter, default_progress_bar
    from softzoo.data import ArrayDataModule
    from softzoo.models import SoftRegressor, check_checkpoint

    class SoftzooCLI(LightningCLI):
        """LightningCLI with the data module's shape linked into the model."""

        def __init__(self, args: list[str] | None) -> None:
            super().__init__(
                SoftRegressor,
                ArrayDataModule,
                subclass_mode_data=True,
                trainer_defaults={"max_epochs": 100},
                save_config_kwargs={"overwrite": True},
                args=args,
                auto_configure_optimizers=False,
            )

        def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
            parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
            parser.set_defaults({f"checkpoint.{k}": v for k, v in CHECKPOINT_DEFAULTS.items()})
            parser.add_argument(
                "--output", default="predictions.csv", help="predict: the CSV file to write"
            )
            parser.add_argument(
                "--init_from", default=None, help="fit: start from a zoo model's weights"
            )
            for source, target in (
                ("n_features", "in_features"),
                ("feature_names", "feature_names"),
                ("target_name", "target_name"),
            ):
                parser.link_arguments(f"data.{source}", f"model.{target}", apply_on="instantiate")

        def instantiate_trainer(self, **kwargs: object) -> object:
            trainer_config = self._get(self.config_init, "trainer")
            if trainer_config.get("logger") in (None, True):
                kwargs["logger"] = default_loggers()
            if not trainer_config.get("plugins"):
                kwargs["plugins"] = [AtomicCheckpointIO()]
            callbacks = _as_list(trainer_config.get("callbacks"))
            if trainer_config.get("enable_progress_bar") is not False and not any(
                isinstance(c, ProgressBar) for c in callbacks
            ):
                kwargs["callbacks"] = [*callbacks, default_progress_bar()]
            return super().instantiate_trainer(**kwargs)

        def _check_ckpt_path(self) -> None:
            config = self.config_init[self.subcommand]
            if config.get("ckpt_path") == "last":
                found = _last_checkpoint(self.trainer)
                if found is not None:
                    config["ckpt_path"] = str(found)
            path = config.get("ckpt_path")
            if path not in (None, "last", "best", "hpc", "registry"):
                check_checkpoint(path)

        def before_validate(self) -> None:
            self._check_ckpt_path()

        def before_test(self) -> None:
            self._check_ckpt_path()

        def before_fit(self) -> None:
            self._check_ckpt_path()
            _check_manual_optimization(self.trainer)
            name = self.config["fit"].get("init_from")
            if name:
                from softzoo.zoo import get_model_weights, load_weights

                weights = get_model_weights(name)
                if weights is None:
                    raise ValueError(f"zoo model {name!r} ships no weights to start from")
                load_weights(self.model, weights.file, weights.sha256)

        def before_predict(self) -> None:
            self._check_ckpt_path()
            self.trainer.callbacks.append(PredictionCSVWriter(self.config["predict"]["output"]))

    return SoftzooCLI


#: Lightning notices that do not apply to softzoo runs, silenced only while one runs.
_LIGHTNING_NOTICES = (
    # run_cli passes args on purpose, also from scripts that have their own sys.argv.
    "LightningCLI's args parameter is intended",
    # softzoo logs per epoch, and its Lightning steps each carry 16 batches: the advice to
    # lower log_every_n_steps for short epochs does not apply.
    "The number of training batches .* logging interval",
    # PredictionCSVWriter relies on the predict loader's fixed order, not on batch indices.
    "Couldn't infer the batch indices",
)


def run_cli(args: list[str] | None) -> Any:
    """Run ``softzoo fit|validate|test|predict`` in this process; returns the LightningCLI
    object (``.trainer``, ``.model``, ``.datamodule``). ``None`` reads ``sys.argv``."""
    with warnings.catch_warnings():
        for message in _LIGHTNING_NOTICES:
            warnings.filterwarnings("ignore", message=message)
        return _cli_class()(args)


def run_lightning(argv: list[str]) -> int:
    """Run a LightningCLI subcommand (fit, validate, test, predict)."""
    # From the console, argv is sys.argv[1:]; LightningCLI then reads it itself (and does
    # not warn about getting both).
    run_cli(None if argv == sys.argv[1:] else argv)
    return 0


def _handler(name: str) -> Callable[[list[str]], int]:
    target, _ = COMMANDS[name]
    module_name, function = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and err.name.startswith("softzoo"):
            raise ValueError(f"'{name}' is not available in softzoo {__version__} yet") from None
        raise
    handler = getattr(module, function)
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
        close = difflib.get_close_matches(name, list(COMMANDS), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        print(f"softzoo: error: unknown command '{name}'.{hint}\n\n{HELP}", file=sys.stderr)
        return 2
    try:
        return int(_handler(name)(argv[1:]) or 0)
    except (ValueError, FileNotFoundError, PermissionError) as err:
        if os.environ.get("SOFTZOO_DEBUG"):
            raise
        print(f"softzoo {name}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
