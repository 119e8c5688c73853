"""``softzoo tune``: an Optuna study over the default recipe's open settings, each trial
a real ``softzoo fit`` judged on the validation split only (its NLL; RMSE for a point
family), pruned by Optuna's Lightning callback; the test rows are used once, by the best
trial, at the end.

The study lives in a database (default: a SQLite file in the output folder), so a
killed study resumes where it stopped and several processes, or machines sharing a
PostgreSQL/MySQL database, tune one study together (docs/scaling.md).

    softzoo tune --config C [--data.* ...] --tune.trials 50 [--tune.timeout S]
                 [--tune.storage URL] [--tune.study NAME] [--tune.output DIR]

Writes, in the study's own folder ``DIR/<study>/`` (so that several studies share one
output folder and one database, and none touches another's files): ``best.yaml``
(``softzoo fit --config DIR/<study>/best.yaml`` trains the best trial's model),
``trials.csv``, ``history.png`` (the optimisation history), ``importances.png`` (the
parameters' importances), ``best_test.json`` (the best trial's test metrics) and
``trials/<number>/`` (each trial's config and checkpoints). A file there that this study
did not write is never replaced: the run stops before its first trial.

The fit options are checked before the study starts (the data is read and the model
built once), so a missing file or column is one line, with nothing left behind. SIGTERM
stops the running trial, marks it failed and queues its settings again for the resumed
study; the command exits with status 143.

Python users tune :class:`~softzoo.sklearn.SoftzooRegressor` with the same space::

    def objective(trial):
        model = SoftzooRegressor(family="gamma", **suggest_options(trial, "gamma"))
        return model.fit(X, y, eval_set=(X_val, y_val)).nll(X_val, y_val)
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import io
import json
import math
import os
import re
import signal
import socket
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import yaml

from softzoo._options import fit_config
from softzoo.families import get_family
from softzoo.runner import QUIET_RUN, SIGTERM_STATUS, fit_in_process, quiet_output, run_cli

__all__ = ["SEARCH_SPACE", "suggest_options", "tune_main"]

#: The open settings of the default recipe and the values a trial draws from: a
#: (low, high) pair is a range (log-uniform where marked "log"), a list is a choice.
SEARCH_SPACE: dict[str, Any] = {
    "lr": (1e-4, 1e-2, "log"),
    "weight_decay": (1e-6, 1e-2, "log"),
    "width": [64, 128, 256, 512],
    "depth": (1, 4),
    "dropout": (0.0, 0.3),
    "batch_size": [64, 128, 256, 512, 1024],
    "numeric_embedding": ["none", "piecewise_linear", "periodic"],
    "ensemble_type": ["independent", "batch", "mini"],
    "ensemble_size_independent": [1, 5],
    "ensemble_size_tabm": [8, 16, 32],
    "warmup_fraction": [0.0, 0.1, 0.2],
    "beta_nll": (0.0, 1.0),
}
#: How long a trial may go without a heartbeat before another process marks it failed
#: (a killed process's trial): seconds.
HEARTBEAT_SECONDS, GRACE_SECONDS = 30, 120


def _suggest(trial: Any, name: str) -> Any:
    space = SEARCH_SPACE[name]
    if isinstance(space, list):
        return trial.suggest_categorical(name, space)
    low, high, *log = space
    if isinstance(low, int) and isinstance(high, int):
        return trial.suggest_int(name, low, high)
    return trial.suggest_float(name, low, high, log=bool(log))


def suggest_options(trial: Any, family: str = "gaussian") -> dict[str, Any]:
    """One trial's training options (the names of ``softzoo fit``'s options and of
    :class:`~softzoo.sklearn.SoftzooRegressor`'s arguments), drawn from
    :data:`SEARCH_SPACE`. A point family is one model; β-NLL only where the family's loss
    has it.

    Example:
        >>> import optuna
        >>> trial = optuna.trial.FixedTrial({"lr": 1e-3, "weight_decay": 1e-5, "width": 64,
        ...     "depth": 2, "dropout": 0.1, "batch_size": 256, "numeric_embedding": "none",
        ...     "ensemble_type": "mini", "ensemble_size_tabm": 8, "warmup_fraction": 0.1})
        >>> options = suggest_options(trial, "gamma")
        >>> options["hidden"], options["ensemble_type"], options["ensemble_size"]
        ([64, 64], 'mini', 8)
    """
    options = {
        "lr": _suggest(trial, "lr"),
        "weight_decay": _suggest(trial, "weight_decay"),
        "hidden": [_suggest(trial, "width")] * _suggest(trial, "depth"),
        "dropout": _suggest(trial, "dropout"),
        "batch_size": _suggest(trial, "batch_size"),
        "numeric_embedding": _suggest(trial, "numeric_embedding"),
        "warmup_fraction": _suggest(trial, "warmup_fraction"),
    }
    base = get_family(family)
    if base.probabilistic:
        kind = _suggest(trial, "ensemble_type")
        size = "ensemble_size_independent" if kind == "independent" else "ensemble_size_tabm"
        options.update(ensemble_type=kind, ensemble_size=_suggest(trial, size))
    else:
        options.update(ensemble_type="independent", ensemble_size=1)
    if "beta_nll" in base.loss_options:
        options["family_options"] = {"beta_nll": _suggest(trial, "beta_nll")}
    return options


def _parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog="softzoo tune",
        description="Tune the default recipe's open settings with Optuna; every other "
        "option is softzoo fit's (--config, --data.*, --trainer.*, --model.*).",
    )
    parser.add_argument("--tune.trials", dest="trials", type=int, default=20)
    parser.add_argument("--tune.timeout", dest="timeout", type=float, default=None)
    parser.add_argument("--tune.storage", dest="storage", default=None)
    parser.add_argument("--tune.study", dest="study", default="softzoo")
    parser.add_argument("--tune.output", dest="output", default="tune")
    parser.add_argument("--tune.seed", dest="seed", type=int, default=None)
    args, rest = parser.parse_known_args(argv)
    if args.trials < 1:
        raise ValueError(f"--tune.trials must be at least 1, got {args.trials}")
    if args.timeout is not None and not (math.isfinite(args.timeout) and args.timeout > 0):
        raise ValueError(f"--tune.timeout must be a number of seconds > 0, got {args.timeout}")
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", args.study):
        raise ValueError(
            f"--tune.study {args.study!r} names the study's folder in --tune.output: use "
            "letters, digits, '_', '-' and '.', e.g. prices-v1"
        )
    output = Path(args.output)
    if output.exists() and not output.is_dir():
        raise ValueError(
            f"--tune.output {args.output!r} is a file: give a folder (a new one, or the one "
            "that holds the study to resume)"
        )
    return args, rest


def _base_config(fit_args: list[str]) -> dict[str, Any]:
    """The whole ``softzoo fit`` config of the user's options (``--print_config``), checked
    by building the run once (the data read, the model and the Trainer made) in a
    temporary folder: a bad option is one error before the study exists."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        try:
            run_cli(["fit", *fit_args, "--print_config"])
        except SystemExit as stop:
            if stop.code not in (0, None):
                raise ValueError(f"softzoo fit refused the options: {printed.getvalue()}") from None
    config = yaml.safe_load(printed.getvalue())
    if config.get("seed_everything") in (None, True):
        config["seed_everything"] = 0  # trials differ by their settings, not by chance
    with tempfile.TemporaryDirectory(prefix="softzoo-tune-") as tmp:
        file = Path(tmp) / "config.yaml"
        # the run is built, not run: without the arguments of Trainer.fit
        built = {k: v for k, v in config.items() if k not in ("ckpt_path", "weights_only")}
        file.write_text(yaml.safe_dump(built, sort_keys=False))
        args = ["--config", str(file), "--trainer.logger", "false"]
        args += ["--trainer.default_root_dir", tmp, "--checkpoint.dirpath", f"{tmp}/checkpoints"]
        with quiet_output():
            run_cli([*args, *QUIET_RUN], run=False)
    return config


