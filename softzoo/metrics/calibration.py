"""Calibration from the probability integral transform (PIT).

For a calibrated forecast, PIT = F(y) is uniform on [0, 1]. Counts use the
non-randomised PIT of Czado, Gneiting & Held (2009): each observation spreads its mass
uniformly over [F(y−1), F(y)], so the histogram is deterministic and its state summable.
The calibration error is the total-variation distance of the PIT histogram from the
uniform one: ½ Σ_b |h_b − 1/B|, in [0, 1); 0 is perfect.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from softzoo.families import Family, Params, get_family

__all__ = ["CalibrationError", "calibration_error", "pit_histogram"]


def _pit_mass(family: Family, params: Params, target: Tensor, bins: int) -> Tensor:
    """Per-bin PIT mass summed over the batch, shape (bins,)."""
    lower, upper = (t.reshape(-1, 1).double() for t in family.pit_bounds(params, target))
    edges = torch.linspace(0.0, 1.0, bins + 1, dtype=torch.float64, device=lower.device)[1:]
    spread = upper - lower
    point = (edges >= upper).double()
    ramp = ((edges - lower) / spread.clamp_min(1e-300)).clamp(0.0, 1.0)
    below_edge = torch.where(spread > 0, ramp, point)
    below_edge[:, -1] = 1.0
    return torch.diff(below_edge, dim=1, prepend=torch.zeros_like(below_edge[:, :1])).sum(0)


def pit_histogram(family: str | Family, params: Params, target: Tensor, bins: int = 10) -> Tensor:
    """The PIT histogram as fractions summing to 1, shape (bins,)."""
    mass = _pit_mass(get_family(family), tuple(params), target, bins)
    return mass / mass.sum()


def _total_variation(histogram: Tensor) -> Tensor:
    return 0.5 * (histogram - 1.0 / histogram.numel()).abs().sum()


def calibration_error(
    family: str | Family, params: Params, target: Tensor, bins: int = 10
) -> Tensor:
    """½ Σ |PIT histogram − uniform|.

    Example:
        >>> import torch
        >>> y = torch.linspace(-3, 3, 1001)
        >>> float(calibration_error("gaussian", (torch.zeros(1), torch.ones(1)), y)) > 0.1
        True
    """
    return _total_variation(pit_histogram(family, params, target, bins)).float()


class CalibrationError(Metric):
    """PIT-histogram calibration error over all updates; ``histogram()`` gives the bins."""

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, family: str | Family, bins: int = 10, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if bins < 2:
            raise ValueError(f"bins must be >= 2, got {bins}")
        self.family, self.bins = get_family(family), int(bins)
        self.add_state("mass", torch.zeros(self.bins, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, params: Params, target: Tensor) -> None:
        self.mass += _pit_mass(self.family, tuple(params), target, self.bins)

    def histogram(self) -> Tensor:
        return self.mass / self.mass.sum()

    def compute(self) -> Tensor:
        return _total_variation(self.histogram()).float()
