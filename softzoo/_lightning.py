"""Every use of Lightning's private API in softzoo, in one place.

Lightning may change any of these in a minor release; ``tests/test_lightning_private.py``
calls each one on the installed Lightning and fails with its name when one moved, and
``pyproject.toml``'s ``lightning`` range admits only the versions that test passes on.

- ``Trainer._checkpoint_connector._parse_ckpt_path``: resolve ``--ckpt_path`` (a path or
  "last"/"best"/"hpc") exactly as Lightning will, so softzoo can check the file first.
- ``LightningOptimizer._on_before_step`` / ``_on_after_step``: the manual loop's step
  count (``global_step``), kept when softzoo steps the torch optimiser directly.
- ``LightningModule._trainer``: the Trainer a module is attached to, or None (the public
  ``trainer`` property raises when there is none).
- ``LightningCLI._parse_ckpt_path`` (overridden), ``_parser`` and ``_get``: the CLI's
  checkpoint options, a subcommand's parser and a section of its config.
- ``ModelCheckpoint._should_save_on_train_epoch_end``, ``_should_skip_saving_checkpoint``,
  ``_monitor_candidates``, ``_save_last_checkpoint`` and ``_every_n_epochs``: ``last.ckpt``
  after every epoch (:class:`LastEveryEpochCheckpoint`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI

__all__ = [
    "CheckpointAwareCLI",
    "LastEveryEpochCheckpoint",
    "attached_trainer",
    "resolve_checkpoint_path",
    "step_counted",
]


def resolve_checkpoint_path(trainer: pl.Trainer, state_fn: Any, ckpt_path: str | None) -> Any:
    """The file Lightning will load for ``ckpt_path`` in a run of ``state_fn`` (a
    ``TrainerFn``), or None."""
    return trainer._checkpoint_connector._parse_ckpt_path(
        state_fn, ckpt_path, model_provided=True, model_connected=True
    )


def step_counted(optimizer: Any, step: Callable[[], Any]) -> None:
    """Run ``step`` (the torch optimiser's own) inside the hooks a ``LightningOptimizer``
    runs around its step under manual optimisation: they count ``global_step``."""
    optimizer._on_before_step()
    step()
    optimizer._on_after_step()


def attached_trainer(module: pl.LightningModule) -> pl.Trainer | None:
    """The Trainer ``module`` is attached to, or None."""
    return module._trainer


class CheckpointAwareCLI(LightningCLI):
    """LightningCLI whose checkpoint-option hook is :meth:`check_checkpoint_options` (a
    subclass implements it), with public names for the parser and config look-ups."""

    def _parse_ckpt_path(self) -> None:
        self.check_checkpoint_options()

    def check_checkpoint_options(self) -> None:
        """Called once the config is parsed, before anything is instantiated."""

    def subcommand_parser(self, subcommand: str | None) -> Any:
        return self._parser(subcommand)

    def config_section(self, config: Any, key: str) -> Any:
        """``config``'s ``key`` section under the running subcommand."""
        return self._get(config, key)


class LastEveryEpochCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` whose ``save_last=True`` writes ``last.ckpt`` after
    every epoch (every ``every_n_epochs``), as its name says. Lightning 2.6 writes it only
    when a top-k checkpoint is saved, so with ``save_top_k=1`` on ``val_loss`` it was the
    best epoch's copy, and ``--ckpt_path last`` redid every epoch since the best."""

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_due(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_due(trainer)

    def _save_last_if_due(self, trainer: pl.Trainer) -> None:
        every = self._every_n_epochs
        due = every >= 1 and (trainer.current_epoch + 1) % every == 0
        if self.save_last is True and due and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
