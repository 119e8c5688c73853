"""Each private Lightning call of softzoo._lightning, on the installed Lightning: a failure
here names the call that moved (then fix softzoo._lightning and narrow pyproject.toml's
lightning range to the versions this file passes on)."""

import inspect

from conftest import make_quiet_trainer
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.trainer.states import TrainerFn

from softzoo import _lightning
from softzoo.data import SyntheticDataModule
from softzoo.models import SoftRegressor


def test_parse_ckpt_path_resolves_a_file_as_lightning_will(tmp_path) -> None:
    trainer = make_quiet_trainer(max_epochs=1)
    path = tmp_path / "model.ckpt"
    path.write_bytes(b"")
    resolved = _lightning.resolve_checkpoint_path(trainer, TrainerFn.TESTING, str(path))
    assert str(resolved) == str(path), "Trainer._checkpoint_connector._parse_ckpt_path moved"
    assert _lightning.resolve_checkpoint_path(trainer, TrainerFn.FITTING, None) is None


def test_step_hooks_count_the_global_step() -> None:
    model = SoftRegressor(1, hidden=[4])
    trainer = make_quiet_trainer(max_epochs=1, max_steps=3)
    trainer.fit(model, SyntheticDataModule(n=200, batch_size=20, batches_per_step=2))
    assert model._direct_steps, "the direct path (softzoo._lightning.step_counted) was not taken"
    assert trainer.global_step == 3, "LightningOptimizer._on_before_step/_on_after_step moved"
    lightning_optimizer = trainer.strategy._lightning_optimizers[0]
    for hook in ("_on_before_step", "_on_after_step"):
        assert callable(getattr(lightning_optimizer, hook, None)), (
            f"LightningOptimizer.{hook} moved"
        )


def test_attached_trainer_is_the_module_trainer_or_none() -> None:
    model = SoftRegressor(1, hidden=[4])
    assert _lightning.attached_trainer(model) is None
    trainer = make_quiet_trainer(max_epochs=1, max_steps=1)
    trainer.fit(model, SyntheticDataModule(n=100, batch_size=20))
    assert _lightning.attached_trainer(model) is trainer, "LightningModule._trainer moved"


def test_lightning_cli_calls_the_checkpoint_hook_and_has_parser_and_get() -> None:
    source = inspect.getsource(LightningCLI.__init__)
    assert "self._parse_ckpt_path()" in source, "LightningCLI no longer calls _parse_ckpt_path"
    for name in ("_parser", "_get"):
        assert callable(getattr(LightningCLI, name, None)), f"LightningCLI.{name} moved"
    assert inspect.signature(LightningCLI._get).parameters.keys() >= {"config", "key"}


def test_last_ckpt_is_the_last_epoch_not_the_best(tmp_path) -> None:
    """``save_last=True`` writes last.ckpt after every epoch; Lightning's own class writes it
    only with a new best, which ``mode="max"`` on a falling val_loss never is after epoch 0."""
    import torch

    checkpoint = _lightning.LastEveryEpochCheckpoint(
        dirpath=tmp_path, filename="best", monitor="val_loss", mode="max", save_last=True
    )
    trainer = make_quiet_trainer(
        max_epochs=3, enable_checkpointing=True, callbacks=[checkpoint], num_sanity_val_steps=0
    )
    trainer.fit(SoftRegressor(1, hidden=[4], lr=1e-2), SyntheticDataModule(n=300, batch_size=20))
    epoch = {name: torch.load(tmp_path / f"{name}.ckpt")["epoch"] for name in ("best", "last")}
    assert epoch["last"] == 2, "ModelCheckpoint's private save-last calls moved"
    assert epoch["best"] < 2  # the run's last epoch was not its best
