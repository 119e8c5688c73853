"""Split-conformal calibration of a model's central interval (docs/calibration.md).

The map is one number, held by the model in a buffer so that checkpoints, weights and
exports carry it: a factor on the scale parameter (``"scale"``: one Gaussian, Student-t or
log-normal model, by their :attr:`~softzoo.families.Family.calibration_map`) or the
central level whose interval reaches the nominal coverage (``"level"``: every other family
and every ensemble). :func:`fit_map` fits it from held-out rows, :func:`apply_map` applies
a scale map to the parameters.

Example:
    >>> import torch
    >>> from softzoo.families import get_family
    >>> gaussian = get_family("gaussian")
    >>> method("conformal", gaussian)
    'scale'
    >>> params = (torch.zeros(9), torch.ones(9))
    >>> factor = fit_map("scale", gaussian, params, torch.linspace(-2, 2, 9), 0.5)
    >>> round(factor, 3)
    1.483
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor

from softzoo.families import Family, Mixture, Params

__all__ = ["CALIBRATIONS", "MAX_LEVEL", "apply_map", "fit_map", "method"]

#: "none", or "conformal" (split-conformal on the validation split; docs/calibration.md).
CALIBRATIONS = ("none", "conformal")
#: The largest calibrated level (a level of 1 would be an unbounded interval).
MAX_LEVEL = 1.0 - 1e-6


def method(calibration: str, family: Family) -> str | None:
    """None (no calibration), "scale" or "level" (see the module's docstring)."""
    if calibration == "none":
        return None
    scale_map = family.calibration_map != "level" and not isinstance(family, Mixture)
    return "scale" if scale_map else "level"


def _rank(n: int, level: float) -> int:
    """k = ⌈(n + 1)·L⌉: the conformity score that becomes the map; one clear error where
    n rows are too few for the guarantee at ``level``."""
    k = math.ceil((n + 1) * level)
    if k > n:
        needed = next(m for m in itertools.count(1) if math.ceil((m + 1) * level) <= m)
        raise ValueError(
            f"conformal calibration at level {level:g} needs at least {needed} validation "
            f"rows, the validation split has {n}"
        )
    return k


@torch.no_grad()
def fit_map(how: str, family: Family, params: Params, y: Tensor, level: float) -> float:
    """The map that makes the central ``level`` interval of ``params`` (uncalibrated, in
    original units) cover held-out ``y`` with a split-conformal guarantee: the k-th smallest
    conformity score, k = ⌈(n + 1)·L⌉. Scores: |y − centre| / half-width of the raw
    L-interval ("scale", on log y where the family's map is "log_scale"), or |2·U − 1| with
    U the PIT (randomised between F(y−1) and F(y) for counts) ("level")."""
    k = _rank(len(y), level)
    if how == "scale":
        lower, upper = family.interval(params, level)
        if family.calibration_map == "log_scale":
            lower, upper, y = torch.log(lower), torch.log(upper), torch.log(y)
        scores = (y - (lower + upper) / 2).abs() / ((upper - lower) / 2)
        return float(torch.sort(scores.double()).values[k - 1])
    below, above = family.pit_bounds(params, y)
    generator = torch.Generator().manual_seed(0)
    u = below + (above - below) * torch.rand(len(y), generator=generator).to(y)
    scores = torch.sort((2 * u - 1).abs().double()).values
    return min(float(scores[k - 1]), MAX_LEVEL)


def apply_map(family: Family, params: Params, factor: Tensor) -> Params:
    """``params`` with the scale parameter multiplied by a scale map's ``factor``."""
    i = family.param_names.index("scale")
    return tuple(p * factor if k == i else p for k, p in enumerate(params))
