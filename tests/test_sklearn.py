"""softzoo.sklearn.SoftzooRegressor: scikit-learn's conventions on top of softzoo fit."""

from __future__ import annotations

import copy
import os
import pickle
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import ROOT
from sklearn.base import clone
from sklearn.metrics import r2_score

from softzoo.data import read_table
from softzoo.datasets import load_frame
from softzoo.models import check_checkpoint, load_checkpoint
from softzoo.runner import QUIET_RUN, run_cli
from softzoo.sklearn import PredictiveDistribution, SoftzooRegressor

TARGET = "body_mass_g"
DOC = (ROOT / "docs/errors.md").read_text()


def _documented(error: pytest.ExceptionInfo) -> None:
    """Every bad-input message of the estimator is a row of docs/errors.md."""
    assert f"`{error.value}`" in DOC, f"docs/errors.md lacks the message\n{error.value}"


@pytest.fixture(scope="module")
def penguins() -> tuple[pd.DataFrame, pd.Series]:
    """The bundled penguins table: text columns, a bool-free mix and empty cells."""
    frame = load_frame("penguins").dropna(subset=[TARGET]).reset_index(drop=True)
    return frame.drop(columns=TARGET), frame[TARGET]


@pytest.fixture(scope="module")
def fitted(penguins: tuple[pd.DataFrame, pd.Series]) -> SoftzooRegressor:
    X, y = penguins
    return SoftzooRegressor(family="gamma", max_epochs=4, calibration="conformal").fit(X, y)


def _cli_model(tmp_path: Path, csv: Path, *extra: str):
    cli = run_cli(
        [
            "fit",
            "--data.path",
            str(csv),
            "--data.target",
            TARGET,
            "--model.family",
            "gamma",
            "--trainer.max_epochs",
            "3",
            "--seed_everything",
            "0",
            "--trainer.logger",
            "false",
            "--trainer.default_root_dir",
            str(tmp_path),
            "--checkpoint.dirpath",
            str(tmp_path / "ckpt"),
            *QUIET_RUN,
            *extra,
        ]
    )
    return load_checkpoint(cli.trainer.checkpoint_callback.best_model_path)


