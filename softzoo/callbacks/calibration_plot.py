"""CalibrationPlot: the ``softzoo report`` plots and report.md at the end of testing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback

from softzoo.report import write_report

__all__ = ["CalibrationPlot"]


class CalibrationPlot(Callback):
    """Collect the test rows during ``trainer.test`` and write the reliability diagram, PIT
    histogram, mean-vs-actual and width plots and ``report.md`` into ``output`` (rank 0,
    after gathering every process's rows).

    Example:
        ``Trainer(callbacks=[CalibrationPlot("runs/report")])``; in a config,
        ``trainer.callbacks: [{class_path: softzoo.callbacks.CalibrationPlot,
        init_args: {output: runs/report}}]``
    """

    def __init__(self, output: str | Path = "report", title: str | None = None) -> None:
        self.output, self.title = Path(output), title
        self._rows: list[tuple[torch.Tensor, torch.Tensor]] = []

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._rows = []

    def on_test_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._rows.append((batch[0].detach().cpu(), batch[1].detach().cpu()))

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        rows = self._rows
        if trainer.world_size > 1:
            gathered: list[Any] = [None] * trainer.world_size
            torch.distributed.all_gather_object(gathered, rows)
            rows = [r for part in gathered for r in part]
        self._rows = []
        if not trainer.is_global_zero or not rows:
            return
        x, y = (torch.cat(parts) for parts in zip(*rows, strict=True))
        write_report(
            pl_module,
            x.to(pl_module.device),
            y.to(pl_module.device),
            self.output,
            title=self.title,
            source="the test split of `trainer.test`",
        )
