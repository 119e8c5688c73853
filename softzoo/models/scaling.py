"""What the model fits on the training target before training: the family's marginal fit
(where every head starts, and where warm-up and faithful training hold the parameters that
do not carry the mean) and the rounding step of a target recorded on a coarse grid
(dequantization). Feature scaling is :class:`softzoo.nn.TabularInput`'s.

Example:
    >>> import torch
    >>> from softzoo.families import get_family
    >>> dequantization_step(get_family("gaussian"), "auto", torch.tensor([1.0, 2.0] * 8))
    1.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor

from softzoo.families import Family

__all__ = ["DEQUANTIZE", "TargetFit", "dequantization_step", "fit_target", "initial_values"]

#: When training targets are dequantized (see ``SoftRegressor``'s ``dequantize``).
DEQUANTIZE = ("auto", "always", "never")


@dataclass(frozen=True)
class TargetFit:
    """What the model takes from its training target: the target's scaling (``shift``,
    ``scale``), each head's start (``initial``, scaled units) and the rounding step to
    dequantize by (``resolution``, scaled units; 0: none)."""

    shift: float
    scale: float
    initial: dict[str, float]
    resolution: float


def fit_target(family: Family, y: Tensor, floor: float, name: str, dequantize: str) -> TargetFit:
    """The :class:`TargetFit` of the training target ``y`` (named ``name``, for messages)."""
    y64 = y.double()
    shift, scale = family.fit_target_scaling(y64)
    initial = initial_values(family, (y64 - shift) / scale, y64, floor, name)
    step = dequantization_step(family, dequantize, y64)
    return TargetFit(float(shift), float(scale), initial, step / float(scale))


def dequantization_step(family: Family, mode: str, y: Tensor) -> float:
    """The rounding step of a training target recorded on a coarse grid (the smallest
    gap between its distinct values), or 0 where it is not dequantised: ``never``; a
    discrete or point family; under ``auto``, a target with more than sqrt(rows)
    distinct values (then every value has few rows, and no region of inputs can pin
    sigma to one value). Under ``always`` every continuous target is. A family with a
    point mass at 0 never is: its zeros are exact, and noise would move them below 0."""
    if mode == "never" or family.discrete or not family.probabilistic or family.zero_mass:
        return 0.0
    values = torch.unique(y)
    if len(values) < 2 or (mode == "auto" and len(values) > math.sqrt(len(y))):
        return 0.0
    step = float(torch.diff(values).min())
    if family.support == "positive" and float(values[0]) - step / 2 <= 0:
        if mode == "always":
            raise ValueError(
                f"dequantize='always' would spread the smallest training target "
                f"{float(values[0]):g} over +-{step / 2:g} (its rounding step {step:g}) down "
                f"to 0 or below, where family {family.name!r} has no density: use "
                "dequantize='never', or a family on the real line"
            )
        return 0.0
    rank_zero_info(
        f"dequantizing the training target: {len(values)} distinct values in {len(y)} "
        f"rows, rounding step {step:g} (each training step adds uniform noise of that "
        "width to the targets; --model.dequantize never turns it off)"
    )
    return step


def initial_values(
    family: Family, scaled: Tensor, y: Tensor, floor: float, target_name: str
) -> dict[str, float]:
    """The family's marginal fit of the ``scaled`` training target, or one clear error
    where a positive parameter cannot start above its ``floor``: a constant target has no
    spread to fit (``y``: the target in original units, for the message)."""
    try:
        values = family.initial_values(scaled)
    except ZeroDivisionError:
        values = {}
    for spec in family.params:
        value = values.get(spec.name, math.nan)
        if spec.positive and not (math.isfinite(value) and value > spec.lower + floor):
            raise ValueError(_flat_target_message(family, spec.name, value, y, floor, target_name))
    return values


def _flat_target_message(
    family: Family, param: str, value: float, y: Tensor, floor: float, name: str
) -> str:
    low, high = float(y.min()), float(y.max())
    if low == high:
        return (
            f"the training target {name!r} is constant (every row is {low:g}): family "
            f"{family.name!r} cannot fit a spread to it (its {param!r} has nothing to start "
            "from); check the target column, or use family 'positive' for a point prediction"
        )
    return (
        f"the training target {name!r} varies too little for family {family.name!r} (from "
        f"{low:.10g} to {high:.10g}): its {param!r} would start at {value:.3g}, not above the "
        f"floor {floor:g}; check or rescale the target, or lower --model.floor"
    )
