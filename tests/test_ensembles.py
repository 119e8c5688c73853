"""Deep ensembles as one model, and calibrated intervals: the mixture's statistics against
numerical integration and sampling, every command on an ensemble, ONNX parity of an
ensemble for every family, conformal coverage, and the errors a user can hit."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import ROOT, every_family, make_quiet_trainer, predict_py
from scipy import integrate

from softzoo.cli import main
from softzoo.data import SyntheticDataModule, TabularDataModule
from softzoo.families import Mixture, get_family, list_families
from softzoo.models import SoftRegressor, load_checkpoint
from softzoo.onnx import check_parity, export, read_metadata
from softzoo.runner import QUIET_RUN

MEMBERS = 4


def _member_params(name: str, rows: int = 3, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)

    def u(lo: float, hi: float) -> torch.Tensor:
        return (lo + (hi - lo) * torch.rand(rows, MEMBERS, generator=g)).double()

    return {
        "gaussian": lambda: (u(-2, 2), u(0.3, 2)),
        "student_t": lambda: (u(-2, 2), u(0.3, 2), u(2.5, 10)),
        "lognormal": lambda: (u(-0.5, 1), u(0.2, 0.8)),
        "gamma": lambda: (u(1, 6), u(0.5, 2)),
        "poisson": lambda: (u(0.5, 8),),
        "negative_binomial": lambda: (u(0.5, 8), u(0.5, 6)),
        "positive": lambda: (u(0.5, 3),),
        "tweedie": lambda: (u(0.5, 4), u(0.3, 2), torch.full((rows, MEMBERS), 1.5).double()),
        "hurdle_lognormal": lambda: (u(-2, 1), u(-0.5, 1), u(0.2, 0.8)),
        "hurdle_gamma": lambda: (u(-2, 1), u(1, 6), u(0.5, 2)),
        "zero_inflated_poisson": lambda: (u(-2, 1), u(0.5, 8)),
        "zero_inflated_negative_binomial": lambda: (u(-2, 1), u(0.5, 8), u(0.5, 6)),
    }[name]()


PROBABILISTIC = [n for n in list_families() if n != "positive"]


@pytest.mark.parametrize("name", every_family(PROBABILISTIC))
def test_mixture_mean_variance_and_nll_are_exact(name: str) -> None:
    base = get_family(name)
    mixture = Mixture(base, MEMBERS)
    params = _member_params(name)
    y = torch.round(mixture.mean(params)) if base.discrete else mixture.mean(params) * 1.1
    density = torch.exp(-base.nll(params, y[:, None])).mean(dim=1)
    torch.testing.assert_close(mixture.nll(params, y), -torch.log(density))
    samples = mixture.sample(params, 200_000).double()
    torch.testing.assert_close(mixture.mean(params), samples.mean(0), rtol=0.02, atol=0.02)
    torch.testing.assert_close(mixture.variance(params), samples.var(0), rtol=0.05, atol=0.05)


@pytest.mark.parametrize("name", every_family(PROBABILISTIC))
def test_mixture_quantiles_invert_the_mixture_cdf(name: str) -> None:
    mixture = Mixture(get_family(name), MEMBERS)
    params = _member_params(name, seed=1)
    for q in (0.05, 0.5, 0.95):
        x = mixture.quantile(params, q)
        if mixture.discrete:  # the smallest count with F >= q
            assert (mixture.cdf(params, x) >= q).all()
            assert (mixture.cdf(params, x - 1) < q).all()
        elif mixture.zero_mass:  # 0 where the point mass reaches q, else F(x) = q
            at_zero = mixture.prob_zero(params) >= q
            assert torch.equal(x == 0, at_zero)
            reached = mixture.cdf(params, x)[~at_zero]
            torch.testing.assert_close(reached, torch.full_like(reached, q), atol=1e-7, rtol=0)
        else:
            torch.testing.assert_close(
                mixture.cdf(params, x), torch.full_like(x, q), atol=1e-7, rtol=0
            )


@pytest.mark.parametrize("name", every_family(PROBABILISTIC))
def test_mixture_crps_matches_numerical_integration(name: str) -> None:
    mixture = Mixture(get_family(name), MEMBERS)
    params = _member_params(name, seed=2)
    y = mixture.quantile(params, 0.3)
    got = mixture.crps(params, y)
    for i in range(len(y)):
        row = tuple(p[i : i + 1] for p in params)

        def cdf(x: float, row=row) -> float:
            return float(mixture.cdf(row, torch.tensor([x], dtype=torch.float64)))

        if mixture.discrete:
            k = np.arange(0, 400)
            big_f = mixture.cdf(tuple(p.expand(len(k), -1) for p in row), torch.tensor(k).double())
            reference = float(((big_f.numpy() - (k >= float(y[i]))) ** 2).sum())
        else:
            low = -np.inf if mixture.support == "real" else 0.0
            below = integrate.quad(lambda x: cdf(x) ** 2, low, float(y[i]), limit=400)[0]
            above = integrate.quad(lambda x: (1 - cdf(x)) ** 2, float(y[i]), np.inf, limit=400)[0]
            reference = below + above
        assert float(got[i]) == pytest.approx(reference, rel=1e-3)


@pytest.mark.parametrize("name", ["poisson", "negative_binomial"])
def test_the_crps_of_an_ensemble_of_counts_near_1e9_is_the_single_models(name: str) -> None:
    """Counts near 1e9 would make an exact count grid of 100+ GB: those rows take the grid
    of the members' quantiles; a row of small counts beside them keeps the exact sum."""
    base = get_family(name)
    mean = torch.tensor([1e9, 2e9, 5.0], dtype=torch.float64)
    single = (mean,) if name == "poisson" else (mean, torch.full((3,), 40.0).double())
    y = torch.tensor([1e9 + 3e4, 1.9e9, 7.0], dtype=torch.float64)
    members = tuple(p[:, None].expand(-1, 8) for p in single)  # eight equal members
    got = Mixture(base, 8).crps(members, y)
    torch.testing.assert_close(got, base.crps(single, y), rtol=2e-3, atol=0.0)


