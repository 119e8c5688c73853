"""The families with a point mass at 0 (Tweedie, hurdle, zero-inflated): the mass at 0
plus the density integrate to 1, the moments are the integrals, quantiles invert the CDF
(0 below P(y = 0)), CRPS is the quadrature, gradients are finite at 0 and far out."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from softzoo.families import get_family
from softzoo.nn import HeadSpec, ParameterHeads

CONTINUOUS = ["tweedie", "hurdle_lognormal", "hurdle_gamma"]
COUNTS = ["zero_inflated_poisson", "zero_inflated_negative_binomial"]
ALL = CONTINUOUS + COUNTS

ROWS = {  # (P(0) well inside (0, 1) for each row; the last rows have little mass at 0)
    "tweedie": ([0.5, 2.0, 10.0, 1.0, 3.0], [1.0, 0.5, 2.0, 0.2, 5.0], [1.5, 1.2, 1.8, 1.5, 1.05]),
    "hurdle_lognormal": ([-1.0, 0.0, 2.0, -3.0], [0.0, 1.0, 0.5, -1.0], [0.5, 1.0, 0.3, 0.7]),
    "hurdle_gamma": ([-1.0, 0.0, 2.0, -3.0], [0.5, 2.0, 5.0, 1.0], [1.0, 0.5, 2.0, 3.0]),
    "zero_inflated_poisson": ([-1.0, 0.0, 2.0, -3.0], [0.5, 2.0, 5.0, 10.0]),
    "zero_inflated_negative_binomial": (
        [-1.0, 0.0, 2.0, -3.0],
        [0.5, 2.0, 5.0, 10.0],
        [1.0, 0.5, 2.0, 10.0],
    ),
}


def _params(name: str) -> tuple[torch.Tensor, ...]:
    return tuple(torch.tensor(v, dtype=torch.float64) for v in ROWS[name])


def _row(params, i):
    return tuple(p[i : i + 1] for p in params)


def _density(family, row):
    return lambda x: math.exp(-family.nll(row, torch.tensor([x], dtype=torch.float64)).item())


def _integral(function, family, row) -> float:
    """∫₀^∞ of a continuous part, split at the mean (the density may be steep near 0)."""
    mean = float(family.mean(row))
    pieces = [(0.0, mean), (mean, np.inf)]
    return sum(integrate.quad(function, a, b, limit=400)[0] for a, b in pieces)


@pytest.mark.parametrize("name", ALL)
def test_mass_at_zero_and_density_integrate_to_one_and_give_the_moments(name: str) -> None:
    family = get_family(name)
    params = _params(name)
    p0, mean, variance = family.prob_zero(params), family.mean(params), family.variance(params)
    for i in range(len(p0)):
        row = _row(params, i)
        if family.discrete:
            k = torch.arange(0, 3000, dtype=torch.float64)
            pmf = torch.exp(-family.nll(tuple(p.expand(len(k)) for p in row), k))
            total, first = float(pmf.sum()), float((k * pmf).sum())
            second = float((k**2 * pmf).sum())
            assert float(pmf[0]) == pytest.approx(float(p0[i]), rel=1e-12)
        else:
            density = _density(family, row)
            total = float(p0[i]) + _integral(density, family, row)
            first = _integral(lambda x, f=density: x * f(x), family, row)
            second = _integral(lambda x, f=density: x * x * f(x), family, row)
        assert total == pytest.approx(1.0, abs=2e-6)
        assert first == pytest.approx(float(mean[i]), rel=2e-5)
        assert second - first**2 == pytest.approx(float(variance[i]), rel=2e-4)


@pytest.mark.parametrize("name", ALL)
def test_quantiles_invert_the_cdf_and_are_zero_below_the_point_mass(name: str) -> None:
    family = get_family(name)
    params = _params(name)
    p0 = family.prob_zero(params)
    for q in (0.01, 0.2, 0.5, 0.9, 0.99):
        x = family.quantile(params, q)
        at_zero = p0 >= q
        assert torch.equal(x == 0, at_zero | (family.discrete & (family.cdf(params, x * 0) >= q)))
        if family.discrete:  # the smallest count with F >= q
            assert (family.cdf(params, x) >= q).all()
            assert (family.cdf(params, x - 1) < q).all()
        else:
            reached = family.cdf(params, x)[~at_zero]
            torch.testing.assert_close(reached, torch.full_like(reached, q), atol=1e-9, rtol=0)


def _crps_reference(family, row, y: float) -> float:
    if family.discrete:
        k = torch.arange(0, 3000, dtype=torch.float64)
        big_f = family.cdf(tuple(p.expand(len(k)) for p in row), k).numpy()
        return float(((big_f - (k.numpy() >= y)) ** 2).sum())

    def cdf(x: float) -> float:
        return float(family.cdf(row, torch.tensor([x], dtype=torch.float64)))

    top = float(family.mean(row)) + 60 * math.sqrt(float(family.variance(row)))
    below = integrate.quad(lambda x: cdf(x) ** 2, 0.0, y, limit=400)[0] if y > 0 else 0.0
    above = integrate.quad(lambda x: (1 - cdf(x)) ** 2, y, max(top, y), limit=400)[0]
    return below + above


@pytest.mark.parametrize("name", ALL)
def test_crps_matches_numerical_integration_at_zero_and_above(name: str) -> None:
    family = get_family(name)
    params = _params(name)
    for y_value in (0.0, 1.0, 4.0):
        y = torch.full_like(params[0], y_value)
        got = family.crps(params, y)
        for i in range(len(y)):
            expected = _crps_reference(family, _row(params, i), y_value)
            assert float(got[i]) == pytest.approx(expected, rel=1e-5, abs=1e-8)


@pytest.mark.parametrize("name", ALL)
def test_gradients_are_finite_at_zero_and_at_the_largest_targets(name: str) -> None:
    family = get_family(name)
    y = torch.tensor([0.0, 1e-6, 1.0, 37.0, 1e4, 1e8])
    y = torch.round(y) if family.discrete else y
    params = tuple(
        torch.tensor(v[0], dtype=torch.float32).repeat(len(y)).requires_grad_() for v in ROWS[name]
    )
    nll = family.nll(params, y)
    assert torch.isfinite(nll).all(), nll
    nll.sum().backward()
    for p in params:
        assert torch.isfinite(p.grad).all(), (p.grad, name)


def _tweedie_brute_force(mu: float, phi: float, p: float, y: float) -> float:
    """log f(y) summed over 20,000 event counts with scipy's Poisson and gamma."""
    lam = mu ** (2 - p) / (phi * (2 - p))
    alpha, tau = (2 - p) / (p - 1), phi * (p - 1) * mu ** (p - 1)
    n = np.arange(1, 20_001)
    terms = stats.poisson.logpmf(n, lam) + stats.gamma.logpdf(y, n * alpha, scale=tau)
    return float(np.logaddexp.reduce(terms))