def _trial_config(base: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """The base config with a trial's options in their sections (family options merged)."""
    config = copy.deepcopy(base)
    sections = fit_config(options)
    model = config.setdefault("model", {})
    family_options = {**(model.get("family_options") or {}), **options.get("family_options", {})}
    model.update(sections["model"])
    if family_options:
        model["family_options"] = family_options
    config["data"].setdefault("init_args", {}).update(sections["data"]["init_args"])
    return config


def _storage(args: argparse.Namespace) -> Any:
    """The study's database: ``--tune.storage``, else a SQLite file in the output folder
    (made here, once everything else is known to be right)."""
    import optuna

    url = args.storage
    if url is None:
        Path(args.output).mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{(Path(args.output) / 'study.db').resolve()}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url, heartbeat_interval=HEARTBEAT_SECONDS, grace_period=GRACE_SECONDS
            )
    except Exception as err:  # SQLAlchemy raises a type per driver and failure
        reason = " ".join(str(err).split())[:200]
        raise ValueError(
            f"--tune.storage {url!r} is no database Optuna can open ({type(err).__name__}: "
            f"{reason}); give a URL such as sqlite:///path/study.db or "
            "postgresql://user:password@host/name"
        ) from None


def _study(args: argparse.Namespace, base: dict[str, Any]) -> Any:
    import optuna

    storage = _storage(args)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=10)
    study = optuna.create_study(
        storage=storage,
        study_name=args.study,
        direction="minimize",
        pruner=pruner,
        load_if_exists=True,
    )
    # a resumed study draws on from where it stopped: seeded by the trials it has, so that
    # its first new trial is not trial 0's settings again
    offset = len(study.get_trials(deepcopy=False))
    seed = None if args.seed is None else args.seed + offset
    study.sampler = optuna.samplers.TPESampler(seed=seed)
    recorded = study.user_attrs.get("base_config")
    if recorded is None:
        study.set_user_attr("base_config", base)
    elif recorded != json.loads(json.dumps(base)):
        raise ValueError(
            f"study {args.study!r} in {storage.url} was started with other fit options: give "
            "the same options to resume it, or another --tune.study (or --tune.output)"
        )
    return study


