"""Tweedie with power 1 < p < 2: the compound Poisson–gamma law of insurance claims and
rainfall, an exact point mass at 0 and a continuous density above it."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from scipy import special, stats
from torch import Tensor

from softzoo.families.base import Family, Params, ParamSpec
from softzoo.families.registry import register_family

__all__ = ["TweedieFamily"]

#: A learned power lies in these bounds (float32 saturation of the head reaches them).
POWER_BOUNDS = (1.01, 1.99)
#: Series terms are summed over ±(6 standard deviations + 4) of the term index around its
#: mode: the mass left out is below 1e-9.
_WIDTH = 6.0
#: The most series terms of one density; rows needing more take the saddlepoint, whose
#: relative error is O(1/terms) there.
_DENSITY_TERMS = 1024
#: The most Poisson terms of one CDF; rows needing more (λ > ~16,000) take the normal
#: approximation of a compound Poisson law with that many events.
_CDF_TERMS = 4096
#: Elements x terms evaluated at once, to bound memory.
_CHUNK = 1 << 22
_NEWTON_STEPS = 100
#: The CRPS sums over pairs of event counts, of at most this many terms each; rows needing
#: more (λ > ~20) integrate (F(x) − 1{x ≥ y})² on _CRPS_GRID points instead.
_CRPS_TERMS = 64
_CRPS_GRID = 257


def _poisson_gamma(mu: Tensor, phi: Tensor, p: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(λ, α, τ): y is the sum of N ~ Poisson(λ) draws of Gamma(shape α, scale τ)."""
    lam = mu ** (2 - p) / (phi * (2 - p))
    alpha = (2 - p) / (p - 1)
    tau = phi * (p - 1) * mu ** (p - 1)
    return lam, alpha, tau


def _window(centre: Tensor, spread: Tensor, cap: int) -> tuple[Tensor, Tensor]:
    """Term indices (…, L) from 1 covering centre ± (_WIDTH·spread + 4), and whether each
    row's window fits in ``cap`` terms."""
    half = torch.ceil(_WIDTH * spread.detach() + 4)
    start = (torch.floor(centre.detach()) - half).clamp_min(1)
    length = torch.floor(centre.detach()) + half - start + 1
    fits = length <= cap
    longest = int(length[fits].max().item()) if fits.any() else 1
    steps = torch.arange(longest, dtype=centre.dtype, device=centre.device)
    return start[..., None] + steps, fits