def test_the_same_numbers_as_softzoo_fit_on_the_same_rows_and_seed(
    tmp_path: Path, penguins: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, y = penguins
    split = np.where(np.arange(len(y)) % 5 == 0, "val", "train")
    csv = tmp_path / "penguins.csv"
    X.assign(**{TARGET: y, "split": split}).to_csv(csv, index=False)
    cli_model = _cli_model(tmp_path, csv, "--data.split_column", "split")

    table = read_table(csv)
    train, val = table[table.split == "train"], table[table.split == "val"]
    estimator = SoftzooRegressor(family="gamma", max_epochs=3, random_state=0).fit(
        train.drop(columns=[TARGET, "split"]),
        train[TARGET],
        eval_set=(val.drop(columns=[TARGET, "split"]), val[TARGET]),
    )
    features = [
        [r for r in model.hparams.column_roles if r["role"] not in ("target", "split")]
        for model in (estimator.model_, cli_model)
    ]
    assert features[0] == features[1]
    features = torch.as_tensor(estimator._features(X))
    expected = cli_model.family.mean(cli_model.predict_params(features)).double().numpy()
    np.testing.assert_array_equal(estimator.predict(X), expected)


@pytest.mark.slow
def test_validation_rows_are_carved_as_the_data_module_does(
    tmp_path: Path, penguins: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, y = penguins
    csv = tmp_path / "penguins.csv"
    X.assign(**{TARGET: y, "split": "train"}).to_csv(csv, index=False)
    cli_model = _cli_model(tmp_path, csv, "--data.split_column", "split")
    table = read_table(csv)
    estimator = SoftzooRegressor(family="gamma", max_epochs=3).fit(
        table.drop(columns=[TARGET, "split"]), table[TARGET]
    )
    x = torch.as_tensor(estimator._features(X))
    expected = cli_model.family.mean(cli_model.predict_params(x)).double().numpy()
    np.testing.assert_array_equal(estimator.predict(X), expected)


def test_every_prediction_method_in_the_targets_units(
    fitted: SoftzooRegressor, penguins: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, y = penguins
    mean, median = fitted.predict(X), fitted.predict_median(X)
    quantiles = fitted.predict_quantiles(X, [0.05, 0.5, 0.95])
    interval = fitted.predict_interval(X)
    assert mean.shape == median.shape == (len(X),) and mean.dtype == np.float64
    assert quantiles.shape == (len(X), 3) and interval.shape == (len(X), 2)
    assert (np.diff(quantiles, axis=1) > 0).all()
    np.testing.assert_allclose(quantiles[:, 1], median, rtol=1e-6)
    assert 2_000 < np.median(mean) < 7_000  # grams, not standardised units
    dist = fitted.predict_dist(X)
    np.testing.assert_allclose(dist.mean, mean)
    assert (dist.variance > 0).all()
    np.testing.assert_allclose(dist.cdf(median), 0.5, atol=1e-4)
    np.testing.assert_allclose(-dist.log_prob(y).mean(), fitted.nll(X, y), rtol=1e-5)
    assert dist.sample(5, seed=1).shape == (5, len(X))
    np.testing.assert_array_equal(dist.sample(3, seed=1), dist.sample(3, seed=1))
    assert fitted.score(X, y) == pytest.approx(r2_score(y, mean))
    assert fitted.crps(X, y) > 0


def test_the_interval_is_the_calibrated_one_the_cli_writes(
    fitted: SoftzooRegressor, penguins: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, _ = penguins
    model = fitted.model_
    assert model.calibration_method == "level" and model.effective_level != 0.9
    with torch.no_grad():
        step = model.predict_step((torch.as_tensor(fitted._features(X)),), 0)
    interval = fitted.predict_interval(X)
    np.testing.assert_allclose(interval[:, 0], step["lower_90"].double().numpy(), rtol=1e-6)
    np.testing.assert_allclose(interval[:, 1], step["upper_90"].double().numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match=r"calibrated for level 0.9, not 0.8: fit it with") as err:
        fitted.predict_interval(X, level=0.8)
    _documented(err)


def test_a_dataframe_is_read_by_column_name_and_an_array_by_position(
    fitted: SoftzooRegressor, penguins: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, _ = penguins
    shuffled = X[X.columns[::-1]].assign(extra=1)
    np.testing.assert_array_equal(fitted.predict(shuffled), fitted.predict(X))
    with pytest.raises(ValueError, match=r"feature column 'sex' not found in X") as err:
        fitted.predict(X.drop(columns="sex"))
    _documented(err)


def test_arrays_and_their_errors() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    y = np.exp(X[:, 0])
    model = SoftzooRegressor(family="lognormal", max_epochs=2).fit(X, y)
    assert model.n_features_in_ == 3 and not hasattr(model, "feature_names_in_")
    assert model.predict(X).shape == (120,)
    with pytest.raises(
        ValueError, match="X has 2 features, but SoftzooRegressor is expecting 3"
    ) as err:
        model.predict(X[:, :2])
    _documented(err)
    with pytest.raises(ValueError, match="Input y contains NaN") as err:
        SoftzooRegressor(max_epochs=1).fit(X, np.where(y > 1, np.nan, y))
    _documented(err)
    with pytest.raises(
        ValueError, match="requires y to be passed, but the target y is None"
    ) as err:
        SoftzooRegressor().fit(X, None)
    _documented(err)
    with pytest.raises(ValueError, match=r"Invalid parameter 'hiden' for estimator") as err:
        SoftzooRegressor().set_params(hiden=[8])
    _documented(err)


def test_a_column_of_mixed_types_is_one_clear_error() -> None:
    X = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0] * 10, "b": [1, "x", 2, "y"] * 10})
    with pytest.raises(ValueError, match=r"column 'b' of X holds values of several types") as err:
        SoftzooRegressor(max_epochs=1).fit(X, np.arange(40.0))
    _documented(err)


def test_a_point_family_has_no_distribution() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(100, 2))
    model = SoftzooRegressor(family="positive", max_epochs=1).fit(X, np.exp(X[:, 0]))
    assert model.predict(X).shape == (100,)
    with pytest.raises(
        ValueError, match="family 'positive' predicts a point, not a distribution"
    ) as err:
        model.predict_interval(X)
    _documented(err)


def test_quiet_unless_verbose(capfd: pytest.CaptureFixture[str]) -> None:
    X = pd.DataFrame({"a": np.linspace(0, 1, 80), "colour": ["red", "blue"] * 40})
    y = np.linspace(1, 2, 80)
    SoftzooRegressor(max_epochs=1).fit(X, y)
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    SoftzooRegressor(max_epochs=1, verbose=True).fit(X, y)
    out, err = capfd.readouterr()
    assert "softzoo: the columns of" in err and "categorical" in err


def test_clone_and_params_round_trip() -> None:
    model = SoftzooRegressor(family="gamma", hidden=[32], ensemble_type="mini")
    copy = clone(model)
    assert copy.get_params() == model.get_params() and copy is not model
    assert copy.set_params(lr=1e-2).lr == 1e-2


def test_save_and_load_run_no_code_and_keep_the_numbers(
    tmp_path: Path,
    fitted: SoftzooRegressor,
    penguins: tuple[pd.DataFrame, pd.Series],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    X, _ = penguins
    path = fitted.save(tmp_path / "model.ckpt")
    check_checkpoint(path)  # a softzoo checkpoint, read with weights_only
    loaded = SoftzooRegressor.load(path)
    np.testing.assert_array_equal(loaded.predict_interval(X), fitted.predict_interval(X))
    assert loaded.get_params() == fitted.get_params()
    assert list(loaded.feature_names_in_) == list(X.columns)
    unpickled = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(unpickled.predict(X), fitted.predict(X))

    content = torch.load(path, weights_only=True)
    content["softzoo_estimator"]["params"]["__init__"] = "os.system"
    torch.save(content, tmp_path / "edited.ckpt")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="its saved estimator arguments are not softzoo's") as err:
        SoftzooRegressor.load("edited.ckpt")
    _documented(err)


def test_from_pretrained_wraps_the_zoo_model() -> None:
    from softzoo.zoo import get_model

    estimator = SoftzooRegressor.from_pretrained("concrete-gaussian-softplus")
    frame = load_frame("concrete")
    X = frame[list(estimator.model_.feature_names)]
    model = get_model("concrete-gaussian-softplus", weights="DEFAULT")
    with torch.no_grad():
        params = model(torch.as_tensor(X.to_numpy(), dtype=torch.float32))
    expected = model.family.mean(params).double().numpy()  # the members' mixture
    np.testing.assert_allclose(estimator.predict(X), expected, rtol=1e-6)
    np.testing.assert_allclose(estimator.predict(X.to_numpy()), estimator.predict(X))


@pytest.mark.slow
def test_to_onnx_exports_a_certified_file(tmp_path: Path, fitted: SoftzooRegressor) -> None:
    report = fitted.to_onnx(tmp_path / "m.onnx")
    assert report.passed and (tmp_path / "m.onnx").is_file()


def test_predictive_distribution_of_a_known_gaussian() -> None:
    from softzoo.families import get_family

    dist = PredictiveDistribution(
        get_family("gaussian"), (torch.tensor([0.0, 10.0]), torch.tensor([1.0, 2.0]))
    )
    np.testing.assert_allclose(dist.quantile(0.975), [1.959964, 13.919928], rtol=1e-5)
    np.testing.assert_allclose(dist.variance, [1.0, 4.0])
    np.testing.assert_allclose(
        dist.log_prob([0.0, 10.0]), -0.5 * np.log(2 * np.pi * np.array([1.0, 4.0])), rtol=1e-6
    )
    with pytest.raises(ValueError, match="strictly between 0 and 1") as err:
        dist.quantile([0.5, 1.0])
    _documented(err)


def test_mapie_and_crepes_wrap_it(penguins: tuple[pd.DataFrame, pd.Series]) -> None:
    pytest.importorskip("mapie")
    pytest.importorskip("crepes")
    from crepes import WrapRegressor
    from mapie.regression import SplitConformalRegressor

    X, y = penguins
    fit, calibrate = slice(0, 240), slice(240, None)
    mapie = SplitConformalRegressor(
        SoftzooRegressor(family="gamma", max_epochs=3), confidence_level=0.9, prefit=False
    )
    mapie.fit(X.iloc[fit], y.iloc[fit]).conformalize(X.iloc[calibrate], y.iloc[calibrate])
    _, intervals = mapie.predict_interval(X)
    assert intervals.shape == (len(X), 2, 1)

    crepes = WrapRegressor(SoftzooRegressor(family="gamma", max_epochs=3))
    crepes.fit(X.iloc[fit], y.iloc[fit])
    crepes.calibrate(X.iloc[calibrate], y.iloc[calibrate])
    assert crepes.predict_int(X, confidence=0.9).shape == (len(X), 2)


@pytest.mark.slow
def test_pipelines_cross_validation_and_grid_search() -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.model_selection import GridSearchCV, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(2)
    X = rng.normal(size=(240, 4))
    y = np.exp(0.5 * X[:, 0] + 0.1 * rng.normal(size=240))
    front = ColumnTransformer(
        [("scale", StandardScaler(), [0, 1]), ("keep", "passthrough", [2, 3])]
    )
    pipeline = make_pipeline(front, SoftzooRegressor(family="lognormal", max_epochs=20))
    scores = cross_val_score(pipeline, X, y, cv=3)
    assert scores.shape == (3,) and np.isfinite(scores).all()
    search = GridSearchCV(
        SoftzooRegressor(family="lognormal", max_epochs=20), {"hidden": [[16], [32, 32]]}, cv=2
    )
    search.fit(X, y)
    assert search.best_params_["hidden"] in ([16], [32, 32])


@pytest.mark.slow
def test_scikit_learns_estimator_checks() -> None:
    from sklearn.utils.estimator_checks import check_estimator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(
            SoftzooRegressor(max_epochs=2),
            expected_failed_checks={
                # 2 epochs cannot fit its data (R^2 > 0.5); the default recipe does, below
                "check_regressors_train": "2 epochs: tested with the default recipe below",
                # a DataFrame's columns are found by name, as softzoo predict finds a
                # file's: their order and extra columns do not matter (README)
                "check_dataframe_column_names_consistency": "columns are found by name",
                # shuffled mini-batches and a carved validation split: a repeated row
                # lands in other batches and splits than a weighted one (as for
                # scikit-learn's own MLPRegressor); weight 2 = the row twice holds for the
                # loss, its gradients and the metrics (tests/test_exposure_weights.py)
                "check_sample_weight_equivalence_on_dense_data": "stochastic mini-batches",
            },
            on_fail=None,
        )
    failed = [r["check_name"] for r in results if r["status"] == "failed"]
    assert failed == []
    from sklearn.utils.estimator_checks import check_regressors_train

    check_regressors_train("SoftzooRegressor", SoftzooRegressor())


# ---- nothing changes behind the caller's back (issue 35) ----------------------------------
def _caller_state() -> dict:
    import os
    import random
    import signal

    return {
        "python": random.getstate(),
        "numpy": np.random.get_state()[1].tobytes(),
        "torch": torch.get_rng_state().numpy().tobytes(),
        "environment": dict(os.environ),
        "signals": [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)],
        "warnings": list(warnings.filters),
    }


