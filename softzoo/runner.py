"""``softzoo fit|validate|test|predict`` run in this process: the LightningCLI of softzoo
(every checkpoint checked before Lightning reads it, the data module's shape linked into
the model, run files beside the run), :func:`run_cli` and :func:`fit_in_process`, the one
in-process fit that the estimator, the tuner, ``softzoo reproduce`` and ``softzoo demo``
train through. A run leaves the caller's random generators, environment, signal handlers
and warnings filters as they were (:func:`softzoo._state.caller_state_kept`).

Example::

    result = fit_in_process("my.yaml", "runs/tmp")
    result.model.predict_params(x)
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from softzoo._io import check_folder_writable, check_not_input
from softzoo._quiet import quiet_lightning, quiet_output
from softzoo._state import caller_state_kept
from softzoo.configs import with_config_files

__all__ = [
    "CHECKPOINT_DEFAULTS",
    "LIGHTNING_COMMANDS",
    "QUIET_RUN",
    "SIGTERM_STATUS",
    "FitResult",
    "default_loggers",
    "fit_in_process",
    "quiet_output",
    "run_cli",
]

LIGHTNING_COMMANDS = {
    "fit": "train a model (LightningCLI; --config gaussian, or your own YAML)",
    "validate": "evaluate on the validation split (--ckpt_path)",
    "test": "evaluate on the test split (--ckpt_path)",
    "predict": "write predictions to a CSV (--ckpt_path, --output)",
}

#: Exit status of a run stopped by SIGTERM (128 + 15, as a shell reports it).
SIGTERM_STATUS = 143

#: Options of a run that prints only its results (no progress bar, no model summary).
QUIET_RUN = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]

#: The checkpoint callback every run gets (a "checkpoint:" section in the YAML).
CHECKPOINT_DEFAULTS = {
    "monitor": "val_loss",
    "mode": "min",
    "save_top_k": 1,
    "save_last": True,
    "filename": "best",
}


def default_loggers(root: str | Path | None = None) -> list:
    """CSV + TensorBoard under ``ROOT/runs`` (ROOT: ``--trainer.default_root_dir``, else the
    working directory, as Lightning places its own logs), used when the config leaves
    trainer.logger unset; the shipped config "trainer" writes the same out (a test keeps them
    equal)."""
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    save_dir = str(Path(root) / "runs") if root else "runs"
    return [
        CSVLogger(save_dir=save_dir, name="csv"),
        TensorBoardLogger(save_dir=save_dir, name="tensorboard"),
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


#: The special ``--ckpt_path`` names Lightning resolves itself, from the Trainer.
_SPECIAL_CHECKPOINTS = ("last", "best", "hpc", "registry")

_WEIGHTS_ONLY_REFUSED = (
    "--weights_only false is refused: it would unpickle the checkpoint, and a pickle can run "
    "any code on this machine. softzoo checkpoints hold only tensors and plain values and "
    "load with weights_only=true; drop the option"
)


def _resolve_checkpoint(trainer: Any, subcommand: str, ckpt_path: str | None) -> Path | None:
    """The file a ``--ckpt_path`` (a path or a special name) stands for, resolved exactly as
    Lightning would (including the SLURM "hpc" checkpoint it picks when none is given), so
    that softzoo can check it before Lightning reads it."""
    from lightning.pytorch.trainer.states import TrainerFn

    from softzoo._lightning import resolve_checkpoint_path

    if ckpt_path == "registry" or str(ckpt_path).startswith("registry:"):
        raise ValueError(
            "--ckpt_path registry: softzoo does not load checkpoints from a model registry; "
            "download the file and give its path"
        )
    if ckpt_path == "last":
        found = _last_checkpoint(trainer)
        if found is not None:
            return found
    state_fn = {"fit": TrainerFn.FITTING, "validate": TrainerFn.VALIDATING}.get(
        subcommand, TrainerFn.TESTING if subcommand == "test" else TrainerFn.PREDICTING
    )
    resolved = resolve_checkpoint_path(trainer, state_fn, ckpt_path)
    if ckpt_path == "last" and resolved is None:
        raise ValueError(
            "--ckpt_path last: no last.ckpt in the checkpoint directory to resume from; give a "
            "checkpoint file, or run without --ckpt_path to start afresh"
        )
    return None if resolved is None else Path(resolved)


def _output_folders(config: Any, subcommand: str) -> list[tuple[str, Path]]:
    """The folders a run writes into, from its parsed config: its loggers' (the default
    CSV and TensorBoard loggers' ``ROOT/runs``, a configured logger's ``save_dir``) and,
    for fit, its checkpoints'."""
    trainer = config["trainer"]
    root = Path(trainer.get("default_root_dir") or ".")
    logger = trainer.get("logger")
    folders = [("logs", root / "runs")] if logger in (None, True) else []
    for one in logger if isinstance(logger, list) else [logger]:
        save_dir = getattr(getattr(one, "init_args", None), "save_dir", None)
        if save_dir:
            folders.append(("logs", Path(save_dir)))
    if subcommand == "fit":
        dirpath = config["checkpoint"].get("dirpath")
        folders.append(("checkpoints", Path(dirpath) if dirpath else root))
    return folders


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


