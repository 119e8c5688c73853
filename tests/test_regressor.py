import json

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import every_family, make_quiet_trainer

from softzoo.data import SyntheticDataModule, TabularDataModule, true_scale
from softzoo.families import get_family, list_families
from softzoo.models import SoftRegressor


def _family_csv(tmp_path, family: str) -> str:
    """A CSV whose target lies in the family's support (from the synthetic ground truth)."""
    arrays = SyntheticDataModule(n=600, n_features=3, seed=1).arrays
    y = arrays.target
    support = get_family(family).support
    if support == "positive":
        y = np.exp(y)
    elif support == "nonnegative":  # a point mass at 0 beside positive values
        y = np.where(y < -0.5, 0.0, np.exp(y))
    elif support == "count":
        y = np.random.default_rng(0).poisson(np.exp(y))
    frame = pd.DataFrame(arrays.features, columns=["u", "v", "w"]).assign(target=y)
    path = tmp_path / f"{family}.csv"
    frame.to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize("family", every_family())
def test_every_family_trains_tests_and_predicts(tmp_path, family: str) -> None:
    dm = TabularDataModule(path=_family_csv(tmp_path, family), target="target", batch_size=64)
    model = SoftRegressor(
        dm.n_features,
        family=family,
        hidden=[16, 16],
        activation=["relu", "softplus"],
        feature_names=dm.feature_names,
    )
    trainer = make_quiet_trainer(max_epochs=2)
    trainer.fit(model, dm)
    result = trainer.test(model, dm, verbose=False)[0]
    assert all(np.isfinite(v) for v in result.values())
    expected = {"test_loss", "test_rmse", "test_mae", "test_crps"}
    if get_family(family).probabilistic:
        expected |= {"test_nll", "test_picp_90", "test_width_90"}
    assert set(result) == expected
    batches = trainer.predict(model, dm)
    keys = list(batches[0])
    assert keys[: len(model.param_names)] == list(model.param_names) and "mean" in keys


@pytest.mark.parametrize("family", list_families())
def test_positive_parameters_stay_positive_after_unscaling(family: str) -> None:
    model = SoftRegressor(2, family=family, hidden=[8])
    spec = get_family(family)
    y = (
        torch.tensor([1e-8, 3e-8, 2e-8])
        if spec.support != "count"
        else torch.tensor([0.0, 1.0, 2.0])
    )
    model.fit_scaling(torch.randn(3, 2), y)
    with torch.no_grad():
        model.heads.linear.weight.fill_(50.0)
        params = model(torch.full((4, 2), -1e4))
    for p, value in zip(spec.params, params, strict=True):
        assert torch.isfinite(value).all()
        if p.positive:
            assert (value > p.lower).all()


def test_forward_returns_original_units_from_the_marginal_fit() -> None:
    x, y = torch.randn(500, 3), torch.randn(500) * 7 + 100
    model = SoftRegressor(3, family="gaussian", hidden=[8])
    model.fit_scaling(x, y)
    loc, scale = model(torch.randn(10, 3) * 5)
    torch.testing.assert_close(
        loc, torch.full((10,), y.double().mean().item()), rtol=1e-5, atol=1e-4
    )
    torch.testing.assert_close(
        scale, torch.full((10,), y.double().std().item()), rtol=1e-5, atol=1e-4
    )


def test_wrong_feature_count_is_a_clear_error() -> None:
    model = SoftRegressor(3, hidden=[4], feature_names=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"expected 3 features per row \(a, b, c\), got 2"):
        model(torch.zeros(5, 2))