def test_fit_predict_save_and_load_leave_the_callers_generators_and_environment(
    tmp_path: Path,
) -> None:
    X = np.random.default_rng(0).normal(size=(120, 2))
    y = np.exp(X[:, 0])
    before = _caller_state()
    model = SoftzooRegressor(family="lognormal", max_epochs=2, random_state=None).fit(X, y)
    model.predict_interval(X)
    SoftzooRegressor.load(model.save(tmp_path / "m.ckpt")).predict(X)
    assert _caller_state() == before


def test_a_bootstrap_loop_around_fit_draws_a_new_resample_every_round() -> None:
    X = np.random.default_rng(1).normal(size=(80, 2))
    y = np.exp(X[:, 0])
    np.random.seed(7)
    draws = []
    for _ in range(3):
        rows = np.random.choice(len(X), size=len(X))
        draws.append(tuple(rows[:10]))
        SoftzooRegressor(family="lognormal", max_epochs=1).fit(X[rows], y[rows])
    assert len(set(draws)) == 3


def _run_python(code: str, tmp_path: Path) -> subprocess.Popen:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env,
    )  # fmt: skip


_LONG_FIT = """
import faulthandler, signal
faulthandler.register(signal.SIGUSR1, all_threads=True)  # the test's view into a hang
# a user's interpreter, where Ctrl-C raises: the test worker may pass SIGINT on ignored
signal.signal(signal.SIGINT, signal.default_int_handler)
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
import numpy as np
from softzoo.sklearn import SoftzooRegressor
X = np.random.default_rng(0).normal(size=(400, 2)); y = np.exp(X[:, 0])
options = {"hidden": [8], "ensemble_size": 1, "numeric_embedding": "none"}
try:
    SoftzooRegressor(
        family="lognormal", max_epochs=100000, early_stopping_patience=0, **options
    ).fit(X, y)
except KeyboardInterrupt:
    print("KeyboardInterrupt reached the caller")
"""


