"""Log-normal: log y ~ Normal(loc, scale); y > 0."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from softzoo.families.base import Family, Params, ParamSpec
from softzoo.families.gaussian import gaussian_nll, normal_cdf, normal_icdf
from softzoo.families.registry import register_family

__all__ = ["LogNormalFamily"]


@register_family
class LogNormalFamily(Family):
    """log y ~ Normal(loc, scale): a positive target with multiplicative noise.

    The target is scaled by its geometric mean, which shifts loc by log(scale) and
    leaves scale unchanged. CRPS: closed form of Baran & Lerch (2015).
    """

    name = "lognormal"
    calibration_map = "log_scale"
    params = (
        ParamSpec("loc", units="log_location", exposure="log_location"),
        ParamSpec("scale", True),
    )
    support = "positive"
    target_scaling = "scale"
    mean_params = ("loc",)
    closed_form_interval = True

    def nll(self, params: Params, y: Tensor) -> Tensor:
        loc, scale = params
        log_y = torch.log(y)
        return log_y + gaussian_nll(loc, scale, log_y)

    def mean(self, params: Params) -> Tensor:
        loc, scale = params
        return torch.exp(loc + 0.5 * scale**2)

    def variance(self, params: Params) -> Tensor:
        loc, scale = params
        return torch.expm1(scale**2) * torch.exp(2 * loc + scale**2)

    def quantile(self, params: Params, q: float) -> Tensor:
        loc, scale = params
        return torch.exp(loc + scale * normal_icdf(q, loc))

    def cdf(self, params: Params, y: Tensor) -> Tensor:
        loc, scale = params
        return normal_cdf((torch.log(y) - loc) / scale)

    def crps(self, params: Params, y: Tensor) -> Tensor:
        loc, scale = params
        z = (torch.log(y) - loc) / scale
        half = torch.as_tensor(1 / math.sqrt(2.0), dtype=scale.dtype, device=scale.device)
        return y * (2 * normal_cdf(z) - 1) - 2 * torch.exp(loc + scale**2 / 2) * (
            normal_cdf(z - scale) + normal_cdf(scale * half) - 1
        )

    def distribution(self, params: Params) -> torch.distributions.LogNormal:
        return torch.distributions.LogNormal(*params, validate_args=False)

    def fit_target_scaling(self, y: Tensor) -> tuple[float, float]:
        geometric_mean = math.exp(float(torch.log(torch.as_tensor(y, dtype=torch.float64)).mean()))
        return 0.0, geometric_mean

    def initial_values(self, y: Tensor) -> dict[str, float]:
        log_y = torch.log(y)
        return {"loc": float(log_y.mean()), "scale": float(log_y.std()) if y.numel() > 1 else 1.0}
