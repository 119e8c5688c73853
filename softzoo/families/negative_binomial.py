"""Negative binomial in the (mean, concentration) form: over-dispersed counts."""

from __future__ import annotations

import torch
from scipy import stats
from torch import Tensor

from softzoo.families.base import Family, Params, ParamSpec, scipy_call
from softzoo.families.registry import register_family

__all__ = ["NegativeBinomialFamily"]

#: CRPS sums the discrete CDF up to this upper quantile; the mass beyond is < 1e-10.
_CRPS_TAIL = 1.0 - 1e-10
#: CRPS grid cells evaluated at once (rows x counts), to bound memory.
_CRPS_CHUNK = 4_000_000
#: Rows with counts beyond this use the quantile-score integral on _CRPS_LEVELS levels.
_CRPS_GRID_MAX = 1 << 20
_CRPS_LEVELS = 1000


def _log1p(x: Tensor) -> Tensor:
    """log(1 + x) to float precision from Log and arithmetic alone (Goldberg's trick:
    log(u)·x/(u − 1) with u = 1 + x cancels the rounding of u), as exported graphs run it."""
    u = 1 + x
    moved = u != 1
    return torch.where(moved, torch.log(u) * x / torch.where(moved, u - 1, 1), x)


@register_family
class NegativeBinomialFamily(Family):
    """y ~ NB(mean μ, concentration r): variance μ + μ²/r; r → ∞ gives Poisson(μ).

    Equivalent to ``torch.distributions.NegativeBinomial(total_count=r, probs=μ/(μ+r))``.
    CDF and quantiles: scipy's ``nbinom``. CRPS: Σₖ (F(k) − 1{y ≤ k})² summed exactly
    over k = 0 … max(y, F⁻¹(1 − 1e-10)).
    """

    name = "negative_binomial"
    params = (ParamSpec("mean", True, exposure="scale"), ParamSpec("concentration", True))
    support = "count"
    target_scaling = "none"
    mean_params = ("mean",)

    def nll(self, params: Params, y: Tensor) -> Tensor:
        mu, r = params
        log_total = torch.log(mu + r)
        return -(
            torch.lgamma(y + r)
            - torch.lgamma(r)
            - torch.lgamma(y + 1)
            + r * (torch.log(r) - log_total)
            + torch.xlogy(y, mu)
            - y * log_total
        )

    def log_prob_zero(self, params: Params) -> Tensor:
        """log P(y = 0) = −r·log1p(μ/r), with log1p in ops every runtime has (a large r
        makes r·(log r − log(μ + r)) lose all its digits in float32)."""
        mu, r = params
        return -r * _log1p(mu / r)

    def mean(self, params: Params) -> Tensor:
        return params[0]

    def variance(self, params: Params) -> Tensor:
        mu, r = params
        return mu + mu**2 / r

    def quantile(self, params: Params, q: float) -> Tensor:
        mu, r = params
        return scipy_call(lambda m, c: stats.nbinom.ppf(q, c, c / (c + m)), mu, r)

    def cdf(self, params: Params, y: Tensor) -> Tensor:
        mu, r = params
        return scipy_call(lambda k, m, c: stats.nbinom.cdf(k, c, c / (c + m)), y, mu, r)

    def crps(self, params: Params, y: Tensor) -> Tensor:
        """Exact sum over the count grid up to the 1 − 1e-10 quantile; rows whose grid
        would pass 2**20 counts use the quantile-score integral on 1,000 levels instead
        (relative error about 1e-3; a grid of 1e8 counts would need gigabytes)."""
        mu, r = torch.broadcast_tensors(*params)
        shape = mu.shape
        mu, r, y = mu.reshape(-1), r.reshape(-1), y.expand_as(mu).reshape(-1)
        top = torch.maximum(y, self.quantile((mu, r), _CRPS_TAIL))
        large = top >= _CRPS_GRID_MAX
        out = torch.empty_like(mu)
        if large.any():
            out[large] = self._crps_quantiles(mu[large], r[large], y[large])
        small = ~large
        n_counts = int(top[small].max().item()) + 1 if small.any() else 1
        rows = max(1, _CRPS_CHUNK // n_counts)
        mu, r, y = mu[small], r[small], y[small]
        pieces = [
            self._crps_grid(mu[i : i + rows], r[i : i + rows], y[i : i + rows], n_counts)
            for i in range(0, mu.numel(), rows)
        ]
        if pieces:
            out[small] = torch.cat(pieces)
        return out.reshape(shape)

    def _crps_quantiles(self, mu: Tensor, r: Tensor, y: Tensor) -> Tensor:
        levels = (torch.arange(_CRPS_LEVELS, dtype=torch.float64) + 0.5) / _CRPS_LEVELS
        q = self.quantile((mu[:, None], r[:, None]), levels.numpy()[None, :]).double()
        below = (y[:, None].double() < q).double()
        score = (below - levels.to(q.device)) * (q - y[:, None].double())
        return (2.0 * score.mean(dim=1)).to(mu.dtype)

    def _crps_grid(self, mu: Tensor, r: Tensor, y: Tensor, n_counts: int) -> Tensor:
        k = torch.arange(n_counts, dtype=mu.dtype, device=mu.device)
        pmf = torch.exp(-self.nll((mu[:, None], r[:, None]), k[None, :]))
        big_f = torch.cumsum(pmf.double(), dim=1).clamp_max(1.0)
        step = (y[:, None] <= k[None, :]).double()
        return ((big_f - step) ** 2).sum(dim=1).to(mu.dtype)

    def distribution(self, params: Params) -> torch.distributions.NegativeBinomial:
        mu, r = params
        return torch.distributions.NegativeBinomial(
            total_count=r, probs=mu / (mu + r), validate_args=False
        )

    def initial_values(self, y: Tensor) -> dict[str, float]:
        mean = float(y.mean())
        excess = (float(y.var()) if y.numel() > 1 else mean) - mean
        return {"mean": mean, "concentration": mean**2 / excess if excess > 0 else 1e3}
