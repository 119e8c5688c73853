"""Gamma(concentration, rate): a positive target whose spread grows with its mean."""

from __future__ import annotations

import torch
from scipy import stats
from torch import Tensor

from softzoo.families.base import Family, Params, ParamSpec, scipy_call
from softzoo.families.registry import register_family

__all__ = ["GammaFamily"]


@register_family
class GammaFamily(Family):
    """y ~ Gamma(concentration α, rate β), mean α/β, variance α/β².

    CDF: ``torch.special.gammainc``; quantiles: scipy's ``gamma.ppf``; CRPS: closed form
    of Scheuerer & Möller (2015).
    """

    name = "gamma"
    params = (
        ParamSpec("concentration", True),
        ParamSpec("rate", True, units="rate", exposure="rate"),
    )
    support = "positive"
    target_scaling = "scale"
    mean_params = ("rate",)

    def nll(self, params: Params, y: Tensor) -> Tensor:
        alpha, rate = params
        return torch.lgamma(alpha) - alpha * torch.log(rate) - (alpha - 1) * torch.log(y) + rate * y

    def mean(self, params: Params) -> Tensor:
        alpha, rate = params
        return alpha / rate

    def variance(self, params: Params) -> Tensor:
        alpha, rate = params
        return alpha / rate**2

    def quantile(self, params: Params, q: float) -> Tensor:
        alpha, rate = params
        return scipy_call(lambda a: stats.gamma.ppf(q, a), alpha) / rate

    def cdf(self, params: Params, y: Tensor) -> Tensor:
        alpha, rate = params
        return torch.special.gammainc(alpha, rate * y)

    def crps(self, params: Params, y: Tensor) -> Tensor:
        alpha, rate = params
        f_alpha = torch.special.gammainc(alpha, rate * y)
        f_alpha1 = torch.special.gammainc(alpha + 1, rate * y)
        log_beta = torch.lgamma(torch.full_like(alpha, 0.5)) + torch.lgamma(alpha)
        log_beta = log_beta - torch.lgamma(alpha + 0.5)
        return (
            y * (2 * f_alpha - 1) - alpha / rate * (2 * f_alpha1 - 1) - torch.exp(-log_beta) / rate
        )

    def distribution(self, params: Params) -> torch.distributions.Gamma:
        return torch.distributions.Gamma(*params, validate_args=False)

    def initial_values(self, y: Tensor) -> dict[str, float]:
        mean = float(y.mean())
        var = float(y.var()) if y.numel() > 1 else mean**2
        return {"concentration": mean**2 / var, "rate": mean / var}