#: Model arguments the data module supplies (``link_arguments``), never the user.
_LINKED = {
    "train_rows": "train_rows",
    "n_features": "in_features",
    "feature_names": "feature_names",
    "target_name": "target_name",
    "categories": "categories",
    "missing_indicators": "missing_indicators",
    "column_roles": "column_roles",
    "missing_policy": "missing_policy",
    "exposure_column": "exposure_column",
    "weight_column": "weight_column",
}


def _model_config(
    checkpoint: dict, given: dict[str, Any], defaults: dict[str, Any], path: str
) -> dict:
    """The model arguments for a run from a checkpoint: the checkpoint's hyper-parameters,
    with the options the user set (config file or command line) on top where they do not
    change the trained model; an option that does is one error naming both values."""
    from softzoo.models import SoftRegressor, check_architecture
    from softzoo.recipe import AUTO_MODEL_KEYS

    # a checkpoint from before a setting existed was built with its constructor default,
    # never with what "auto" would choose now
    parameters = inspect.signature(SoftRegressor.__init__).parameters
    built = {k: parameters[k].default for k in AUTO_MODEL_KEYS}
    recorded = checkpoint["hyper_parameters"].items()
    hparams = {**built, **{k: v for k, v in recorded if k != "_instantiator"}}
    explicit = {
        k: v
        for k, v in given.items()
        if k not in _LINKED.values() and k in defaults and v != defaults[k] and v != hparams.get(k)
    }
    check_architecture(hparams, {**hparams, **explicit}, f"checkpoint {path!r}")
    return {**hparams, **explicit}


