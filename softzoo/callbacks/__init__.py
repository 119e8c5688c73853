"""Lightning callbacks and plugins of softzoo."""

from softzoo.callbacks.calibration_plot import CalibrationPlot
from softzoo.callbacks.checkpoint_io import AtomicCheckpointIO
from softzoo.callbacks.ctrl_c import StopOnCtrlC
from softzoo.callbacks.dead_units import DeadUnitMonitor, activation_slope
from softzoo.callbacks.early_stopping import EarlyStopping
from softzoo.callbacks.prediction_writer import PredictionCSVWriter
from softzoo.callbacks.progress import PlainProgressBar, default_progress_bar
from softzoo.callbacks.run_files import RunConfigSaver, RunLock, check_checkpoint_folder
from softzoo.callbacks.time_budget import TimeBudget, budget_seconds

__all__ = [
    "AtomicCheckpointIO",
    "CalibrationPlot",
    "DeadUnitMonitor",
    "EarlyStopping",
    "PlainProgressBar",
    "PredictionCSVWriter",
    "RunConfigSaver",
    "RunLock",
    "StopOnCtrlC",
    "TimeBudget",
    "activation_slope",
    "budget_seconds",
    "check_checkpoint_folder",
    "default_progress_bar",
]
