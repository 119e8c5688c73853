"""Probabilistic metrics in the target's ORIGINAL units: torchmetrics classes (summable
states that sync under DDP) with functional twins. RMSE/MAE come from torchmetrics; with
row weights, from :class:`WeightedError`.

Example:
    >>> import torch
    >>> from softzoo.metrics import IntervalCoverage
    >>> m = IntervalCoverage("gaussian", level=0.9)
    >>> m.update((torch.zeros(4), torch.ones(4)), torch.tensor([0.0, 0.5, -1.0, 3.0]))
    >>> float(m.compute())
    0.75
"""

from softzoo.metrics.calibration import CalibrationError, calibration_error, pit_histogram
from softzoo.metrics.crps import CRPS, crps
from softzoo.metrics.interval import (
    IntervalCoverage,
    IntervalScore,
    IntervalWidth,
    interval_coverage,
    interval_score,
    interval_width,
)
from softzoo.metrics.nll import NegativeLogLikelihood, negative_log_likelihood
from softzoo.metrics.weighted import WeightedError

__all__ = [
    "CRPS",
    "CalibrationError",
    "IntervalCoverage",
    "IntervalScore",
    "IntervalWidth",
    "NegativeLogLikelihood",
    "WeightedError",
    "calibration_error",
    "crps",
    "interval_coverage",
    "interval_score",
    "interval_width",
    "negative_log_likelihood",
    "pit_histogram",
]
