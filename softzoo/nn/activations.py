"""The one activation factory of softzoo, and the inverse of softplus.

Example:
    >>> import torch
    >>> act = make_activation("softplus", beta=1.0, threshold=20.0)
    >>> round(float(act(torch.tensor(0.0))), 6)
    0.693147
    >>> float(inverse_softplus(torch.tensor(0.6931471805599453, dtype=torch.float64)))
    0.0...
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from softzoo._names import unknown_name_error

__all__ = [
    "ACTIVATIONS",
    "inverse_softplus",
    "list_activations",
    "make_activation",
    "validate_softplus_args",
]

#: The largest threshold accepted: above it exp(beta*x) could overflow float32 (e^88).
MAX_THRESHOLD = 80.0


def validate_softplus_args(beta: float, threshold: float) -> None:
    """Raise ``ValueError`` unless ``beta > 0`` and ``threshold`` lies in ``(0, 80]``."""
    if not (isinstance(beta, (int, float)) and math.isfinite(beta) and beta > 0):
        raise ValueError(f"softplus beta must be a finite number > 0, got {beta!r}")
    if not (isinstance(threshold, (int, float)) and 0 < threshold <= MAX_THRESHOLD):
        raise ValueError(
            f"softplus threshold must lie in (0, {MAX_THRESHOLD:g}], got {threshold!r}: "
            "above it exp(beta*x) overflows float32; 20 is PyTorch's default"
        )


def _softplus(beta: float = 1.0, threshold: float = 20.0) -> nn.Module:
    validate_softplus_args(beta, threshold)
    return nn.Softplus(beta=float(beta), threshold=float(threshold))


#: Name → factory. A new activation is one entry here.
ACTIVATIONS: dict[str, Callable[..., nn.Module]] = {
    "softplus": _softplus,
    "relu": nn.ReLU,
    "identity": nn.Identity,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
}


def list_activations() -> list[str]:
    """Sorted names accepted by :func:`make_activation`."""
    return sorted(ACTIVATIONS)


def make_activation(name: str, **kwargs: float) -> nn.Module:
    """Build an activation module by name.

    ``"softplus"`` accepts ``beta`` (> 0) and ``threshold`` (in (0, 80]); the others take
    the keyword arguments of their ``torch.nn`` class.

    Example:
        >>> make_activation("relu")
        ReLU()
    """
    key = str(name).lower()
    if key not in ACTIVATIONS:
        raise unknown_name_error("activation", name, list_activations())
    try:
        return ACTIVATIONS[key](**kwargs)
    except TypeError as err:
        raise ValueError(f"activation {key!r} does not accept {sorted(kwargs)}: {err}") from None


def inverse_softplus(y: Tensor | float, beta: float = 1.0) -> Tensor:
    """The x with ``softplus(x, beta) == y`` for y > 0, computed stably.

    Uses ``x = y + log(-expm1(-beta*y)) / beta``: no overflow for large y (where x ≈ y)
    and full relative precision for tiny y (where x ≈ log(beta*y)/beta). Computed in
    float64 and returned in y's dtype.

    Example:
        >>> float(inverse_softplus(1e6))
        1000000.0
    """
    validate_softplus_args(beta, 20.0)
    y = y if torch.is_tensor(y) else torch.tensor(y, dtype=torch.float64)
    if bool((y <= 0).any()):
        raise ValueError("inverse_softplus needs y > 0: softplus never reaches 0 or below")
    wide = y.double()
    return (wide + torch.log(-torch.expm1(-beta * wide)) / beta).to(y.dtype)