def test_ensemble_members_differ_and_train_in_one_vectorised_pass() -> None:
    data = SyntheticDataModule(n=600, n_features=2, batch_size=64)
    model = SoftRegressor(2, hidden=[16], ensemble_size=3)
    assert model.body.net[0].weight.shape == (3, 16, 2)  # one batched layer, 3 members
    make_quiet_trainer(max_epochs=3).fit(model, data)
    loc, scale = model(data.tensors("test")[0])
    assert loc.shape == scale.shape == (120, 3)
    assert (loc[:, 0] - loc[:, 1]).abs().mean() > 1e-3  # different initialisations


# ---- every command on an ensemble --------------------------------------------------------
@pytest.fixture(scope="module")
def ensemble_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ensemble")
    args = [
        "--config",
        str(ROOT / "softzoo/configs/gamma.yaml"),
        "--model.ensemble_size",
        "3",
        "--model.calibration",
        "conformal",
        "--trainer.max_epochs",
        "20",
        "--trainer.logger",
        "false",
        *QUIET_RUN,
    ]
    assert main(["fit", *args, "--checkpoint.dirpath", str(folder / "ck")]) == 0
    return folder, args


@pytest.mark.slow
def test_every_command_works_on_an_ensemble(ensemble_run, capsys) -> None:
    folder, args = ensemble_run
    ckpt = str(folder / "ck/last.ckpt")
    for command in ("validate", "test"):
        assert main([command, *args, "--ckpt_path", ckpt]) == 0
    out = folder / "p.csv"
    assert main(["predict", *args, "--ckpt_path", ckpt, "--output", str(out)]) == 0
    predictions = pd.read_csv(out)
    assert {"concentration_0", "rate_2", "mean", "variance", "lower_90", "upper_90"} <= set(
        predictions.columns
    )
    assert main(["report", "--ckpt_path", ckpt, "--output", str(folder / "report")]) == 0
    assert (
        "before calibration" in capsys.readouterr().out or (folder / "report/report.md").is_file()
    )
    assert main(["export", "--ckpt_path", ckpt, "--output", str(folder / "e.onnx")]) == 0
    assert main(["parity", str(folder / "e.onnx"), "--ckpt_path", ckpt]) == 0
    meta = read_metadata(folder / "e.onnx")
    assert json.loads(meta["mixture"]) == {"members": 3, "weights": "equal"}
    assert json.loads(meta["calibration"])["method"] == "level"


@pytest.mark.slow
def test_predict_py_gives_the_mixture_interval(ensemble_run) -> None:
    folder, _ = ensemble_run
    model = load_checkpoint(folder / "ck/last.ckpt")
    path = export(model, folder / "m.onnx")
    from softzoo import datasets

    frame = datasets.load_frame("energy").sample(50, random_state=0)
    frame.to_csv(folder / "rows.csv", index=False)
    result = predict_py(path, folder / "rows.csv", "-o", folder / "out.csv")
    assert result.returncode == 0, result.stderr
    got = pd.read_csv(folder / "out.csv")
    x = torch.tensor(frame[model.feature_names].to_numpy(), dtype=torch.float32)
    with torch.no_grad():
        params = model(x)
    lower, upper = model.family.interval(params, model.effective_level)
    np.testing.assert_allclose(got["lower_90"], lower.numpy(), rtol=1e-4)
    np.testing.assert_allclose(got["upper_90"], upper.numpy(), rtol=1e-4)
    np.testing.assert_allclose(got["mean"], model.family.mean(params).numpy(), rtol=1e-5)


