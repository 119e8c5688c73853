"""Ctrl-C stops a fit even where Python swallowed its ``KeyboardInterrupt``."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import lightning.pytorch as pl

__all__ = ["StopOnCtrlC"]


class StopOnCtrlC(pl.Callback):
    """Ctrl-C raises ``KeyboardInterrupt`` at once, as Python's own handler does, and again
    at the next batch or epoch end: an interrupt raised while Python runs a finaliser
    (``__del__``, a generator's close) is only reported ("Exception ignored", into the
    estimator's captured output), and the fit would run on. Lightning then shuts the run
    down as for any Ctrl-C.

    Example::

        stop = StopOnCtrlC()
        with stop.installed():
            trainer = pl.Trainer(callbacks=[stop])
    """

    def __init__(self) -> None:
        self.pressed = False

    @contextmanager
    def installed(self) -> Iterator[None]:
        """This handler for SIGINT while inside, where Python's own is in place (a caller
        that ignores SIGINT or handles it itself keeps its own)."""
        own = threading.current_thread() is threading.main_thread()
        if not own or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            yield
            return
        signal.signal(signal.SIGINT, self._handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)

    def _handler(self, signum: int, frame: Any) -> None:
        self.pressed = True
        raise KeyboardInterrupt

    def _stop_if_pressed(self, *_: Any) -> None:
        if self.pressed:
            raise KeyboardInterrupt

    on_train_batch_end = _stop_if_pressed
    on_validation_batch_end = _stop_if_pressed
    on_train_epoch_end = _stop_if_pressed
