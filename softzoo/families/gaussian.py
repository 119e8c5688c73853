"""Gaussian N(loc, scale²): the full NLL (with ½·log 2π), optional β-NLL training loss."""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

import torch
from torch import Tensor

from softzoo.families.base import Family, Params, ParamSpec
from softzoo.families.registry import register_family

__all__ = ["GaussianFamily", "beta_weighted", "check_beta_nll", "normal_cdf", "normal_icdf"]

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def normal_cdf(z: Tensor) -> Tensor:
    return 0.5 * torch.special.erfc(-z / math.sqrt(2.0))


def normal_icdf(q: float | Tensor, like: Tensor) -> float | Tensor:
    """The standard normal q-quantile: a Python float for a float ``q`` (so that a graph
    that uses it holds a constant, e.g. the interval ends of an ONNX export)."""
    if isinstance(q, float):
        return NormalDist().inv_cdf(q)
    q = torch.as_tensor(q, dtype=like.dtype, device=like.device)
    return math.sqrt(2.0) * torch.special.erfinv(2.0 * q - 1.0)


def check_beta_nll(beta: float) -> float:
    if not 0.0 <= beta <= 1.0:
        raise ValueError(
            f"beta_nll must lie in [0, 1] (0: the plain NLL; 0.5 the usual choice), got {beta!r}"
        )
    return float(beta)


def beta_weighted(nll: Tensor, scale: Tensor, beta: float) -> Tensor:
    """β-NLL (Seitzer et al., 2022): each row's NLL times stop-gradient(scale^(2β)), so
    that rows the model deems noisy do not drown the mean's gradient; β = 0: the NLL."""
    return nll if beta == 0.0 else nll * scale.detach().pow(2.0 * beta)


def gaussian_nll(loc: Tensor, scale: Tensor, y: Tensor) -> Tensor:
    z = (y - loc) / scale
    return _HALF_LOG_2PI + torch.log(scale) + 0.5 * z * z


@register_family
class GaussianFamily(Family):
    """y ~ Normal(loc, scale), scale > 0.

    Args:
        beta_nll: β of the β-NLL loss (Seitzer et al., 2022), in [0, 1]; 0 gives the
            plain NLL, 0.5 is the paper's recommendation. Only the training loss
            changes; ``nll`` stays the true NLL.
    """

    name = "gaussian"
    calibration_map = "scale"
    params = (ParamSpec("loc", units="location"), ParamSpec("scale", True, units="scale"))
    support = "real"
    target_scaling = "affine"
    mean_params = ("loc",)
    loss_options = frozenset({"beta_nll"})
    closed_form_interval = True

    def __init__(self, beta_nll: float = 0.0) -> None:
        self.beta_nll = check_beta_nll(beta_nll)

    def options(self) -> dict[str, Any]:
        return {"beta_nll": self.beta_nll}

    def nll(self, params: Params, y: Tensor) -> Tensor:
        loc, scale = params
        return gaussian_nll(loc, scale, y)

    def loss(self, params: Params, y: Tensor) -> Tensor:
        return beta_weighted(self.nll(params, y), params[1], self.beta_nll)

    def mean(self, params: Params) -> Tensor:
        return params[0]

    def variance(self, params: Params) -> Tensor:
        return params[1] ** 2

    def quantile(self, params: Params, q: float) -> Tensor:
        loc, scale = params
        return loc + scale * normal_icdf(q, loc)

    def cdf(self, params: Params, y: Tensor) -> Tensor:
        loc, scale = params
        return normal_cdf((y - loc) / scale)

    def crps(self, params: Params, y: Tensor) -> Tensor:
        loc, scale = params
        z = (y - loc) / scale
        pdf = torch.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
        return scale * (z * (2 * normal_cdf(z) - 1) + 2 * pdf - 1 / math.sqrt(math.pi))

    def distribution(self, params: Params) -> torch.distributions.Normal:
        return torch.distributions.Normal(*params, validate_args=False)

    def initial_values(self, y: Tensor) -> dict[str, float]:
        return {"loc": float(y.mean()), "scale": float(y.std()) if y.numel() > 1 else 1.0}
