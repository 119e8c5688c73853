"""What a model reports: its evaluation metrics (validation every epoch, test at the end,
:meth:`~softzoo.models.SoftRegressor.evaluate`), weighted where the data has a weight
column, and the columns of its predictions.

Example:
    >>> from softzoo.families import get_family
    >>> sorted(make_metrics(get_family("gaussian"), 0.9, weighted=False))
    ['crps', 'loss', 'mae', 'nll', 'picp_90', 'rmse', 'width_90']
"""

from __future__ import annotations

from torch import Tensor, nn
from torchmetrics import MeanAbsoluteError, MeanMetric, MeanSquaredError, Metric

from softzoo.families import Family, Mixture, Params
from softzoo.metrics import (
    CRPS,
    IntervalCoverage,
    IntervalWidth,
    NegativeLogLikelihood,
    WeightedError,
)

__all__ = ["interval_tag", "make_metrics", "prediction_columns", "set_level", "update_metrics"]


def interval_tag(level: float) -> str:
    """The suffix of a central interval's names: 0.9 → "90"."""
    return f"{round(level * 100):d}"


def make_metrics(
    family: Family, interval_level: float, weighted: bool, every_epoch: bool = False
) -> nn.ModuleDict:
    """The evaluation metrics of a model of ``family``: its loss, the RMSE and MAE of the
    mean, and for a probabilistic family the NLL; at the test (not ``every_epoch``) also
    the CRPS and the central ``interval_level`` interval's coverage and width. Validation
    (``every_epoch``) takes only what costs a forward pass: the CRPS and the intervals of a
    mixture need a grid of CDFs or a bisection per row (for an 8-member ensemble they cost
    more than the epoch's validation forward), and early stopping, the best checkpoint and
    a tuner's pruning go by the loss and the NLL."""
    metrics: dict[str, Metric] = {
        "loss": MeanMetric(),
        "rmse": WeightedError(squared=True) if weighted else MeanSquaredError(squared=False),
        "mae": WeightedError(squared=False) if weighted else MeanAbsoluteError(),
    }
    if family.probabilistic:
        metrics["nll"] = NegativeLogLikelihood(family)
    if every_epoch:
        return nn.ModuleDict(metrics)
    metrics["crps"] = CRPS(family)
    if family.probabilistic:
        tag = interval_tag(interval_level)
        metrics |= {
            f"picp_{tag}": IntervalCoverage(family, interval_level),
            f"width_{tag}": IntervalWidth(family, interval_level),
        }
    return nn.ModuleDict(metrics)


def set_level(metrics: nn.ModuleDict, level: float) -> None:
    """Read the interval metrics at ``level`` (a calibrated model's effective level)."""
    for metric in metrics.values():
        if hasattr(metric, "level"):
            metric.level = level


def update_metrics(
    metrics: nn.ModuleDict,
    family: Family,
    params: Params,
    loss: Tensor,
    y: Tensor,
    weight: Tensor | None = None,
) -> None:
    """Enter one batch: its parameters in the target's units, each row's ``loss`` and
    target, and the rows' weights (None: each weighs 1)."""
    if weight is None:
        metrics["loss"].update(loss.mean(), weight=len(y))
    else:
        total = weight.sum()
        metrics["loss"].update((loss * weight).sum() / total.clamp_min(1e-30), weight=total)
    mean = family.mean(params)
    for name, metric in metrics.items():
        if name == "loss":
            continue
        given = (mean, y) if name in ("rmse", "mae") else (params, y)
        if weight is None:
            metric.update(*given)
        else:
            metric.update(*given, weight=weight)


def prediction_columns(
    family: Family, params: Params, interval_level: float, effective_level: float
) -> dict[str, Tensor]:
    """The columns a prediction writes: the parameters (an ensemble's per member, as
    ``member_<name>``), the mean, the median (continuous probabilistic families), an
    ensemble's variance, P(y = 0) (``prob_zero``, the families with a point mass at 0)
    and, for probabilistic families, the central ``interval_level`` interval (read at
    ``effective_level``: a calibrated model's)."""
    mixture = isinstance(family, Mixture)
    # an ensemble's member parameters (batch, members) are "member_<name>", as in its
    # ONNX graph: the negative binomial's "mean" parameter then keeps its columns
    names = [f"member_{n}" if mixture else n for n in family.param_names]
    out = dict(zip(names, params, strict=True))
    out["mean"] = family.mean(params)
    if family.probabilistic and not family.discrete:
        # beside the mean: a heavy right tail (a log-normal with a large sigma) puts the
        # mean far above where most of the mass is
        out["median"] = family.quantile(params, 0.5)
    if mixture:
        out["variance"] = family.variance(params)
    if family.zero_mass:
        out["prob_zero"] = family.prob_zero(params)
    if family.probabilistic:
        tag = interval_tag(interval_level)
        out[f"lower_{tag}"], out[f"upper_{tag}"] = family.interval(params, effective_level)
    return out
