"""The predictive distribution of each row as numpy arrays, in the target's units: a
family (or the equal-weight mixture of an ensemble's members) with its parameters. What
:meth:`softzoo.sklearn.SoftzooRegressor.predict_dist` returns.

Example:
    >>> import torch
    >>> from softzoo.families import get_family
    >>> d = PredictiveDistribution(get_family("gaussian"), (torch.zeros(2), torch.ones(2)))
    >>> d.mean.tolist(), d.quantile(0.5).tolist(), d.cdf([0.0, 0.0]).tolist()
    ([0.0, 0.0], [0.0, 0.0], [0.5, 0.5])
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from softzoo.families.base import Family

__all__ = ["PredictiveDistribution"]


class PredictiveDistribution:
    """The predictive distribution of each row, in the target's units: the model's family,
    or the equal-weight mixture of an ensemble's members (calibrated, if the model is)."""

    def __init__(self, family: Family, params: tuple[torch.Tensor, ...]) -> None:
        self.family, self.params = family, params

    @property
    def mean(self) -> np.ndarray:
        return _numpy(self.family.mean(self.params))

    @property
    def variance(self) -> np.ndarray:
        return _numpy(self.family.variance(self.params))

    def quantile(self, q: float | Sequence[float]) -> np.ndarray:
        """The ``q`` quantile of each row: shape (rows,) for one level, (rows, len(q)) for
        several; every level strictly between 0 and 1."""
        levels = np.atleast_1d(np.asarray(q, dtype=float))
        if levels.ndim != 1 or not levels.size:
            raise ValueError(f"give one quantile level or a list of them, got {q!r}")
        if not ((levels > 0) & (levels < 1)).all():  # NaN is no level either
            raise ValueError(f"quantile levels must lie strictly between 0 and 1, got {q!r}")
        columns = [_numpy(self.family.quantile(self.params, float(v))) for v in levels]
        return columns[0] if np.ndim(q) == 0 else np.stack(columns, axis=1)

    def cdf(self, y: Any) -> np.ndarray:
        """P(Y <= y) for each row's y."""
        return _numpy(self.family.cdf(self.params, self._target(y)))

    def log_prob(self, y: Any) -> np.ndarray:
        """The log density (log probability for counts) of each row's y."""
        return -_numpy(self.family.nll(self.params, self._target(y)))

    def sample(self, n: int = 1, seed: int | None = None) -> np.ndarray:
        """``n`` draws per row, shape (n, rows); ``seed``: drawn from a generator of its own
        (the global one is left as it was), else from torch's global generator."""
        forked = torch.random.fork_rng() if seed is not None else contextlib.nullcontext()
        with forked:
            if seed is not None:
                torch.manual_seed(seed)
            return _numpy(self.family.sample(self.params, n))

    def _target(self, y: Any) -> torch.Tensor:
        values = np.asarray(y, dtype=np.float64).reshape(-1)
        if len(values) != len(self.params[0]):
            raise ValueError(f"y has {len(values)} value(s) for {len(self.params[0])} row(s)")
        return torch.tensor(values, dtype=torch.float32)


def _numpy(values: torch.Tensor) -> np.ndarray:
    return values.detach().double().cpu().numpy()
