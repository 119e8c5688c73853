"""Training craft: mean warm-up, β-NLL and faithful heteroscedastic training, each tested
by its defining property."""

import math

import pytest
import torch
from conftest import make_quiet_trainer

from softzoo.data import SyntheticDataModule
from softzoo.families import get_family, list_families
from softzoo.models import SoftRegressor


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
    with pytest.raises(ValueError, match=r"beta_nll must lie in \[0, 1\], got -0.1"):
        get_family("student_t", beta_nll=-0.1)


# ---- mean warm-up -------------------------------------------------------------------
def _scale_output(model: SoftRegressor, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.scaled_params(x)[1].clone()


def _trained(epochs: int, **options) -> tuple[SoftRegressor, torch.Tensor, torch.Tensor]:
    """A Gaussian model, its scale output on test rows before and after ``epochs``."""
    dm = SyntheticDataModule(n=800, n_features=2, batch_size=64)
    dm.setup("fit")
    model = SoftRegressor(2, hidden=[16], lr=1e-2, **options)
    model.fit_scaling(*dm.tensors("train"))
    x = dm.tensors("test")[0]
    before = _scale_output(model, x)
    make_quiet_trainer(max_epochs=epochs, num_sanity_val_steps=0).fit(model, dm)
    return model, before, _scale_output(model, x)


def test_warmup_holds_the_scale_and_moves_the_mean() -> None:
    # weight decay would move the held head rows if they were not restored
    model, before, after = _trained(2, warmup_epochs=2, optimizer="adamw", weight_decay=0.1)
    torch.testing.assert_close(after, before, rtol=0, atol=0)
    # the marginal σ on every row
    torch.testing.assert_close(after, torch.full_like(after, float(model.marginal[1])))
    start = SoftRegressor(2, hidden=[16]).heads.linear.weight
    assert not torch.equal(model.heads.linear.weight[0], start[0])


def test_after_the_warmup_the_scale_learns() -> None:
    _, before, after = _trained(3, warmup_epochs=2)
    assert not torch.equal(after, before) and after.std() > 0


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
    held = model._held(model.scaled_params(torch.randn(5, 2)))
    for name, value, marginal in zip(model.param_names, held, model.marginal, strict=True):
        assert math.isfinite(float(marginal))
        if name not in dist.mean_params:
            assert torch.all(value == marginal)


def test_warmup_epochs_must_be_a_whole_number() -> None:
    with pytest.raises(ValueError, match="warmup_epochs must be a whole number >= 0, got -1"):
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
