"""Training craft: mean warm-up, β-NLL and faithful heteroscedastic training, each tested
by its defining property."""

import math

import pytest
import torch
from conftest import make_quiet_trainer
from lightning.pytorch.callbacks import Callback

from softzoo.data import SyntheticDataModule
from softzoo.families import get_family, list_families
from softzoo.models import SoftRegressor, craft


# ---- β-NLL --------------------------------------------------------------------------
def _loc_gradient_of_nll(family: str, loc: float, scale: float, y: float) -> float:
    """∂NLL/∂loc in closed form."""
    r = y - loc
    if family == "gaussian":
        return -r / scale**2
    df = 5.0
    return -(df + 1.0) * r / (df * scale**2 + r * r)


@pytest.mark.parametrize("family", ["gaussian", "student_t"])
@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])
def test_beta_nll_gradient_is_the_nll_gradient_times_sigma_to_the_2beta(family, beta) -> None:
    dist = get_family(family, beta_nll=beta)
    loc = torch.tensor([0.3], dtype=torch.float64, requires_grad=True)
    scale = torch.tensor([1.7], dtype=torch.float64, requires_grad=True)
    extra = (torch.tensor([5.0], dtype=torch.float64),) if family == "student_t" else ()
    y = torch.tensor([2.0], dtype=torch.float64)
    dist.loss((loc, scale, *extra), y).sum().backward()
    weight = 1.7 ** (2 * beta)
    assert loc.grad.item() == pytest.approx(weight * _loc_gradient_of_nll(family, 0.3, 1.7, 2.0))
    # the weight itself carries no gradient: ∂loss/∂σ = σ^{2β} ∂NLL/∂σ
    scale_nll = torch.tensor([1.7], dtype=torch.float64, requires_grad=True)
    dist.nll((loc.detach(), scale_nll, *extra), y).sum().backward()
    assert scale.grad.item() == pytest.approx(weight * scale_nll.grad.item())


def test_student_t_beta_nll_range_and_options() -> None:
    assert get_family("student_t", beta_nll=0.5).options() == {"beta_nll": 0.5}
    with pytest.raises(
        ValueError,
        match=r"beta_nll must lie in \[0, 1\] \(0: the plain NLL; 0.5 the usual choice\), got -0.1",
    ):
        get_family("student_t", beta_nll=-0.1)


