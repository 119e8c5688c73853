"""Lightning callbacks of softzoo."""

from softzoo.callbacks.prediction_writer import PredictionCSVWriter

__all__ = ["PredictionCSVWriter"]