# the fast suite has one TabM row per family (tests/test_tabm.py); these run in test-all
@pytest.mark.slow
@pytest.mark.parametrize("name", list_families())
def test_onnx_parity_of_an_ensemble_for_every_family(tmp_path, name: str) -> None:
    torch.manual_seed(0)
    model = SoftRegressor(3, family=name, hidden=[8], ensemble_size=3).eval()
    report = check_parity(model, export(model, tmp_path / "e.onnx"), n_random=64)
    assert report.passed, report.summary()
    assert report.providers[0].outputs[0].name == f"member_{model.param_names[0]}"


@pytest.mark.parametrize("name", ["gamma", "student_t", "poisson", "negative_binomial"])
def test_predict_py_intervals_of_single_models_without_a_closed_form(tmp_path, name) -> None:
    sys.path.insert(0, str(ROOT / "export"))
    try:
        from predict import mixture_quantile
    finally:
        sys.path.pop(0)
    params = _member_params(name, rows=20, seed=5)
    mixture = Mixture(get_family(name), MEMBERS)
    names = get_family(name).param_names
    got = mixture_quantile(name, {n: p.numpy() for n, p in zip(names, params, strict=True)}, 0.95)
    np.testing.assert_allclose(got, mixture.quantile(params, 0.95).numpy(), rtol=1e-6, atol=1e-6)


# ---- calibrated intervals --------------------------------------------------------------
def _overconfident_picp(seed: int, calibration: str) -> float:
    """A model that believes its noise is a third of the truth (σ/3), calibrated on 2,000
    validation rows and scored on 20,000 new rows."""
    rng = np.random.default_rng(seed)
    model = SoftRegressor(1, hidden=[4], calibration=calibration)
    with torch.no_grad():  # loc = 2x (right), scale = 1/3 (the truth is 1)
        model.inputs.fit(torch.zeros(2, 1))
        model.heads.set_initial_values({"loc": 0.0, "scale": 1 / 3})
        model.heads.linear.weight.zero_()
    x_val, x_new = (
        torch.tensor(rng.normal(size=(n, 1)), dtype=torch.float32) for n in (2000, 20000)
    )
    y_val, y_new = (
        torch.tensor(rng.normal(size=len(x)), dtype=torch.float32) for x in (x_val, x_new)
    )
    model.scaling_fitted.fill_(True)
    if calibration != "none":
        model.fit_calibration(x_val, y_val)
    return model.evaluate(x_new, y_new)["picp_90"]


def test_conformal_calibration_reaches_nominal_coverage_over_seeds() -> None:
    raw = [_overconfident_picp(seed, "none") for seed in range(5)]
    calibrated = [_overconfident_picp(seed, "conformal") for seed in range(5)]
    assert max(raw) < 0.45  # ±1.64·σ/3 covers a third of N(0, 1): ~0.41
    assert all(0.88 <= p <= 0.92 for p in calibrated), calibrated


def test_level_calibration_of_counts_on_the_pit_definition() -> None:
    rng = np.random.default_rng(0)
    rate = torch.full((3000,), 4.0)
    y = torch.tensor(rng.poisson(6.0, size=3000), dtype=torch.float32)  # wider than believed
    model = SoftRegressor(1, family="poisson", hidden=[4], calibration="conformal")
    with torch.no_grad():
        model.inputs.fit(torch.zeros(2, 1))
        model.heads.set_initial_values({"rate": 4.0})
    model.scaling_fitted.fill_(True)
    x = torch.zeros(3000, 1)
    model.fit_calibration(x[:1500], y[:1500])
    assert model.calibration_method == "level" and model.effective_level > 0.95
    from softzoo.report.plots import predict_report_data, reliability_curve

    data = predict_report_data(model, x[1500:], y[1500:])
    before = float(reliability_curve(data, (0.9,), raw=True)[0])
    after = float(reliability_curve(data, (model.effective_level,))[0])
    assert before < 0.8 and after == pytest.approx(0.9, abs=0.03)
    torch.testing.assert_close(model(x[:3])[0], rate[:3])  # the level, not the rate, moves


