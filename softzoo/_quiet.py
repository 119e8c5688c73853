"""Quiet runs: Lightning's notices that do not apply to softzoo runs silenced while one
runs, and :func:`quiet_output` for callers that report results themselves (the estimator,
the tuner). Warnings that matter, and the caller's own filters, are kept.

Example::

    with quiet_output():
        cli = run_cli(["fit", "--config", "run.yaml", *QUIET_RUN])
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator

__all__ = ["quiet_lightning", "quiet_output"]


#: Lightning notices that do not apply to softzoo runs, silenced only while one runs.
_LIGHTNING_NOTICES = (
    # run_cli passes args on purpose, also from scripts that have their own sys.argv.
    "LightningCLI's args parameter is intended",
    # softzoo logs per epoch, and its Lightning steps each carry up to BATCHES_PER_STEP (64)
    # batches: the advice to lower log_every_n_steps for short epochs does not apply.
    "The number of training batches .* logging interval",
    # PredictionCSVWriter relies on the predict loader's fixed order, not on batch indices.
    "Couldn't infer the batch indices",
    # `test --ckpt_path` of a fit's checkpoint: its folder differs from the test run's by
    # design; the best model path, all a test needs, is reloaded.
    "The dirpath has changed from",
    # test/predict of a run stopped early by the recipe: its EarlyStopping has nothing to
    # restore when no training follows
    "Be aware that when using `ckpt_path`, callbacks used to create the checkpoint",
    # torch's own deprecation inside Lightning's pytree helper, not the user's to fix
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
)

#: Lightning's log lines that are no news to a softzoo user: an advertisement, and the
#: loader built early for the cosine schedule's step count.
_LIGHTNING_LOG_NOISE = ("💡 Tip:", "Loading `train_dataloader` to estimate number of stepping")


class _DropLightningNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(_LIGHTNING_LOG_NOISE)


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Silence the notices of _LIGHTNING_NOTICES and _LIGHTNING_LOG_NOISE while a run runs;
    warnings that matter (and the caller's own filters) are untouched."""
    noise = _DropLightningNoise()
    loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric")]
    handlers = [h for lg in loggers for h in lg.handlers]
    with warnings.catch_warnings():
        for message in _LIGHTNING_NOTICES:
            warnings.filterwarnings("ignore", message=message)
        for handler in handlers:
            handler.addFilter(noise)
        try:
            yield
        finally:
            for handler in handlers:
                handler.removeFilter(noise)


@contextlib.contextmanager
def quiet_output(quiet: bool = True) -> Iterator[None]:
    """No roles table, Lightning notice, banner or other output of a run while ``quiet``
    (for callers that report results themselves: the estimator, the tuner); warnings are
    shown once the run is over (the captured stream would swallow them).

    Example::

        with quiet_output():
            cli = run_cli(["fit", "--config", "run.yaml", *QUIET_RUN])
    """
    if not quiet:
        yield
        return
    loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric")]
    levels = [lg.level for lg in loggers]
    sink = io.StringIO()
    try:
        for lg in loggers:
            lg.setLevel(logging.WARNING)
        with (
            warnings.catch_warnings(record=True) as caught,
            contextlib.redirect_stderr(sink),
            contextlib.redirect_stdout(sink),
        ):
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
    for warning in caught:
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
