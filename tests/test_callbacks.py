"""DeadUnitMonitor (exact fractions on hand-set weights) and the progress output."""

from __future__ import annotations

import io
import logging
import re
import sys

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar

from softzoo.callbacks import (
    DeadUnitMonitor,
    PlainProgressBar,
    activation_slope,
    default_progress_bar,
)
from softzoo.cli import main
from softzoo.data import SyntheticDataModule
from softzoo.models import SoftRegressor
from softzoo.runner import run_cli


def test_activation_slope_is_the_exact_derivative() -> None:
    z = torch.tensor([-1.0, 0.0, 2.0])
    assert activation_slope(torch.nn.ReLU(), z).tolist() == [0.0, 0.0, 1.0]
    softplus = torch.nn.Softplus(beta=2.0, threshold=20.0)
    assert torch.allclose(activation_slope(softplus, z), torch.sigmoid(2 * z))
    assert activation_slope(softplus, torch.tensor([11.0])).item() == 1.0  # beyond threshold
    with torch.inference_mode():  # as in validation
        inference = torch.zeros(3)
    assert activation_slope(torch.nn.Softplus(), inference).tolist() == [0.5] * 3


@pytest.fixture
def validate(quiet_trainer):
    """Validation metrics of a model on synthetic data with a DeadUnitMonitor attached."""

    def run(model: SoftRegressor, monitor: DeadUnitMonitor) -> dict[str, float]:
        trainer = quiet_trainer(callbacks=[monitor])
        data = SyntheticDataModule(n=200, n_features=2)
        (metrics,) = trainer.validate(model, data, verbose=False)
        return metrics

    return run


def _set_layer_bias(model: SoftRegressor, bias: list[float], layer: int = 0) -> None:
    linear = [m for m in model.body.net if isinstance(m, torch.nn.Linear)][layer]
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.copy_(torch.tensor(bias))


def test_dead_relu_units_are_counted_exactly(validate) -> None:
    model = SoftRegressor(2, hidden=[4, 2], activation="relu")
    _set_layer_bias(model, [-1.0, -1.0, -1.0, 1.0])  # 3 of 4 never positive
    _set_layer_bias(model, [-1.0, 1.0], layer=1)  # 1 of 2 never positive
    metrics = validate(model, DeadUnitMonitor())
    assert metrics["dead_units/layer_1"] == 0.75
    assert metrics["dead_units/layer_2"] == 0.5
    assert metrics["dead_units/all"] == pytest.approx((3 + 1) / 6)
    assert not model.body.net[1]._forward_hooks  # hooks removed after the epoch


def test_softplus_units_die_only_below_eps(validate) -> None:
    model = SoftRegressor(2, hidden=[4], activation="softplus")
    # sigmoid(-20) = 2e-9 < 1e-4: dead; sigmoid(-5) = 6.7e-3: alive
    _set_layer_bias(model, [-20.0, -20.0, -5.0, 0.0])
    assert validate(model, DeadUnitMonitor(eps=1e-4))["dead_units/layer_1"] == 0.5
    assert validate(model, DeadUnitMonitor(eps=1e-2))["dead_units/layer_1"] == 0.75


def test_dead_unit_monitor_errors() -> None:
    with pytest.raises(ValueError, match=r"eps must lie in \(0, 1\), got 0"):
        DeadUnitMonitor(eps=0)

    class Plain(pl.LightningModule):
        def validation_step(self, batch, batch_idx):
            return None

    with pytest.raises(ValueError, match=r"needs a model whose body is a softzoo\.nn\.MLP; Plain"):
        DeadUnitMonitor().on_validation_epoch_start(
            type("T", (), {"sanity_checking": False})(), Plain()
        )


def test_default_progress_bar_follows_the_terminal(monkeypatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    assert isinstance(default_progress_bar(), RichProgressBar)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert isinstance(default_progress_bar(), PlainProgressBar)


def test_fit_without_a_terminal_logs_one_plain_line_per_epoch(yacht_fit, caplog) -> None:
    with caplog.at_level(logging.INFO):
        assert main(["fit", *yacht_fit()]) == 0
    lines = [m for m in caplog.messages if re.search(r"epoch \d/2 \(", m)]
    assert [re.search(r"epoch \d/2", line)[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    assert all("train_loss " in line and "val_nll " in line for line in lines)
    assert not any("\r" in line for line in lines)


def test_the_configs_progress_bar_choice_is_kept(yacht_fit, tmp_path) -> None:
    quiet = run_cli(["fit", *yacht_fit("--trainer.enable_progress_bar", "false")])
    assert quiet.trainer.progress_bar_callback is None
    bar = ["--trainer.callbacks", "lightning.pytorch.callbacks.TQDMProgressBar"]
    cli = run_cli(["fit", *yacht_fit(*bar, "--checkpoint.dirpath", str(tmp_path / "second"))])
    assert isinstance(cli.trainer.progress_bar_callback, TQDMProgressBar)
    bars = [c for c in cli.trainer.callbacks if isinstance(c, (TQDMProgressBar, PlainProgressBar))]
    assert len(bars) == 1