def _wait_for_training(process: subprocess.Popen, tmp_path: Path) -> None:
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob("softzoo-fit-*/checkpoints/*.ckpt")):
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("signal_number", "status", "output"),
    [
        (signal.SIGINT, 0, "KeyboardInterrupt reached the caller"),
        (signal.SIGTERM, 143, "softzoo: the fit was stopped by SIGTERM"),
    ],
)
def test_ctrl_c_is_a_keyboard_interrupt_and_sigterm_exits_143(
    signal_number: int, status: int, output: str, tmp_path: Path
) -> None:
    process = _run_python(_LONG_FIT, tmp_path)
    try:
        _wait_for_training(process, tmp_path)
        process.send_signal(signal_number)
        out, err = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGUSR1)  # faulthandler prints every thread's stack
        time.sleep(2)
        process.kill()
        stacks = process.communicate()[1][-8000:]
        pytest.fail(f"the fit ran on for 120 s after the signal; its stacks:\n{stacks}")
    finally:
        process.kill()  # a fit that ignored the signal must not outlive the test
    assert process.returncode == status, err
    assert output in out + err


def test_the_estimator_takes_an_exposure_column_and_loads_a_cli_model_with_one(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"a": rng.normal(size=300), "months": rng.integers(1, 13, 300)})
    y = rng.poisson(np.exp(0.3 * frame["a"]) * frame["months"] / 12)
    model = SoftzooRegressor(family="poisson", exposure_column="months", max_epochs=2)
    model.fit(frame, y)
    assert model.model_.feature_names == ["a"] and model.n_features_in_ == 2
    doubled = frame.assign(months=2 * frame["months"])
    np.testing.assert_allclose(model.predict(doubled), 2 * model.predict(frame), rtol=1e-5)
    with pytest.raises(ValueError, match=r"exposure column 'months' not found in X") as err:
        model.predict(frame.drop(columns="months"))
    _documented(err)
    with pytest.raises(ValueError, match=r"exposure column 'months' of X has 1 value") as err:
        model.predict(frame.assign(months=frame["months"].where(frame.index != 4, 0)))
    _documented(err)

    csv = tmp_path / "claims.csv"
    frame.assign(claims=y).to_csv(csv, index=False)
    args = ["fit", "--data.path", str(csv), "--data.target", "claims", "--model.family", "poisson"]
    args += ["--data.exposure_column", "months", "--trainer.max_epochs", "2"]
    args += ["--trainer.logger", "false", "--checkpoint.dirpath", str(tmp_path / "c"), *QUIET_RUN]
    run_cli(args)
    loaded = SoftzooRegressor.load(tmp_path / "c" / "best.ckpt")
    assert loaded.exposure_column == "months" and loaded.columns_ == ["a", "months"]
    np.testing.assert_allclose(loaded.predict(doubled), 2 * loaded.predict(frame), rtol=1e-5)


