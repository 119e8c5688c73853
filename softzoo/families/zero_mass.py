"""A point mass at zero beside another family: the hurdle (two-part) and zero-inflated
families.

Both are the mixture ``w·δ₀ + (1 − w)·G`` of a point mass at 0 (weight ``w =
sigmoid(logit)``, the first parameter) and a base family G:

- hurdle (``hurdle_lognormal``, ``hurdle_gamma``): G is positive, so ``w`` is P(y = 0)
  itself and G is the law of the positive values (the two-part model of Duan et al., 1983:
  whether there is any spending, and how much where there is);
- zero-inflated (``zero_inflated_poisson``, ``zero_inflated_negative_binomial``): G is a
  count family with zeros of its own, so P(y = 0) = w + (1 − w)·G(0): structural zeros
  on top of the sampling zeros.

Everything follows from G's own NLL, mean, variance, CDF, quantiles and CRPS; the CRPS
is exact: E|X − y| − ½E|X − X'| with ``D = E|Z − Z'| = 2(E Z − CRPS_G(0))`` for Z ~ G ≥ 0.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from softzoo.families.base import Family, Params, ParamSpec
from softzoo.families.gamma import GammaFamily
from softzoo.families.lognormal import LogNormalFamily
from softzoo.families.negative_binomial import NegativeBinomialFamily
from softzoo.families.poisson import PoissonFamily
from softzoo.families.registry import register_family

__all__ = [
    "HurdleGammaFamily",
    "HurdleLogNormalFamily",
    "ZeroInflatedNegativeBinomialFamily",
    "ZeroInflatedPoissonFamily",
]

#: The share of zeros an initial fit may take: logit(0) or logit(1) would be infinite.
_SHARE_BOUNDS = (1e-3, 1.0 - 1e-3)


def _log_weights(logit: Tensor) -> tuple[Tensor, Tensor]:
    """(log w, log(1 − w)) for w = sigmoid(logit), as −softplus: exported through softzoo's
    exact softplus lowering (onnxruntime's Sigmoid and a log of it lose the tails)."""
    return -F.softplus(-logit), -F.softplus(logit)


class _ZeroMassFamily(Family):
    """``w·δ₀ + (1 − w)·G``; subclasses name the base family G and the logit parameter."""

    base: ClassVar[Family]
    zero_mass = True

    def _weights(self, logit: Tensor) -> tuple[Tensor, Tensor]:
        log_w, log_rest = _log_weights(logit)
        return torch.exp(log_w), torch.exp(log_rest)

    def _split(self, params: Params) -> tuple[Tensor, Params]:
        return params[0], tuple(params[1:])

    def _log_base_zero(self, base_params: Params) -> Tensor | None:
        """log G(0) (a few exported ops, no lgamma): None for a positive G."""
        return self.base.log_prob_zero(base_params) if self.base.discrete else None

    def nll(self, params: Params, y: Tensor) -> Tensor:
        logit, base_params = self._split(params)
        zero = y == 0
        log_w, log_rest = _log_weights(logit)
        # the base's NLL is evaluated at 1 in place of 0 where G has no mass at 0, so that
        # the branch torch.where drops has a finite gradient
        inside = y if self.base.discrete else torch.where(zero, torch.ones_like(y), y)
        positive = log_rest - self.base.nll(base_params, inside)
        log_base_zero = self._log_base_zero(base_params)
        at_zero = (
            log_w if log_base_zero is None else torch.logaddexp(log_w, log_rest + log_base_zero)
        )
        return -torch.where(zero, at_zero, positive)

    def prob_zero(self, params: Params) -> Tensor:
        logit, base_params = self._split(params)
        w, _ = self._weights(logit)
        log_base_zero = self._log_base_zero(base_params)
        return w if log_base_zero is None else w + (1 - w) * torch.exp(log_base_zero)

    def mean(self, params: Params) -> Tensor:
        # in logs: (1 − w)·E Z is 0·inf = NaN where w rounds to 1 and E Z overflows
        logit, base_params = self._split(params)
        return torch.exp(_log_weights(logit)[1] + torch.log(self.base.mean(base_params)))

    def variance(self, params: Params) -> Tensor:
        logit, base_params = self._split(params)
        w, rest = self._weights(logit)
        mean = self.base.mean(base_params)
        return rest * self.base.variance(base_params) + w * rest * mean**2

    def cdf(self, params: Params, y: Tensor) -> Tensor:
        logit, base_params = self._split(params)
        w, _ = self._weights(logit)
        inside = self.base.cdf(base_params, y.clamp_min(0))
        return torch.where(y < 0, torch.zeros_like(inside), w + (1 - w) * inside)

    def quantile(self, params: Params, q: float | np.ndarray) -> Tensor:
        """0 where P(y = 0) >= q, else G's quantile at (q − w)/(1 − w)."""
        logit, base_params = self._split(params)
        w = torch.sigmoid(logit.double())
        level = torch.as_tensor(q, dtype=torch.float64, device=logit.device)
        inner = ((level - w) / (1 - w)).clamp(0.0, 1.0 - 1e-16)
        inside = torch.as_tensor(self.base.quantile(base_params, inner.cpu().numpy()))
        inside = inside.to(device=logit.device, dtype=logit.dtype)
        zero = level <= self.prob_zero(params).double()
        return torch.where(zero, torch.zeros_like(inside), inside)

    def grid_points(self, params: Params, levels: np.ndarray) -> Tensor:
        """0 and G's quantiles: the point mass, then the positive values' own spread."""
        points = torch.as_tensor(self.base.grid_points(self._split(params)[1], levels)).clone()
        points[..., 0] = 0.0
        return points

    def crps(self, params: Params, y: Tensor) -> Tensor:
        logit, base_params = self._split(params)
        w, rest = self._weights(logit)
        mean = self.base.mean(base_params)
        spread = 2 * (mean - self.base.crps(base_params, torch.zeros_like(y)))  # E|Z − Z'|
        at_y = self.base.crps(base_params, y)
        return w * y + rest * (at_y + spread / 2) - w * rest * mean - rest**2 * spread / 2

    def distribution(self, params: Params) -> torch.distributions.Distribution:
        raise NotImplementedError(f"family {self.name!r} has no torch.distributions twin")

    def sample(self, params: Params, n: int) -> Tensor:
        logit, base_params = self._split(params)
        inside = self.base.sample(base_params, n)
        zero = torch.rand(inside.shape, dtype=torch.float64) < torch.sigmoid(logit.double())
        return torch.where(zero.to(inside.device), torch.zeros_like(inside), inside)

    def fit_target_scaling(self, y: Tensor) -> tuple[float, float]:
        return self.base.fit_target_scaling(self._positive_part(y))

    def initial_values(self, y: Tensor) -> dict[str, float]:
        """The base's marginal fit (of the positive values, for a hurdle) and the share of
        zeros: P(y = 0) for a hurdle; half of it for a zero-inflated family, whose marginal
        fit cannot tell its structural zeros from the base's own."""
        share = float((y == 0).double().mean())
        if self.base.discrete:
            values, share = self.base.initial_values(y), share / 2
        else:
            values = self.base.initial_values(self._positive_part(y))
        share = min(max(share, _SHARE_BOUNDS[0]), _SHARE_BOUNDS[1])
        return {self.params[0].name: math.log(share / (1 - share)), **values}

    def _positive_part(self, y: Tensor) -> Tensor:
        positive = y[y > 0]
        if not len(positive):
            raise ValueError(
                f"family {self.name!r} models the positive values with "
                f"{self.base.name!r}, but the training target has no value > 0; check the "
                "target column (a target that is always 0 needs no model)"
            )
        return positive


@register_family
class HurdleLogNormalFamily(_ZeroMassFamily):
    """y = 0 with probability sigmoid(zero_logit), else log y ~ Normal(loc, scale).

    The two-part model of medical spending: ``zero_logit`` is the logit of P(y = 0), and
    (loc, scale) the log-normal of the positive values.
    """

    name = "hurdle_lognormal"
    base = LogNormalFamily()
    params = (ParamSpec("zero_logit"), *LogNormalFamily.params)
    support = "nonnegative"
    target_scaling = "scale"
    mean_params = ("zero_logit", "loc")


@register_family
class HurdleGammaFamily(_ZeroMassFamily):
    """y = 0 with probability sigmoid(zero_logit), else y ~ Gamma(concentration, rate)."""

    name = "hurdle_gamma"
    base = GammaFamily()
    params = (ParamSpec("zero_logit"), *GammaFamily.params)
    support = "nonnegative"
    target_scaling = "scale"
    mean_params = ("zero_logit", "rate")


@register_family
class ZeroInflatedPoissonFamily(_ZeroMassFamily):
    """y = 0 (a structural zero) with probability sigmoid(inflation_logit), else
    y ~ Poisson(rate): P(y = 0) = w + (1 − w)·e^(−rate)."""

    name = "zero_inflated_poisson"
    base = PoissonFamily()
    params = (ParamSpec("inflation_logit"), *PoissonFamily.params)
    support = "count"
    target_scaling = "none"
    mean_params = ("inflation_logit", "rate")


@register_family
class ZeroInflatedNegativeBinomialFamily(_ZeroMassFamily):
    """y = 0 (a structural zero) with probability sigmoid(inflation_logit), else
    y ~ NB(mean, concentration)."""

    name = "zero_inflated_negative_binomial"
    base = NegativeBinomialFamily()
    params = (ParamSpec("inflation_logit"), *NegativeBinomialFamily.params)
    support = "count"
    target_scaling = "none"
    mean_params = ("inflation_logit", "mean")
