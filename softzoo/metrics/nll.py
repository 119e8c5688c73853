"""Negative log-likelihood of the predictive distribution, in the target's units."""

from __future__ import annotations

from torch import Tensor

from softzoo.families import Family, Params
from softzoo.metrics._base import MeanScoreMetric, mean_score

__all__ = ["NegativeLogLikelihood", "negative_log_likelihood"]


def _nll(family: Family, params: Params, target: Tensor) -> Tensor:
    return family.nll(params, target)


def negative_log_likelihood(family: str | Family, params: Params, target: Tensor) -> Tensor:
    """Mean NLL of ``target`` under the family's distribution with ``params``.

    Example:
        >>> import torch
        >>> z = torch.zeros(3); one = torch.ones(3)
        >>> round(float(negative_log_likelihood("gaussian", (z, one), z)), 5)  # ½·log 2π
        0.91894
    """
    return mean_score(_nll, family, params, target)


class NegativeLogLikelihood(MeanScoreMetric):
    """Mean NLL over all updates. Example: ``NegativeLogLikelihood("gaussian")``."""

    higher_is_better = False
    score = staticmethod(_nll)
