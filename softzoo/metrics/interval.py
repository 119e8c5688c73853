"""Central prediction intervals: coverage (PICP), mean width, interval (Winkler) score."""

from __future__ import annotations

from functools import partial
from typing import Any

from torch import Tensor

from softzoo.families import Family, Params
from softzoo.metrics._base import MeanScoreMetric, Score, mean_score

__all__ = [
    "IntervalCoverage",
    "IntervalScore",
    "IntervalWidth",
    "interval_coverage",
    "interval_score",
    "interval_width",
]


def _covered(family: Family, params: Params, target: Tensor, level: float) -> Tensor:
    lower, upper = family.interval(params, level)
    return ((target >= lower) & (target <= upper)).double()


def _width(family: Family, params: Params, target: Tensor, level: float) -> Tensor:
    lower, upper = family.interval(params, level)
    return (upper - lower).expand_as(target)


def _winkler(family: Family, params: Params, target: Tensor, level: float) -> Tensor:
    lower, upper = family.interval(params, level)
    alpha = 1.0 - level
    below = (lower - target).clamp_min(0)
    above = (target - upper).clamp_min(0)
    return (upper - lower) + (2.0 / alpha) * (below + above)


def interval_coverage(
    family: str | Family, params: Params, target: Tensor, level: float = 0.9
) -> Tensor:
    """Fraction of targets inside the central ``level`` interval (PICP)."""
    return mean_score(partial(_covered, level=level), family, params, target)


def interval_width(
    family: str | Family, params: Params, target: Tensor, level: float = 0.9
) -> Tensor:
    """Mean width of the central ``level`` interval, in the target's units."""
    return mean_score(partial(_width, level=level), family, params, target)


def interval_score(
    family: str | Family, params: Params, target: Tensor, level: float = 0.9
) -> Tensor:
    """Mean interval score of Gneiting & Raftery (2007): width + (2/α)·miss distance."""
    return mean_score(partial(_winkler, level=level), family, params, target)


class _LevelMetric(MeanScoreMetric):
    _score_at_level: Score

    def __init__(self, family: str | Family, level: float = 0.9, **kwargs: Any) -> None:
        if not 0.0 < level < 1.0:
            raise ValueError(f"interval level must lie in (0, 1), got {level!r}")
        super().__init__(family, **kwargs)
        self.level = float(level)

    def values(self, params: Params, target: Tensor) -> Tensor:
        return type(self)._score_at_level(self.family, tuple(params), target, self.level)


class IntervalCoverage(_LevelMetric):
    """PICP at one level. Example: ``IntervalCoverage("gaussian", level=0.9)``."""

    higher_is_better = None
    _score_at_level = staticmethod(_covered)


class IntervalWidth(_LevelMetric):
    """Mean interval width at one level."""

    higher_is_better = False
    _score_at_level = staticmethod(_width)


class IntervalScore(_LevelMetric):
    """Mean interval (Winkler) score at one level."""

    higher_is_better = False
    _score_at_level = staticmethod(_winkler)
