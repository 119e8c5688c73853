"""Write ``predict_step`` outputs to one CSV file, atomically, at the end of predicting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pandas as pd
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from softzoo._io import atomic_write, check_writable

__all__ = ["PredictionCSVWriter"]


class PredictionCSVWriter(BasePredictionWriter):
    """One row per input, one column per predicted quantity (parameters, mean, interval;
    an ensemble's member parameters as ``loc_0``, ``loc_1``, …).

    Example:
        ``trainer = Trainer(callbacks=[PredictionCSVWriter("predictions.csv")])``
    """

    def __init__(self, output: str | Path) -> None:
        super().__init__(write_interval="epoch")
        self.output = check_writable(output)

    def write_on_epoch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        predictions: Any,
        batch_indices: Any,
    ) -> None:
        if trainer.world_size > 1:
            raise ValueError("softzoo predict writes one CSV: run it with --trainer.devices 1")
        batches = (
            predictions[0] if predictions and isinstance(predictions[0], list) else predictions
        )
        columns = {}
        for key in batches[0]:
            values = torch.cat([b[key] for b in batches]).double().cpu().numpy()
            if values.ndim == 2:  # an ensemble's member parameters: one column per member
                name = key.removeprefix("member_")
                columns |= {f"{name}_{m}": values[:, m] for m in range(values.shape[1])}
            else:
                columns[key] = values
        frame = pd.DataFrame(columns)
        atomic_write(self.output, lambda tmp: frame.to_csv(tmp, index=False, float_format="%.9g"))
