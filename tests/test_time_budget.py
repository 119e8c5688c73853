"""A run planned for ``--trainer.max_time``: the epochs that fit become the run's, the
cosine schedule ends with them, the recipe's patience follows, and the best epoch's
weights come back."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import make_quiet_trainer

from softzoo.callbacks import EarlyStopping, TimeBudget, budget_seconds
from softzoo.data import SyntheticDataModule
from softzoo.models import SoftRegressor


class _Clock:
    """Ten seconds per epoch: advanced by the test's callback at each epoch's end."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _Tick(TimeBudget):
    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.clock.now += 10.0
        super().on_train_epoch_end(trainer, pl_module)


def _fit(seconds: float, max_epochs: int = 40) -> tuple[SoftRegressor, object, TimeBudget]:
    torch.manual_seed(0)
    model = SoftRegressor(1, hidden=[8], scheduler="cosine")
    data = SyntheticDataModule(n=400, batch_size=32, batches_per_step=4)
    budget = _Tick(seconds, clock=_Clock())
    stopping = EarlyStopping(monitor="val_loss", patience=max_epochs // 4)
    trainer = make_quiet_trainer(max_epochs=max_epochs, callbacks=[budget, stopping])
    trainer.fit(model, data)
    return model, trainer, budget


def test_the_epochs_and_the_schedule_follow_the_time_given() -> None:
    _, trainer, budget = _fit(seconds=100.0)  # 10 s an epoch: 9 fit within 90 %
    assert budget.planned == 9 and trainer.current_epoch == 9
    scheduler = trainer.lr_scheduler_configs[0].scheduler
    per_epoch = trainer.train_dataloader.num_batches
    assert scheduler.T_max == 9 * per_epoch
    assert scheduler.last_epoch == 9 * per_epoch  # the schedule ran to its end
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    assert trainer.early_stopping_callbacks[0].patience == 2  # a quarter of the plan


def test_a_budget_longer_than_the_run_changes_nothing() -> None:
    _, trainer, budget = _fit(seconds=1e6, max_epochs=6)
    assert budget.planned is None and trainer.current_epoch == 6
    assert (
        trainer.lr_scheduler_configs[0].scheduler.T_max == 6 * trainer.train_dataloader.num_batches
    )


def test_max_time_on_the_command_line_plans_the_run(tmp_path: Path) -> None:
    """The CLI adds the plan for --trainer.max_time; the best epoch's weights come back."""
    from softzoo.runner import QUIET_RUN, fit_in_process

    rows = "a,y\n" + "".join(f"{i % 17},{1 + (i * 7) % 11}\n" for i in range(300))
    (tmp_path / "d.csv").write_text(rows)
    args = ["--data.path", str(tmp_path / "d.csv"), "--data.target", "y"]
    args += ["--trainer.max_time", "00:00:00:02", *QUIET_RUN]
    result = fit_in_process(None, tmp_path / "run", args=args)
    budgets = [c for c in result.trainer.callbacks if isinstance(c, TimeBudget)]
    assert len(budgets) == 1 and budgets[0].seconds == 2.0
    assert result.trainer.current_epoch < 200  # the recipe's 200 epochs did not fit in 2 s


@pytest.mark.parametrize(
    ("given", "seconds"),
    [("00:01:00:00", 3600.0), ({"minutes": 1, "seconds": 30}, 90.0), (None, None)],
)
def test_max_time_in_every_form_lightning_takes(given, seconds) -> None:
    assert budget_seconds(given) == seconds
