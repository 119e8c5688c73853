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

from softzoo.cli import main
from softzoo.models import load_checkpoint
from softzoo.runner import QUIET_RUN, run_cli
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
        assert (output / "softzoo" / name).is_file(), name
    study = _study(output)
    assert len(study.trials) == 3 and len(pd.read_csv(output / "softzoo" / "trials.csv")) == 3
    out, err = capsys.readouterr()
    assert err.count("trial ") >= 3 and "its test metrics (the test rows, used once)" in out
    assert json.loads((output / "softzoo" / "best_test.json").read_text())["test_nll"] > 0

    cli = run_cli(
        [
            "fit",
            "--config",
            str(output / "softzoo" / "best.yaml"),
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
    while not (output / "softzoo" / "trials" / "2").exists():  # trials 0 and 1 are done
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


# ---- nothing of the caller's is touched, and bad input leaves nothing behind ---------------
def test_two_studies_in_one_output_keep_their_own_files(tmp_path: Path, table: Path) -> None:
    output = tmp_path / "out"
    assert main(_args(table, output, 1)) == 0
    first = {p: p.read_bytes() for p in (output / "softzoo").rglob("*") if p.is_file()}
    other = [*_args(table, output, 1), "--tune.study", "lr-fixed", "--model.lr", "0.01"]
    assert main(other) == 0
    assert {p: p.read_bytes() for p in (output / "softzoo").rglob("*") if p.is_file()} == first
    assert (output / "lr-fixed" / "trials" / "0" / "config.yaml").is_file()
    assert (output / "lr-fixed" / "best.yaml").read_text() != (
        output / "softzoo" / "best.yaml"
    ).read_text()


@pytest.mark.parametrize(
    "case",
    ["storage no database answers", "output is a file", "missing data file", "unknown target"],
)
def test_bad_input_to_tune_is_one_line_and_leaves_nothing_behind(
    case: str, tmp_path: Path, table: Path, monkeypatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("mine")
    args = {
        "storage no database answers": _args(table, Path("out"), 1, "--tune.storage", "nodb://x"),
        "output is a file": _args(table, Path("notes.txt"), 1),
        "missing data file": _args(Path("missing.csv"), Path("out"), 1),
        "unknown target": [*_args(table, Path("out"), 1), "--data.target", "weight"],
    }[case]
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    message = err.strip().replace(str(table), "rows.csv")
    assert message in DOC, f"docs/errors.md lacks the message\n{message}"
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no folder, no study.db
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_timeout_that_is_no_number_of_seconds_is_refused(capsys) -> None:
    assert main(["tune", "--tune.timeout", "nan"]) == 2
    assert "--tune.timeout must be a number of seconds > 0, got nan" in capsys.readouterr().err


def test_tune_never_replaces_a_file_it_did_not_write(
    tmp_path: Path, table: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "out"
    (output / "softzoo").mkdir(parents=True)
    (output / "softzoo" / "best.yaml").write_text("# my own notes\n")
    assert main(_args(table, output, 1)) == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert message.replace(str(output), "out") in DOC, message
    assert (output / "softzoo" / "best.yaml").read_text() == "# my own notes\n"
    assert not (output / "softzoo" / "trials").exists()  # stopped before its first trial


def test_a_resumed_seeded_study_draws_new_settings(tmp_path: Path, table: Path) -> None:
    output = tmp_path / "out"
    assert main(_args(table, output, 1, "--tune.seed", "3")) == 0
    assert main(_args(table, output, 2, "--tune.seed", "3")) == 0
    first, resumed = _study(output).trials
    assert first.params != resumed.params


def test_the_objective_is_the_weighted_metric_the_pruner_watches(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=300)
    frame = pd.DataFrame(
        {"a": x, "w": rng.choice([0.1, 5.0], size=300), "y": np.exp(x + 0.5 * rng.normal(size=300))}
    )
    frame.to_csv(tmp_path / "w.csv", index=False)
    output = tmp_path / "out"
    args = _args(tmp_path / "w.csv", output, 1, "--data.weight_column", "w")
    assert main(args) == 0
    trial = _study(output).trials[0]
    model = load_checkpoint(trial.user_attrs["checkpoint"])
    cli = run_cli(
        ["fit", "--config", str(output / "softzoo" / "best.yaml"), "--trainer.max_epochs", "0",
         "--trainer.logger", "false", "--checkpoint.dirpath", str(tmp_path / "c"), *QUIET_RUN]
    )  # fmt: skip
    x_val, y_val = cli.datamodule.tensors("val")
    weight = cli.datamodule.split_weight("val")
    weighted = model.evaluate(x_val, y_val, weight=weight, calibrated=False)["nll"]
    assert trial.value == pytest.approx(weighted, rel=1e-6)
    assert trial.value != pytest.approx(model.evaluate(x_val, y_val)["nll"], rel=1e-3)


def test_sigterm_fails_the_running_trial_queues_it_again_and_exits_143(
    tmp_path: Path, table: Path
) -> None:
    output = tmp_path / "out"
    command = [sys.executable, "-m", "softzoo.cli", *_args(table, output, 2)]
    command[command.index("--trainer.max_epochs") + 1] = "100000"
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (output / "softzoo" / "trials" / "0" / "checkpoints").exists():
            assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) == 143
        assert "stopped by SIGTERM during trial 0" in process.stderr.read()
    finally:
        process.kill()  # a run that ignored the signal must not outlive the test
    trials = _study(output).trials
    assert [t.state.name for t in trials] == ["FAIL", "WAITING"]
    assert trials[1].system_attrs["fixed_params"] == trials[0].params  # Optuna's queue


def test_sigterm_raises_for_the_whole_study_and_the_handler_comes_back() -> None:
    """Also while a trial reads its data or builds its model (before its Trainer installs
    Lightning's handler), SIGTERM is the exception the study turns into exit 143."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from softzoo.tune import _sigterm_raises

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SIGTERMException), _sigterm_raises():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)  # the handler runs at the next bytecode
    assert signal.getsignal(signal.SIGTERM) is before