def _cli_class() -> type:
    from lightning.pytorch.callbacks import EarlyStopping as LightningEarlyStopping
    from lightning.pytorch.callbacks import ProgressBar
    from lightning.pytorch.cli import LightningArgumentParser

    from softzoo._lightning import CheckpointAwareCLI, LastEveryEpochCheckpoint
    from softzoo.callbacks import (
        AtomicCheckpointIO,
        EarlyStopping,
        PredictionCSVWriter,
        RunConfigSaver,
        RunLock,
        TimeBudget,
        budget_seconds,
        check_checkpoint_folder,
        default_progress_bar,
    )
    from softzoo.data import ArrayDataModule
    from softzoo.models import SoftRegressor, check_architecture, check_checkpoint
    from softzoo.recipe import AUTO, AUTO_MODEL_KEYS, Recipe, default_recipe

    class SoftzooCLI(CheckpointAwareCLI):
        """LightningCLI with the data module's shape linked into the model, every checkpoint
        checked before Lightning reads it, and run files kept beside the run."""

        def __init__(
            self, args: list[str] | None, callbacks: Sequence[Any] = (), run: bool = True
        ) -> None:
            self.extra_callbacks = list(callbacks)
            no_exit = {"exit_on_error": False}
            super().__init__(
                SoftRegressor,
                ArrayDataModule,
                subclass_mode_data=True,
                trainer_defaults={"max_epochs": None},
                save_config_callback=RunConfigSaver,
                save_config_kwargs={"overwrite": True},
                parser_kwargs={**no_exit, **{name: no_exit for name in LIGHTNING_COMMANDS}},
                args=args,
                run=run,
                auto_configure_optimizers=False,
            )

        def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
            parser.add_lightning_class_args(LastEveryEpochCheckpoint, "checkpoint")
            # `softzoo fit --data.path FILE --data.target COL` needs no --data class
            parser.set_defaults({"data": {"class_path": "softzoo.data.TabularDataModule"}})
            parser.set_defaults({f"checkpoint.{k}": v for k, v in CHECKPOINT_DEFAULTS.items()})
            parser.add_argument(
                "--output", default="predictions.csv", help="predict: the CSV file to write"
            )
            parser.add_argument(
                "--init_from", default=None, help="fit: start from a zoo model's weights"
            )
            parser.add_argument(
                "--early_stopping_patience",
                type=int | None,
                default=None,
                help="fit: epochs without a better val_loss before stopping (default: the "
                "recipe's, a quarter of max_epochs; 0: no early stopping); a config that "
                "lists an EarlyStopping callback uses its own",
            )
            # the default recipe's settings: "auto" follows the size of the training split
            parser.set_defaults({f"model.{key}": AUTO for key in AUTO_MODEL_KEYS})
            for source, target in _LINKED.items():
                parser.link_arguments(f"data.{source}", f"model.{target}", apply_on="instantiate")

        def check_checkpoint_options(self) -> None:
            # Lightning's version unpickles nothing, but it lets the checkpoint silently
            # override options the user gave and gives a traceback for a bad file.
            subcommand = self.config.get("subcommand")
            if not subcommand:
                return
            config = self.config[subcommand]
            for what, folder in _output_folders(config, subcommand):
                check_folder_writable(folder, what)  # before any data is read
            if config.get("weights_only") is False:
                raise ValueError(_WEIGHTS_ONLY_REFUSED)
            path = config.get("ckpt_path")
            if path is None or path in _SPECIAL_CHECKPOINTS:
                return  # resolved from the Trainer, and checked, in _check_ckpt_path
            checkpoint = check_checkpoint(path)
            defaults = self.subcommand_parser(subcommand).get_defaults()["model"]
            model = _model_config(checkpoint, dict(config["model"]), dict(defaults), path)
            self.config = self.parser.parse_object({subcommand: {"model": model}}, self.config)

        def instantiate_trainer(self, **kwargs: object) -> object:
            trainer_config = self.config_section(self.config_init, "trainer")
            if trainer_config.get("logger") in (None, True):
                kwargs["logger"] = default_loggers(trainer_config.get("default_root_dir"))
            if not trainer_config.get("plugins"):
                kwargs["plugins"] = [AtomicCheckpointIO()]
            callbacks = _as_list(trainer_config.get("callbacks"))
            if trainer_config.get("enable_progress_bar") is not False and not any(
                isinstance(c, ProgressBar) for c in callbacks
            ):
                callbacks = [*callbacks, default_progress_bar()]
            if self.subcommand == "fit":
                callbacks = [*callbacks, RunLock(), *self._recipe_early_stopping(callbacks)]
                callbacks += self._time_budget(trainer_config)
                if trainer_config.get("max_epochs") is None and trainer_config.get("max_steps") in (
                    None,
                    -1,
                ):
                    kwargs["max_epochs"] = self._recipe().max_epochs
            kwargs["callbacks"] = [*callbacks, *self.extra_callbacks]
            return super().instantiate_trainer(**kwargs)

        def _recipe(self) -> Recipe:
            return default_recipe(max(int(self.datamodule.train_rows), 1))

        def _time_budget(self, trainer_config: Any) -> list:
            """The plan for ``--trainer.max_time``: the epochs that fit in it (TimeBudget);
            the recipe's patience follows the plan unless the user set one."""
            seconds = budget_seconds(trainer_config.get("max_time"))
            if seconds is None:
                return []
            own_patience = self.config["fit"].get("early_stopping_patience") is not None
            return [TimeBudget(seconds, recipe_patience=not own_patience)]

        def _recipe_early_stopping(self, callbacks: list) -> list:
            """The recipe's early stopping, unless the config has its own, the user turned it
            off (patience 0) or there is no validation split to stop on."""
            patience = self.config["fit"].get("early_stopping_patience")
            if patience == 0 or any(isinstance(c, LightningEarlyStopping) for c in callbacks):
                return []
            if not len(self.datamodule.split_indices["val"]):
                if patience is not None:
                    raise ValueError(
                        f"--early_stopping_patience {patience} stops on val_loss of the "
                        "validation split, and it is empty: set --data.val_fraction > 0 (or "
                        "give val rows), or --early_stopping_patience 0"
                    )
                print(
                    "softzoo: no validation split, so no early stopping: the run trains all "
                    "its epochs (--data.val_fraction > 0 gives one)",
                    file=sys.stderr,
                )
                return []
            patience = self._recipe().patience if patience is None else patience
            return [EarlyStopping(monitor="val_loss", patience=patience)]

        def _check_ckpt_path(self) -> None:
            config = self.config_init[self.subcommand]
            given = config.get("ckpt_path")
            path = _resolve_checkpoint(self.trainer, self.subcommand, given)
            if path is None:
                return
            checkpoint = check_checkpoint(path)
            source = f"checkpoint {str(path)!r}"
            if given in _SPECIAL_CHECKPOINTS:
                source += f" (--ckpt_path {given})"
            check_architecture(checkpoint["hyper_parameters"], self.model.hparams, source)
            config["ckpt_path"] = str(path)
            config["weights_only"] = True

        def before_validate(self) -> None:
            self._check_ckpt_path()

        def before_test(self) -> None:
            self._check_ckpt_path()

        def before_fit(self) -> None:
            self._check_ckpt_path()
            resuming = self.config_init["fit"].get("ckpt_path") is not None
            check_checkpoint_folder(self.trainer, resuming)
            _check_manual_optimization(self.trainer)
            name = self.config["fit"].get("init_from")
            if name:
                from softzoo.zoo import load_pretrained

                load_pretrained(self.model, name)

        def before_predict(self) -> None:
            self._check_ckpt_path()
            output = self.config["predict"]["output"]
            data = self.datamodule
            inputs = [
                ("checkpoint", self.config_init["predict"].get("ckpt_path")),
                ("predict file", getattr(data, "predict_path", None)),
                ("data file", getattr(data, "path", None)),
                *(("config file", str(c)) for c in self.config["predict"].get("config") or []),
            ]
            check_not_input(output, inputs)
            self.trainer.callbacks.append(PredictionCSVWriter(output))

    return SoftzooCLI


