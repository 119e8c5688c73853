"""A run planned for the time it is given (``--trainer.max_time``): after the first epochs,
the epochs that fit in the time left become the run's, the cosine schedule ends with them
and early stopping's patience follows; the best epoch's weights are handed back as in any
run (softzoo's EarlyStopping)."""

from __future__ import annotations

import datetime
import math
import time
from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_info
from torch.optim.lr_scheduler import CosineAnnealingLR

__all__ = ["TimeBudget", "budget_seconds"]

#: The share of the budget a plan fills: the rest absorbs an epoch slower than the first
#: ones (and the test of the best epoch's weights that usually follows).
_MARGIN = 0.9
#: Epochs timed before the plan is made (the first one also pays for warming caches).
_TIMED_EPOCHS = 2


def budget_seconds(max_time: Any) -> float | None:
    """Lightning's ``max_time`` (``"DD:HH:MM:SS"``, a dict of timedelta fields, or a
    timedelta) in seconds; None where it is not set.

    Example:
        >>> budget_seconds("00:00:01:30"), budget_seconds({"minutes": 2}), budget_seconds(None)
        (90.0, 120.0, None)
    """
    if max_time is None:
        return None
    if isinstance(max_time, datetime.timedelta):
        return max_time.total_seconds()
    if isinstance(max_time, dict):
        return datetime.timedelta(**max_time).total_seconds()
    days, hours, minutes, seconds = (int(part) for part in str(max_time).split(":"))
    return datetime.timedelta(days, seconds, 0, 0, minutes, hours).total_seconds()


class TimeBudget(pl.Callback):
    """Plan the run for ``seconds``: after each of the first two epochs (training and
    validation), the epochs that fit in the time left (at the pace so far, within 90 % of
    the budget) become the Trainer's ``max_epochs`` (never more than it had), a cosine
    schedule is rescaled to end at that epoch's last optimiser step, and, with
    ``recipe_patience``, early stopping's patience becomes a quarter of the plan (the
    recipe's rule). ``clock``: seconds, monotonic (tests pass their own). Lightning's own
    timer still stops a run that overruns; the plan makes the run end on its schedule,
    with the learning rate annealed, rather than cut mid-way.

    Example::

        trainer = Trainer(max_epochs=100, max_time="00:00:01:00",
                          callbacks=[TimeBudget(60.0), EarlyStopping(...)])
    """

    def __init__(
        self,
        seconds: float,
        recipe_patience: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not seconds > 0:
            raise ValueError(f"max_time must be a duration > 0, got {seconds} seconds")
        self.seconds, self.recipe_patience, self.clock = float(seconds), recipe_patience, clock
        self.start: float | None = None
        self.planned: int | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start = self.clock()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        done = trainer.current_epoch + 1
        if done > _TIMED_EPOCHS or self.start is None:
            return
        elapsed = self.clock() - self.start
        fit = math.floor(_MARGIN * self.seconds / max(elapsed / done, 1e-9))
        planned = max(done + 1, min(fit, trainer.max_epochs))
        if planned >= trainer.max_epochs:
            return
        self.planned = planned
        trainer.fit_loop.max_epochs = planned
        # a cosine schedule counts optimiser steps: one per batch (softzoo's loaders say
        # how many an epoch has; a Lightning step may carry several)
        per_epoch = getattr(trainer.train_dataloader, "num_batches", trainer.num_training_batches)
        for config in trainer.lr_scheduler_configs:
            if isinstance(config.scheduler, CosineAnnealingLR):
                config.scheduler.T_max = planned * int(per_epoch)
        if self.recipe_patience:
            for callback in trainer.early_stopping_callbacks:
                callback.patience = max(1, planned // 4)
        rank_zero_info(
            f"softzoo: {self.seconds:g} s at {elapsed / done:.2f} s per epoch: the run is "
            f"planned for {planned} epochs (--trainer.max_time)"
        )