# ---- mean warm-up -------------------------------------------------------------------
def _scale_output(model: SoftRegressor, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.scaled_params(x)[1].clone()


class _ScaleAtEpochEnd(Callback):
    """Records the scale output on ``x`` at the end of every training epoch."""

    def __init__(self, x: torch.Tensor) -> None:
        self.x, self.scales = x, []

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.scales.append(_scale_output(pl_module, self.x))


def _trained(epochs: int, **options) -> tuple[SoftRegressor, torch.Tensor, list[torch.Tensor]]:
    """A Gaussian model, its scale output on test rows before training and at the end of
    each of ``epochs`` epochs."""
    dm = SyntheticDataModule(n=800, n_features=2, batch_size=64)
    dm.setup("fit")
    model = SoftRegressor(2, hidden=[16], lr=1e-2, **options)
    model.fit_scaling(*dm.tensors("train"))
    x = dm.tensors("test")[0]
    before, record = _scale_output(model, x), _ScaleAtEpochEnd(x)
    make_quiet_trainer(max_epochs=epochs, num_sanity_val_steps=0, callbacks=[record]).fit(model, dm)
    return model, before, record.scales


def test_warmup_holds_the_scale_and_moves_the_mean() -> None:
    # weight decay would move the held head rows if they were not restored
    model, before, scales = _trained(3, warmup_epochs=2, optimizer="adamw", weight_decay=0.1)
    for during in scales[:2]:
        torch.testing.assert_close(during, before, rtol=0, atol=0)
    # the marginal σ on every row
    torch.testing.assert_close(scales[1], torch.full_like(before, float(model.marginal[1])))
    start = SoftRegressor(2, hidden=[16]).heads.linear.weight
    assert not torch.equal(model.heads.linear.weight[0], start[0])


def test_after_the_warmup_the_scale_learns() -> None:
    _, before, scales = _trained(3, warmup_epochs=2)
    assert not torch.equal(scales[2], before) and scales[2].std() > 0


def test_warmup_fraction_is_a_share_of_max_epochs() -> None:
    model, before, scales = _trained(5, warmup_fraction=0.5)  # 2 epochs: int(2.5)
    assert model.warmup_length == 2
    assert [torch.equal(s, before) for s in scales] == [True, True, False, False, False]


@pytest.mark.parametrize(
    ("options", "trainer", "message"),
    [
        ({"warmup_fraction": 1.0}, None, r"warmup_fraction must lie in \[0, 1\)"),
        ({"warmup_epochs": 2, "warmup_fraction": 0.1}, None, "not both"),
        ({"warmup_epochs": 3}, {"max_epochs": 3}, "warmup_epochs=3 covers all 3 epochs"),
        (
            {"warmup_epochs": 1},
            {"max_epochs": 5, "max_steps": 1},
            r"max_steps=1 ends the run within the warm-up \(1 epoch\(s\) of 1 steps",
        ),
        (
            {"warmup_fraction": 0.1},
            {"max_epochs": -1, "max_steps": 5},
            "warmup_fraction=0.1 is a share of the Trainer's max_epochs, which is not set",
        ),
    ],
)
def test_bad_warmup_settings(options, trainer, message) -> None:
    with pytest.raises(ValueError, match=message):
        model = SoftRegressor(2, hidden=[4], **options)
        make_quiet_trainer(**trainer).fit(model, SyntheticDataModule(n=100, n_features=2))


@pytest.mark.parametrize(("family", "fails"), [("poisson", False), ("gamma", True)])
def test_a_warmup_as_long_as_the_run_is_fine_when_only_the_mean_is_fitted(family, fails) -> None:
    model = SoftRegressor(2, family=family, hidden=[4], warmup_epochs=5)
    if fails:
        with pytest.raises(ValueError, match="concentration would never train"):
            craft.check_warmup(model.family, model.warmup_length, 5)
    else:
        craft.check_warmup(model.family, model.warmup_length, 5)


def test_warmup_loss_is_the_likelihood_with_the_scale_at_the_marginal() -> None:
    model = SoftRegressor(2, hidden=[8], warmup_epochs=1)
    x, y = torch.randn(50, 2), torch.randn(50)
    model.fit_scaling(x, y)
    target = (y - model.y_shift) / model.y_scale
    loc = model.scaled_params(x)[0]
    held = (loc, torch.full_like(loc, float(model.marginal[1])))
    expected = model.family.loss(held, target)
    torch.testing.assert_close(model.training_loss(x, target, epoch=0), expected)
    torch.testing.assert_close(
        model.training_loss(x, target, epoch=1), model.family.loss(model.scaled_params(x), target)
    )


@pytest.mark.parametrize("family", list_families())
def test_every_family_holds_only_parameters_that_do_not_carry_the_mean(family) -> None:
    dist = get_family(family)
    assert dist.mean_params and set(dist.mean_params) <= {p.name for p in dist.params}
    model = SoftRegressor(2, family=family, hidden=[4], warmup_epochs=1)
    y = torch.arange(1.0, 41.0)
    model.fit_scaling(torch.randn(40, 2), y)
    held = craft.held(model.family, model.marginal, model.scaled_params(torch.randn(5, 2)))
    for name, value, marginal in zip(model.param_names, held, model.marginal, strict=True):
        assert math.isfinite(float(marginal))
        if name not in dist.mean_params:
            assert torch.all(value == marginal)


def test_warmup_epochs_must_be_a_whole_number() -> None:
    with pytest.raises(
        ValueError, match=r"warmup_epochs must be a whole number >= 0 \(0: no warm-up\), got -1"
    ):
        SoftRegressor(2, warmup_epochs=-1)


# ---- faithful heteroscedastic training ---------------------------------------------
def _body_gradient(model: SoftRegressor, x, target) -> list[torch.Tensor]:
    model.zero_grad()
    model.training_loss(x, target, epoch=5).sum().backward()
    return [p.grad.clone() for p in model.body.parameters()]


def test_faithful_body_gets_no_gradient_from_the_scale_head() -> None:
    model = SoftRegressor(2, hidden=[8], faithful=True)
    x, y = torch.randn(64, 2), torch.randn(64) * (1 + torch.rand(64))
    model.fit_scaling(x, y)
    target = (y - model.y_shift) / model.y_scale
    with torch.no_grad():  # a scale head that depends on the features
        model.heads.linear.weight[1].normal_()
    first = _body_gradient(model, x, target)
    assert model.heads.linear.weight.grad[1].abs().sum() > 0  # the scale head learns
    with torch.no_grad():  # a different scale head: the body's gradient is the same
        model.heads.linear.weight[1].normal_()
        model.heads.linear.bias[1] += 1.0
    for a, b in zip(first, _body_gradient(model, x, target), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # ... and so it is without faithful training
    model.hparams.faithful = False
    unfaithful = _body_gradient(model, x, target)
    assert any(not torch.allclose(a, b) for a, b in zip(first, unfaithful, strict=True))


def test_faithful_ensemble_trains_and_every_member_learns_its_scale() -> None:
    dm = SyntheticDataModule(n=600, n_features=1, batch_size=64)
    model = SoftRegressor(1, hidden=[16], faithful=True, ensemble_size=3, warmup_epochs=1)
    make_quiet_trainer(max_epochs=3, num_sanity_val_steps=0).fit(model, dm)
    x = dm.tensors("test")[0]
    scale = _scale_output(model, x)
    assert scale.shape == (len(x), 3) and torch.all(scale.std(dim=0) > 0)


def test_models_saved_before_the_craft_load_with_their_marginal() -> None:
    model = SoftRegressor(2, hidden=[4])
    model.fit_scaling(torch.randn(30, 2), torch.randn(30))
    state = {k: v for k, v in model.state_dict().items() if k != "marginal"}
    fresh = SoftRegressor(2, hidden=[4])
    fresh.load_state_dict(state)
    assert torch.isnan(fresh.marginal).all()
    fresh.hparams.warmup_epochs = 1
    with pytest.raises(ValueError, match=r"call model.fit_scaling\(x_train, y_train\) first"):
        fresh.training_loss(torch.randn(3, 2), torch.randn(3), epoch=0)


# ---- ensembles ----------------------------------------------------------------------
def test_each_member_gets_the_gradient_it_would_get_alone() -> None:
    """Members side by side are separate models: member 0's gradient is the same whether it
    has one companion or two (under the members' mean it would shrink as 1/N, and Adam's
    coupled weight decay would weigh N times as much)."""
    x, y = torch.randn(30, 2), torch.randn(30)
    models = [SoftRegressor(2, hidden=[4], ensemble_size=n) for n in (2, 3)]
    with torch.no_grad():  # every member of both a copy of the first model's member 0
        for p2, p3 in zip(models[0].parameters(), models[1].parameters(), strict=True):
            first = p2[:1].clone()
            p2.copy_(first.expand_as(p2))
            p3.copy_(first.expand_as(p3))
    grads = []
    for model in models:
        model.fit_scaling(x, y)
        model.training_loss(x, (y - model.y_shift) / model.y_scale, epoch=0).sum().backward()
        grads.append(model.heads.linear.weight.grad[0].clone())
    torch.testing.assert_close(grads[0], grads[1])


def test_validation_loss_is_the_family_loss_or_the_mixture_nll() -> None:
    x, target = torch.randn(20, 2), torch.randn(20)
    single = SoftRegressor(2, hidden=[4], family_options={"beta_nll": 0.5})
    scaled = single.scaled_params(x)
    torch.testing.assert_close(
        single.validation_loss(scaled, target), single.family.loss(scaled, target)
    )
    ensemble = SoftRegressor(2, hidden=[4], ensemble_size=3)
    scaled = ensemble.scaled_params(x)
    torch.testing.assert_close(
        ensemble.validation_loss(scaled, target), ensemble.family.nll(scaled, target)
    )
    assert not torch.allclose(
        ensemble.validation_loss(scaled, target), ensemble.family.loss(scaled, target)
    )


def test_a_loss_that_is_not_finite_stops_the_run_before_a_checkpoint_holds_nan(tmp_path) -> None:
    """lr 1e12 makes the loss NaN in the first epoch: one error, and every checkpoint on
    disk (none, or an earlier epoch's) has finite weights."""
    from softzoo.cli import main

    rows = "a,y\n" + "".join(f"{i},{1 + i % 7}\n" for i in range(200))
    (tmp_path / "d.csv").write_text(rows)
    args = ["fit", "--data.path", str(tmp_path / "d.csv"), "--data.target", "y"]
    args += ["--model.lr", "1e12", "--trainer.max_epochs", "3", "--trainer.logger", "false"]
    args += ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
    assert main([*args, "--checkpoint.dirpath", str(tmp_path / "ckpt")]) == 2
    for checkpoint in (tmp_path / "ckpt").glob("*.ckpt"):
        state = torch.load(checkpoint, weights_only=True)["state_dict"]
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