def test_a_calibrated_count_model_lies_on_the_diagonal() -> None:
    from softzoo.report.plots import ReportData, reliability_curve

    rng = np.random.default_rng(1)
    rate = torch.full((20000,), 3.0, dtype=torch.float64)
    y = torch.tensor(rng.poisson(3.0, size=20000), dtype=torch.float64)
    data = ReportData(get_family("poisson"), (rate,), y)
    curve = reliability_curve(data, (0.1, 0.5, 0.9))
    torch.testing.assert_close(curve, torch.tensor([0.1, 0.5, 0.9]), atol=0.015, rtol=0)


# ---- errors ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ensemble_size": 0}, "ensemble_size must be a whole number >= 1"),
        ({"ensemble_size": 3, "norm": "layer"}, "norm='layer' is not available for an ensemble"),
        ({"calibration": "isotonic"}, r"calibration must be one of \('none', 'conformal'\)"),
        ({"family": "positive", "calibration": "conformal"}, "family 'positive' is a point"),
    ],
)
def test_bad_ensemble_and_calibration_options(options, message) -> None:
    with pytest.raises(ValueError, match=message):
        SoftRegressor(2, **options)


def test_calibration_needs_a_validation_split() -> None:
    data = SyntheticDataModule(n=200, val_fraction=0.0)
    model = SoftRegressor(1, hidden=[4], calibration="conformal")
    with pytest.raises(ValueError, match="calibration='conformal' fits its map on the validation"):
        make_quiet_trainer(max_epochs=1).fit(model, data)
    small = SoftRegressor(1, hidden=[4], calibration="conformal")
    small.fit_scaling(torch.zeros(4, 1), torch.arange(4.0))
    with pytest.raises(
        ValueError, match=r"needs at least 9 validation rows, the validation split has 5"
    ):
        small.fit_calibration(torch.zeros(5, 1), torch.arange(5.0))


def test_the_calibration_is_in_the_checkpoint_and_survives_a_reload(ensemble_run) -> None:
    folder, _ = ensemble_run
    model = load_checkpoint(folder / "ck/last.ckpt")
    # the mixture of 3 is wider than needed here: its calibrated level is below 0.9
    assert model.calibration_method == "level" and 0.2 < model.effective_level < 0.9
    data = TabularDataModule(dataset="energy")
    assert math.isfinite(model.evaluate(*data.tensors("test"))["picp_90"])


def test_calibration_does_not_hold_when_new_rows_are_not_exchangeable() -> None:
    """docs/calibration.md's counter-example: calibrated where the noise is small, used where
    it is large (a covariate shift), the interval falls short; documented, not hidden."""
    rng = np.random.default_rng(0)
    model = SoftRegressor(1, hidden=[4], calibration="conformal")
    with torch.no_grad():  # loc = 0, a constant scale of 0.3: the truth is 0.1 + 0.3·|x|
        model.inputs.fit(torch.zeros(2, 1))
        model.heads.set_initial_values({"loc": 0.0, "scale": 0.3})
    model.scaling_fitted.fill_(True)

    def rows(low: float, high: float, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = rng.uniform(low, high, size=(n, 1))
        y = rng.normal(0.0, 0.1 + 0.3 * np.abs(x[:, 0]))
        return torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)

    model.fit_calibration(*rows(-1, 1, 2000))
    inside = model.evaluate(*rows(-1, 1, 20000))["picp_90"]
    shifted = model.evaluate(*rows(2, 3, 20000))["picp_90"]
    assert inside == pytest.approx(0.9, abs=0.02) and shifted < 0.6, (inside, shifted)


def test_each_member_draws_its_own_shuffle_of_every_row() -> None:
    from softzoo.data import InMemoryBatchLoader

    rows = torch.arange(50.0)
    loader = InMemoryBatchLoader(rows[:, None], rows, batch_size=8, shuffle=True, members=3)
    batches = list(loader)
    assert [tuple(y.shape) for _, y in batches][:2] == [(3, 8), (3, 8)]
    seen = torch.cat([y for _, y in batches], dim=1)  # (members, rows) over one epoch
    for member in seen:
        assert sorted(member.tolist()) == rows.tolist()  # every row once per member
    assert not torch.equal(seen[0], seen[1])  # in another order
    x, y = batches[0]
    torch.testing.assert_close(x[..., 0], y)  # features and targets stay paired


def test_an_ensemble_asks_its_data_module_for_member_shuffles() -> None:
    data = SyntheticDataModule(n=300, batch_size=32)
    model = SoftRegressor(1, hidden=[8], ensemble_size=4)
    make_quiet_trainer(max_epochs=1).fit(model, data)
    assert data.member_shuffles == 4
    x, y = next(iter(data.train_dataloader()))[0]
    assert x.shape == (4, 32, 1) and y.shape == (4, 32)
