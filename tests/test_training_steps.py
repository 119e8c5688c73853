"""softzoo fit's optimiser steps: Lightning's manual_backward and optimizer.step, or, where
nothing they add is in use, the direct torch calls — with bit-identical weights."""

import copy

import pytest
import torch
from conftest import make_quiet_trainer
from lightning.pytorch import Callback

from softzoo.data import SyntheticDataModule
from softzoo.data.loader import move_batch
from softzoo.models import SoftRegressor


class _AfterBackward(Callback):
    """A callback with a hook around the backward pass: Lightning's path must run it."""

    def __init__(self) -> None:
        self.calls = 0

    def on_after_backward(self, trainer, module) -> None:
        self.calls += 1


def _fit(callbacks=(), clip=1.0, **trainer_options) -> tuple[SoftRegressor, object]:
    torch.manual_seed(0)
    model = SoftRegressor(1, hidden=[16, 16], warmup_epochs=1, gradient_clip_val=clip)
    data = SyntheticDataModule(n=600, batch_size=32, batches_per_step=4)
    trainer = make_quiet_trainer(max_epochs=3, callbacks=list(callbacks), **trainer_options)
    trainer.fit(model, data)
    return model, trainer


def test_direct_steps_give_bit_identical_weights_and_the_same_step_count() -> None:
    direct, direct_trainer = _fit()
    hook = _AfterBackward()
    lightning_path, lightning_trainer = _fit([hook])
    assert direct._direct_steps and not lightning_path._direct_steps
    assert hook.calls == lightning_trainer.global_step == direct_trainer.global_step > 0
    for name, value in direct.state_dict().items():
        assert torch.equal(value, lightning_path.state_dict()[name]), name


@pytest.mark.parametrize(
    "options",
    [{"precision": "bf16-mixed"}, {"profiler": "simple"}],
)
def test_lightning_path_where_precision_or_profiling_needs_it(options) -> None:
    model, trainer = _fit(clip=None, **options)  # AMP refuses to clip with fused Adam
    assert not model._direct_steps
    assert trainer.global_step > 0


def test_gradient_clipping_under_mixed_precision_takes_the_plain_optimiser() -> None:
    _, trainer = _fit(clip=1.0, precision="bf16-mixed")
    assert trainer.global_step > 0
    assert not trainer.optimizers[0].defaults["fused"]
    _, plain_trainer = _fit(clip=1.0)
    assert plain_trainer.optimizers[0].defaults["fused"]


def test_max_steps_counts_direct_steps() -> None:
    model, trainer = _fit(max_steps=20)  # past the 14 steps of the one warm-up epoch
    assert model._direct_steps and trainer.global_step == 20


def test_batches_move_as_they_came_and_other_batches_go_to_lightning() -> None:
    data = SyntheticDataModule(n=64)
    x, y, w = torch.zeros(4, 1), torch.ones(4), torch.full((4,), 2.0)
    cpu = torch.device("cpu")
    pair = data.transfer_batch_to_device((x, y), cpu, 0)
    assert isinstance(pair, tuple) and pair[0] is x and pair[1] is y
    weighted = data.transfer_batch_to_device((x, y, w), cpu, 0)
    assert isinstance(weighted, tuple) and weighted[2] is w  # the weighted batch's own path
    grouped = data.transfer_batch_to_device([(x, y), (x, y)], cpu, 0)
    assert len(grouped) == 2 and all(b[0] is x and b[1] is y for b in grouped)
    assert data.transfer_batch_to_device([(x, y, w)] * 2, cpu, 0)[1][2] is w
    assert data.transfer_batch_to_device({"x": x}, cpu, 0)["x"] is x
    assert data.transfer_batch_to_device(x, cpu, 0) is x
    assert move_batch((x, y, w, w), cpu) is None  # no softzoo batch: Lightning's walk


def _fit_compiled(**options) -> SoftRegressor:
    torch.manual_seed(0)
    model = SoftRegressor(1, hidden=[16, 16], warmup_epochs=1, compile=True, **options)
    data = SyntheticDataModule(n=600, batch_size=32, batches_per_step=4)
    make_quiet_trainer(max_epochs=3).fit(model, data)
    return model


def test_compile_falls_back_to_eager_with_one_line(monkeypatch, caplog) -> None:
    def broken(fn):
        def call(*args):
            raise RuntimeError("no C++ compiler\nmore detail")

        return call

    monkeypatch.setattr(torch, "compile", broken)
    compiled = _fit_compiled()
    eager, _ = _fit(clip=None)
    lines = [r.getMessage() for r in caplog.records if "torch.compile" in r.getMessage()]
    assert lines == [
        "softzoo: torch.compile does not work here for the training loss (RuntimeError: no C++ "
        "compiler); running it eagerly",
        "softzoo: torch.compile does not work here for the evaluation forward (RuntimeError: no "
        "C++ compiler); running it eagerly",
    ]
    for name, value in eager.state_dict().items():
        assert torch.equal(value, compiled.state_dict()[name]), name
    copy.deepcopy(compiled)  # nothing compiled is left on the module


@pytest.mark.slow
def test_compiled_training_matches_eager_training() -> None:
    compiled = _fit_compiled()
    eager, _ = _fit(clip=None)
    for name, value in eager.state_dict().items():
        torch.testing.assert_close(compiled.state_dict()[name], value, rtol=1e-3, atol=1e-4)