def test_softzoo_test_and_predict_read_a_saved_estimator(
    tmp_path: Path, fitted: SoftzooRegressor, penguins: tuple[pd.DataFrame, pd.Series]
) -> None:
    from softzoo.cli import main

    X, y = penguins
    saved = fitted.save(tmp_path / "estimator.ckpt")
    csv = tmp_path / "penguins.csv"
    X.assign(body_mass_g=y).to_csv(csv, index=False)
    data = ["--data.path", str(csv), "--data.target", TARGET, "--ckpt_path", str(saved)]
    data += ["--trainer.logger", "false", *QUIET_RUN]
    assert main(["test", *data]) == 0
    assert main(["predict", *data, "--output", str(tmp_path / "p.csv")]) == 0
    assert len(pd.read_csv(tmp_path / "p.csv")) > 0


def test_column_names_follow_the_header_rule(penguins: tuple[pd.DataFrame, pd.Series]) -> None:
    X, y = penguins
    spaced = X.rename(columns={"island": " island ", "sex": "sex "})
    model = SoftzooRegressor(family="gamma", max_epochs=1).fit(spaced, y)
    assert "island" in model.columns_ and "sex" in model.feature_names_in_
    np.testing.assert_array_equal(model.predict(spaced), model.predict(X))
    twice = X.rename(columns={"island": "species"})
    with pytest.raises(ValueError, match=r"the header of X names 'species' twice") as err:
        SoftzooRegressor(max_epochs=1).fit(twice, y)
    _documented(err)


