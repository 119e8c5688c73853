"""Shared machinery: a Metric that averages a per-element score of a family's forecast."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from softzoo.families import Family, Params, get_family

Score = Callable[[Family, Params, Tensor], Tensor]


def mean_score(score: Score, family: str | Family, params: Params, target: Tensor) -> Tensor:
    """The mean of ``score`` over all elements (the functional form of every metric)."""
    return score(get_family(family), tuple(params), target).mean()


class MeanScoreMetric(Metric):
    """Sums a per-element score and counts elements (or sums their weights); ``compute``
    divides.

    States are summable (``dist_reduce_fx="sum"``), so the metric syncs under DDP.
    Subclasses set ``score``.
    """

    is_differentiable = False
    full_state_update = False
    score: Score

    def __init__(self, family: str | Family, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.family = get_family(family)
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def values(self, params: Params, target: Tensor) -> Tensor:
        """The per-element scores of one batch."""
        return type(self).score(self.family, tuple(params), target)

    def update(self, params: Params, target: Tensor, weight: Tensor | None = None) -> None:
        """Add a batch's scores; with ``weight`` (one per row), a weighted mean."""
        values = self.values(params, target).detach().double()
        if weight is None:
            self.total += values.sum()
            self.count += values.numel()
            return
        self.total += (values * weight.double()).sum()
        self.count += weight.double().sum()

    def compute(self) -> Tensor:
        return (self.total / self.count).float()
