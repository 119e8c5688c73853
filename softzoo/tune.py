"""``softzoo tune``: an Optuna study over the default recipe's open settings, each trial
a real ``softzoo fit`` judged on the validation split only (its NLL; RMSE for a point
family), pruned by Optuna's Lightning callback; the test rows are used once, by the best
trial, at the end.

The study lives in a database (default: a SQLite file in the output folder), so a
killed study resumes where it stopped and several processes, or machines sharing a
PostgreSQL/MySQL database, tune one study together (docs/scaling.md).

    softzoo tune --config C [--data.* ...] --tune.trials 50 [--tune.timeout S]
                 [--tune.storage URL] [--tune.study NAME] [--tune.output DIR]

Writes, in the output folder: ``best.yaml`` (``softzoo fit --config DIR/best.yaml``
trains the best trial's model), ``trials.csv``, ``history.png`` (the optimisation
history), ``importances.png`` (the parameters' importances), ``best_test.json`` (the best
trial's test metrics) and ``trials/<number>/`` (each trial's config and checkpoints).

Python users tune :class:`~softzoo.sklearn.SoftzooRegressor` with the same space::

    def objective(trial):
        model = SoftzooRegressor(family="gamma", **suggest_options(trial, "gamma"))
        return model.fit(X, y, eval_set=(X_val, y_val)).nll(X_val, y_val)
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
import socket
import time
import warnings
from pathlib import Path
from typing import Any

import yaml

from softzoo._options import fit_config
from softzoo.cli import QUIET_RUN, quiet_output, run_cli
from softzoo.families import get_family
from softzoo.models import load_checkpoint

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
    if args.timeout is not None and args.timeout <= 0:
        raise ValueError(f"--tune.timeout must be a number of seconds > 0, got {args.timeout}")
    return args, rest


def _base_config(fit_args: list[str]) -> dict[str, Any]:
    """The whole ``softzoo fit`` config of the user's options (``--print_config``)."""
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


def _study(args: argparse.Namespace, base: dict[str, Any]) -> Any:
    import optuna

    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    url = args.storage or f"sqlite:///{(output / 'study.db').resolve()}"
    storage = optuna.storages.RDBStorage(
        url, heartbeat_interval=HEARTBEAT_SECONDS, grace_period=GRACE_SECONDS
    )
    sampler = optuna.samplers.TPESampler(seed=args.seed)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=10)
    study = optuna.create_study(
        storage=storage,
        study_name=args.study,
        direction="minimize",
        sampler=sampler,
        pruner=pruner,
        load_if_exists=True,
    )
    recorded = study.user_attrs.get("base_config")
    if recorded is None:
        study.set_user_attr("base_config", base)
    elif recorded != json.loads(json.dumps(base)):
        raise ValueError(
            f"study {args.study!r} in {url} was started with other fit options: give the "
            "same options to resume it, or another --tune.study (or --tune.output)"
        )
    return study


def _objective(base: dict[str, Any], output: Path, metric: str):
    import optuna
    from optuna_integration import PyTorchLightningPruningCallback

    family = base["model"]["family"]

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        config = _trial_config(base, suggest_options(trial, family))
        folder = output / "trials" / str(trial.number)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        pruning = PyTorchLightningPruningCallback(trial, monitor=f"val_{metric}")
        args = ["fit", "--config", str(folder / "config.yaml"), "--trainer.logger", "false"]
        args += ["--trainer.default_root_dir", str(folder)]
        args += ["--checkpoint.dirpath", str(folder / "checkpoints"), *QUIET_RUN]
        with quiet_output():
            cli = run_cli(args, callbacks=[pruning])
        best = cli.trainer.checkpoint_callback.best_model_path
        trial.set_user_attr("checkpoint", best)
        model = load_checkpoint(best)
        return model.evaluate(*cli.datamodule.tensors("val"))[metric]

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
    Console(stderr=True, highlight=False, soft_wrap=True).print(
        f"trial {trial.number:>3} {state:<9} {value:<22} {best}  "
        f"[{time.perf_counter() - start:.0f} s]  {params}"
    )


def _write_results(study: Any, output: Path) -> None:
    import optuna

    study.trials_dataframe().to_csv(output / "trials.csv", index=False)
    best = study.best_trial
    config = output / "trials" / str(best.number) / "config.yaml"
    (output / "best.yaml").write_text(config.read_text())
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
            axes = plot(study)
            axes.figure.savefig(output / name, dpi=100, bbox_inches="tight")


def _test_best(study: Any, output: Path) -> dict[str, float]:
    """The best trial's test metrics: computed once per best trial, then read back."""
    best = study.best_trial
    tested = study.user_attrs.get("tested")
    if tested and tested["trial"] == best.number:
        return tested["metrics"]
    args = ["test", "--config", str(output / "best.yaml"), "--trainer.logger", "false"]
    args += ["--trainer.default_root_dir", str(output / "trials" / str(best.number))]
    args += ["--ckpt_path", best.user_attrs["checkpoint"], *QUIET_RUN]
    with quiet_output():
        cli = run_cli(args)
    metrics = {k: float(v) for k, v in cli.trainer.callback_metrics.items()}
    study.set_user_attr("tested", {"trial": best.number, "metrics": metrics})
    return metrics


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
    metric = "nll" if get_family(base["model"]["family"]).probabilistic else "rmse"
    output = Path(args.output)
    study = _study(args, base)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    counted = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    done = len(study.get_trials(deepcopy=False, states=counted))
    start = time.perf_counter()
    if done < args.trials:
        study.optimize(
            _objective(base, output, metric),
            timeout=args.timeout,
            callbacks=[
                optuna.study.MaxTrialsCallback(args.trials, states=counted),
                lambda s, t: _report_trial(s, t, metric, start),
            ],
            catch=(),
        )
    if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        raise ValueError(
            f"study {args.study!r} has no finished trial (all were pruned or failed): "
            "run more trials (--tune.trials) or a longer --tune.timeout"
        )
    _write_results(study, output)
    metrics = _test_best(study, output)
    (output / "best_test.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    shown = ", ".join(f"{k} {v:.4g}" for k, v in sorted(metrics.items()))
    print(f"best trial {study.best_trial.number}: val {metric} {study.best_value:.4f}")
    print(f"its test metrics (the test rows, used once): {shown}")
    print(f"wrote {output / 'best.yaml'} (softzoo fit --config {output / 'best.yaml'})")
    return 0
