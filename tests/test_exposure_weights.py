"""Exposure and weights: doubling the exposure doubles the mean (in torch, in the ONNX graph,
in predict.py), a weight of 2 is the row repeated (loss, gradients, metrics), and both are
recorded in the roles table, the checkpoint and the ONNX metadata."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import torch
from conftest import ROOT

from softzoo.cli import main
from softzoo.data import TabularDataModule, encode_features
from softzoo.models import SoftRegressor, load_checkpoint
from softzoo.onnx import export_certified, read_metadata
from softzoo.runner import QUIET_RUN

ROWS = 400


@pytest.fixture(scope="module")
def claims(tmp_path_factory) -> str:
    """Claim counts with an exposure (months insured), a weight and a text column."""
    rng = np.random.default_rng(0)
    months = rng.integers(1, 13, ROWS).astype(float)
    x = rng.standard_normal((ROWS, 2))
    counts = rng.poisson(np.exp(0.3 * x[:, 0]) * months / 12)
    frame = pd.DataFrame(x, columns=["a", "b"]).assign(
        region=rng.choice(["north", "south", None], ROWS),
        months=months,
        w=rng.choice([0.5, 1.0, 2.0], ROWS),
        claims=counts,
    )
    path = tmp_path_factory.mktemp("claims") / "claims.csv"
    frame.to_csv(path, index=False)
    return str(path)


def _data(path: str, **options) -> TabularDataModule:
    return TabularDataModule(
        path=path, target="claims", exposure_column="months", weight_column="w", **options
    )


def test_exposure_and_weight_are_roles_not_features(claims: str) -> None:
    data = _data(claims)
    roles = {r["name"]: r["role"] for r in data.column_roles}
    assert roles["months"] == "exposure" and roles["w"] == "weight"
    assert data.feature_names == ["a", "b", "region"]
    assert data.features_tensor.shape == (ROWS, 4)  # the exposure travels last
    assert torch.equal(data.features_tensor[:, -1], torch.as_tensor(data.arrays.exposure).float())
    x, y, w = next(iter(data.test_dataloader()))
    assert x.shape == (80, 4) and y.shape == w.shape == (80,)


@pytest.mark.parametrize("family", ["poisson", "tweedie", "hurdle_gamma", "zero_inflated_poisson"])
def test_doubling_the_exposure_doubles_the_models_mean(family: str) -> None:
    torch.manual_seed(0)
    model = SoftRegressor(2, family=family, hidden=[8], exposure_column="e").eval()
    x = torch.randn(16, 2)
    one, two = (torch.cat([x, torch.full((16, 1), e)], 1) for e in (1.0, 2.0))
    with torch.no_grad():
        mean_one, mean_two = (model.family.mean(model(r)) for r in (one, two))
    torch.testing.assert_close(mean_two, 2 * mean_one)


def test_a_weight_of_two_is_the_row_repeated_in_the_loss_and_its_gradients() -> None:
    torch.manual_seed(0)
    model = SoftRegressor(2, family="gamma", hidden=[8])
    model.fit_scaling(torch.randn(64, 2), torch.rand(64) + 0.5)
    x, y = torch.randn(5, 2), torch.rand(5) + 0.5
    target = model._scaled_target(y)
    repeat = torch.tensor([0, 0, 1, 2, 3, 4, 4, 4])
    weighted = model.training_loss(x, target, 5, torch.tensor([2.0, 1, 1, 1, 3])).mean()
    plain = model.training_loss(x[repeat], target[repeat], 5).mean()
    torch.testing.assert_close(weighted, plain)
    grads = [torch.autograd.grad(loss, list(model.parameters())) for loss in (weighted, plain)]
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)


def test_weighted_metrics_equal_the_rows_repeated() -> None:
    torch.manual_seed(0)
    model = SoftRegressor(2, family="tweedie", hidden=[8]).eval()
    model.fit_scaling(torch.randn(64, 2), torch.rand(64) * 3)
    x, y = torch.randn(6, 2), torch.tensor([0.0, 1.0, 0.0, 2.5, 4.0, 0.3])
    weight = torch.tensor([2.0, 1.0, 0.0, 1.0, 3.0, 1.0])
    repeat = torch.tensor([0, 0, 1, 3, 4, 4, 4, 5])
    model.hparams.weight_column = "w"  # weighted metric classes, as a weighted fit builds
    weighted = model.evaluate(x, y, weight=weight)
    plain = model.evaluate(x[repeat], y[repeat])
    for name in ("nll", "rmse", "mae", "crps", "picp_90", "width_90", "loss"):
        assert weighted[name] == pytest.approx(plain[name], rel=1e-5), name


def test_fit_predict_export_with_exposure_and_weights(claims: str, tmp_path) -> None:
    base = ["--data.path", claims, "--data.target", "claims", "--model.family", "poisson"]
    base += ["--data.exposure_column", "months", "--data.weight_column", "w"]
    base += ["--model.hidden", "[8]", "--trainer.max_epochs", "2", "--trainer.logger", "false"]
    assert main(["fit", *base, "--checkpoint.dirpath", str(tmp_path), *QUIET_RUN]) == 0
    model = load_checkpoint(tmp_path / "best.ckpt")
    assert model.hparams.exposure_column == "months" and model.hparams.weight_column == "w"
    new = pd.read_csv(claims).drop(columns=["claims", "w"]).head(5)
    path = tmp_path / "new.csv"
    new.to_csv(path, index=False)
    out = tmp_path / "p.csv"
    predict = ["predict", *base, "--ckpt_path", str(tmp_path / "best.ckpt")]
    predict += ["--data.predict_path", str(path), "--output", str(out)]
    assert main(predict) == 0
    x = encode_features(new, model.feature_names, model.categories, None, exposure_column="months")
    expected = model.family.mean(model.predict_params(torch.as_tensor(x)))
    np.testing.assert_allclose(pd.read_csv(out)["mean"], expected.numpy(), rtol=1e-6)

    onnx_file = tmp_path / "m.onnx"
    assert export_certified(model, onnx_file).passed
    meta = read_metadata(onnx_file)
    assert meta["exposure_column"] == "months" and meta["weight_column"] == "w"
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    assert "exposure" in [i.name for i in session.get_inputs()]
    feeds = {
        "features": new[["a", "b"]].to_numpy(np.float32),
        "region": new["region"].fillna("").to_numpy(object),
    }
    means = [
        session.run(["mean"], feeds | {"exposure": np.full(5, e, np.float32)})[0] for e in (1, 2)
    ]
    np.testing.assert_allclose(means[1], 2 * means[0], rtol=1e-6)


def test_a_predict_file_without_the_exposure_is_refused(tmp_path) -> None:
    frame = pd.DataFrame({"a": [1.0], "region": ["north"]})
    with pytest.raises(ValueError, match=r"exposure column 'months' not found in new rows"):
        encode_features(
            frame, ["a", "region"], {"region": ["north"]}, None, "impute", "new rows", "months"
        )
    frame["months"] = [0.0]
    with pytest.raises(ValueError, match=r"every row needs an exposure > 0"):
        encode_features(
            frame, ["a", "region"], {"region": ["north"]}, None, "impute", "new rows", "months"
        )


def test_predict_py_reads_the_exposure_column_and_refuses_a_bad_one(claims: str, tmp_path) -> None:
    import sys

    sys.path.insert(0, str(ROOT / "export"))
    import predict

    model = SoftRegressor(
        3, family="poisson", hidden=[8], exposure_column="months",
        feature_names=["a", "b", "region"], categories={"region": ["north", "south"]},
    )  # fmt: skip
    onnx_file = tmp_path / "m.onnx"
    export_certified(model, onnx_file)
    predictor = predict.Predictor(onnx_file)
    table = {"a": [0.1, 0.2], "b": [1.0, 1.0], "region": ["north", None], "months": [1.0, 2.0]}
    means = predictor.predict(table)["mean"]
    assert means[1] == pytest.approx(
        2 * predictor.predict({**table, "months": [1.0, 1.0]})["mean"][1], rel=1e-6
    )
    with pytest.raises(predict.InputError, match=r"the table lacks column\(s\) months"):
        predictor.predict({k: v for k, v in table.items() if k != "months"})
    with pytest.raises(predict.InputError, match=r"row 1: exposure column 'months' is -1.0"):
        predictor.predict({**table, "months": [1.0, -1.0]})


def test_weights_times_a_constant_train_the_same_model_even_near_float32s_limit(
    claims: str, tmp_path
) -> None:
    """Only the ratios of weights matter: uniform weights of 3e38 (whose sum overflows
    float32) train and test exactly as weights of 1."""
    frame = pd.read_csv(claims)
    results = []
    for value in (1.0, 3e38):
        path = tmp_path / f"w{value:g}.csv"
        frame.assign(w=value).to_csv(path, index=False)
        args = ["fit", "--data.path", str(path), "--data.target", "claims"]
        args += ["--data.weight_column", "w", "--model.family", "poisson", "--model.hidden", "[8]"]
        args += ["--trainer.max_epochs", "2", "--trainer.logger", "false", *QUIET_RUN]
        folder = tmp_path / f"ckpt{value:g}"
        assert main([*args, "--checkpoint.dirpath", str(folder), "--seed_everything", "0"]) == 0
        model = load_checkpoint(folder / "best.ckpt")
        data = TabularDataModule(path=str(path), target="claims", weight_column="w")
        x, y = data.tensors("test")
        results.append(model.evaluate(x, y, weight=data.split_weight("test")))
    assert all(np.isfinite(v) for v in results[1].values())
    assert results[0] == results[1]


def test_the_estimator_takes_sample_weight_and_checks_it() -> None:
    from softzoo.sklearn import SoftzooRegressor

    x, y = np.random.default_rng(0).standard_normal((60, 2)), np.arange(60.0) % 4
    estimator = SoftzooRegressor(family="poisson", hidden=[8], max_epochs=2)
    with pytest.raises(ValueError, match=r"sample_weight must be finite, >= 0 and not all 0"):
        estimator.fit(x, y, sample_weight=np.zeros(60))
    with pytest.raises(ValueError, match=r"sample_weight has 3 value\(s\) for 60 row\(s\) of X"):
        estimator.fit(x, y, sample_weight=[1, 2, 3])
    estimator.fit(x, y, sample_weight=np.where(np.arange(60) % 2, 2.0, 1.0))
    assert estimator.model_.hparams.weight_column == "weight"


@pytest.mark.slow
def test_a_zero_inflated_nb_with_exposure_recovers_the_inflation_and_dispersion(tmp_path) -> None:
    rng = np.random.default_rng(1)
    n = 8000
    x = rng.standard_normal((n, 3))
    exposure = np.exp(rng.uniform(np.log(0.1), np.log(10.0), n))
    mean = np.exp(0.5 + 0.6 * x[:, 0] - 0.4 * x[:, 1]) * exposure
    inflation = 1 / (1 + np.exp(0.85 - 0.8 * x[:, 2]))
    y = np.where(rng.uniform(size=n) < inflation, 0, rng.negative_binomial(2.0, 2.0 / (2.0 + mean)))
    frame = pd.DataFrame(x, columns=["x0", "x1", "x2"]).assign(exposure=exposure, y=y)
    path = tmp_path / "zinb.csv"
    frame.to_csv(path, index=False)
    args = ["fit", "--data.path", str(path), "--data.target", "y"]
    args += [
        "--data.exposure_column",
        "exposure",
        "--model.family",
        "zero_inflated_negative_binomial",
    ]
    args += [
        "--model.hidden",
        "[64, 64]",
        "--model.ensemble_size",
        "1",
        "--model.numeric_embedding",
        "none",
    ]
    args += ["--data.batch_size", "256", "--trainer.max_epochs", "40", "--trainer.logger", "false"]
    assert main([*args, "--checkpoint.dirpath", str(tmp_path / "ck"), *QUIET_RUN]) == 0
    model = load_checkpoint(tmp_path / "ck/best.ckpt")
    rows = torch.as_tensor(frame[["x0", "x1", "x2", "exposure"]].to_numpy(), dtype=torch.float32)
    logit, fitted_mean, concentration = model.predict_params(rows)
    assert np.abs(torch.sigmoid(logit).numpy() - inflation).mean() < 0.05
    assert float(concentration.median()) == pytest.approx(2.0, rel=0.3)
    ratio = fitted_mean.numpy() / mean
    assert np.median(ratio) == pytest.approx(1.0, rel=0.1)  # the exposure carries the mean