def test_an_eval_set_without_a_column_of_x_is_one_error(
    penguins: tuple[pd.DataFrame, pd.Series],
) -> None:
    X, y = penguins
    with pytest.raises(ValueError, match=r"feature column 'sex' not found in eval_set") as err:
        SoftzooRegressor(max_epochs=1).fit(X, y, eval_set=(X.drop(columns="sex"), y))
    _documented(err)


def test_bad_input_to_the_estimator_names_its_own_arguments() -> None:
    X = np.random.default_rng(4).normal(size=(40, 2))
    y = np.exp(X[:, 0])
    weight = np.ones(40)
    weight[2] = 1e39
    with pytest.raises(ValueError, match=r"sample_weight has 1 value\(s\) too large") as err:
        SoftzooRegressor(max_epochs=1).fit(X, y, sample_weight=weight)
    _documented(err)
    assert "rows.parquet" not in str(err.value) and "after the header" not in str(err.value)
    with pytest.raises(ValueError, match=r"family 'gamma' needs y > 0, but the target y") as err:
        SoftzooRegressor(family="gamma", max_epochs=1).fit(X, np.where(X[:, 0] > 1, -1.0, y))
    _documented(err)


def test_quantile_levels_that_are_not_levels_are_refused(fitted: SoftzooRegressor) -> None:
    rows = load_frame("penguins").drop(columns=TARGET).head(3)
    with pytest.raises(ValueError, match=r"strictly between 0 and 1, got \[nan\]") as err:
        fitted.predict_quantiles(rows, [np.nan])
    _documented(err)
    with pytest.raises(ValueError, match=r"give one quantile level or a list of them") as err:
        fitted.predict_quantiles(rows, [])
    _documented(err)


def test_an_edited_estimator_file_is_one_error(
    tmp_path: Path, fitted: SoftzooRegressor, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = torch.load(fitted.save(tmp_path / "model.ckpt"), weights_only=True)
    monkeypatch.chdir(tmp_path)
    edits = {
        "fields are not softzoo's": lambda saved: saved.pop("columns"),
        r"arguments disagree with its model \(family: 'lognormal' saved, 'gamma' trained\)": (
            lambda saved: saved["params"].update(family="lognormal")
        ),
        "arguments are not valid": lambda saved: saved["params"].update(dropout=7.0),
    }
    for message, edit in edits.items():
        edited = {**content, "softzoo_estimator": copy.deepcopy(content["softzoo_estimator"])}
        edit(edited["softzoo_estimator"])
        torch.save(edited, tmp_path / "edited.ckpt")
        with pytest.raises(ValueError, match=message) as err:
            SoftzooRegressor.load("edited.ckpt")
        _documented(err)


def test_scikit_learns_conventions_for_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    import inspect

    from sklearn.utils._param_validation import InvalidParameterError

    parameters = inspect.signature(SoftzooRegressor.__init__).parameters.values()
    assert all(p.kind == p.KEYWORD_ONLY for p in parameters if p.name != "self")
    with pytest.raises(TypeError):
        SoftzooRegressor("gamma")
    written = []
    monkeypatch.setattr("tempfile.TemporaryDirectory", lambda **_: written.append(1))
    with pytest.raises(InvalidParameterError, match="The 'dropout' parameter"):
        SoftzooRegressor(dropout=2.0).fit(np.ones((10, 1)), np.ones(10))
    assert written == []  # refused before any file was written
    doc = SoftzooRegressor.__doc__
    parameters_section = doc[doc.index("Parameters\n") : doc.index("Attributes\n")]
    for name in SoftzooRegressor().get_params():
        assert f"\n    {name} : " in parameters_section, name
    attributes = doc[doc.index("Attributes\n") : doc.index("Examples\n")]
    for name in ("model_", "columns_", "n_features_in_", "feature_names_in_", "target_name_"):
        assert f"\n    {name} : " in attributes, name
