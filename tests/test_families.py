import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from softzoo.families import get_family, list_families

SEVEN = ["gamma", "gaussian", "lognormal", "negative_binomial", "poisson", "positive", "student_t"]
ZERO_MASS = [
    "hurdle_gamma",
    "hurdle_lognormal",
    "tweedie",
    "zero_inflated_negative_binomial",
    "zero_inflated_poisson",
]
PROBABILISTIC = [f for f in SEVEN if f != "positive"]


def _params(name: str, n: int = 40, seed: int = 1) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    u = lambda lo, hi: lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float64)  # noqa: E731
    return {
        "gaussian": lambda: (u(-3, 3), u(0.1, 4)),
        "student_t": lambda: (u(-3, 3), u(0.1, 4), u(2.2, 30)),
        "lognormal": lambda: (u(-1, 2), u(0.1, 1.5)),
        "gamma": lambda: (u(0.3, 8), u(0.2, 5)),
        "poisson": lambda: (u(0.05, 40),),
        "negative_binomial": lambda: (u(0.05, 40), u(0.3, 20)),
        "positive": lambda: (u(0.1, 10),),
    }[name]()


def _targets(name: str, params: tuple[torch.Tensor, ...]) -> torch.Tensor:
    family = get_family(name)
    sample = family.distribution(params).sample() if name != "positive" else params[0] * 1.3
    return sample.clamp_min(1e-3) if family.support == "positive" else sample


def test_list_families_is_the_seven_and_the_five_with_a_mass_at_zero() -> None:
    assert list_families() == sorted(SEVEN + ZERO_MASS)


def test_unknown_family_suggests_close_match() -> None:
    with pytest.raises(
        ValueError,
        match=r"unknown family 'gausian'\. Did you mean 'gaussian'\? Choose one of: gamma, gaussian, ",
    ):
        get_family("gausian")


def test_family_rejects_unknown_option() -> None:
    with pytest.raises(ValueError, match="'gaussian' got options it does not take"):
        get_family("gaussian", df=3)


@pytest.mark.parametrize("name", PROBABILISTIC)
def test_nll_equals_torch_log_prob(name: str) -> None:
    family = get_family(name)
    params = _params(name)
    y = _targets(name, params)
    expected = -family.distribution(params).log_prob(y)
    torch.testing.assert_close(family.nll(params, y), expected, rtol=1e-5, atol=1e-5)


def test_gaussian_nll_includes_half_log_two_pi() -> None:
    nll = get_family("gaussian").nll((torch.zeros(1), torch.ones(1)), torch.zeros(1))
    assert nll.item() == pytest.approx(0.5 * math.log(2 * math.pi), abs=1e-7)


@pytest.mark.parametrize("name", PROBABILISTIC)
def test_mean_and_variance_match_torch(name: str) -> None:
    family, params = get_family(name), _params(name)
    dist = family.distribution(params)
    torch.testing.assert_close(family.mean(params), dist.mean)
    torch.testing.assert_close(family.variance(params), dist.variance)


def _scipy_dist(name: str, params: tuple[torch.Tensor, ...]):
    p = [t.numpy() for t in params]
    return {
        "gaussian": lambda: stats.norm(p[0], p[1]),
        "student_t": lambda: stats.t(p[2], p[0], p[1]),
        "lognormal": lambda: stats.lognorm(p[1], scale=np.exp(p[0])),
        "gamma": lambda: stats.gamma(p[0], scale=1 / p[1]),
        "poisson": lambda: stats.poisson(p[0]),
        "negative_binomial": lambda: stats.nbinom(p[1], p[1] / (p[1] + p[0])),
    }[name]()