#: A data source given on the command line replaces the other one a config may name: a
#: file replaces a config's bundled data set, and a bundled data set replaces a file.
_DATA_SOURCES = {"path": "dataset", "dataset": "path"}


def _replace_config_data_source(args: list[str]) -> list[str]:
    """``--data.path FILE`` on the command line also sets ``dataset`` to null (and the
    other way round), so that it replaces a config's bundled data set instead of clashing
    with it."""
    given = {
        key
        for arg in args
        for key in _DATA_SOURCES
        if arg.split("=", 1)[0] in (f"--data.{key}", f"--data.init_args.{key}")
    }
    extra = []
    for key in given:
        if _DATA_SOURCES[key] not in given:
            extra += [f"--data.init_args.{_DATA_SOURCES[key]}", "null"]
    return [*args, *extra]


def _one_line(message: str) -> str:
    return " ".join(message.split())


def run_cli(args: list[str] | None, callbacks: Sequence[Any] = (), run: bool = True) -> Any:
    """Run ``softzoo fit|validate|test|predict`` in this process; returns the LightningCLI
    object (``.trainer``, ``.model``, ``.datamodule``). ``None`` reads ``sys.argv``;
    ``callbacks``: Trainer callbacks added to the run's own (e.g. a tuner's pruning);
    ``run`` False: only build the run (the data module reads its table, the model and the
    Trainer are made) from ``args`` without a subcommand, to check a config before using it.

    Bad options raise one ``ValueError`` (a malformed config, an unknown key, an option
    that conflicts with the checkpoint, Lightning's own configuration errors). Ctrl-C
    raises ``KeyboardInterrupt`` (Lightning itself would exit with status 1) and SIGTERM
    Lightning's ``SIGTERMException`` with exit status 143 (Lightning's has 0: a scheduler
    would take the stopped run for a success). The caller's random generators,
    environment and signal handlers are kept (:func:`softzoo._state.caller_state_kept`)."""
    from jsonargparse import ArgumentError
    from lightning.fabric.utilities.exceptions import MisconfigurationException
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    argv = with_config_files(_replace_config_data_source(sys.argv[1:] if args is None else args))
    command = argv[0] if argv and run else "fit"
    from softzoo.callbacks import StopOnCtrlC

    ctrl_c = StopOnCtrlC()
    try:
        with caller_state_kept(), quiet_lightning(), ctrl_c.installed():
            return _cli_class()(argv, [*callbacks, ctrl_c], run)
    except SIGTERMException:
        raise SIGTERMException(SIGTERM_STATUS) from None
    except SystemExit as stop:
        if isinstance(stop.__context__, KeyboardInterrupt):  # Lightning's sys.exit(1)
            raise KeyboardInterrupt from None
        raise
    except ArgumentError as err:
        raise ValueError(
            f"{_one_line(str(err))} (run 'softzoo {command} --help' for the options)"
        ) from None
    except MisconfigurationException as err:
        raise ValueError(_one_line(str(err))) from None
    except ValueError as err:
        # jsonargparse wraps the data module's own error in a dump of the subtypes it tried
        if str(err).startswith("Does not validate") and isinstance(err.__cause__, ValueError):
            raise err.__cause__ from None
        raise


