"""Poisson(rate): counts y in {0, 1, 2, …} with variance equal to the mean."""

from __future__ import annotations

import torch
from scipy import stats
from torch import Tensor

from softzoo.families.base import Family, Params, ParamSpec, scipy_call
from softzoo.families.registry import register_family

__all__ = ["PoissonFamily"]


@register_family
class PoissonFamily(Family):
    """y ~ Poisson(rate), rate > 0. Counts are never rescaled.

    CDF: ``torch.special.gammaincc``; quantiles: scipy's ``poisson.ppf``; CRPS: closed
    form of Wei & Held (2014) with scaled Bessel functions.
    """

    name = "poisson"
    params = (ParamSpec("rate", True, exposure="scale"),)
    support = "count"
    target_scaling = "none"
    mean_params = ("rate",)

    def nll(self, params: Params, y: Tensor) -> Tensor:
        (rate,) = params
        return rate - torch.xlogy(y, rate) + torch.lgamma(y + 1)

    def log_prob_zero(self, params: Params) -> Tensor:
        """log P(y = 0) = −rate."""
        return -params[0]

    def mean(self, params: Params) -> Tensor:
        return params[0]

    def variance(self, params: Params) -> Tensor:
        return params[0]

    def quantile(self, params: Params, q: float) -> Tensor:
        return scipy_call(lambda r: stats.poisson.ppf(q, r), params[0])

    def cdf(self, params: Params, y: Tensor) -> Tensor:
        (rate,) = params
        k = torch.floor(y)
        return torch.where(k >= 0, torch.special.gammaincc(k.clamp_min(0) + 1, rate), 0.0)

    def crps(self, params: Params, y: Tensor) -> Tensor:
        (rate,) = params
        big_f = self.cdf(params, y)
        pmf = torch.exp(-self.nll(params, torch.floor(y)))
        bessel = torch.special.i0e(2 * rate) + torch.special.i1e(2 * rate)
        return (y - rate) * (2 * big_f - 1) + 2 * rate * pmf - rate * bessel

    def distribution(self, params: Params) -> torch.distributions.Poisson:
        return torch.distributions.Poisson(params[0], validate_args=False)

    def initial_values(self, y: Tensor) -> dict[str, float]:
        return {"rate": float(y.mean())}
