"""The contract every output family fulfils, and the machinery they share.

A family maps the network's heads to a predictive distribution. It knows its parameter
names (in output order) and constraints, its negative log-likelihood, mean, variance,
quantiles, CDF (for PIT), CRPS, its support, and how its parameters change when the
target is rescaled. ``torch.distributions`` objects are built only by
:meth:`Family.distribution`, for metrics and tests, never in ``forward``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from softzoo.nn.heads import HeadSpec

__all__ = ["Family", "ParamSpec", "Params"]

Params = tuple[Tensor, ...]

#: How a parameter changes when the target y (original units) = scale * y' + shift.
_UNSCALE: dict[str, Callable[[Tensor, Tensor, Tensor], Tensor]] = {
    "location": lambda p, shift, scale: p * scale + shift,
    "scale": lambda p, shift, scale: p * scale,
    "log_location": lambda p, shift, scale: p + torch.log(scale),
    "rate": lambda p, shift, scale: p / scale,
    "none": lambda p, shift, scale: p,
}


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: its name, whether it is positive (> ``lower``) or bounded in
    [``lower``, ``upper``], and its units.

    ``units`` says how it transforms under y = scale·y' + shift: "location", "scale",
    "log_location" (a location on log y), "rate" (1/scale) or "none" (unitless).
    ``exposure`` says how it changes when the mean is multiplied by a row's exposure e
    (the same transforms with scale = e): "scale" (a mean), "rate", "log_location", or
    "none"; a family takes an exposure where one of its parameters carries it.
    """

    name: str
    positive: bool = False
    lower: float = 0.0
    units: str = "none"
    upper: float | None = None
    exposure: str = "none"

    def __post_init__(self) -> None:
        for field_name in ("units", "exposure"):
            if getattr(self, field_name) not in _UNSCALE:
                raise ValueError(
                    f"{field_name} must be one of {sorted(_UNSCALE)}, got "
                    f"{getattr(self, field_name)!r}"
                )


