"""Progress for interactive and for logged runs: a Rich bar on a terminal, one plain line
per epoch otherwise (CI logs, ``nohup``, files)."""

from __future__ import annotations

import sys
import time

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ProgressBar, RichProgressBar
from lightning.pytorch.utilities import rank_zero_info

__all__ = ["PlainProgressBar", "default_progress_bar"]


class PlainProgressBar(ProgressBar):
    """One line per training epoch with the epoch's logged train/val metrics, e.g.
    ``epoch 3/100  train_loss 0.4121  val_loss 0.4550  val_nll 3.1031  (0.8 s)``, and one
    line at the end of validate/test. No carriage returns, so logs stay readable.

    Example:
        ``Trainer(callbacks=[PlainProgressBar()])``
    """

    def __init__(self) -> None:
        super().__init__()
        self._enabled = True
        self._epoch_start = time.perf_counter()
        self._pending = ""

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def _line(self, text: str, trainer: pl.Trainer, prefixes: tuple[str, ...]) -> None:
        if not self._enabled:
            return
        metrics = {
            k: float(v)
            for k, v in sorted(trainer.callback_metrics.items())
            if k.startswith(prefixes) and v.numel() == 1
        }
        cells = "  ".join(f"{k} {v:.4g}" for k, v in metrics.items())
        rank_zero_info(f"{text}  {cells}".rstrip())

    # The line for an epoch is printed when the next one starts (or training ends): callbacks'
    # on_train_epoch_end runs before the module's, where the epoch's train_loss is logged.
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._flush_epoch(trainer)
        self._epoch_start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        total = "" if trainer.max_epochs in (None, -1) else f"/{trainer.max_epochs}"
        seconds = time.perf_counter() - self._epoch_start
        self._pending = f"epoch {trainer.current_epoch + 1}{total} ({seconds:.1f} s)"

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._flush_epoch(trainer)

    def _flush_epoch(self, trainer: pl.Trainer) -> None:
        if self._pending:
            self._line(self._pending, trainer, ("train_", "val_", "dead_units"))
        self._pending = ""

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == "validate":
            self._line("validated", trainer, ("val_",))

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._line("tested", trainer, ("test_",))


def default_progress_bar() -> ProgressBar:
    """A :class:`RichProgressBar` when stderr is a terminal, else a :class:`PlainProgressBar`."""
    return RichProgressBar() if sys.stderr.isatty() else PlainProgressBar()
