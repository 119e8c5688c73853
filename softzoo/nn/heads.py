"""Output heads: ``softplus(linear(x)) + floor`` for positive outputs, in float32 always.

A positive output is ``softplus(raw) + floor`` with ``floor > 0``: in float32 softplus
underflows to exactly 0 for raw ≲ -104, and ``clamp_min`` would have no gradient there.
A bounded output (the Tweedie power) is ``lower + (upper - lower) * sigmoid(raw)``, with
bounds chosen so that float32 saturation at either end is still a valid value; equal
bounds make a constant output (a fixed power).

Example:
    >>> import torch
    >>> head = PositiveHead(8, init_value=2.0)
    >>> torch.allclose(head(torch.randn(4, 8)), torch.full((4, 1), 2.0))
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from softzoo.nn.activations import inverse_softplus, validate_softplus_args
from softzoo.nn.members import member_linear

__all__ = ["HeadSpec", "ParameterHeads", "PositiveHead", "positive_transform"]


def _validate_floor(floor: float) -> None:
    if not (isinstance(floor, (int, float)) and math.isfinite(floor) and floor > 0):
        raise ValueError(
            f"floor must be a finite number > 0, got {floor!r}: it keeps positive outputs "
            "strictly positive where float32 softplus underflows to 0 (try 1e-6)"
        )


def positive_transform(raw: Tensor, floor: float, beta: float, threshold: float) -> Tensor:
    """``softplus(raw, beta, threshold) + floor`` computed in float32."""
    return F.softplus(raw.float(), beta=beta, threshold=threshold) + floor


def _float32_linear(linear: nn.Linear, x: Tensor) -> Tensor:
    """``linear(x)`` in float32, also inside an fp16/bf16 autocast region."""
    if torch.is_autocast_enabled(x.device.type):
        with torch.autocast(device_type=x.device.type, enabled=False):
            return linear(x.float())
    return linear(x.float()) if x.dtype != torch.float32 else linear(x)


def _set_initial_output(linear: nn.Linear, raw_bias: Tensor) -> None:
    """Zero the weights and set the bias, so the initial output is the same for every x."""
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.copy_(raw_bias.to(linear.bias))


class PositiveHead(nn.Module):
    """``softplus(linear(x), beta, threshold) + floor``: strictly positive, finite, in float32.

    Args:
        in_features: input width.
        out_features: number of positive outputs.
        floor: the smallest value an output can take (> 0), in the output's unit.
        beta, threshold: softplus parameters (as ``torch.nn.Softplus``).
        init_value: if given, the weights start at 0 and the bias at
            ``inverse_softplus(init_value - floor)``, so every initial output equals it.

    Example:
        >>> import torch
        >>> bool((PositiveHead(4)(torch.full((2, 4), -1e4)) > 0).all())
        True
    """

    def __init__(
        self,
        in_features: int,
        out_features: int = 1,
        floor: float = 1e-6,
        beta: float = 1.0,
        threshold: float = 20.0,
        init_value: float | None = None,
    ) -> None:
        super().__init__()
        _validate_floor(floor)
        validate_softplus_args(beta, threshold)
        self.linear = nn.Linear(in_features, out_features)
        self.floor, self.beta, self.threshold = float(floor), float(beta), float(threshold)
        if init_value is not None:
            if not init_value > floor:
                raise ValueError(f"init_value must exceed floor={floor:g}, got {init_value!r}")
            _set_initial_output(self.linear, inverse_softplus(init_value - floor, beta))

    def forward(self, x: Tensor) -> Tensor:
        raw = _float32_linear(self.linear, x)
        return positive_transform(raw, self.floor, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"floor={self.floor:g}, beta={self.beta:g}, threshold={self.threshold:g}"


@dataclass(frozen=True)
class HeadSpec:
    """One output parameter: real-valued, positive with outputs > ``lower`` (+ floor), or
    bounded in [``lower``, ``upper``] where ``upper`` is given.

    ``init_value`` is the value every initial output takes (weights start at 0).
    """

    name: str
    positive: bool = False
    lower: float = 0.0
    init_value: float | None = None
    upper: float | None = None

    def __post_init__(self) -> None:
        if self.upper is not None and (self.positive or not self.lower <= self.upper):
            raise ValueError(
                f"head {self.name!r}: a bounded head needs lower <= upper and positive=False, "
                f"got lower={self.lower!r}, upper={self.upper!r}, positive={self.positive!r}"
            )


def _bounded_bias(spec: HeadSpec, value: Tensor) -> Tensor:
    """The raw bias whose bounded output is ``value`` (its logit inside the bounds)."""
    span = spec.upper - spec.lower
    if span == 0:
        return torch.zeros_like(value)
    share = ((value - spec.lower) / span).clamp(1e-6, 1 - 1e-6)
    return torch.logit(share)


class ParameterHeads(nn.Module):
    """One linear layer for all parameters; positive ones through softplus + lower + floor.

    forward returns a tuple with one ``(batch,)`` tensor per spec, in spec order; with
    ``members`` > 1 (an ensemble, input ``(members, batch, in)``) each is ``(batch, members)``.

    Example:
        >>> import torch
        >>> heads = ParameterHeads(8, [HeadSpec("loc"), HeadSpec("scale", positive=True)])
        >>> loc, scale = heads(torch.randn(5, 8))
        >>> loc.shape, bool((scale > 0).all())
        (torch.Size([5]), True)
    """

    def __init__(
        self,
        in_features: int,
        specs: Sequence[HeadSpec],
        floor: float = 1e-6,
        beta: float = 1.0,
        threshold: float = 20.0,
        members: int = 1,
    ) -> None:
        super().__init__()
        _validate_floor(floor)
        validate_softplus_args(beta, threshold)
        self.specs = tuple(specs)
        self.floor, self.beta, self.threshold = float(floor), float(beta), float(threshold)
        self.members = members
        n = len(self.specs)
        self.linear = member_linear(members, in_features, n)
        self._init_outputs()

    def set_initial_values(self, values: dict[str, float | None]) -> None:
        """Restart the named outputs at these values (weights to 0, bias to match)."""
        self.specs = tuple(
            replace(s, init_value=values[s.name]) if values.get(s.name) is not None else s
            for s in self.specs
        )
        self._init_outputs()

    def _init_outputs(self) -> None:
        rows = [i for i, s in enumerate(self.specs) if s.init_value is not None]
        for i in rows:
            spec = self.specs[i]
            bias = torch.tensor(float(spec.init_value), dtype=torch.float64)
            if spec.upper is not None:
                bias = _bounded_bias(spec, bias)
            elif spec.positive:
                offset = spec.lower + self.floor
                if not spec.init_value > offset:
                    raise ValueError(
                        f"init_value of {spec.name!r} must exceed {offset:g}, "
                        f"got {spec.init_value!r}"
                    )
                bias = inverse_softplus(bias - offset, self.beta)
            with torch.no_grad():  # every member: (out, in) or (members, out, in) weights
                self.linear.weight[..., i, :].zero_()
                self.linear.bias[..., i] = bias.to(self.linear.bias)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        raw = _float32_linear(self.linear, x)
        outputs = []
        for i, spec in enumerate(self.specs):
            column = raw[..., i] if self.members == 1 else raw[..., i].transpose(0, 1)
            if spec.positive:
                column = positive_transform(
                    column, spec.lower + self.floor, self.beta, self.threshold
                )
            elif spec.upper is not None:
                column = spec.lower + (spec.upper - spec.lower) * torch.sigmoid(column.float())
            outputs.append(column)
        return tuple(outputs)

    def extra_repr(self) -> str:
        names = ", ".join(s.name + (">0" if s.positive else "") for s in self.specs)
        return f"params=({names}), floor={self.floor:g}"
