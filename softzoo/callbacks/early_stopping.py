"""Early stopping that hands back the best epoch's weights, not the last epoch's."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import EarlyStopping as _LightningEarlyStopping
from lightning.pytorch.utilities import rank_zero_info

__all__ = ["EarlyStopping"]


class EarlyStopping(_LightningEarlyStopping):
    """Lightning's :class:`~lightning.pytorch.callbacks.EarlyStopping` that, when training
    ends, loads the weights of the run's best checkpoint (the checkpoint callback's
    ``best_model_path``; softzoo's monitors ``val_loss`` too) back into the module, as
    Keras' ``restore_best_weights``: a model used right after ``trainer.fit`` is the best
    epoch's. ``last.ckpt`` keeps the last epoch (it is what a resume needs).

    The epochs of a mean warm-up (``warmup_epochs`` of a :class:`~softzoo.models.SoftRegressor`)
    are not counted: the scale is held then, and the patience starts with the full likelihood.

    The weights come from the checkpoint file, not from a copy in memory, so they are the
    best of the whole run even across a resume. Nothing is restored when the checkpoint
    callback monitors another quantity than this one (the best would not be this one's),
    or when there is no best checkpoint yet.

    Example::

        trainer = lightning.Trainer(
            max_epochs=200, callbacks=[EarlyStopping(monitor="val_loss", patience=20)]
        )
        trainer.fit(model, data)  # model now holds the best epoch's weights
    """

    def __init__(self, *args: Any, restore_best_weights: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.restore_best_weights = restore_best_weights

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not _warming_up(trainer, pl_module):
            super().on_validation_end(trainer, pl_module)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not _warming_up(trainer, pl_module):
            super().on_train_epoch_end(trainer, pl_module)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # after the module's own setup, so that its clearer errors about the data come first
        data = getattr(trainer, "datamodule", None)
        if not self.monitor.startswith("val") or not hasattr(data, "split_indices"):
            return
        if not len(data.split_indices["val"]):
            raise ValueError(
                f"EarlyStopping monitors {self.monitor} of the validation split, and it is "
                "empty: set --data.val_fraction > 0 (or give val rows), or leave the "
                "EarlyStopping callback out of trainer.callbacks"
            )

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        checkpoint = trainer.checkpoint_callback
        if not self.restore_best_weights or checkpoint is None:
            return
        if getattr(checkpoint, "monitor", None) != self.monitor or not checkpoint.best_model_path:
            return
        state = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=True)
        pl_module.load_state_dict(state["state_dict"])
        rank_zero_info(
            f"Restored the best weights ({self.monitor} {float(checkpoint.best_model_score):.6g})"
            f" from {checkpoint.best_model_path}"
        )


def _warming_up(trainer: pl.Trainer, pl_module: pl.LightningModule) -> bool:
    warming_up = getattr(pl_module, "warming_up", None)
    return warming_up is not None and warming_up(trainer.current_epoch)