def _elementwise(fn: Callable[..., Tensor], *tensors: Tensor, terms: int) -> Tensor:
    """``fn`` on broadcast, flattened tensors in chunks of _CHUNK // terms elements."""
    shaped = torch.broadcast_tensors(*tensors)
    flat = [t.reshape(-1) for t in shaped]
    rows = max(1, _CHUNK // terms)
    parts = [fn(*(t[i : i + rows] for t in flat)) for i in range(0, flat[0].numel(), rows)]
    return (torch.cat(parts) if parts else flat[0]).reshape(shaped[0].shape)


@register_family
class TweedieFamily(Family):
    """y ~ Tweedie(mean μ, dispersion φ, power p), 1 < p < 2: variance φ·μ^p, an exact
    point mass P(y = 0) = exp(−λ) with λ = μ^(2−p) / (φ(2−p)), a density above 0.

    ``power``: a number in (1, 2) (fixed: the head outputs that constant) or "learned"
    (a head bounded in [1.01, 1.99], per row). Density: the series of Dunn & Smyth (2005)
    summed around its largest term (the saddlepoint where that needs over 1,024 terms);
    CDF: the Poisson mixture of gamma CDFs; quantiles: Newton's method on the CDF inside a
    bisection bracket; CRPS: E|X − y| − ½E|X − X'| summed over the event counts in closed
    form.

    Example:
        >>> import torch
        >>> from softzoo.families import get_family
        >>> tweedie = get_family("tweedie", power=1.5)
        >>> params = (torch.tensor([2.0]), torch.tensor([1.0]), torch.tensor([1.5]))
        >>> round(tweedie.prob_zero(params).item(), 4)  # exp(-2**0.5 / 0.5)
        0.0591
    """

    name = "tweedie"
    support = "nonnegative"
    target_scaling = "scale"
    mean_params = ("mean",)
    zero_mass = True

    def __init__(self, power: float | str = 1.5) -> None:
        if power == "learned":
            lower, upper = POWER_BOUNDS
        elif isinstance(power, (int, float)) and 1.0 < float(power) < 2.0:
            lower = upper = float(power)
        else:
            raise ValueError(
                f"tweedie power must be a number in (1, 2) or 'learned', got {power!r}; "
                "1.5 is the usual start (LightGBM's and glum's default)"
            )
        self.power = power if power == "learned" else float(power)
        self.params = (
            ParamSpec("mean", True, units="scale", exposure="scale"),
            ParamSpec("dispersion", True),
            ParamSpec("power", lower=lower, upper=upper),
        )

    def options(self) -> dict[str, Any]:
        return {"power": self.power}

    # ---- the law ----------------------------------------------------------------------
    def nll(self, params: Params, y: Tensor) -> Tensor:
        mu, phi, p, y = torch.broadcast_tensors(*params, y)
        lam, alpha, tau = _poisson_gamma(mu, phi, p)
        zero = y == 0
        inside = torch.where(zero, torch.ones_like(y), y)  # a finite gradient where unused
        density = _log_density(inside, mu, phi, p, lam, alpha, tau)
        return torch.where(zero, lam, -density)

    def prob_zero(self, params: Params) -> Tensor:
        lam, _, _ = _poisson_gamma(*params)
        return torch.exp(-lam)

    def mean(self, params: Params) -> Tensor:
        return params[0]

    def variance(self, params: Params) -> Tensor:
        mu, phi, p = params
        return phi * mu**p

    def cdf(self, params: Params, y: Tensor) -> Tensor:
        mu, phi, p = (t.double() for t in params)
        value = _elementwise(_cdf, mu, phi, p, y.double(), terms=_CDF_TERMS // 8)
        return value.to(params[0].dtype)

    def quantile(self, params: Params, q: float | np.ndarray) -> Tensor:
        """0 where P(y = 0) >= q; else Newton's method on the CDF from the quantile of the
        gamma with the same mean and variance, kept inside a bisection bracket (float64)."""
        mu, phi, p = (t.double() for t in params)
        level = torch.as_tensor(q, dtype=torch.float64, device=mu.device)
        mu, phi, p, level = torch.broadcast_tensors(mu, phi, p, level)
        one = (mu, phi, p)
        x = _gamma_match(one, level.cpu().numpy()).to(mu.device)
        lo, hi = torch.zeros_like(mu), torch.maximum(2 * x, mu + 10 * torch.sqrt(phi * mu**p))
        for _ in range(200):  # widen until the bracket holds the quantile
            short = self.cdf(one, hi) < level
            if not short.any():
                break
            hi = torch.where(short, 2 * hi, hi)
        zero = level <= self.prob_zero(one)
        x = x.clamp(torch.finfo(x.dtype).tiny, None).minimum(hi)
        for _ in range(_NEWTON_STEPS):
            error = self.cdf(one, x) - level
            lo, hi = torch.where(error < 0, x, lo), torch.where(error >= 0, x, hi)
            done = zero | (error.abs() <= 1e-12) | (hi - lo <= 1e-14 * hi)
            if bool(done.all()):
                break
            step = x - error / torch.exp(-self.nll(one, x))
            inside = (step > lo) & (step < hi) & torch.isfinite(step)
            x = torch.where(inside, step, (lo + hi) / 2)
        return torch.where(zero, 0.0, x).to(params[0].dtype)

    def grid_points(self, params: Params, levels: np.ndarray) -> Tensor:
        """Points where the mass is, for the CRPS integral of a mixture: 0, then quantiles
        of the gamma with the same mean and variance (cheap; the integrand is exact)."""
        points = _gamma_match(tuple(t.double() for t in params), levels)
        points[..., 0] = 0.0
        return points.to(params[0].device)

    def crps(self, params: Params, y: Tensor) -> Tensor:
        """E|X − y| − ½E|X − X'|, both summed over the Poisson count of events (float64):
        given n events X is Gamma(nα, τ), whose E|G − y| has a closed form, and two gammas
        of one scale differ by S·(2B − 1) with S ~ Gamma(a + b) and B ~ Beta(a, b). Rows
        with more than 64 likely event counts (λ > ~20) integrate (F(x) − 1{x ≥ y})² by
        the trapezoid rule on 257 points where the mass is, with the exact F."""
        mu, phi, p, y = torch.broadcast_tensors(*(t.double() for t in params), y.double())
        value = _elementwise(_crps, mu, phi, p, y, terms=_CRPS_TERMS**2)
        wide = torch.isnan(value)
        if wide.any():
            value[wide] = self._grid_crps((mu[wide], phi[wide], p[wide]), y[wide])
        return value.to(params[0].dtype)

    def _grid_crps(self, params: Params, y: Tensor) -> Tensor:
        levels = stats.norm.cdf(np.linspace(-6.0, 6.0, _CRPS_GRID))
        grid = _gamma_match(tuple(t[:, None] for t in params), levels).to(y)
        grid = torch.sort(torch.cat([torch.zeros_like(y)[:, None], grid, y[:, None]], 1)).values
        big_f = self.cdf(tuple(t[:, None] for t in params), grid).double()
        below = (grid[:, 1:] <= y[:, None]).double() * (big_f[:, 1:] ** 2 + big_f[:, :-1] ** 2)
        above = (grid[:, :-1] >= y[:, None]).double() * (
            (1 - big_f[:, 1:]) ** 2 + (1 - big_f[:, :-1]) ** 2
        )
        return (0.5 * torch.diff(grid, dim=1) * (below + above)).sum(1)

    def distribution(self, params: Params) -> torch.distributions.Distribution:
        raise NotImplementedError("family 'tweedie' has no torch.distributions twin")

    def sample(self, params: Params, n: int) -> Tensor:
        """N ~ Poisson(λ) events, then the sum of N Gamma(α, τ) draws: Gamma(Nα, τ)."""
        lam, alpha, tau = _poisson_gamma(*(t.double() for t in params))
        events = torch.poisson(lam.expand(n, *lam.shape).contiguous())
        shape = (events * alpha).clamp_min(1e-300)
        draws = torch.distributions.Gamma(shape, 1 / tau, validate_args=False).sample()
        return torch.where(events > 0, draws, 0.0).to(params[0].dtype)

    # ---- scaling and the start ----------------------------------------------------------
    def unscale(self, params: Params, shift: Tensor, scale: Tensor) -> Params:
        """y = scale·y': μ = scale·μ', φ = φ'·scale^(2−p) (so that φμ^p scales as y²)."""
        mu, phi, p = params
        return mu * scale, phi * scale ** (2 - p), p

    def initial_values(self, y: Tensor) -> dict[str, float]:
        mean = float(y.mean())
        if not mean > 0:
            raise ValueError(
                "family 'tweedie' needs some y > 0 in the training target, which is all 0; "
                "check the target column (a target that is always 0 needs no model)"
            )
        power = 1.5 if self.power == "learned" else float(self.power)
        variance = float(y.var()) if y.numel() > 1 else mean
        return {"mean": mean, "dispersion": max(variance, 1e-12) / mean**power, "power": power}


def _log_density(
    y: Tensor, mu: Tensor, phi: Tensor, p: Tensor, lam: Tensor, alpha: Tensor, tau: Tensor
) -> Tensor:
    """log f(y) for y > 0: the series Σⱼ Poisson(j; λ)·Gamma(y; jα, τ) around its mode
    j* = y^(2−p) / (φ(2−p)), whose terms fall off with standard deviation √(j*/(1+α))."""
    log_y = torch.log(y)
    mode = y ** (2 - p) / (phi * (2 - p))
    j, fits = _window(mode, torch.sqrt(mode / (1 + alpha)), _DENSITY_TERMS)
    z = (torch.log(lam) + alpha * (log_y - torch.log(tau)))[..., None]
    terms = j * z - torch.lgamma(j + 1) - torch.lgamma(j * alpha[..., None])
    series = -lam - y / tau - log_y + torch.logsumexp(terms, dim=-1)
    if bool(fits.all()):
        return series
    deviance = 2 * (
        y ** (2 - p) / ((1 - p) * (2 - p)) - y * mu ** (1 - p) / (1 - p) + mu ** (2 - p) / (2 - p)
    )
    saddle = -0.5 * torch.log(2 * math.pi * phi * y**p) - deviance / (2 * phi)
    return torch.where(fits, series, saddle)


def _cdf(mu: Tensor, phi: Tensor, p: Tensor, y: Tensor) -> Tensor:
    """F(y) = e^(−λ) + Σₙ Poisson(n; λ)·P(Gamma(nα, τ) <= y) for y >= 0 (float64)."""
    lam, alpha, tau = _poisson_gamma(mu, phi, p)
    n, fits = _window(lam, torch.sqrt(lam), _CDF_TERMS)
    log_pmf = n * torch.log(lam[:, None]) - lam[:, None] - torch.lgamma(n + 1)
    inside = y.clamp_min(0)[:, None] / tau[:, None]
    series = torch.exp(-lam) + (
        torch.exp(log_pmf) * torch.special.gammainc(n * alpha[:, None], inside)
    ).sum(-1)
    normal = 0.5 * torch.erfc(-(y - mu) / torch.sqrt(2 * phi * mu**p))
    value = torch.where(fits, series, normal).clamp(0.0, 1.0)
    return torch.where(y < 0, 0.0, value)


def _gamma_match(params: Params, levels: np.ndarray) -> Tensor:
    """Quantiles at ``levels`` of the gamma with the Tweedie's mean and variance."""
    mu, phi, p = params
    variance = phi * mu**p
    shape = (mu**2 / variance).cpu().numpy()
    scale = (variance / mu).cpu().numpy()
    return torch.as_tensor(stats.gamma.ppf(levels, shape, scale=scale))


def _crps(mu: Tensor, phi: Tensor, p: Tensor, y: Tensor) -> Tensor:
    lam, alpha, tau = _poisson_gamma(mu, phi, p)
    n, fits = _window(lam, torch.sqrt(lam), _CRPS_TERMS)
    weight = torch.exp(n * torch.log(lam[:, None]) - lam[:, None] - torch.lgamma(n + 1))
    a, x = n * alpha[:, None], (y.clamp_min(0) / tau)[:, None]
    gamma_abs = y[:, None] * (2 * torch.special.gammainc(a, x) - 1) - a * tau[:, None] * (
        2 * torch.special.gammainc(a + 1, x) - 1
    )
    zero = torch.exp(-lam)
    to_y = zero * y + (weight * gamma_abs).sum(-1)
    a_n, a_m = a[:, :, None], a[:, None, :]
    pair = tau[:, None, None] * (a_n + a_m) * _beta_spread(a_n, a_m)
    within = (weight[:, :, None] * weight[:, None, :] * pair).sum((-1, -2))
    spread = zero * (weight * a).sum(-1) * tau + 0.5 * within
    return torch.where(fits, to_y - spread, torch.nan)  # NaN: left to the grid integral


def _beta_spread(a: Tensor, b: Tensor) -> Tensor:
    """E|2B − 1| for B ~ Beta(a, b): 2·E[(2B − 1)⁺] − E[2B − 1], with E[B·1{B > ½}] from
    I½(a + 1, b) = I½(a, b) − ½^(a+b) / (a·B(a, b))."""
    below = torch.as_tensor(special.betainc(a.cpu().numpy(), b.cpu().numpy(), 0.5)).to(a)
    log_beta = torch.lgamma(a) + torch.lgamma(b) - torch.lgamma(a + b)
    step = torch.exp((a + b) * math.log(0.5) - torch.log(a) - log_beta)
    upper = 2 * a / (a + b) * (1 - below + step) - (1 - below)
    return 2 * upper - (a - b) / (a + b)
