"""Seeing a model: calibration and prediction plots (PNG, matplotlib) and a ``report.md``.

:func:`write_report` takes a trained :class:`~softzoo.models.SoftRegressor` and labelled
rows and writes, into one folder:

- ``reliability.png``: nominal vs observed coverage of the central intervals at 10…90 %;
- ``pit.png``: the histogram of the probability integral transform (flat if calibrated);
- ``mean_vs_actual.png``: predicted mean against the actual value, with 90 % intervals;
- ``width_vs_prediction.png``: the 90 % interval width against the predicted mean;
- ``report.md``: the metrics table with the four plots embedded.

Point predictors (the ``positive`` family) have no predictive distribution: they get the
mean-vs-actual plot only, and the report says so. ``softzoo report`` runs it from the
command line; :class:`softzoo.callbacks.CalibrationPlot` at the end of ``trainer.test``.

Example:
    >>> import tempfile, torch
    >>> from softzoo.models import SoftRegressor
    >>> model = SoftRegressor(2, family="gaussian", hidden=[8]).eval()
    >>> x, y = torch.randn(200, 2), torch.randn(200)
    >>> files = write_report(model, x, y, tempfile.mkdtemp(), title="toy")
    >>> sorted(files)
    ['mean_vs_actual', 'pit', 'reliability', 'report', 'width_vs_prediction']
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure
from torch import Tensor

from softzoo._io import atomic_write
from softzoo.families import Family, Params
from softzoo.metrics import pit_histogram

__all__ = [
    "HEAVY_TAIL_FACTOR",
    "RELIABILITY_LEVELS",
    "ReportData",
    "predict_report_data",
    "prepare_output",
    "reliability_curve",
    "write_report",
]

#: Central-interval levels of the reliability diagram.
RELIABILITY_LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
#: Interval level of the mean-vs-actual and width plots.
INTERVAL_LEVEL = 0.9
#: At most this many rows are drawn with error bars (a seeded sample; every row counts
#: in the metrics and in the calibration plots).
MAX_DRAWN = 600
_PIT_BINS = 10
_DPI = 120

#: ``report.md`` lists the rows whose predicted mean is more than this times their median.
HEAVY_TAIL_FACTOR = 10.0

#: The most heavy-tailed rows ``report.md`` lists one by one.
_LISTED_ROWS = 20


@dataclass(frozen=True)
class ReportData:
    """What the plots need: the family, its parameters per row (original units, float64)
    and the observed target."""

    family: Family
    params: Params
    target: Tensor
    target_name: str = "y"
    #: the parameters before the model's calibration map, when it has one
    raw_params: Params | None = None
    #: the central level whose interval the model reports at its interval level (the
    #: "level" calibration), and that interval level
    calibrated_level: tuple[float, float] | None = None

    @property
    def mean(self) -> Tensor:
        return self.family.mean(self.params)

    def interval(self, level: float = INTERVAL_LEVEL) -> tuple[Tensor, Tensor]:
        return self.family.interval(self.params, level)

    def heavy_tail_rows(self, factor: float = HEAVY_TAIL_FACTOR) -> Tensor:
        """The rows (0-based) whose predicted mean exceeds ``factor`` times their median:
        a heavy right tail (a log-normal with a large sigma) that carries the mean far
        above most of the mass; none for discrete and point families."""
        if self.family.discrete or not self.family.probabilistic:
            return torch.zeros(0, dtype=torch.long)
        median = self.family.quantile(self.params, 0.5)
        return torch.nonzero(self.mean > factor * median.abs()).flatten()


@torch.no_grad()
def predict_report_data(module: Any, x: Tensor, y: Tensor, batch_size: int = 4096) -> ReportData:
    """Run ``module`` (a SoftRegressor) on ``x`` in batches and pair it with ``y``."""
    module.family.check_support(y, "target")

    def run(forward: Any) -> Params:
        chunks = [forward(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        return tuple(torch.cat(parts).double().cpu() for parts in zip(*chunks, strict=True))

    method = getattr(module, "calibration_method", None)
    level = (module.effective_level, module.hparams.interval_level) if method == "level" else None
    return ReportData(
        module.family,
        run(module),
        y.double().cpu(),
        module.hparams.target_name,
        raw_params=run(module.uncalibrated) if method else None,
        calibrated_level=level,
    )


def reliability_curve(
    data: ReportData, levels: tuple[float, ...] = RELIABILITY_LEVELS, raw: bool = False
) -> Tensor:
    """Observed coverage of the central interval at each nominal level, the way the PIT
    histogram counts: a row counts as covered by the share of its PIT range [F(y⁻), F(y)]
    that lies in the central band [(1 − L)/2, (1 + L)/2] (for a continuous family, 1 if
    F(y) lies in it, else 0). Counts then lie on the diagonal when calibrated, instead of
    above it from the mass of the interval's end points. ``raw``: before calibration.

    Example:
        >>> import torch
        >>> from softzoo.families import get_family
        >>> y = torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(0.0005, 0.9995, 1000))
        >>> data = ReportData(get_family("gaussian"), (torch.zeros(1000), torch.ones(1000)), y)
        >>> [round(v, 2) for v in reliability_curve(data, (0.5, 0.9)).tolist()]
        [0.5, 0.9]
    """
    params = data.raw_params if raw and data.raw_params is not None else data.params
    below, upper = data.family.pit_bounds(params, data.target)
    below, upper = below.double(), upper.double()
    coverage = []
    for level in levels:
        low, high = (1 - level) / 2, (1 + level) / 2
        if data.family.discrete:
            inside = torch.minimum(upper, torch.tensor(high)) - torch.maximum(
                below, torch.tensor(low)
            )
            share = inside.clamp_min(0) / (upper - below).clamp_min(1e-300)
        else:
            share = ((upper >= low) & (upper <= high)).double()
        coverage.append(float(share.mean()))
    return torch.tensor(coverage)


# ---- the four figures ---------------------------------------------------------------------
def _figure(title: str) -> tuple[Figure, Any]:
    figure = Figure(figsize=(5.6, 4.6), dpi=_DPI, layout="constrained")
    axes = figure.add_subplot()
    axes.set_title(title, fontsize=11)
    axes.grid(True, alpha=0.3)
    return figure, axes


def _reliability_figure(data: ReportData) -> Figure:
    observed = reliability_curve(data).numpy()
    figure, axes = _figure("Reliability of the central intervals")
    axes.plot([0, 1], [0, 1], color="0.5", linestyle="--", label="perfect calibration")
    if data.raw_params is not None:
        before = reliability_curve(data, raw=True).numpy()
        axes.plot(RELIABILITY_LEVELS, before, marker="o", color="0.6", label="before calibration")
    if data.calibrated_level is None:
        label = "this model" if data.raw_params is None else "after calibration"
        axes.plot(RELIABILITY_LEVELS, observed, marker="o", color="C0", label=label)
    else:  # the calibrated level stands for one nominal level
        used, nominal = data.calibrated_level
        after = float(reliability_curve(data, (used,))[0])
        axes.plot(
            [nominal],
            [after],
            marker="*",
            markersize=14,
            color="C0",
            linestyle="none",
            label=f"after calibration (level {used:.3f} used for {nominal:.2f})",
        )
    axes.set(xlim=(0, 1), ylim=(0, 1), aspect="equal")
    axes.set_xlabel("nominal coverage of the central interval")
    axes.set_ylabel(f"observed coverage ({len(data.target)} rows)")
    axes.legend(loc="lower right", fontsize=9)
    return figure


def _pit_figure(data: ReportData) -> Figure:
    density = pit_histogram(data.family, data.params, data.target, _PIT_BINS) * _PIT_BINS
    # ±2 binomial standard deviations of a bin's density under a calibrated model
    n = len(data.target)
    band = 2.0 * math.sqrt(_PIT_BINS * (1.0 - 1.0 / _PIT_BINS) / max(n, 1))
    suffix = " (non-randomised, for counts)" if data.family.discrete else ""
    figure, axes = _figure(f"PIT histogram{suffix}")
    width = 1.0 / _PIT_BINS
    centres = [width * (i + 0.5) for i in range(_PIT_BINS)]
    axes.bar(centres, density.numpy(), width=width * 0.95, color="C0", label="this model")
    axes.axhspan(1 - band, 1 + band, color="0.6", alpha=0.3, label="calibrated ±2 s.d.")
    axes.axhline(1.0, color="0.3", linestyle="--")
    axes.set_xlim(0, 1)
    axes.set_xlabel("PIT = F(y): predictive CDF at the observed value")
    axes.set_ylabel("density (1 = uniform)")
    figure.legend(loc="outside lower center", ncols=2)
    return figure


def _drawn_rows(n: int) -> Tensor:
    if n <= MAX_DRAWN:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(0))[:MAX_DRAWN].sort().values


def _wide_positive(*values: Tensor) -> bool:
    """Log axes for positive quantities spanning more than two decades."""
    joined = torch.cat([v.flatten() for v in values])
    return bool((joined > 0).all()) and float(joined.max() / joined.min()) > 100.0


def _mean_vs_actual_figure(data: ReportData) -> Figure:
    rows = _drawn_rows(len(data.target))
    actual, mean = data.target[rows], data.mean[rows]
    n = len(data.target)
    figure, axes = _figure(
        f"Predicted mean vs actual ({len(rows)} of {n} rows)"
        if len(rows) < n
        else f"Predicted mean vs actual ({n} rows)"
    )
    if data.family.probabilistic:
        lower, upper = data.interval()
        covered = float(((data.target >= lower) & (data.target <= upper)).double().mean())
        errors = torch.stack([(mean - lower[rows]).clamp_min(0), (upper[rows] - mean).clamp_min(0)])
        axes.errorbar(
            actual.numpy(),
            mean.numpy(),
            yerr=errors.numpy(),
            fmt="o",
            markersize=2.5,
            elinewidth=0.6,
            alpha=0.45,
            color="C0",
            label=f"mean and 90 % interval (holds {covered:.1%} of rows)",
        )
    else:
        axes.plot(actual.numpy(), mean.numpy(), "o", markersize=2.5, alpha=0.5, label="prediction")
    ends = [float(torch.cat([actual, mean]).min()), float(torch.cat([actual, mean]).max())]
    axes.plot(ends, ends, color="0.3", linestyle="--", label="prediction = actual")
    if _wide_positive(actual, mean):
        axes.set(xscale="log", yscale="log")
    axes.set_xlabel(f"actual {data.target_name}")
    axes.set_ylabel(f"predicted mean {data.target_name}")
    axes.legend(loc="upper left")
    return figure


def _width_figure(data: ReportData) -> Figure:
    rows = _drawn_rows(len(data.target))
    lower, upper = data.interval()
    mean, width = data.mean[rows], (upper - lower)[rows]
    figure, axes = _figure("Width of the 90 % interval vs the prediction")
    axes.plot(mean.numpy(), width.numpy(), "o", markersize=2.5, alpha=0.5, color="C1")
    if _wide_positive(mean, width):
        axes.set(xscale="log", yscale="log")
    axes.set_xlabel(f"predicted mean {data.target_name}")
    axes.set_ylabel(f"90 % interval width ({data.target_name} units)")
    return figure


#: name → (figure builder, whether it needs a predictive distribution, caption)
_PLOTS: dict[str, tuple[Callable[[ReportData], Figure], bool, str]] = {
    "reliability": (
        _reliability_figure,
        True,
        "Points on the diagonal: each central interval holds its nominal share of the "
        "rows. Below it the model is overconfident (intervals too narrow), above it too "
        "cautious.",
    ),
    "pit": (
        _pit_figure,
        True,
        "The predictive CDF at the observed value. Flat within the grey band: calibrated. "
        "U-shaped: overconfident; hump in the middle: underconfident; sloped: biased.",
    ),
    "mean_vs_actual": (
        _mean_vs_actual_figure,
        False,
        "Each dot is a row; bars are its 90 % interval. Dots on the dashed line are exact.",
    ),
    "width_vs_prediction": (
        _width_figure,
        True,
        "How the model's uncertainty grows with the prediction: flat for a constant σ, "
        "rising for a scale proportional to the mean.",
    ),
}


_HEADINGS = {
    "reliability": "Reliability diagram",
    "pit": "PIT histogram",
    "mean_vs_actual": "Predicted mean vs actual",
    "width_vs_prediction": "Interval width vs prediction",
}
_METRIC_LABELS = {
    "nll": "NLL (nats per row)",
    "rmse": "RMSE of the mean",
    "mae": "MAE of the mean",
    "crps": "CRPS",
    "picp": "share of rows inside the {} % interval (PICP)",
    "width": "mean width of the {} % interval",
}


def _metric_label(key: str) -> str:
    stem, _, level = key.partition("_")
    return _METRIC_LABELS.get(stem, key).format(level)


def _save_png(figure: Figure, path: Path) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return atomic_write(path, lambda tmp: tmp.write_bytes(buffer.getvalue()))


# ---- report.md --------------------------------------------------------------------------
def _model_line(module: Any) -> str:
    hp = module.hparams
    activation = hp.activation if isinstance(hp.activation, str) else ", ".join(hp.activation)
    params = ", ".join(module.param_names)
    return (
        f"family **{module.family.name}** ({params}), hidden layers {list(hp.hidden)} "
        f"{activation}, {module.in_features} features → `{hp.target_name}`"
    )


def _markdown(
    title: str,
    module: Any,
    source: str,
    metrics: dict[str, float],
    data: ReportData,
    plots: list[str],
) -> str:
    lines = [
        f"# softzoo report: {title}",
        "",
        f"- model: {_model_line(module)}",
        f"- data: {source}, {len(data.target)} rows",
        "",
        "| metric | value |",
        "|---|---:|",
        *(f"| {_metric_label(k)} | {v:.6g} |" for k, v in metrics.items() if k != "loss"),
        "",
        "All in the target's original units, averaged over the rows.",
    ]
    for name in plots:
        lines += ["", f"## {_HEADINGS[name]}", "", f"![{name}]({name}.png)", "", _PLOTS[name][2]]
    if not data.family.probabilistic:
        lines += [
            "",
            f"The `{module.family.name}` family is a point predictor: it has no predictive "
            "distribution, so there is no reliability diagram, PIT histogram or interval.",
        ]
    return "\n".join(lines + _heavy_tail_section(data) + _roles_section(module)) + "\n"


def _heavy_tail_section(data: ReportData) -> list[str]:
    """The rows whose mean is more than HEAVY_TAIL_FACTOR times their median."""
    rows = data.heavy_tail_rows()
    if not len(rows):
        return []
    mean, median = data.mean, data.family.quantile(data.params, 0.5)
    lines = [
        "",
        "## Rows with a heavy right tail",
        "",
        f"{len(rows)} of the {len(data.target)} rows have a predicted mean more than "
        f"{HEAVY_TAIL_FACTOR:g} times their median: most of their predicted mass lies far "
        "below the mean, which a few large values carry. Look at their features (values far "
        "from the training rows?) before using their mean.",
        "",
        f"| row | mean | median | mean / median | actual {data.target_name} |",
        "|---:|---:|---:|---:|---:|",
    ]
    for i in rows[:_LISTED_ROWS].tolist():
        lines.append(
            f"| {i} | {float(mean[i]):.6g} | {float(median[i]):.6g} | "
            f"{float(mean[i] / median[i]):.3g} | {float(data.target[i]):.6g} |"
        )
    if len(rows) > _LISTED_ROWS:
        lines.append(f"| … {len(rows) - _LISTED_ROWS} more | | | | |")
    return lines


def _roles_section(module: Any) -> list[str]:
    """The roles table the model was trained with (models trained on a table)."""
    roles = module.hparams.get("column_roles")
    if not roles:
        return []
    lines = ["", "## Columns", "", "How the training table's columns were used:", ""]
    lines += [
        "| column | role | dtype | categories | missing | missing cells |",
        "|---|---|---|---:|---:|---|",
    ]
    for r in roles:
        count = "" if r.get("n_categories") is None else r["n_categories"]
        lines.append(
            f"| {r['name']} | {r['role']} | {r['dtype']} | {count} | {r['n_missing']} | "
            f"{r['missing']} |"
        )
    exposure, weight = (module.hparams.get(k) for k in ("exposure_column", "weight_column"))
    if exposure:
        lines += ["", f"Exposure: column `{exposure}` multiplies each row's predicted mean."]
    if weight:
        lines += [
            "",
            f"Weights: column `{weight}` weighed the training loss and the validation "
            "metrics; the figures and metrics of this report weigh every row alike.",
        ]
    return lines


def prepare_output(output: str | Path) -> Path:
    """The report folder, created if missing; ``ValueError`` if it is a file."""
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise ValueError(f"report output {str(output)!r} is a file; give a folder for the report")
    output.mkdir(parents=True, exist_ok=True)
    return output


def write_report(
    module: Any,
    x: Tensor,
    y: Tensor,
    output: str | Path,
    title: str | None = None,
    source: str = "the given rows",
) -> dict[str, Path]:
    """Write the PNGs and ``report.md`` for ``module`` on (x, y) into folder ``output``
    (created if missing; each file is written atomically). Returns name → path.

    ``module`` is a :class:`~softzoo.models.SoftRegressor`; x holds raw features, y the
    target in original units.
    """
    output = prepare_output(output)
    module = module.eval()
    data = predict_report_data(module, x, y)
    metrics = module.evaluate(x, y)
    plots = [n for n, (_, needs, _) in _PLOTS.items() if data.family.probabilistic or not needs]
    files = {name: _save_png(_PLOTS[name][0](data), output / f"{name}.png") for name in plots}
    text = _markdown(title or module.family.name, module, source, metrics, data, plots)
    files["report"] = atomic_write(output / "report.md", lambda tmp: tmp.write_text(text))
    return files
