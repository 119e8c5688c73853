"""Point regression of a positive target y > 0, with a choice of loss."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from softzoo.families.base import Family, Params, ParamSpec
from softzoo.families.registry import register_family

__all__ = ["PositiveFamily"]

LOSSES = ("mse", "poisson", "gamma", "tweedie", "msle")


def _unit_deviance(loss: str, power: float, mean: Tensor, y: Tensor) -> Tensor:
    if loss == "mse":
        return (y - mean) ** 2
    if loss == "msle":
        return (torch.log1p(y) - torch.log1p(mean)) ** 2
    if loss == "poisson":
        return 2 * (torch.xlogy(y, y / mean) - (y - mean))
    if loss == "gamma":
        return 2 * (torch.log(mean / y) + y / mean - 1)
    one, two = 1 - power, 2 - power
    return 2 * (y**two / (one * two) - y * mean**one / one + mean**two / two)


@register_family
class PositiveFamily(Family):
    """A positive point prediction ``mean`` > 0 trained with one of the losses
    "mse", "msle", or the unit deviances of "poisson", "gamma" and "tweedie" (power p in
    (1, 2)). A point predictor has no likelihood and no intervals: use gamma, lognormal
    or negative_binomial for those. Its CRPS is the absolute error (a point forecast is
    a degenerate distribution).
    """

    name = "positive"
    params = (ParamSpec("mean", True, units="scale"),)
    support = "positive"
    target_scaling = "scale"
    mean_params = ("mean",)
    probabilistic = False
    loss_options = frozenset({"loss", "power"})

    def __init__(self, loss: str = "mse", power: float = 1.5) -> None:
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r} for family 'positive'; valid: {LOSSES}")
        if loss == "tweedie" and not 1.0 < power < 2.0:
            raise ValueError(f"tweedie power must lie in (1, 2), got {power!r}")
        self.loss_name, self.power = loss, float(power)

    def options(self) -> dict[str, Any]:
        return {"loss": self.loss_name, "power": self.power}

    def loss(self, params: Params, y: Tensor) -> Tensor:
        return _unit_deviance(self.loss_name, self.power, params[0], y)

    def nll(self, params: Params, y: Tensor) -> Tensor:
        raise ValueError(_NO_DISTRIBUTION)

    def mean(self, params: Params) -> Tensor:
        return params[0]

    def variance(self, params: Params) -> Tensor:
        raise ValueError(_NO_DISTRIBUTION)

    def quantile(self, params: Params, q: float) -> Tensor:
        raise ValueError(_NO_DISTRIBUTION)

    def cdf(self, params: Params, y: Tensor) -> Tensor:
        raise ValueError(_NO_DISTRIBUTION)

    def crps(self, params: Params, y: Tensor) -> Tensor:
        return (y - params[0]).abs()

    def initial_values(self, y: Tensor) -> dict[str, float]:
        return {"mean": float(y.mean())}


_NO_DISTRIBUTION = (
    "family 'positive' is a point predictor: it has no likelihood, variance or "
    "quantiles; choose gamma, lognormal, poisson or negative_binomial for those"
)