def test_hyperparameters_are_json_simple() -> None:
    model = SoftRegressor(
        3,
        family="positive",
        family_options={"loss": "tweedie", "power": 1.3},
        activation=["relu", "softplus"],
        hidden=[4, 4],
    )
    assert json.loads(json.dumps(dict(model.hparams)))["family_options"]["power"] == 1.3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"optimizer": "lbfgs"}, "unknown optimizer 'lbfgs'"),
        ({"scheduler": "step"}, "unknown scheduler 'step'"),
        ({"interval_level": 1.0}, r"interval_level must lie in \(0, 1\)"),
        ({"family": "weibull"}, "unknown family 'weibull'"),
        ({"activation": "swish"}, "unknown activation 'swish'"),
        ({"softplus_beta": 0.0}, "beta must be a finite number > 0"),
        ({"softplus_threshold": 100.0}, r"threshold must lie in \(0, 80\]"),
        ({"floor": 0.0}, "floor must be a finite number > 0"),
        ({"feature_names": ["a"]}, "1 feature_names for in_features=3"),
        ({"gradient_clip_val": 0.0}, "gradient_clip_val must be > 0 or None"),
    ],
)
def test_bad_model_arguments(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        SoftRegressor(3, **kwargs)


def test_non_positive_target_fails_before_training(tmp_path) -> None:
    path = tmp_path / "d.csv"
    pd.DataFrame({"x": np.arange(50.0), "y": np.linspace(-1, 5, 50)}).to_csv(path, index=False)
    dm = TabularDataModule(path=str(path), target="y", batch_size=8)
    model = SoftRegressor(1, family="gamma", hidden=[4])
    with pytest.raises(
        ValueError,
        match=r"family 'gamma' needs y > 0, but the train target has 5 value\(s\) outside \(first: -1.0 at row 1 after the header\)",
    ):
        make_quiet_trainer(max_epochs=2).fit(model, dm)
    assert not bool(model.scaling_fitted)


def test_feature_count_mismatch_with_the_data() -> None:
    model = SoftRegressor(3, hidden=[4])
    with pytest.raises(ValueError, match="the model expects 3 features, the data has 1"):
        make_quiet_trainer(max_epochs=2).fit(model, SyntheticDataModule(n=100))


def test_checkpoint_round_trip_is_bit_identical(tmp_path) -> None:
    dm = SyntheticDataModule(n=300, n_features=2)
    model = SoftRegressor(2, hidden=[8], feature_names=dm.feature_names)
    trainer = make_quiet_trainer(default_root_dir=tmp_path, enable_checkpointing=True, max_epochs=1)
    trainer.fit(model, dm)
    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(path)
    loaded = SoftRegressor.load_from_checkpoint(path, weights_only=True)
    x = torch.randn(64, 2) * 3
    model.eval()
    loaded.eval()
    with torch.no_grad():
        for a, b in zip(model(x), loaded(x), strict=True):
            assert torch.equal(a, b)
    assert loaded.feature_names == ["x0", "x1"] and bool(loaded.scaling_fitted)


@pytest.mark.slow
def test_recovers_heteroscedastic_sigma_and_calibrated_intervals() -> None:
    """On y = m(x) + σ(x)·ε with σ from 0.1 to 1.0 the model learns σ(x) within 15 %
    (mean relative error over held-out points) and 90 % intervals cover 85-95 %."""
    pl.seed_everything(0)
    dm = SyntheticDataModule(n=6000, seed=0, batch_size=128)
    model = SoftRegressor(1, family="gaussian", hidden=[64, 64], lr=3e-3)
    trainer = make_quiet_trainer(max_epochs=60)
    trainer.fit(model, dm)
    picp = trainer.test(model, dm, verbose=False)[0]["test_picp_90"]
    x, _ = dm.tensors("test")
    with torch.no_grad():
        _, scale = model(x)
    truth = torch.as_tensor(true_scale(x.double().numpy()))
    relative = ((scale.double() - truth).abs() / truth).mean().item()
    assert relative < 0.15, relative
    assert 0.85 <= picp <= 0.95, picp


def _fit_weights(batches_per_step: int, **model_options) -> tuple[dict, pl.Trainer]:
    dm = SyntheticDataModule(n=2000, n_features=2, batch_size=32, batches_per_step=batches_per_step)
    torch.manual_seed(0)
    model = SoftRegressor(2, hidden=[8], **{"lr": 1e-2, **model_options})
    trainer = make_quiet_trainer(max_epochs=3, num_sanity_val_steps=0)
    trainer.fit(model, dm)
    return {k: v.clone() for k, v in model.state_dict().items()}, trainer


@pytest.mark.parametrize("scheduler", ["cosine", None])
def test_grouped_batches_train_exactly_like_one_batch_per_step(scheduler) -> None:
    single, single_trainer = _fit_weights(1, scheduler=scheduler)
    grouped, grouped_trainer = _fit_weights(16, scheduler=scheduler)
    # 1400 training rows / 32 = 44 optimiser steps per epoch, in 3 Lightning steps of <= 16
    assert single_trainer.global_step == grouped_trainer.global_step == 3 * 44
    assert grouped_trainer.num_training_batches == 3
    for name in single:
        torch.testing.assert_close(grouped[name], single[name], rtol=0, atol=0)


def test_cosine_schedule_spans_the_optimiser_steps_of_grouped_batches() -> None:
    _, trainer = _fit_weights(16, scheduler="cosine")
    scheduler = trainer.lr_scheduler_configs[0].scheduler
    assert scheduler.T_max == 3 * 44 and scheduler.last_epoch == 3 * 44
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_max_steps_counts_optimiser_steps_inside_a_group() -> None:
    dm = SyntheticDataModule(n=2000, n_features=2, batch_size=32, batches_per_step=16)
    model = SoftRegressor(2, hidden=[8], scheduler=None)
    trainer = make_quiet_trainer(max_epochs=5, max_steps=21, num_sanity_val_steps=0)
    trainer.fit(model, dm)
    assert trainer.global_step == 21


def test_plateau_scheduler_steps_once_per_epoch_on_val_loss() -> None:
    _, trainer = _fit_weights(16, scheduler="plateau")
    scheduler = trainer.lr_scheduler_configs[0].scheduler
    assert scheduler.last_epoch == 3 and scheduler.best == pytest.approx(
        float(trainer.callback_metrics["val_loss"]), rel=0.5
    )


def test_gradient_clipping_bounds_every_update() -> None:
    clipped, _ = _fit_weights(
        16, optimizer="sgd", lr=1.0, weight_decay=0.0, gradient_clip_val=1e-6, scheduler=None
    )
    torch.manual_seed(0)
    start = SoftRegressor(2, hidden=[8]).state_dict()
    # 132 SGD steps of norm <= 1e-6 move the weights by at most 1.32e-4 in total
    assert (clipped["body.net.0.weight"] - start["body.net.0.weight"]).abs().max() <= 1.4e-4
