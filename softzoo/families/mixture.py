"""The equal-weight mixture of an ensemble's members: one family wrapping another.

Every parameter is a ``(batch, members)`` tensor (member ``m`` in column ``m``); the
predictive distribution is ``(1/M) Σₘ F(· | θₘ)``. Metrics, reports and exports use the
same :class:`~softzoo.families.base.Family` interface as for one model:

- NLL: ``−log((1/M) Σₘ exp(−nllₘ))`` by logsumexp; the training loss is the members' own
  losses averaged (each member is trained as a model of its own, as in Deep Ensembles).
- mean and variance: exact (law of total variance).
- CDF and PIT: the average of the members'; quantiles and central intervals by bisection
  on the mixture CDF (60 steps between the smallest and largest member quantile; integer
  bisection for counts).
- CRPS: exact for Gaussian members (Grimit et al., 2006) and for counts (Σₖ over the count
  grid); otherwise ∫ (F(x) − 1{x ≥ y})² dx by the trapezoid rule on 2,049 points between
  the members' 1e-6 and 1 − 1e-6 quantiles (and y): its error, measured against adaptive
  quadrature in tests/test_ensembles.py, is below 1e-3 relative.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from statistics import NormalDist
from typing import Any

import numpy as np
import torch
from torch import Tensor

from softzoo.families.base import Family, Params

__all__ = ["Mixture"]

_BISECTION_STEPS = 60
#: The CRPS grid holds about this many points per row: each member's quantiles at the
#: levels of :func:`_grid_levels`, so a larger mixture samples each member more coarsely
#: (its members' quantiles interleave) and costs about as much as a smaller one.
_GRID_POINTS = 512


def _grid_levels(members: int, least: int = 33) -> np.ndarray:
    """Φ of evenly spaced normal scores in ±4.9: at least ``least`` per member, ~512 in all."""
    count = max(least, 1 + _GRID_POINTS // members)
    return np.array([NormalDist().cdf(z) for z in np.linspace(-4.9, 4.9, count)])


#: The count grid of the exact count CRPS stops where every member's mass beyond is < 1e-10.
_COUNT_TAIL = 1.0 - 1e-10
#: Rows whose count grid would pass this many counts take the grid CRPS of the members'
#: quantiles instead (steps of 1 are then a millionth of the range; an exact grid up to 1e9
#: counts would need 100+ GB), as one count model's CRPS does.
_COUNT_GRID_MAX = 1 << 20
#: Grid levels per member for those rows.
_COUNT_GRID_LEVELS = 257
#: The most CDF values one CRPS chunk evaluates (float64: 128 MiB): the grid CRPS takes
#: rows x grid points x members of them, so a 100-member ensemble on thousands of
#: validation rows is computed a few rows at a time instead of asking for tens of GB.
_CRPS_BUDGET = 1 << 24


class Mixture(Family):
    """The equal-weight mixture of ``members`` models of family ``base``.

    Example:
        >>> import torch
        >>> from softzoo.families import get_family
        >>> mixture = Mixture(get_family("gaussian"), members=2)
        >>> loc, scale = torch.tensor([[-1.0, 1.0]]), torch.ones(1, 2)
        >>> mixture.mean((loc, scale)).item(), mixture.variance((loc, scale)).item()
        (0.0, 2.0)
    """

    def __init__(self, base: Family, members: int) -> None:
        if members < 1:
            raise ValueError(f"ensemble_size must be >= 1, got {members}")
        self.base, self.members = base, int(members)
        self.name = base.name
        self.params = base.params
        self.support = base.support
        self.target_scaling = base.target_scaling
        self.probabilistic = base.probabilistic
        self.loss_options = base.loss_options
        self.mean_params = base.mean_params
        self.zero_mass = base.zero_mass
        self.calibration_map = "level"  # a mixture has no one scale parameter

    def options(self) -> dict[str, Any]:
        return self.base.options()

    def __repr__(self) -> str:
        return f"Mixture({self.base!r}, members={self.members})"

    # ---- per member, then combined ----------------------------------------------------
    def loss(self, params: Params, y: Tensor) -> Tensor:
        """The members' own losses, averaged; ``y`` is (batch,), or (batch, members) when
        each member trains on its own shuffle of the rows."""
        y = y if y.dim() == params[0].dim() else y.unsqueeze(-1)
        return self.base.loss(params, y).mean(dim=-1)

    def nll(self, params: Params, y: Tensor) -> Tensor:
        member_nll = self.base.nll(params, y.unsqueeze(-1))
        return math.log(self.members) - torch.logsumexp(-member_nll, dim=-1)

    def mean(self, params: Params) -> Tensor:
        return self.base.mean(params).mean(dim=-1)

    def variance(self, params: Params) -> Tensor:
        # within plus between members, without the cancellation of E[X²] − E[X]²
        means = self.base.mean(params)
        centre = means.mean(dim=-1, keepdim=True)
        spread = (means - centre) ** 2
        variance = (self.base.variance(params) + spread).mean(dim=-1)
        # an overflowed member mean (inf − inf) is an infinite variance, not NaN
        return torch.where(torch.isfinite(centre[..., 0]), variance, torch.inf)

    def cdf(self, params: Params, y: Tensor) -> Tensor:
        return self.base.cdf(params, y.unsqueeze(-1)).mean(dim=-1)

    def prob_zero(self, params: Params) -> Tensor:
        return self.base.prob_zero(params).mean(dim=-1)

    def with_exposure(self, params: Params, exposure: Tensor) -> Params:
        """``exposure``: one per row (batch,), or per member's row (batch, members) under
        member shuffles."""
        same = exposure.dim() == params[0].dim()
        return self.base.with_exposure(params, exposure if same else exposure.unsqueeze(-1))

    def pit_bounds(self, params: Params, y: Tensor) -> tuple[Tensor, Tensor]:
        below, upper = self.base.pit_bounds(params, y.unsqueeze(-1).expand_as(params[0]))
        return below.mean(dim=-1), upper.mean(dim=-1)

    def quantile(self, params: Params, q: float) -> Tensor:
        member_q = torch.as_tensor(self.base.quantile(params, q), dtype=torch.float64)
        lo, hi = member_q.min(dim=-1).values, member_q.max(dim=-1).values
        if self.discrete:
            return self._count_quantile(params, q, lo, hi).to(params[0].dtype)
        for _ in range(_BISECTION_STEPS):
            mid = (lo + hi) / 2
            below = self.cdf(params, mid.to(params[0].dtype)).double() < q
            lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
        middle = (lo + hi) / 2
        if self.support == "nonnegative":  # the point mass: exactly 0, not a bisection's 1e-18
            middle = torch.where(self.prob_zero(params).double() >= q, 0.0, middle)
        return middle.to(params[0].dtype)

    def _count_quantile(self, params: Params, q: float, lo: Tensor, hi: Tensor) -> Tensor:
        """The smallest count k with F(k) >= q, between the members' quantiles."""
        lo = lo - 1  # F(lo) < q for sure: the member quantiles are the smallest such counts
        while bool((hi - lo > 1).any()):
            mid = torch.floor((lo + hi) / 2)
            reached = self.cdf(params, mid.to(params[0].dtype)).double() >= q
            hi, lo = torch.where(reached, mid, hi), torch.where(reached, lo, mid)
        return hi

    def crps(self, params: Params, y: Tensor) -> Tensor:
        if not self.probabilistic:  # the mean of point predictions is a point prediction
            return (y - self.mean(params)).abs()
        if self.base.name == "gaussian":
            return _gaussian_mixture_crps(*params, y)
        if self.discrete:
            return self._count_crps(params, y)
        return self._grid_crps(params, y)

    def _grid_crps(self, params: Params, y: Tensor, least: int = 33) -> Tensor:
        """∫ F² below y plus ∫ (1 − F)² above y by the trapezoid rule on a grid of the
        members' quantiles (``least`` per member at least) and y itself (dense where the
        mass is, reaching far into heavy tails), with one CDF evaluation per grid point."""
        levels = _grid_levels(self.members, least)
        per_row = (len(levels) * self.members + 1) * self.members
        return _in_row_chunks(partial(self._grid_crps_rows, levels), params, y, per_row)

    def _grid_crps_rows(self, levels: np.ndarray, params: Params, y: Tensor) -> Tensor:
        member_params = tuple(p[..., None] for p in params)
        grid = torch.as_tensor(self.base.grid_points(member_params, levels)).double()
        y64 = y.double()[:, None]
        grid = torch.sort(torch.cat([grid.reshape(len(y), -1), y64], dim=1), dim=1).values
        member_params = tuple(p[:, None, :] for p in params)
        big_f = self.base.cdf(member_params, grid.to(y.dtype)[:, :, None]).double().mean(-1)
        # y is a grid point: each segment lies wholly below or wholly above it
        width = torch.diff(grid, dim=1)
        below = (grid[:, 1:] <= y64).double() * (big_f[:, 1:] ** 2 + big_f[:, :-1] ** 2)
        above = (grid[:, :-1] >= y64).double() * (
            (1 - big_f[:, 1:]) ** 2 + (1 - big_f[:, :-1]) ** 2
        )
        return (0.5 * width * (below + above)).sum(dim=1).to(y.dtype)

    def _count_crps(self, params: Params, y: Tensor) -> Tensor:
        """Exact: the sum over the counts up to where every member's mass beyond is < 1e-10;
        rows whose sum would pass :data:`_COUNT_GRID_MAX` counts: the grid CRPS."""
        top = torch.maximum(y, torch.as_tensor(self.quantile(params, _COUNT_TAIL)).to(y))
        large = top >= _COUNT_GRID_MAX
        out = torch.empty_like(y)
        if large.any():
            # a finer grid than the continuous families': rare rows, within 1e-3
            large_params = tuple(p[large] for p in params)
            out[large] = self._grid_crps(large_params, y[large], _COUNT_GRID_LEVELS)
        small = ~large
        if small.any():
            last = int(top[small].max().item())
            counts = torch.arange(last + 1, dtype=y.dtype, device=y.device)
            per_row = len(counts) * self.members
            rows = partial(self._count_crps_rows, counts)
            out[small] = _in_row_chunks(rows, tuple(p[small] for p in params), y[small], per_row)
        return out

    def _count_crps_rows(self, counts: Tensor, params: Params, y: Tensor) -> Tensor:
        member_params = tuple(p[:, None, :] for p in params)
        big_f = self.base.cdf(member_params, counts[None, :, None]).double().mean(-1)
        step = (counts[None, :] >= y[:, None]).double()
        return ((big_f - step) ** 2).sum(dim=1).to(y.dtype)

    def sample(self, params: Params, n: int) -> Tensor:
        """Each draw from a member chosen uniformly, as the mixture's definition says."""
        draws = self.base.sample(params, n)  # (n, rows, members)
        pick = torch.randint(self.members, draws.shape[:-1], device=draws.device)
        return draws.gather(-1, pick[..., None])[..., 0]

    def distribution(self, params: Params) -> torch.distributions.Distribution:
        members = self.base.distribution(params)
        weights = torch.distributions.Categorical(logits=torch.zeros_like(params[0]))
        return torch.distributions.MixtureSameFamily(weights, members)

    def initial_values(self, y: Tensor) -> dict[str, float]:
        return self.base.initial_values(y)

    def unscale(self, params: Params, shift: Tensor, scale: Tensor) -> Params:
        return self.base.unscale(params, shift, scale)

    def check_support(self, y: Tensor, what: str = "target", rows: Any = None) -> None:
        self.base.check_support(y, what, rows)

    def fit_target_scaling(self, y: Tensor) -> tuple[float, float]:
        return self.base.fit_target_scaling(y)


