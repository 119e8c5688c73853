"""Continuous ranked probability score, in the target's units (lower is better).

Closed forms: Gaussian, Student-t, log-normal, gamma, Poisson; negative binomial sums
the discrete CDF exactly; for the point family ``positive`` CRPS is the absolute error.
"""

from __future__ import annotations

from torch import Tensor

from softzoo.families import Family, Params
from softzoo.metrics._base import MeanScoreMetric, mean_score

__all__ = ["CRPS", "crps"]


def _crps(family: Family, params: Params, target: Tensor) -> Tensor:
    return family.crps(params, target)


def crps(family: str | Family, params: Params, target: Tensor) -> Tensor:
    """Mean CRPS.

    Example:
        >>> import torch
        >>> round(float(crps("gaussian", (torch.zeros(1), torch.ones(1)), torch.zeros(1))), 6)
        0.233695
    """
    return mean_score(_crps, family, params, target)


class CRPS(MeanScoreMetric):
    """Mean CRPS over all updates. Example: ``CRPS("gamma")``."""

    higher_is_better = False
    score = staticmethod(_crps)
