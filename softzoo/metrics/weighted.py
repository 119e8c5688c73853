"""The point-forecast errors of a weighted table: RMSE and MAE as weighted means."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

__all__ = ["WeightedError"]


class WeightedError(Metric):
    """(Σ wᵢ·|ŷᵢ − yᵢ|ᵏ / Σ wᵢ)^(1/k): the weighted RMSE (``squared=True``, k = 2) or MAE
    (k = 1); without weights, torchmetrics' RMSE and MAE. A weight of 2 counts as the row
    twice. States are summable, so the metric syncs under DDP.

    Example:
        >>> m = WeightedError(squared=True)
        >>> m.update(torch.tensor([1.0, 3.0]), torch.tensor([0.0, 0.0]), torch.tensor([3.0, 1.0]))
        >>> round(float(m.compute()) ** 2, 4)  # (3·1 + 1·9) / 4
        3.0
    """

    is_differentiable = False
    full_state_update = False

    def __init__(self, squared: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.squared = squared
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("weight", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, prediction: Tensor, target: Tensor, weight: Tensor | None = None) -> None:
        error = (prediction.double() - target.double()).abs()
        error = error**2 if self.squared else error
        weight = torch.ones_like(error) if weight is None else weight.double()
        self.total += (weight * error).sum()
        self.weight += weight.sum()

    def compute(self) -> Tensor:
        mean = self.total / self.weight
        return (mean.sqrt() if self.squared else mean).float()
