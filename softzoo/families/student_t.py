"""Student-t with learned degrees of freedom df > 2, so that the variance exists."""

from __future__ import annotations

import math
from typing import Any

import torch
from scipy import stats
from torch import Tensor

from softzoo.families.base import Family, Params, ParamSpec, scipy_call
from softzoo.families.gaussian import beta_weighted, check_beta_nll
from softzoo.families.registry import register_family

__all__ = ["StudentTFamily"]

#: The df head starts here: heavy enough tails to be robust, close enough to Gaussian.
_INITIAL_DF = 10.0


@register_family
class StudentTFamily(Family):
    """y ~ loc + scale·T(df), scale > 0, df > 2.

    CDF and quantiles use scipy's ``t`` (torch has no incomplete beta function);
    CRPS is the closed form of Jordan, Krüger & Lerch (2019).

    Args:
        beta_nll: β of the β-NLL loss (Seitzer et al., 2022) in [0, 1]: each row's NLL
            weighted by stop-gradient(scale^(2β)) (the scale stands for σ, as the variance
            needs df > 2 and moves with df); 0 gives the plain NLL. Only the training loss
            changes.
    """

    name = "student_t"
    calibration_map = "scale"
    params = (
        ParamSpec("loc", units="location"),
        ParamSpec("scale", True, units="scale"),
        ParamSpec("df", True, lower=2.0),
    )
    support = "real"
    target_scaling = "affine"
    mean_params = ("loc",)
    loss_options = frozenset({"beta_nll"})

    def __init__(self, beta_nll: float = 0.0) -> None:
        self.beta_nll = check_beta_nll(beta_nll)

    def options(self) -> dict[str, Any]:
        return {"beta_nll": self.beta_nll}

    def loss(self, params: Params, y: Tensor) -> Tensor:
        return beta_weighted(self.nll(params, y), params[1], self.beta_nll)

    def nll(self, params: Params, y: Tensor) -> Tensor:
        loc, scale, df = params
        z = (y - loc) / scale
        return (
            torch.lgamma(df / 2)
            - torch.lgamma((df + 1) / 2)
            + 0.5 * torch.log(df * math.pi)
            + torch.log(scale)
            + (df + 1) / 2 * torch.log1p(z * z / df)
        )

    def mean(self, params: Params) -> Tensor:
        return params[0]

    def variance(self, params: Params) -> Tensor:
        _, scale, df = params
        return scale**2 * df / (df - 2)

    def quantile(self, params: Params, q: float) -> Tensor:
        loc, scale, df = params
        return loc + scale * scipy_call(lambda d: stats.t.ppf(q, d), df)

    def cdf(self, params: Params, y: Tensor) -> Tensor:
        loc, scale, df = params
        return scipy_call(stats.t.cdf, (y - loc) / scale, df)

    def crps(self, params: Params, y: Tensor) -> Tensor:
        loc, scale, df = params
        z = (y - loc) / scale
        big_f = scipy_call(stats.t.cdf, z, df)
        small_f = torch.exp(-self.nll((torch.zeros_like(z), torch.ones_like(z), df), z))
        log_beta_half = _log_beta(0.5, df - 0.5) - 2 * _log_beta(0.5, df / 2)
        constant = 2 * torch.sqrt(df) * torch.exp(log_beta_half) / (df - 1)
        return scale * (z * (2 * big_f - 1) + 2 * small_f * (df + z * z) / (df - 1) - constant)

    def distribution(self, params: Params) -> torch.distributions.StudentT:
        loc, scale, df = params
        return torch.distributions.StudentT(df, loc, scale, validate_args=False)

    def initial_values(self, y: Tensor) -> dict[str, float]:
        std = float(y.std()) if y.numel() > 1 else 1.0
        scale = std * math.sqrt((_INITIAL_DF - 2) / _INITIAL_DF)
        return {"loc": float(y.mean()), "scale": scale, "df": _INITIAL_DF}


def _log_beta(a: float | Tensor, b: Tensor) -> Tensor:
    a = torch.as_tensor(a, dtype=b.dtype, device=b.device)
    return torch.lgamma(a) + torch.lgamma(b) - torch.lgamma(a + b)
