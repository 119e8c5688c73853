"""How fitting runs fast: the optimiser step without Lightning's hooks where none is in
use, batches moved tensor by tensor, and ``torch.compile`` with an eager fallback. The
private Lightning calls this needs are in :mod:`softzoo._lightning`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor

from softzoo._lightning import step_counted

__all__ = ["CompiledOrEager", "direct_steps_possible", "move_batch", "step_functions"]

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


def _is_pair(batch: Any) -> bool:
    return (
        isinstance(batch, (list, tuple))
        and len(batch) == 2
        and all(isinstance(t, Tensor) for t in batch)
    )


def move_batch(batch: Any, device: torch.device) -> Any | None:
    """softzoo's batches, ``(x, y)`` or a list of them, moved tensor by tensor (as
    Lightning would, non-blocking off the CPU): Lightning's generic walk over collections
    cost a tenth of a small training step on CPU. None for any other batch."""
    options = {} if device.type in ("cpu", "mps") else {"non_blocking": True}
    if _is_pair(batch):
        return tuple(t.to(device, **options) for t in batch)
    if isinstance(batch, list) and batch and all(_is_pair(b) for b in batch):
        return [tuple(t.to(device, **options) for t in b) for b in batch]
    return None


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
