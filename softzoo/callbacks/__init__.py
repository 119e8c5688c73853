"""Lightning callbacks and plugins of softzoo."""

from softzoo.callbacks.checkpoint_io import AtomicCheckpointIO
from softzoo.callbacks.prediction_writer import PredictionCSVWriter

__all__ = ["AtomicCheckpointIO", "PredictionCSVWriter"]