@pytest.mark.parametrize("name", PROBABILISTIC)
@pytest.mark.parametrize("q", [0.025, 0.05, 0.5, 0.9, 0.975])
def test_quantile_matches_scipy(name: str, q: float) -> None:
    family, params = get_family(name), _params(name)
    expected = torch.as_tensor(_scipy_dist(name, params).ppf(q))
    torch.testing.assert_close(family.quantile(params, q), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", PROBABILISTIC)
def test_cdf_matches_scipy(name: str) -> None:
    family, params = get_family(name), _params(name)
    y = _targets(name, params)
    expected = torch.as_tensor(_scipy_dist(name, params).cdf(y.numpy()))
    torch.testing.assert_close(family.cdf(params, y), expected, rtol=1e-6, atol=1e-8)


def _crps_reference(name: str, params: tuple[torch.Tensor, ...], y: torch.Tensor) -> list[float]:
    """CRPS = ∫ (F(x) − 1{x ≥ y})² dx by quadrature, or the exact sum for counts."""
    out = []
    for i in range(len(y)):
        dist = _scipy_dist(name, tuple(p[i : i + 1] for p in params))
        yi = float(y[i])
        if name in ("poisson", "negative_binomial"):
            k = np.arange(0, int(dist.ppf(1 - 1e-12)[0]) + int(yi) + 2)
            out.append(float(((dist.cdf(k) - (k >= yi)) ** 2).sum()))
            continue
        lo, hi = dist.ppf(1e-12)[0], dist.ppf(1 - 1e-12)[0]
        f = lambda x, d=dist: float(d.cdf(x)[0])  # noqa: E731
        left = integrate.quad(lambda x, f=f: f(x) ** 2, min(lo, yi), yi, limit=200)[0]
        right = integrate.quad(lambda x, f=f: (1 - f(x)) ** 2, yi, max(hi, yi), limit=200)[0]
        out.append(left + right)
    return out


@pytest.mark.parametrize("name", PROBABILISTIC)
def test_crps_matches_numerical_integration(name: str) -> None:
    family, params = get_family(name), _params(name, n=12)
    y = _targets(name, params)
    expected = torch.tensor(_crps_reference(name, params, y), dtype=torch.float64)
    torch.testing.assert_close(family.crps(params, y), expected, rtol=2e-5, atol=2e-6)


def test_gaussian_crps_exact_value_at_the_mean() -> None:
    value = get_family("gaussian").crps((torch.zeros(1), torch.ones(1)), torch.zeros(1))
    assert value.item() == pytest.approx(
        2 / math.sqrt(2 * math.pi) - 1 / math.sqrt(math.pi), rel=1e-7
    )


@pytest.mark.parametrize("name", PROBABILISTIC)
def test_interval_holds_its_mass(name: str) -> None:
    family, params = get_family(name), _params(name)
    lower, upper = family.interval(params, 0.9)
    if family.discrete:
        assert (family.cdf(params, upper) >= 0.95 - 1e-9).all()
        assert (family.cdf(params, lower - 1) <= 0.05 + 1e-9).all()
    else:
        torch.testing.assert_close(
            family.cdf(params, upper) - family.cdf(params, lower), torch.full_like(lower, 0.9)
        )


@pytest.mark.parametrize(
    "name", [f for f in PROBABILISTIC if f not in ("poisson", "negative_binomial")]
)
def test_unscale_is_the_change_of_variables(name: str) -> None:
    """nll of y = s·y' + m under unscaled params = nll of y' + log s (the Jacobian)."""
    family, params = get_family(name), _params(name)
    y_scaled = _targets(name, params)
    shift = torch.tensor(0.0 if family.target_scaling == "scale" else 2.5, dtype=torch.float64)
    scale = torch.tensor(7.0, dtype=torch.float64)
    y = y_scaled * scale + shift
    original = family.unscale(params, shift, scale)
    torch.testing.assert_close(
        family.nll(original, y), family.nll(params, y_scaled) + math.log(7.0)
    )
    torch.testing.assert_close(family.mean(original), family.mean(params) * scale + shift)


@pytest.mark.parametrize("name", ["poisson", "negative_binomial"])
def test_counts_are_never_rescaled(name: str) -> None:
    family = get_family(name)
    assert family.fit_target_scaling(torch.tensor([0.0, 3.0, 100.0])) == (0.0, 1.0)


@pytest.mark.parametrize(
    ("name", "y", "message"),
    [
        (
            "gamma",
            [1.0, -1.5, 0.0],
            r"family 'gamma' needs y > 0, but the target has 2 value\(s\) outside \(first: -1.5 at index 1\)",
        ),
        ("lognormal", [0.0], r"family 'lognormal' needs y > 0.* \(first: 0.0 at index 0\)"),
        ("positive", [2.0, -3.0], r"family 'positive' needs y > 0.*1 value\(s\).*-3.0"),
        (
            "poisson",
            [1.0, 2.5, 3.0],
            r"family 'poisson' needs counts \(integers >= 0\).*1 value\(s\).*\(first: 2.5 at index 1\)",
        ),
        ("negative_binomial", [-1.0], r"'negative_binomial' needs counts .*first: -1.0"),
        (
            "gaussian",
            [0.0, float("nan")],
            r"target has 1 NaN/inf value\(s\) \(first: nan at index 1\)",
        ),
        (
            "gamma",
            [1.0, float("inf")],
            r"target has 1 NaN/inf value\(s\) \(first: inf at index 1\)",
        ),
    ],
)
def test_support_errors_name_family_count_and_first_value(name: str, y: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        get_family(name).check_support(torch.tensor(y))


@pytest.mark.parametrize("name", SEVEN)
def test_support_accepts_valid_targets(name: str) -> None:
    y = (
        torch.tensor([0.5, 1.0, 7.0])
        if get_family(name).support != "count"
        else torch.tensor([0.0, 1.0, 7.0])
    )
    get_family(name).check_support(y)


@pytest.mark.parametrize("name", PROBABILISTIC)
def test_initial_values_fit_the_marginal(name: str) -> None:
    family = get_family(name)
    params = tuple(p[:1].expand(20000) for p in _params(name))
    y = family.distribution(params).sample()
    init = family.initial_values(y)
    init_params = tuple(torch.tensor(init[n], dtype=torch.float64) for n in family.param_names)
    torch.testing.assert_close(family.mean(init_params), y.mean(), rtol=0.05, atol=0.05)
    assert [s.name for s in family.head_specs()] == list(family.param_names)


# ---- the positive (point) family -----------------------------------------------------
@pytest.mark.parametrize("loss", ["mse", "msle", "poisson", "gamma", "tweedie"])
def test_positive_losses_vanish_with_zero_gradient_at_the_target(loss: str) -> None:
    family = get_family("positive", loss=loss, power=1.4)
    y = torch.tensor([0.3, 1.0, 25.0], dtype=torch.float64)
    mean = y.clone().requires_grad_(True)
    value = family.loss((mean,), y)
    value.sum().backward()
    torch.testing.assert_close(value, torch.zeros_like(y), atol=1e-12, rtol=0)
    torch.testing.assert_close(mean.grad, torch.zeros_like(y), atol=1e-12, rtol=0)


def test_positive_loss_values() -> None:
    y, m = torch.tensor([2.0], dtype=torch.float64), torch.tensor([1.0], dtype=torch.float64)
    value = lambda loss, **kw: get_family("positive", loss=loss, **kw).loss((m,), y).item()  # noqa: E731
    assert value("mse") == pytest.approx(1.0)
    assert value("msle") == pytest.approx((math.log(3) - math.log(2)) ** 2)
    assert value("poisson") == pytest.approx(2 * (2 * math.log(2) - 1))
    assert value("gamma") == pytest.approx(2 * (math.log(0.5) + 1))
    assert value("tweedie", power=1.0001) == pytest.approx(value("poisson"), rel=1e-3)


def test_positive_family_bad_options_and_no_likelihood() -> None:
    with pytest.raises(ValueError, match="unknown loss 'mae' for family 'positive'"):
        get_family("positive", loss="mae")
    with pytest.raises(ValueError, match=r"tweedie power must lie in \(1, 2\)"):
        get_family("positive", loss="tweedie", power=2.5)
    with pytest.raises(ValueError, match="is a point predictor"):
        get_family("positive").nll((torch.ones(1),), torch.ones(1))
    crps = get_family("positive").crps((torch.tensor([2.0]),), torch.tensor([3.5]))
    assert crps.item() == 1.5


# ---- options ---------------------------------------------------------------------------
def test_beta_nll_weights_by_detached_variance() -> None:
    family = get_family("gaussian", beta_nll=0.5)
    loc = torch.zeros(1, dtype=torch.float64)
    scale = torch.tensor([2.0], dtype=torch.float64, requires_grad=True)
    y = torch.ones(1, dtype=torch.float64)
    loss = family.loss((loc, scale), y)
    assert loss.item() == pytest.approx(2.0 * family.nll((loc, scale.detach()), y).item())
    loss.backward()
    expected_grad = 2.0 * (1 / 2.0 - 1.0 / 2.0**3)  # σ^{2β} · ∂nll/∂σ
    assert scale.grad.item() == pytest.approx(expected_grad)


def test_beta_nll_range() -> None:
    with pytest.raises(ValueError, match=r"beta_nll must lie in \[0, 1\]"):
        get_family("gaussian", beta_nll=2.0)


def test_student_t_df_stays_above_two() -> None:
    family = get_family("student_t")
    assert family.params[2].lower == 2.0
    spec = family.head_specs()[2]
    assert spec.name == "df" and spec.positive and spec.lower == 2.0


def test_bad_interval_level() -> None:
    with pytest.raises(ValueError, match=r"interval level must lie in \(0, 1\)"):
        get_family("gaussian").interval((torch.zeros(1), torch.ones(1)), 1.5)


def test_negative_binomial_crps_of_huge_counts_uses_the_quantile_integral(monkeypatch) -> None:
    import softzoo.families.negative_binomial as nb

    family = get_family("negative_binomial")
    mu = torch.tensor([30.0, 200.0, 5.0])
    r = torch.tensor([2.0, 8.0, 0.7])
    y = torch.tensor([12.0, 260.0, 0.0])
    exact = family.crps((mu, r), y)
    monkeypatch.setattr(nb, "_CRPS_GRID_MAX", 1)
    torch.testing.assert_close(family.crps((mu, r), y), exact, rtol=2e-3, atol=1e-3)
    # counts of 1e9 would need a grid of gigabytes; the integral needs 1,000 quantiles per row
    big = family.crps((torch.tensor([1e9]), torch.tensor([1.5])), torch.tensor([3e9]))
    assert torch.isfinite(big).all() and 1e8 < float(big) < 3e9
