"""The training craft around a family's loss (docs/training.md): the mean warm-up (the
parameters that do not carry the mean held at the target's marginal fit, their head rows
untouched by the optimiser), faithful heteroscedastic training, and dequantization noise.
β-NLL is a family option (its ``loss``).

The functions take the model (:class:`~softzoo.models.SoftRegressor`) whose parts they
use: its family, body, heads, ``marginal`` and ``target_resolution`` buffers and its
hyper-parameters.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from softzoo.families import Family, Mixture, Params

if TYPE_CHECKING:
    from softzoo.models.regressor import SoftRegressor

__all__ = [
    "check_warmup",
    "check_warmup_steps",
    "held",
    "holding_heads",
    "training_loss",
    "warmup_length",
]


def warmup_length(hparams: Any, max_epochs: int | None, attached: bool) -> int:
    """The mean warm-up's epochs: ``warmup_epochs``, or ``warmup_fraction`` of the
    Trainer's ``max_epochs`` (rounded down) once the model is ``attached`` to one."""
    fraction = hparams.get("warmup_fraction", 0.0)
    if not fraction:
        return hparams.get("warmup_epochs", 0)
    if not attached or max_epochs is None or max_epochs < 0:
        raise ValueError(
            f"warmup_fraction={fraction} is a share of the Trainer's max_epochs, which is "
            "not set: set trainer.max_epochs, or give warmup_epochs instead"
        )
    return int(fraction * max_epochs)


def _held_names(family: Family) -> list[str]:
    return [n for n in family.param_names if n not in family.mean_params]


def check_warmup(family: Family, length: int, max_epochs: int | None) -> None:
    """Refuse a warm-up that covers the whole run: the held parameters would never train."""
    held_names = _held_names(family)
    if held_names and length and max_epochs is not None and 0 <= max_epochs <= length:
        raise ValueError(
            f"warmup_epochs={length} covers all {max_epochs} epochs of the run: "
            f"{', '.join(held_names)} would never train; give fewer warm-up epochs than "
            "max_epochs, or warmup_fraction (a share of them)"
        )


def check_warmup_steps(
    family: Family, length: int, max_steps: int, batches_per_epoch: int | None
) -> None:
    """Refuse a run that ``max_steps`` ends before the warm-up does (each batch is one
    optimiser step): the held parameters would never train."""
    held_names = _held_names(family)
    if not (held_names and length and batches_per_epoch) or max_steps < 0:
        return
    warmup_steps = length * batches_per_epoch
    if max_steps <= warmup_steps:
        raise ValueError(
            f"max_steps={max_steps} ends the run within the warm-up ({length} epoch(s) of "
            f"{batches_per_epoch} steps = {warmup_steps} steps): {', '.join(held_names)} "
            "would never train; raise max_steps, or give fewer warm-up epochs"
        )


def training_loss(
    model: SoftRegressor, x: Tensor, target: Tensor, warming: bool, weight: Tensor | None = None
) -> Tensor:
    """The per-row loss of one batch (see :meth:`SoftRegressor.training_loss`)."""
    if model._dequantizing:
        target = target + (torch.rand_like(target) - 0.5) * model.target_resolution
    if (warming or model.hparams.get("faithful", False)) and torch.isnan(model.marginal).any():
        raise ValueError(
            "warmup_epochs and faithful hold parameters at the marginal fit of the "
            "target, which this model (saved by an older softzoo) does not have: call "
            "model.fit_scaling(x_train, y_train) first, or train without them"
        )
    members = model.hparams.ensemble_size
    if weight is None:  # the compiled loss is the unweighted one
        loss = model._compiled.get("training loss", model._craft_loss)(x, target, warming)
    else:
        loss = model._craft_loss(x, target, warming, weight)
    if members > 1 and model.hparams.get("ensemble_type", "independent") == "independent":
        return loss * members
    return loss


def craft_loss(
    model: SoftRegressor, x: Tensor, target: Tensor, warming: bool, weight: Tensor | None = None
) -> Tensor:
    """The loss of the network's parameters under the warm-up or faithful training (the
    part ``torch.compile`` compiles); weighted by the rows' ``weight`` where given."""
    family = model.family
    features, exposure = model.split_exposure(x)
    hidden = model.body(model.inputs(features))
    params = model.exposed(model.heads(hidden), exposure)

    def loss(given: Params) -> Tensor:
        return (
            family.loss(given, target)
            if weight is None
            else weighted_loss(family, given, target, weight)
        )

    if warming:
        return loss(held(family, model.marginal, params))
    if not model.hparams.get("faithful", False):
        return loss(params)
    means = set(family.mean_params)
    detached = model.exposed(model.heads(hidden.detach()), exposure)
    others = tuple(
        p.detach() if name in means else d
        for name, p, d in zip(family.param_names, params, detached, strict=True)
    )
    return loss(held(family, model.marginal, params)) + loss(others)


def weighted_loss(family: Family, params: Params, target: Tensor, weight: Tensor) -> Tensor:
    """Each row's loss times its weight, normalised so that the batch mean is
    Σ wᵢ·lossᵢ / Σ wᵢ (a batch whose weights are all 0 has loss 0). An ensemble's members
    are weighed one by one: under member shuffles each sees its own rows and weights."""
    members = isinstance(family, Mixture)
    per = (
        family.base.loss(params, target if target.dim() == params[0].dim() else target[:, None])
        if members
        else family.loss(params, target)
    )
    weight = weight if weight.dim() == per.dim() else weight[:, None].expand_as(per)
    scaled = per * weight * (weight.numel() / weight.sum().clamp_min(1e-30))
    return scaled.mean(dim=-1) if members else scaled


def held(family: Family, marginal: Tensor, params: Params) -> Params:
    """The parameters, with those that do not carry the mean at the marginal fit."""
    means = set(family.mean_params)
    return tuple(
        p if name in means else marginal[i].to(p.dtype).expand_as(p)
        for i, (name, p) in enumerate(zip(family.param_names, params, strict=True))
    )


@contextlib.contextmanager
def holding_heads(family: Family, linear: nn.Module, warming: bool) -> Iterator[None]:
    """While ``warming``, the held parameters' rows of the heads' ``linear`` layer are as
    they were before the block (no gradient reaches them, but weight decay would move
    them)."""
    if not warming:
        yield
        return
    rows = [i for i, n in enumerate(family.param_names) if n not in family.mean_params]
    saved = (
        linear.weight[..., rows, :].detach().clone(),
        linear.bias[..., rows].detach().clone(),
    )
    yield
    with torch.no_grad():
        linear.weight[..., rows, :] = saved[0]
        linear.bias[..., rows] = saved[1]
