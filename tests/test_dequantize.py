"""Dequantization of a target recorded on a coarse grid: the rounding step found, the noise
added to training targets only (uniform, as wide as the step), and no collapse of sigma."""

import math

import pytest
import torch

from softzoo.models import SoftRegressor


def _scores(rows: int = 400, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A wine-like table: an integer score (3-8) that is a step function of the inputs."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(rows, 2, generator=g) * 4
    return x, (3.0 + torch.floor(x[:, 0] + 0.5 * x[:, 1])).clamp(3, 8)


def _model(x: torch.Tensor, y: torch.Tensor, **options) -> SoftRegressor:
    torch.manual_seed(0)
    model = SoftRegressor(x.shape[1], **{"hidden": [16], **options})
    model.fit_scaling(x, y)
    return model


def test_auto_finds_the_rounding_step_of_a_coarse_target_in_scaled_units() -> None:
    x, y = _scores()
    model = _model(x, y)
    assert float(model.target_resolution) == pytest.approx(1.0 / float(model.y_scale))


@pytest.mark.parametrize(
    ("options", "target"),
    [
        ({}, lambda x: x[:, 0] * 1.7),  # continuous: more than sqrt(rows) values
        ({"dequantize": "never"}, lambda x: torch.floor(x[:, 0])),
        ({"family": "poisson"}, lambda x: torch.floor(x[:, 0])),  # a pmf on the integers
        ({"family": "positive"}, lambda x: 1 + torch.floor(x[:, 0])),  # a point predictor
        ({"family": "gamma"}, lambda x: 0.5 + torch.floor(x[:, 0])),  # would reach 0
        # exact zeros: noise would move them below 0, where the density is 0 (a NaN loss)
        ({"family": "tweedie"}, lambda x: torch.floor(x[:, 0])),
        ({"family": "hurdle_lognormal"}, lambda x: torch.floor(x[:, 0])),
    ],
)
def test_targets_that_are_not_dequantized(options, target) -> None:
    x, _ = _scores()
    model = _model(x, target(x), **options)
    assert float(model.target_resolution) == 0.0
    scaled = torch.zeros(8)
    assert not model.training_loss(x[:8], scaled, 0).isnan().any()


def test_always_dequantizes_a_continuous_target_at_its_smallest_gap() -> None:
    x = torch.arange(40.0)[:, None]
    y = torch.arange(40.0) * 0.25
    model = _model(x, y, dequantize="always")
    assert float(model.target_resolution) * float(model.y_scale) == pytest.approx(0.25)


def test_training_loss_is_the_loss_at_targets_moved_by_at_most_half_a_step() -> None:
    x, y = _scores()
    model = _model(x, y)
    target = (y - model.y_shift) / model.y_scale
    step = model.target_resolution
    torch.manual_seed(7)
    loss = model.training_loss(x, target, epoch=0)
    torch.manual_seed(7)
    noise = (torch.rand_like(target) - 0.5) * step
    assert torch.equal(loss, model.family.loss(model.scaled_params(x), target + noise))
    assert float(noise.abs().max()) <= float(step) / 2
    assert float(noise.std()) == pytest.approx(float(step) / math.sqrt(12), rel=0.1)
    with torch.no_grad():  # validation: the recorded targets, unmoved
        assert torch.equal(
            model.validation_loss(model.scaled_params(x), target),
            model.family.loss(model.scaled_params(x), target),
        )


def _smallest_sigma(dequantize: str) -> float:
    """The smallest sigma over the training rows after 1,500 full-batch steps on a score
    that is constant on each of five intervals of one input."""
    x = torch.rand(400, 1, generator=torch.Generator().manual_seed(0)) * 5
    y = 3.0 + torch.floor(x[:, 0])
    model = _model(x, y, dequantize=dequantize, hidden=[32, 32], weight_decay=0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    target = (y - model.y_shift) / model.y_scale
    for _ in range(1500):
        loss = model.training_loss(x, target, epoch=0).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return float(model(x)[1].min())


@pytest.mark.slow
def test_sigma_does_not_collapse_on_rows_that_share_one_value() -> None:
    # a rounded variable keeps a variance of step^2 / 12: sigma 0.29 for a step of 1
    assert _smallest_sigma("never") < 0.1
    assert _smallest_sigma("auto") > 0.25


def test_the_rounding_step_is_saved_with_the_weights_and_older_weights_load() -> None:
    x, y = _scores()
    trained = _model(x, y)
    fresh = SoftRegressor(2, hidden=[16])
    fresh.load_state_dict(trained.state_dict())
    assert fresh.target_resolution == trained.target_resolution and fresh._dequantizing
    older = {k: v for k, v in trained.state_dict().items() if k != "target_resolution"}
    before = SoftRegressor(2, hidden=[16])
    before.load_state_dict(older)
    assert float(before.target_resolution) == 0.0 and not before._dequantizing


def test_bad_dequantize_settings() -> None:
    with pytest.raises(
        ValueError, match=r"dequantize must be one of \('auto', 'always', 'never'\)"
    ):
        SoftRegressor(2, dequantize="yes")
    with pytest.raises(ValueError, match="family 'negative_binomial' is discrete"):
        SoftRegressor(2, family="negative_binomial", dequantize="always")
    with pytest.raises(ValueError, match="family 'positive' is a point predictor"):
        SoftRegressor(2, family="positive", dequantize="always")
    for family in ("tweedie", "hurdle_gamma", "hurdle_lognormal"):
        with pytest.raises(ValueError, match=f"family '{family}' has a point mass at 0"):
            SoftRegressor(2, family=family, dequantize="always")