@pytest.mark.parametrize(
    ("mu", "phi", "p", "y"),
    [
        (2.0, 1.0, 1.5, 0.3),
        (2.0, 1.0, 1.5, 40.0),
        (0.1, 3.0, 1.9, 5.0),
        (50.0, 0.5, 1.1, 60.0),
        (100.0, 0.002, 1.5, 95.0),  # over 1,024 terms: the saddlepoint
    ],
)
def test_tweedie_density_is_the_series(mu: float, phi: float, p: float, y: float) -> None:
    tweedie = get_family("tweedie")
    params = tuple(torch.tensor([v], dtype=torch.float64) for v in (mu, phi, p))
    got = -float(tweedie.nll(params, torch.tensor([y], dtype=torch.float64)))
    assert got == pytest.approx(_tweedie_brute_force(mu, phi, p, y), abs=2e-4)


def test_tweedie_point_mass_is_exp_minus_lambda_and_its_nll() -> None:
    tweedie = get_family("tweedie", power=1.5)
    params = (torch.tensor([4.0]), torch.tensor([2.0]), torch.tensor([1.5]))
    lam = 4.0**0.5 / (2.0 * 0.5)  # μ^(2-p) / (φ(2-p)) = 2
    assert float(tweedie.prob_zero(params)) == pytest.approx(math.exp(-lam), rel=1e-6)
    assert float(tweedie.nll(params, torch.zeros(1))) == pytest.approx(lam, rel=1e-6)


def test_hurdle_nll_at_zero_is_log_two_at_logit_zero_and_zi_reduces_to_its_base() -> None:
    hurdle = get_family("hurdle_gamma")
    params = (torch.zeros(1), torch.ones(1), torch.ones(1))
    assert float(hurdle.nll(params, torch.zeros(1))) == pytest.approx(math.log(2), rel=1e-7)
    zip_, poisson = get_family("zero_inflated_poisson"), get_family("poisson")
    k, rate = torch.arange(6.0), torch.full((6,), 2.5)
    vanishing = (torch.full((6,), -60.0), rate)
    torch.testing.assert_close(zip_.nll(vanishing, k), poisson.nll((rate,), k))


