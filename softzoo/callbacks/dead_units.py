"""DeadUnitMonitor: how many hidden units a validation epoch never uses, layer by layer."""

from __future__ import annotations

from functools import partial
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor, nn

__all__ = ["DeadUnitMonitor", "activation_slope"]


def activation_slope(activation: nn.Module, pre_activation: Tensor) -> Tensor:
    """The derivative of an element-wise activation at each pre-activation value.

    ReLU: 1 where z > 0, else 0 (torch's convention at 0). Softplus(β): sigmoid(β·z), and 1
    beyond its threshold. Computed by autograd, so every activation gets the same rule.

    Example:
        >>> import torch
        >>> activation_slope(torch.nn.Softplus(), torch.tensor([0.0])).item()
        0.5
    """
    # validation runs under inference mode; autograd needs an ordinary tensor
    with torch.inference_mode(False), torch.enable_grad():
        z = pre_activation.detach().clone().requires_grad_(True)
        # forward(), not __call__: the monitor's own hook sits on this module
        (slope,) = torch.autograd.grad(activation.forward(z).sum(), z)
    return slope


class DeadUnitMonitor(Callback):
    """Per hidden layer, the fraction of units that are never active on a validation epoch.

    A unit is active on a row when the derivative of its activation there is at least
    ``eps``: a ReLU unit when its output is positive, a Softplus(β) unit when
    sigmoid(β·z) ≥ eps (z ≲ −9.2/β for the default 1e-4). A unit active on no row passes
    no gradient back for any row: it is dead. Logged after each validation epoch (not
    the sanity check) as ``dead_units/layer_1`` … and ``dead_units/all`` (all hidden units
    together), fractions in [0, 1]. Works on any module whose ``body`` is a
    :class:`softzoo.nn.MLP`.

    Example:
        ``Trainer(callbacks=[DeadUnitMonitor()])`` or, in a config,
        ``trainer.callbacks: [{class_path: softzoo.callbacks.DeadUnitMonitor}]``
    """

    def __init__(self, eps: float = 1e-4, prefix: str = "dead_units") -> None:
        if not 0.0 < eps < 1.0:
            raise ValueError(f"eps must lie in (0, 1), got {eps}")
        self.eps, self.prefix = float(eps), prefix
        self._alive: list[Tensor | None] = []
        self._hooks: list[Any] = []

    def _record(self, index: int, module: nn.Module, inputs: tuple[Tensor, ...], _: Tensor) -> None:
        active = activation_slope(module, inputs[0]) >= self.eps
        if active.dim() == 3:  # an ensemble: (members, rows, units) → rows × member-units
            active = active.transpose(0, 1).reshape(active.shape[1], -1)
        active = active.reshape(-1, active.shape[-1])
        seen = active.any(dim=0)
        alive = self._alive[index]
        self._alive[index] = seen if alive is None else alive | seen

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        layers = getattr(getattr(pl_module, "body", None), "activation_layers", None)
        if layers is None:
            raise ValueError(
                f"DeadUnitMonitor needs a model whose body is a softzoo.nn.MLP; "
                f"{type(pl_module).__name__} has none"
            )
        self._alive = [None] * len(layers)
        self._hooks = [
            layer.register_forward_hook(partial(self._record, i)) for i, layer in enumerate(layers)
        ]

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
        if trainer.sanity_checking or not self._alive or any(a is None for a in self._alive):
            return
        # a unit is alive if any process saw it active
        alive = [trainer.strategy.reduce(a.float(), reduce_op="sum") > 0 for a in self._alive]
        for i, layer in enumerate(alive, start=1):
            pl_module.log(f"{self.prefix}/layer_{i}", 1.0 - layer.float().mean(), sync_dist=False)
        every = torch.cat(alive)
        pl_module.log(f"{self.prefix}/all", 1.0 - every.float().mean(), sync_dist=False)