#: The files a study writes into its folder, besides its trials' folders.
RESULT_FILES = ("best.yaml", "trials.csv", "history.png", "importances.png", "best_test.json")


def _check_folder(study: Any, folder: Path) -> None:
    """Refuse to run a study whose folder holds files it did not write (a user's own
    ``best.yaml``, another run's trial folders): nothing is replaced."""
    written = study.user_attrs.get("files", {})
    for name in RESULT_FILES:
        path = folder / name
        if path.exists() and written.get(name) != _sha256(path):
            raise ValueError(
                f"{str(path)!r} exists and was not written by study {study.study_name!r}: "
                "it would be replaced; move it, or give another --tune.output (or "
                "--tune.study)"
            )
    trials = folder / "trials"
    numbers = {str(t.number) for t in study.get_trials(deepcopy=False)}
    foreign = (
        sorted(p.name for p in trials.iterdir() if p.name not in numbers) if trials.is_dir() else []
    )
    if foreign:
        raise ValueError(
            f"{str(trials)!r} holds trial folders that study {study.study_name!r} does not "
            f"know ({', '.join(foreign[:5])}): they would be reused; move them, or give "
            "another --tune.output (or --tune.study)"
        )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class _StoppedError(Exception):
    """SIGTERM stopped a trial (an Exception, so that Optuna marks the trial failed)."""


class _TrialFailedError(Exception):
    """A trial's own settings failed (e.g. a loss that is not finite): the study goes on."""


def _objective(base: dict[str, Any], folder: Path, metric: str):
    import optuna
    from lightning.pytorch.utilities.exceptions import SIGTERMException
    from optuna_integration import PyTorchLightningPruningCallback

    family = base["model"]["family"]

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        config = _trial_config(base, suggest_options(trial, family))
        trial_folder = folder / "trials" / str(trial.number)
        trial_folder.mkdir(parents=True, exist_ok=True)
        (trial_folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        pruning = PyTorchLightningPruningCallback(trial, monitor=f"val_{metric}")
        try:
            result = fit_in_process(trial_folder / "config.yaml", trial_folder, callbacks=[pruning])
        except SIGTERMException:
            raise _StoppedError(trial.number) from None
        except ValueError as err:
            trial.set_user_attr("error", str(err))
            raise _TrialFailedError(f"trial {trial.number} failed: {err}") from None
        trial.set_user_attr("checkpoint", str(result.checkpoint))
        x, y = result.datamodule.tensors("val")
        weight = result.datamodule.split_weight("val")
        # the metric the pruner watched (val_nll: weighted where the data has weights,
        # before the calibration map, which is fitted on these rows)
        return result.model.evaluate(x, y, weight=weight, calibrated=False)[metric]

    return objective


def _report_trial(study: Any, trial: Any, metric: str, start: float) -> None:
    from rich.console import Console

    state = trial.state.name.lower()
    value = f"val {metric} {trial.value:.4f}" if trial.value is not None else state
    try:
        best = f"best {study.best_value:.4f} (trial {study.best_trial.number})"
    except ValueError:
        best = "no finished trial yet"
    params = ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items()
    )
    error = f"  ({trial.user_attrs['error']})" if "error" in trial.user_attrs else ""
    Console(stderr=True, highlight=False, soft_wrap=True).print(
        f"trial {trial.number:>3} {state:<9} {value:<22} {best}  "
        f"[{time.perf_counter() - start:.0f} s]  {params}{error}"
    )


def _write_results(study: Any, folder: Path) -> None:
    import optuna

    best = study.best_trial
    results = {
        "trials.csv": lambda path: study.trials_dataframe().to_csv(path, index=False),
        "best.yaml": lambda path: path.write_text(
            (folder / "trials" / str(best.number) / "config.yaml").read_text()
        ),
    }
    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # the importances of a short study come with a warning per rare value
        warnings.filterwarnings("ignore", message="Some regimes for parameter")
        from optuna.visualization import matplotlib as plots

        figures = {"history.png": plots.plot_optimization_history}
        if len(finished) >= 2 and len(best.params) > 1:
            figures["importances.png"] = plots.plot_param_importances
        for name, plot in figures.items():
            results[name] = lambda path, plot=plot: plot(study).figure.savefig(
                path, dpi=100, bbox_inches="tight"
            )
        for name, write in results.items():
            _record(study, folder / name, write)


