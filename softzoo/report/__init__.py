"""Calibration and prediction plots and a ``report.md`` for a trained model (``softzoo
report``, :class:`softzoo.callbacks.CalibrationPlot`); see :mod:`softzoo.report.plots`."""

from softzoo.report.plots import (
    RELIABILITY_LEVELS,
    ReportData,
    predict_report_data,
    prepare_output,
    reliability_curve,
    write_report,
)

__all__ = [
    "RELIABILITY_LEVELS",
    "ReportData",
    "predict_report_data",
    "prepare_output",
    "reliability_curve",
    "write_report",
]