@pytest.mark.parametrize("name", CONTINUOUS)
def test_pit_is_randomised_over_the_point_mass(name: str) -> None:
    family = get_family(name)
    params = _params(name)
    below, above = family.pit_bounds(params, torch.zeros_like(params[0]))
    assert torch.equal(below, torch.zeros_like(below))
    torch.testing.assert_close(above, family.prob_zero(params))


@pytest.mark.parametrize("name", ALL)
def test_samples_have_the_mean_and_the_share_of_zeros(name: str) -> None:
    family = get_family(name)
    params = _params(name)
    torch.manual_seed(0)
    draws = family.sample(params, 200_000)
    torch.testing.assert_close(draws.mean(0), family.mean(params), rtol=0.02, atol=0.01)
    share = (draws == 0).double().mean(0)
    torch.testing.assert_close(share, family.prob_zero(params), rtol=0, atol=0.005)


@pytest.mark.parametrize("name", ["poisson", "negative_binomial", "gamma", "lognormal", *ALL])
def test_doubling_the_exposure_doubles_the_mean_and_keeps_the_shape(name: str) -> None:
    family = get_family(name)
    params = (
        ROWS.get(name)
        or {
            "poisson": ([2.0, 0.3],),
            "negative_binomial": ([2.0, 0.3], [1.0, 4.0]),
            "gamma": ([2.0, 0.3], [1.0, 4.0]),
            "lognormal": ([0.5, -1.0], [0.3, 1.2]),
        }[name]
    )
    params = tuple(torch.tensor(v, dtype=torch.float64) for v in params)
    rows = len(params[0])
    doubled = family.with_exposure(params, torch.full((rows,), 2.0, dtype=torch.float64))
    torch.testing.assert_close(family.mean(doubled), 2 * family.mean(params))
    unit = family.with_exposure(params, torch.ones(rows, dtype=torch.float64))
    for before, after in zip(params, unit, strict=True):
        torch.testing.assert_close(before, after)


def test_families_whose_mean_is_not_multiplicative_take_no_exposure() -> None:
    assert not get_family("gaussian").takes_exposure
    assert not get_family("student_t").takes_exposure
    assert all(get_family(n).takes_exposure for n in ALL)


@pytest.mark.parametrize("power", [1.0, 2.0, "1.5", "estimated"])
def test_tweedie_power_must_lie_between_one_and_two(power) -> None:
    with pytest.raises(
        ValueError, match=r"tweedie power must be a number in \(1, 2\) or 'learned'"
    ):
        get_family("tweedie", power=power)


def test_a_fixed_power_is_a_constant_head_and_a_learned_one_is_bounded() -> None:
    fixed = ParameterHeads(4, get_family("tweedie", power=1.3).head_specs())
    learned = ParameterHeads(4, get_family("tweedie", power="learned").head_specs())
    x = torch.randn(50, 4) * 1e4
    assert torch.equal(fixed(x)[2], torch.full((50,), 1.3))
    power = learned(x)[2]
    assert ((power >= 1.01) & (power <= 1.99)).all()
    learned.set_initial_values({"power": 1.7})
    assert torch.allclose(learned(x)[2], torch.full((50,), 1.7))
    with pytest.raises(ValueError, match="a bounded head needs lower <= upper"):
        HeadSpec("power", lower=2.0, upper=1.0)


@pytest.mark.parametrize(
    ("name", "y", "message"),
    [
        (
            "tweedie",
            [0.0, -2.0],
            r"family 'tweedie' needs y >= 0, but the target has 1 value\(s\) outside "
            r"\(first: -2.0 at index 1\)",
        ),
        ("zero_inflated_poisson", [0.0, 1.5], r"'zero_inflated_poisson' needs counts"),
        ("gamma", [0.0, 1.0], r"with zeros: tweedie, hurdle_gamma or hurdle_lognormal"),
    ],
)
def test_support_errors_name_the_families_that_allow_zeros(name, y, message) -> None:
    with pytest.raises(ValueError, match=message):
        get_family(name).check_support(torch.tensor(y))


@pytest.mark.parametrize("name", ["hurdle_gamma", "tweedie"])
def test_a_target_without_a_positive_value_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match=r"the training target has no value > 0|is all 0"):
        get_family(name).initial_values(torch.zeros(10))