def _record(study: Any, path: Path, write: Any) -> None:
    """Write ``path`` and record its sha256 in the study: its own file, from then on."""
    write(path)
    written = dict(study.user_attrs.get("files", {}))
    written[path.name] = _sha256(path)
    study.set_user_attr("files", written)


def _test_best(study: Any, folder: Path) -> dict[str, float]:
    """The best trial's test metrics: computed once per best trial, then read back."""
    best = study.best_trial
    tested = study.user_attrs.get("tested")
    if tested and tested["trial"] == best.number:
        return tested["metrics"]
    args = ["test", "--config", str(folder / "best.yaml"), "--trainer.logger", "false"]
    args += ["--trainer.default_root_dir", str(folder / "trials" / str(best.number))]
    args += ["--ckpt_path", best.user_attrs["checkpoint"], *QUIET_RUN]
    with quiet_output():
        cli = run_cli(args)
    metrics = {k: float(v) for k, v in cli.trainer.callback_metrics.items()}
    study.set_user_attr("tested", {"trial": best.number, "metrics": metrics})
    return metrics


@contextlib.contextmanager
def _sigterm_raises() -> Any:
    """SIGTERM raises Lightning's ``SIGTERMException`` for the whole study, not only while a
    trial's Trainer runs (which installs its own handler): also while a trial reads its
    data or builds its model, where the default action would end the process unannounced
    and leave the trial RUNNING."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    def _raise(number: int, frame: Any) -> None:
        raise SIGTERMException

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _optimize(study: Any, args: argparse.Namespace, base: dict[str, Any], metric: str) -> bool:
    """Run trials until the study has ``--tune.trials`` finished ones (or the timeout);
    False where a SIGTERM stopped it: the running trial is marked failed and its settings
    queued again for the resumed study."""
    import optuna
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    counted = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    if len(study.get_trials(deepcopy=False, states=counted)) >= args.trials:
        return True
    start = time.perf_counter()
    try:
        with _sigterm_raises():
            study.optimize(
                _objective(base, Path(args.output) / args.study, metric),
                timeout=args.timeout,
                callbacks=[
                    optuna.study.MaxTrialsCallback(args.trials, states=counted),
                    lambda s, t: _report_trial(s, t, metric, start),
                ],
                catch=(_TrialFailedError,),
            )
    except SIGTERMException:
        print("softzoo tune: stopped by SIGTERM between trials", file=sys.stderr)
        return False
    except _StoppedError as stop:
        stopped = study.trials[stop.args[0]]
        study.enqueue_trial(stopped.params, user_attrs={"retry_of": stopped.number})
        print(
            f"softzoo tune: stopped by SIGTERM during trial {stopped.number}; it is marked "
            "failed and its settings run again when the study resumes (the same command)",
            file=sys.stderr,
        )
        return False
    return True


def tune_main(argv: list[str]) -> int:
    """``softzoo tune``: see the module's docstring."""
    try:
        import optuna
    except ImportError:
        raise ValueError(
            "softzoo tune needs Optuna: pip install 'softzoo[tune]' (optuna, optuna-integration)"
        ) from None
    args, fit_args = _parse(argv)
    base = _base_config(fit_args)
    verbosity = optuna.logging.get_verbosity()
    # Optuna logs each failed trial with a traceback; _report_trial says it in one line
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        return _tune(args, base)
    finally:
        optuna.logging.set_verbosity(verbosity)


def _tune(args: argparse.Namespace, base: dict[str, Any]) -> int:
    import optuna

    metric = "nll" if get_family(base["model"]["family"]).probabilistic else "rmse"
    study = _study(args, base)
    folder = Path(args.output) / args.study
    _check_folder(study, folder)
    if not _optimize(study, args, base, metric):
        return SIGTERM_STATUS
    if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        raise ValueError(
            f"study {args.study!r} has no finished trial (all were pruned or failed): "
            "run more trials (--tune.trials) or a longer --tune.timeout"
        )
    _write_results(study, folder)
    metrics = _test_best(study, folder)
    _record(
        study,
        folder / "best_test.json",
        lambda path: path.write_text(json.dumps(metrics, indent=2, sort_keys=True)),
    )
    shown = ", ".join(f"{k} {v:.4g}" for k, v in sorted(metrics.items()))
    print(f"best trial {study.best_trial.number}: val {metric} {study.best_value:.4f}")
    print(f"its test metrics (the test rows, used once): {shown}")
    print(f"wrote {folder / 'best.yaml'} (softzoo fit --config {folder / 'best.yaml'})")
    return 0
