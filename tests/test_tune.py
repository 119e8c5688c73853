"""softzoo tune: an Optuna study of softzoo fit runs in a database."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from conftest import ROOT

from softzoo.cli import QUIET_RUN, main, run_cli
from softzoo.models import load_checkpoint
from softzoo.tune import SEARCH_SPACE, suggest_options

DOC = (ROOT / "docs/errors.md").read_text()


@pytest.fixture
def table(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(240, 2))
    frame = pd.DataFrame(
        {
            "a": x[:, 0],
            "b": x[:, 1],
            "colour": rng.choice(["red", "blue"], size=240),
            "y": np.exp(0.5 * x[:, 0] + 0.3 * rng.normal(size=240)),
        }
    )
    path = tmp_path / "rows.csv"
    frame.to_csv(path, index=False)
    return path


def _args(table: Path, output: Path, trials: int, *extra: str) -> list[str]:
    return [
        "tune",
        "--data.path",
        str(table),
        "--data.target",
        "y",
        "--model.family",
        "gamma",
        "--trainer.max_epochs",
        "3",
        "--tune.trials",
        str(trials),
        "--tune.output",
        str(output),
        *extra,
    ]


def _study(output: Path) -> optuna.Study:
    return optuna.load_study(study_name="softzoo", storage=f"sqlite:///{output / 'study.db'}")


@pytest.mark.slow
def test_a_study_writes_its_results_and_best_yaml_trains_the_best_model(
    tmp_path: Path, table: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "out"
    assert main(_args(table, output, 3)) == 0
    for name in ("best.yaml", "trials.csv", "history.png", "importances.png", "best_test.json"):
        assert (output / name).is_file(), name
    study = _study(output)
    assert len(study.trials) == 3 and len(pd.read_csv(output / "trials.csv")) == 3
    out, err = capsys.readouterr()
    assert err.count("trial ") >= 3 and "its test metrics (the test rows, used once)" in out
    assert json.loads((output / "best_test.json").read_text())["test_nll"] > 0

    cli = run_cli(
        [
            "fit",
            "--config",
            str(output / "best.yaml"),
            "--trainer.logger",
            "false",
            "--trainer.default_root_dir",
            str(tmp_path / "again"),
            "--checkpoint.dirpath",
            str(tmp_path / "again/ckpt"),
            *QUIET_RUN,
        ]
    )
    model = load_checkpoint(cli.trainer.checkpoint_callback.best_model_path)
    val = model.evaluate(*cli.datamodule.tensors("val"))["nll"]
    assert val == pytest.approx(study.best_value, abs=1e-6)


def test_a_study_without_a_finished_trial_is_one_error(
    tmp_path: Path, table: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_args(table, tmp_path / "out", 2, "--tune.timeout", "1e-9")) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err in DOC and "has no finished trial" in err


def test_a_study_refuses_other_fit_options(
    tmp_path: Path, table: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "out"
    assert main(_args(table, output, 1)) == 0
    capsys.readouterr()
    assert main([*_args(table, output, 2), "--model.lr", "0.01"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    message = err.replace(str((output / "study.db").resolve()), "out/study.db")
    assert message in DOC, message


def test_the_search_space_is_the_recipes_open_settings() -> None:
    trial = optuna.trial.FixedTrial(
        {
            "lr": 1e-3,
            "weight_decay": 1e-5,
            "width": 128,
            "depth": 3,
            "dropout": 0.1,
            "batch_size": 512,
            "numeric_embedding": "periodic",
            "ensemble_type": "independent",
            "ensemble_size_independent": 5,
            "warmup_fraction": 0.2,
            "beta_nll": 0.5,
        }
    )
    gaussian = suggest_options(trial, "gaussian")
    assert gaussian["hidden"] == [128, 128, 128] and gaussian["ensemble_size"] == 5
    assert gaussian["family_options"] == {"beta_nll": 0.5}
    assert "family_options" not in suggest_options(trial, "gamma")
    point = suggest_options(trial, "positive")
    assert (point["ensemble_type"], point["ensemble_size"]) == ("independent", 1)
    assert set(SEARCH_SPACE) >= {"lr", "weight_decay", "width", "depth", "dropout", "beta_nll"}


def _tune_process(table: Path, output: Path, trials: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "softzoo.cli", *_args(table, output, trials)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_a_killed_study_resumes_and_keeps_its_finished_trials(tmp_path: Path, table: Path) -> None:
    output = tmp_path / "out"
    process = _tune_process(table, output, 4)
    deadline = time.monotonic() + 300
    while not (output / "trials" / "2").exists():  # trials 0 and 1 are done
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    finished = [t.number for t in _study(output).trials if t.state.name == "COMPLETE"]
    assert finished[:2] == [0, 1]

    rerun = _tune_process(table, output, 4)
    assert rerun.wait(timeout=600) == 0, rerun.stderr.read()
    trials = _study(output).trials
    complete = [t.number for t in trials if t.state.name == "COMPLETE"]
    assert len(complete) == 4 and set(finished) <= set(complete)
    assert max(complete) >= 3  # the count continues after the killed trial


@pytest.mark.slow
def test_two_processes_tune_one_study(tmp_path: Path, table: Path) -> None:
    output = tmp_path / "out"
    assert main(_args(table, output, 1)) == 0  # the study and its file exist
    processes = [_tune_process(table, output, 6) for _ in range(2)]
    for process in processes:
        assert process.wait(timeout=600) == 0, process.stderr.read()
    trials = _study(output).trials
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(complete) >= 6
    assert len({t.number for t in trials}) == len(trials)
    workers = {t.user_attrs["worker"] for t in complete[1:]}
    assert len(workers) == 2  # both processes ran trials of the one study


@pytest.mark.slow
def test_the_estimator_tunes_with_the_same_space(table: Path) -> None:
    from softzoo.sklearn import SoftzooRegressor

    frame = pd.read_csv(table)
    x, y = frame.drop(columns="y"), frame["y"]
    fit, val = slice(0, 180), slice(180, None)

    def objective(trial: optuna.Trial) -> float:
        options = suggest_options(trial, "gamma")
        model = SoftzooRegressor(family="gamma", max_epochs=3, **options)
        model.fit(x.iloc[fit], y.iloc[fit], eval_set=(x.iloc[val], y.iloc[val]))
        return model.nll(x.iloc[val], y.iloc[val])

    study = optuna.create_study()
    study.optimize(objective, n_trials=2)
    assert np.isfinite(study.best_value)