class Family:
    """Base class of the output families. Subclasses set the class attributes and
    implement :meth:`nll`, :meth:`mean`, :meth:`variance`, :meth:`quantile`, :meth:`cdf`,
    :meth:`crps`, :meth:`distribution` and :meth:`initial_values`.

    Attributes:
        name: registry name.
        params: the parameters in output order.
        support: "real", "positive" (y > 0), "nonnegative" (y >= 0: a point mass at 0
            and a density above it) or "count" (y in 0, 1, 2, …).
        target_scaling: "affine" (standardise y), "scale" (divide by a positive
            scale) or "none" (counts keep their units).
        probabilistic: False for point predictors (no likelihood, no intervals).
        loss_options: the options that only change the training loss, not the
            distribution (pretrained weights may be fine-tuned with other values).
        closed_form_interval: whether :meth:`interval` is a few elementwise ops (no
            special function): then exported graphs also output the interval ends.
        mean_params: the parameters that carry the mean: the ones a mean warm-up and
            faithful training fit, the others held at the marginal fit.
        calibration_map: how conformal calibration maps one model's intervals
            (docs/calibration.md): "scale" (a factor on the "scale" parameter, scores on y),
            "log_scale" (the same factor, scores on log y) or "level" (the calibrated
            central level; every family, and every ensemble, can use it).
    """

    name: ClassVar[str]
    params: ClassVar[tuple[ParamSpec, ...]]
    support: ClassVar[str] = "real"
    target_scaling: ClassVar[str] = "affine"
    probabilistic: ClassVar[bool] = True
    loss_options: ClassVar[frozenset[str]] = frozenset()
    closed_form_interval: ClassVar[bool] = False
    mean_params: ClassVar[tuple[str, ...]] = ()
    calibration_map: ClassVar[str] = "level"
    zero_mass: ClassVar[bool] = False

    # ---- description -------------------------------------------------------------
    @property
    def param_names(self) -> tuple[str, ...]:
        """Parameter names in output order, e.g. ``("loc", "scale")``."""
        return tuple(p.name for p in self.params)

    @property
    def discrete(self) -> bool:
        return self.support == "count"

    def options(self) -> dict[str, Any]:
        """The JSON-simple options this family was built with (for ``get_family``)."""
        return {}

    def defining_options(self) -> dict[str, Any]:
        """The options that change the predictive distribution (all but ``loss_options``)."""
        return {k: v for k, v in self.options().items() if k not in self.loss_options}

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options().items())
        return f"{type(self).__name__}({opts})"

    def head_specs(self) -> list[HeadSpec]:
        """Head specifications for :class:`softzoo.nn.ParameterHeads`."""
        return [HeadSpec(p.name, p.positive, p.lower, upper=p.upper) for p in self.params]

    @property
    def takes_exposure(self) -> bool:
        """Whether a row's exposure can multiply this family's mean (a log offset)."""
        return any(p.exposure != "none" for p in self.params)

    def with_exposure(self, params: Params, exposure: Tensor) -> Params:
        """The parameters of a row observed over ``exposure`` (> 0) units, from those of
        one unit: the mean is multiplied by the exposure, the shape kept.

        Example:
            >>> import torch
            >>> from softzoo.families import get_family
            >>> get_family("poisson").with_exposure((torch.tensor([2.0]),), torch.tensor([3.0]))
            (tensor([6.]),)
        """
        zero = torch.zeros((), dtype=exposure.dtype, device=exposure.device)
        return tuple(
            _UNSCALE[spec.exposure](p, zero, exposure)
            for spec, p in zip(self.params, params, strict=True)
        )

    def prob_zero(self, params: Params) -> Tensor:
        """P(y = 0) of each row (families with ``zero_mass``)."""
        raise NotImplementedError(f"family {self.name!r} has no point mass at 0")

    # ---- the statistics (per element, in the units of y) ---------------------------
    def nll(self, params: Params, y: Tensor) -> Tensor:
        """Negative log-likelihood of each y (a density for continuous families)."""
        raise NotImplementedError

    def loss(self, params: Params, y: Tensor) -> Tensor:
        """Per-element training loss; the NLL unless the family has options for it."""
        return self.nll(params, y)

    def mean(self, params: Params) -> Tensor:
        raise NotImplementedError

    def variance(self, params: Params) -> Tensor:
        raise NotImplementedError

    def quantile(self, params: Params, q: float) -> Tensor:
        """The q-quantile, q in (0, 1)."""
        raise NotImplementedError

    def cdf(self, params: Params, y: Tensor) -> Tensor:
        raise NotImplementedError

    def crps(self, params: Params, y: Tensor) -> Tensor:
        """Continuous ranked probability score of each y (lower is better)."""
        raise NotImplementedError

    def distribution(self, params: Params) -> torch.distributions.Distribution:
        """The equivalent ``torch.distributions`` object (for metrics and tests only)."""
        raise NotImplementedError

    def sample(self, params: Params, n: int) -> Tensor:
        """``n`` draws per row, shape (n, *rows), from the global torch generator."""
        return self.distribution(params).sample((n,))

    def initial_values(self, y: Tensor) -> dict[str, float]:
        """Parameter values of the marginal fit of y (scaled units): the heads start there."""
        raise NotImplementedError

    def grid_points(self, params: Params, levels: np.ndarray) -> Tensor:
        """Points where the mass is, at these CDF levels, for integrals over y (a
        mixture's CRPS): the quantiles, unless a family has cheaper points."""
        return torch.as_tensor(self.quantile(params, levels))

    def interval(self, params: Params, level: float) -> tuple[Tensor, Tensor]:
        """The central interval holding ``level`` of the predictive mass."""
        _check_level(level)
        tail = (1.0 - level) / 2.0
        return self.quantile(params, tail), self.quantile(params, 1.0 - tail)

    def pit_bounds(self, params: Params, y: Tensor) -> tuple[Tensor, Tensor]:
        """(F(y⁻), F(y)): equal for continuous families; for counts F(y-1) and F(y); at
        a point mass at 0, 0 and P(y = 0)."""
        upper = self.cdf(params, y)
        if self.support == "nonnegative":  # randomised over the point mass at 0
            return torch.where(y == 0, torch.zeros_like(upper), upper), upper
        if not self.discrete:
            return upper, upper
        below = torch.where(y >= 1, self.cdf(params, (y - 1).clamp_min(0)), 0.0)
        return below, upper

    # ---- data checks and target scaling --------------------------------------------
    def check_support(self, y: Tensor, what: str = "target", rows: Any = None) -> None:
        """Raise ``ValueError`` naming the family, how many values are outside its support
        and the first one, if any y is NaN/inf or outside the support. ``rows``: each
        value's row in its table (0-based; the message counts rows after the header from
        1), else the message gives the value's index."""
        y = torch.as_tensor(y)
        bad = ~torch.isfinite(y)
        _raise_on_bad(bad, y, f"{what} has {{n}} NaN/inf value(s)", self.name, rows=rows)
        rules = {
            "positive": (
                y <= 0,
                "needs y > 0",
                "gaussian or student_t; with zeros: tweedie, hurdle_gamma or hurdle_lognormal",
            ),
            "nonnegative": (y < 0, "needs y >= 0", "gaussian or student_t"),
            "count": (
                (y < 0) | (y != torch.round(y)),
                "needs counts (integers >= 0)",
                "gaussian, gamma or lognormal",
            ),
        }
        if self.support in rules:
            bad, needs, other = rules[self.support]
            _raise_on_bad(
                bad,
                y,
                f"family {self.name!r} {needs}, but the {what} has {{n}} value(s) outside",
                self.name,
                f"; clean the data or choose a family that allows them ({other})",
                rows,
            )

    def fit_target_scaling(self, y: Tensor) -> tuple[float, float]:
        """(shift, scale) so that (y - shift) / scale is O(1): fitted on training y only."""
        y = torch.as_tensor(y, dtype=torch.float64)
        if self.target_scaling == "none":
            return 0.0, 1.0
        if self.target_scaling == "scale":
            return 0.0, _positive_or_one(float(y.abs().mean()))
        return float(y.mean()), _positive_or_one(float(y.std()) if y.numel() > 1 else 1.0)

    def unscale(self, params: Params, shift: Tensor, scale: Tensor) -> Params:
        """Parameters for y = scale·y' + shift from those for y'. Positive ones stay
        positive: they only ever get multiplied or divided by scale > 0."""
        return tuple(
            _UNSCALE[spec.units](p, shift, scale)
            for spec, p in zip(self.params, params, strict=True)
        )


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"interval level must lie in (0, 1), got {level!r}")


def _positive_or_one(value: float) -> float:
    return value if math.isfinite(value) and value > 0 else 1.0


def _raise_on_bad(
    bad: Tensor, y: Tensor, message: str, family: str, fix: str = "", rows: Any = None
) -> None:
    count = int(bad.sum())
    if count:
        flat = bad.reshape(-1).nonzero()[0].item()
        first = y.reshape(-1)[flat].item()
        where = f"index {flat}" if rows is None else f"row {int(rows[flat]) + 1} after the header"
        raise ValueError(
            message.format(n=count) + f" (first: {first!r} at {where}) [{family}]{fix}"
        )


def scipy_call(fn: Callable[..., np.ndarray], *args: Tensor | float) -> Tensor:
    """Evaluate a scipy special/stats function on tensors, in float64 on the CPU.

    Used where torch lacks the special function (Student-t and negative-binomial CDFs,
    gamma/Poisson quantiles). The result is detached: these feed metrics, not losses.
    """
    ref = next(a for a in args if torch.is_tensor(a))
    arrays = [a.detach().double().cpu().numpy() if torch.is_tensor(a) else a for a in args]
    return torch.as_tensor(fn(*arrays), dtype=ref.dtype, device=ref.device)