@dataclass(frozen=True)
class FitResult:
    """What :func:`fit_in_process` trained: the best checkpoint's model (on the CPU, in
    eval mode), that checkpoint's path (None: the run saved none), and the run's data
    module and Trainer."""

    model: Any
    checkpoint: Path | None
    datamodule: Any
    trainer: Any


def fit_in_process(
    config: str | Path | None,
    workdir: str | Path | None = None,
    *,
    args: Sequence[str] = (),
    quiet: bool = True,
    progress: bool = False,
    callbacks: Sequence[Any] = (),
) -> FitResult:
    """Train ``config`` (a YAML file, or a shipped config's name; None: ``args`` alone) with
    ``softzoo fit`` in this process, as the estimator, the tuner, ``softzoo reproduce`` and
    ``softzoo demo`` do. ``workdir``: no logger, and the checkpoints in
    ``workdir/checkpoints`` (None: wherever the config and ``args`` put them); ``args``:
    more ``softzoo fit`` options; ``quiet``: print nothing (the roles table and
    Lightning's notices included; warnings are shown once the run is over); ``progress``:
    show the progress bar and the model summary; ``callbacks``: Trainer callbacks added to
    the run's own.

    A run stopped by SIGTERM says so on stderr and raises ``SystemExit`` with status 143.

    Example::

        result = fit_in_process("gaussian", "runs/tmp", args=["--trainer.max_epochs", "3"])
        loc, scale = result.model.predict_params(x)
    """
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from softzoo.models import load_checkpoint

    argv = ["fit"] if config is None else ["fit", "--config", str(config)]
    if workdir is not None:
        argv += ["--trainer.logger", "false", "--trainer.default_root_dir", str(workdir)]
        argv += ["--checkpoint.dirpath", str(Path(workdir) / "checkpoints")]
    argv += [*args, *([] if progress else QUIET_RUN)]
    try:
        with quiet_output(quiet):
            cli = run_cli(argv, callbacks)
    except SIGTERMException:
        print("softzoo: the fit was stopped by SIGTERM", file=sys.stderr)
        raise
    checkpoint = cli.trainer.checkpoint_callback
    best = checkpoint.best_model_path or checkpoint.last_model_path
    model = load_checkpoint(best) if best else cli.model.cpu().eval()
    return FitResult(model, Path(best) if best else None, cli.datamodule, cli.trainer)
