"""How fitting runs fast: the optimiser step without Lightning's hooks where none is in
use, and ``torch.compile`` with an eager fallback (batches are moved tensor by tensor by
the data module: :func:`softzoo.data.loader.move_batch`). The
private Lightning calls this needs are in :mod:`softzoo._lightning`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor

from softzoo._lightning import step_counted

__all__ = [
    "OPTIMIZERS",
    "CompiledOrEager",
    "direct_steps_possible",
    "make_optimizer",
    "make_scheduler",
    "step_functions",
    "total_optimizer_steps",
]

#: The optimisers a model takes, by name (each with its fused kernel on CPU and CUDA).
OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}

#: The hooks Lightning runs around a manual backward pass and optimiser step.
_STEP_HOOKS = ("on_before_backward", "on_after_backward", "on_before_optimizer_step")


def direct_steps_possible(trainer: pl.Trainer, module: pl.LightningModule) -> bool:
    """Whether ``manual_backward`` and ``LightningOptimizer.step`` would do nothing but
    ``loss.backward()`` and ``optimizer.step()``: full 32-bit precision (no scaler, no
    autocast), one device (no gradient sync), no profiler, and neither the module nor any
    callback with a hook around the backward pass or the step."""
    from lightning.pytorch.plugins.precision import Precision
    from lightning.pytorch.profilers import PassThroughProfiler
    from lightning.pytorch.strategies import SingleDeviceStrategy

    def overrides(obj: Any, base: type) -> bool:
        return any(getattr(type(obj), hook) is not getattr(base, hook) for hook in _STEP_HOOKS)

    return (
        type(trainer.precision_plugin) is Precision
        and type(trainer.strategy) is SingleDeviceStrategy
        and isinstance(trainer.profiler, PassThroughProfiler)
        and type(module).backward is pl.LightningModule.backward
        and not overrides(module, pl.LightningModule)
        and not any(overrides(callback, pl.Callback) for callback in trainer.callbacks)
    )


def step_functions(
    module: pl.LightningModule, optimizer: Any, direct: bool
) -> tuple[Callable[[Tensor], None], Callable[[], None]]:
    """(backward, step): Lightning's ``manual_backward`` and ``optimizer.step``, or, where
    ``direct`` (see :func:`direct_steps_possible`), ``loss.backward()`` and the torch
    optimizer's step with the Trainer's step count kept: their hooks cost about 0.2 ms a
    step, an eighth of a step of a 64-64 network at batch 256 on CPU."""
    if not direct:
        return module.manual_backward, optimizer.step
    inner = optimizer.optimizer
    return Tensor.backward, lambda: step_counted(optimizer, inner.step)


def make_optimizer(
    name: str, params: list[Tensor], lr: float, weight_decay: float, fused: bool
) -> torch.optim.Optimizer:
    """The optimiser ``name`` over ``params``; ``fused``: its fused kernel (the
    single-tensor Adam costs a third of a step on small MLPs), where every parameter is on
    the CPU or a CUDA device."""
    fused = fused and all(p.device.type in ("cpu", "cuda") for p in params)
    return OPTIMIZERS[name](params, lr=lr, weight_decay=weight_decay, fused=fused)


def make_scheduler(name: str, optimizer: torch.optim.Optimizer, trainer: pl.Trainer) -> Any:
    """The learning-rate schedule ``name``: "cosine" to 0 over the run's optimiser steps
    (stepped per step), or "plateau" (halved after 5 epochs without a better val_loss)."""
    if name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=5)
    total = total_optimizer_steps(trainer)
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)


def total_optimizer_steps(trainer: pl.Trainer) -> int:
    """The optimiser steps of a whole run (one per batch; a Lightning step may carry
    several batches: ``batches_per_step``), which the cosine schedule spans."""
    lightning_steps = max(1, int(trainer.estimated_stepping_batches))
    loader = trainer.train_dataloader
    per_step = getattr(loader, "batches_per_step", 1)
    if per_step == 1 or trainer.max_epochs in (None, -1):
        return lightning_steps
    steps = trainer.max_epochs * loader.num_batches
    return min(steps, trainer.max_steps) if trainer.max_steps > 0 else steps


class CompiledOrEager:
    """``torch.compile(fn)``; if its first call fails, one line says why and ``fn`` runs
    eagerly from then on."""

    def __init__(self, fn: Any, what: str) -> None:
        self.fn, self.what, self.compiled, self.tried = fn, what, torch.compile(fn), False

    def __call__(self, *args: Any) -> Any:
        if self.compiled is None:
            return self.fn(*args)
        if self.tried:
            return self.compiled(*args)
        self.tried = True
        try:
            return self.compiled(*args)
        except Exception as error:  # any failure to compile falls back to eager
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
            rank_zero_info(
                f"softzoo: torch.compile does not work here for {self.what} "
                f"({type(error).__name__}: {reason[:200]}); running it eagerly"
            )
            self.compiled = None
            return self.fn(*args)