def _in_row_chunks(
    score: Callable[[Params, Tensor], Tensor], params: Params, y: Tensor, per_row: int
) -> Tensor:
    """``score(params, y)`` a few rows at a time, each chunk within :data:`_CRPS_BUDGET`
    values (rows are scored independently, so the result is the same)."""
    rows = max(1, _CRPS_BUDGET // max(1, per_row))
    if len(y) <= rows:
        return score(params, y)
    parts = [
        score(tuple(p[i : i + rows] for p in params), y[i : i + rows])
        for i in range(0, len(y), rows)
    ]
    return torch.cat(parts)


def _normal_pdf(z: Tensor) -> Tensor:
    return torch.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def _a(mu: Tensor, var: Tensor) -> Tensor:
    """E|X| for X ~ N(mu, var)."""
    sigma = torch.sqrt(var)
    z = mu / sigma
    return 2 * sigma * _normal_pdf(z) + mu * torch.erf(z / math.sqrt(2.0))


def _gaussian_mixture_crps(loc: Tensor, scale: Tensor, y: Tensor) -> Tensor:
    """CRPS of an equal-weight Gaussian mixture: E|X − y| − ½ E|X − X'| in closed form."""
    members = loc.shape[-1]
    first = _a(y.unsqueeze(-1) - loc, scale**2).mean(dim=-1)
    variances = scale.unsqueeze(-1) ** 2 + scale.unsqueeze(-2) ** 2
    pair = _a(loc.unsqueeze(-1) - loc.unsqueeze(-2), variances)
    return first - 0.5 * pair.sum(dim=(-1, -2)) / members**2
