"""The training craft around a family's loss (docs/training.md): the mean warm-up (the
parameters that do not carry the mean held at the target's marginal fit, their head rows
untouched by the optimiser), faithful heteroscedastic training, dequantization noise and
row weights. β-NLL is a family option (its ``loss``).

Each function takes what it uses (the family, the marginal fit, the network's features
and heads), never the model: :class:`~softzoo.models.SoftRegressor` wires them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from softzoo.families import Family, Mixture, Params

__all__ = [
    "check_marginal",
    "check_warmup",
    "check_warmup_steps",
    "craft_loss",
    "dequantized",
    "group_loss",
    "held",
    "holding_heads",
    "members_loss",
    "per_row",
    "warmup_length",
    "weighted_loss",
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


def check_marginal(marginal: Tensor) -> None:
    """The warm-up and faithful training hold parameters at the marginal fit of the
    target: refuse a model that has none (saved by an older softzoo)."""
    if torch.isnan(marginal).any():
        raise ValueError(
            "warmup_epochs and faithful hold parameters at the marginal fit of the "
            "target, which this model (saved by an older softzoo) does not have: call "
            "model.fit_scaling(x_train, y_train) first, or train without them"
        )


def dequantized(target: Tensor, resolution: Tensor) -> Tensor:
    """The targets moved by uniform noise as wide as their rounding step."""
    return target + (torch.rand_like(target) - 0.5) * resolution


def group_loss(losses: list[Tensor], rows: list[int], members: int, epoch: int) -> Tensor:
    """The mean training loss of a group of batches (``rows`` each), per member: one
    number per Lightning step. A loss that is not finite stops the run with one error
    before a checkpoint could hold the weights it made (NaN from then on)."""
    stacked = torch.stack(losses)
    if not bool(torch.isfinite(stacked).all()):
        bad = float(stacked[~torch.isfinite(stacked)][0])
        raise ValueError(
            f"the training loss became {bad} in epoch {epoch}: the weights would be "
            "NaN from here on, so the run stops (the checkpoints of earlier epochs are "
            "kept). Lower --model.lr, clip the gradients (--model.gradient_clip_val 1), "
            "or look for extreme target values"
        )
    weights = torch.tensor(rows, dtype=stacked.dtype, device=stacked.device)
    return (stacked @ weights) / (sum(rows) * members)


def per_row(target: Tensor, weight: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """A batch's targets and weights with the rows first: under member shuffles they come
    as (members, batch), one shuffle per member, and the loss takes (batch, members)."""
    if target.dim() == 2:
        return target.T, None if weight is None else weight.T
    return target, weight


def members_loss(loss: Tensor, members: int, ensemble_type: str) -> Tensor:
    """The per-row loss of an ensemble's members: independent members' summed (each gets
    the gradient it would get alone), TabM members' averaged (as TabM trains: most
    weights are shared). ``loss`` is the members' mean."""
    return loss * members if members > 1 and ensemble_type == "independent" else loss


def craft_loss(
    family: Family,
    marginal: Tensor,
    hidden: Tensor,
    heads: Callable[[Tensor], Params],
    target: Tensor,
    warming: bool,
    faithful: bool,
    weight: Tensor | None = None,
) -> Tensor:
    """The per-row loss of the parameters ``heads`` makes of the body's features
    ``hidden``: under the warm-up, with the parameters that do not carry the mean at the
    ``marginal`` fit; with ``faithful``, that held loss for the mean and body plus the
    family's loss for the other heads on detached features and a detached mean; weighted
    by the rows' ``weight`` where given (:func:`weighted_loss`)."""

    def loss(given: Params) -> Tensor:
        if weight is None:
            return family.loss(given, target)
        return weighted_loss(family, given, target, weight)

    params = heads(hidden)
    if warming:
        return loss(held(family, marginal, params))
    if not faithful:
        return loss(params)
    means = set(family.mean_params)
    detached = heads(hidden.detach())
    others = tuple(
        p.detach() if name in means else d
        for name, p, d in zip(family.param_names, params, detached, strict=True)
    )
    return loss(held(family, marginal, params)) + loss(others)


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
