import math

import pytest
import torch
from scipy import stats

from softzoo.families import get_family
from softzoo.metrics import (
    CRPS,
    CalibrationError,
    IntervalCoverage,
    IntervalScore,
    IntervalWidth,
    NegativeLogLikelihood,
    calibration_error,
    crps,
    interval_coverage,
    interval_score,
    interval_width,
    negative_log_likelihood,
    pit_histogram,
)

Z90 = stats.norm.ppf(0.95)


def _gaussian_batch():
    loc = torch.tensor([0.0, 1.0, 2.0, -1.0])
    scale = torch.tensor([1.0, 2.0, 0.5, 1.0])
    y = torch.tensor([0.5, 5.0, 2.0, -1.2])
    return (loc, scale), y


def test_nll_functional_equals_hand_computation() -> None:
    params, y = _gaussian_batch()
    expected = -stats.norm(params[0].numpy(), params[1].numpy()).logpdf(y.numpy()).mean()
    assert negative_log_likelihood("gaussian", params, y).item() == pytest.approx(
        expected, rel=1e-6
    )


def test_coverage_width_and_score_by_hand() -> None:
    params, y = _gaussian_batch()
    # 90 % half-widths: 1.645, 3.290, 0.822, 1.645 → only y=5.0 (|z|=2) falls outside.
    assert interval_coverage("gaussian", params, y, 0.9).item() == pytest.approx(0.75)
    width = 2 * Z90 * params[1]
    assert interval_width("gaussian", params, y, 0.9).item() == pytest.approx(
        width.mean().item(), rel=1e-6
    )
    miss = 5.0 - (1.0 + Z90 * 2.0)
    expected = (width.sum().item() + (2 / 0.1) * miss) / 4
    assert interval_score("gaussian", params, y, 0.9).item() == pytest.approx(expected, rel=1e-6)


def test_crps_functional_matches_family() -> None:
    params, y = _gaussian_batch()
    expected = get_family("gaussian").crps(params, y).mean()
    assert crps("gaussian", params, y).item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize(
    "metric_factory",
    [
        lambda: NegativeLogLikelihood("gaussian"),
        lambda: CRPS("gaussian"),
        lambda: IntervalCoverage("gaussian", level=0.8),
        lambda: IntervalWidth("gaussian", level=0.5),
        lambda: IntervalScore("gaussian", level=0.95),
        lambda: CalibrationError("gaussian", bins=5),
    ],
)
def test_metric_over_batches_equals_functional_over_all(metric_factory) -> None:
    params, y = _gaussian_batch()
    whole = metric_factory()
    whole.update(params, y)
    split = metric_factory()
    split.update(tuple(p[:1] for p in params), y[:1])
    split.update(tuple(p[1:] for p in params), y[1:])
    torch.testing.assert_close(split.compute(), whole.compute())


def test_states_merge_like_a_ddp_sync() -> None:
    """Two ranks' summed states give the single-process result (dist_reduce_fx='sum')."""
    params, y = _gaussian_batch()
    rank0, rank1, single = (IntervalCoverage("gaussian", level=0.9) for _ in range(3))
    rank0.update(tuple(p[:2] for p in params), y[:2])
    rank1.update(tuple(p[2:] for p in params), y[2:])
    single.update(params, y)
    for name, reduce in rank0._reductions.items():
        assert reduce is not None, f"state {name} has no reduction"
    rank0.merge_state(rank1)
    assert rank0.compute().item() == single.compute().item() == 0.75


def test_calibration_of_samples_from_the_forecast_is_near_zero() -> None:
    n = 200_000
    loc, scale = torch.randn(n) * 3, torch.rand(n) + 0.5
    y = loc + scale * torch.randn(n)
    assert calibration_error("gaussian", (loc, scale), y).item() < 0.01
    overconfident = calibration_error("gaussian", (loc, scale / 3), y).item()
    assert overconfident > 0.3


def test_pit_histogram_continuous_by_hand() -> None:
    params = (torch.zeros(4), torch.ones(4))
    y = torch.tensor([-10.0, 0.0, 0.01, 10.0])  # PIT ≈ 0, 0.5, 0.504, 1
    hist = pit_histogram("gaussian", params, y, bins=2)
    torch.testing.assert_close(hist, torch.tensor([0.5, 0.5], dtype=torch.float64))


def test_pit_histogram_spreads_counts_uniformly() -> None:
    # Poisson(1): F(0) = e^-1 ≈ 0.3679; y = 0 spreads its mass over [0, 0.3679].
    rate = torch.ones(1, dtype=torch.float64)
    hist = pit_histogram("poisson", (rate,), torch.zeros(1, dtype=torch.float64), bins=4)
    share = 0.25 / math.exp(-1)
    torch.testing.assert_close(
        hist, torch.tensor([share, 1 - share, 0.0, 0.0], dtype=torch.float64)
    )


def test_discrete_pit_of_samples_is_uniform() -> None:
    rate = torch.full((100_000,), 2.5, dtype=torch.float64)
    y = torch.poisson(rate)
    assert calibration_error("poisson", (rate,), y).item() < 0.01


@pytest.mark.parametrize("level", [0.0, 1.0, -0.1])
def test_interval_metrics_reject_bad_levels(level: float) -> None:
    with pytest.raises(ValueError, match=r"interval level must lie in \(0, 1\)"):
        IntervalCoverage("gaussian", level=level)


def test_metric_with_unknown_family() -> None:
    with pytest.raises(ValueError, match="unknown family 'normal'"):
        NegativeLogLikelihood("normal")


def test_calibration_bins_must_be_two_or_more() -> None:
    with pytest.raises(ValueError, match="bins must be >= 2"):
        CalibrationError("gaussian", bins=1)


@pytest.mark.parametrize(
    "name", ["gamma", "lognormal", "student_t", "poisson", "negative_binomial"]
)
def test_every_metric_runs_for_every_family(name: str) -> None:
    family = get_family(name)
    params = tuple(
        torch.full((8,), v, dtype=torch.float64) for v in (2.0, 1.5, 5.0)[: len(family.params)]
    )
    y = family.distribution(params).sample().clamp_min(0.01 if family.support == "positive" else 0)
    for metric in (
        NegativeLogLikelihood(name),
        CRPS(name),
        IntervalCoverage(name),
        IntervalWidth(name),
        IntervalScore(name),
        CalibrationError(name),
    ):
        metric.update(params, y)
        assert torch.isfinite(metric.compute())


@pytest.mark.parametrize("ensemble_size", [1, 3])
def test_validation_logs_what_a_forward_pass_gives_and_the_test_the_rest(ensemble_size) -> None:
    """docs/training.md, "What validation logs": loss, RMSE, MAE and NLL every epoch; CRPS
    and the interval's coverage and width (a grid or a bisection per row for a mixture)
    only at the test."""
    from conftest import make_quiet_trainer

    from softzoo.data import SyntheticDataModule
    from softzoo.models import SoftRegressor

    torch.manual_seed(0)
    model = SoftRegressor(1, hidden=[8], ensemble_size=ensemble_size)
    data = SyntheticDataModule(n=300, batch_size=64)
    trainer = make_quiet_trainer(max_epochs=1)
    trainer.fit(model, data)
    logged = {k for k in trainer.logged_metrics if k.startswith("val_")}
    assert logged == {"val_loss", "val_rmse", "val_mae", "val_nll"}
    tested = set(trainer.test(model, data, verbose=False)[0])
    assert tested == {
        f"test_{m}" for m in ("loss", "rmse", "mae", "nll", "crps", "picp_90", "width_90")
    }
