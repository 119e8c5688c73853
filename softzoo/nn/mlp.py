"""Multi-layer perceptron with a Softplus or ReLU (or any registered) activation per layer."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from softzoo.nn.activations import make_activation
from softzoo.nn.members import ENSEMBLE_TYPES, BatchEnsembleLinear, MemberLinear, ScaleEnsemble

__all__ = ["MLP"]

_NORMS = {"layer": nn.LayerNorm, "batch": nn.BatchNorm1d}


class MLP(nn.Module):
    """Linear → [norm] → activation → [dropout], once per hidden layer.

    Args:
        in_features: number of input features.
        hidden: width of each hidden layer; ``()`` gives the identity (no hidden layer).
        activation: one name for every layer, or one name per layer,
            e.g. ``["relu", "softplus"]``.
        activation_kwargs: passed to every softplus layer (``beta``, ``threshold``).
        dropout: dropout probability after each activation.
        norm: ``None``, ``"layer"`` or ``"batch"``.
        members: ensemble members computed side by side: the input is ``(batch, in)`` or
            ``(members, batch, in)``, the output ``(members, batch, out)``; 1 gives a
            plain MLP.
        ensemble_type: how the members share weights (:data:`ENSEMBLE_TYPES`):
            ``independent`` (:class:`MemberLinear` layers, nothing shared), ``batch``
            (TabM: :class:`BatchEnsembleLinear` layers) or ``mini`` (TabM-mini: one
            :class:`ScaleEnsemble` on the input, then shared ``nn.Linear`` layers).
        chunks: the widths of the input's feature blocks (sum ``in_features``): TabM's
            first per-member scaling draws one random sign per block.
        first_scaling: that scaling's start, ``random_signs`` (TabM's) or ``ones``
            (:func:`~softzoo.nn.members.first_scaling`).

    Example:
        >>> import torch
        >>> mlp = MLP(16, hidden=(64, 64), activation=["relu", "softplus"])
        >>> mlp(torch.zeros(3, 16)).shape
        torch.Size([3, 64])
    """

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int] = (64, 64),
        activation: str | Sequence[str] = "softplus",
        activation_kwargs: dict[str, float] | None = None,
        dropout: float = 0.0,
        norm: str | None = None,
        members: int = 1,
        ensemble_type: str = "independent",
        chunks: Sequence[int] | None = None,
        first_scaling: str = "random_signs",
    ) -> None:
        super().__init__()
        hidden = list(hidden)
        if ensemble_type not in ENSEMBLE_TYPES:
            raise ValueError(
                f"unknown ensemble_type {ensemble_type!r}; valid: {', '.join(ENSEMBLE_TYPES)}"
            )
        if not isinstance(members, int) or members < 1:
            raise ValueError(f"members must be a positive integer, got {members!r}")
        if members > 1 and norm is not None:
            raise ValueError(
                f"norm={norm!r} is not available for an ensemble (its statistics would mix "
                "the members); use norm=None with ensemble_size > 1"
            )
        if not isinstance(in_features, int) or in_features < 1:
            raise ValueError(f"in_features must be a positive integer, got {in_features!r}")
        if any(not isinstance(h, int) or h < 1 for h in hidden):
            raise ValueError(f"hidden layer widths must be positive integers, got {hidden}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        if norm is not None and norm not in _NORMS:
            raise ValueError(f"unknown norm {norm!r}; valid: None, {', '.join(_NORMS)}")
        self.activations = self._per_layer(activation, len(hidden))
        layers: list[nn.Module] = []
        if members > 1 and ensemble_type == "mini":
            layers.append(ScaleEnsemble(members, in_features, chunks, first_scaling))
        self._activation_positions: list[int] = []
        width = in_features
        for index, (out, name) in enumerate(zip(hidden, self.activations, strict=True)):
            first = (chunks, first_scaling) if index == 0 else None
            layers.append(_linear(members, ensemble_type, width, out, first))
            if norm is not None:
                layers.append(_NORMS[norm](out))
            kwargs = (activation_kwargs or {}) if name == "softplus" else {}
            self._activation_positions.append(len(layers))
            layers.append(make_activation(name, **kwargs))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = out
        self.in_features = in_features
        self.hidden = hidden
        self.out_features = width
        self.net = nn.Sequential(*layers)

    @property
    def activation_layers(self) -> list[nn.Module]:
        """The activation module of each hidden layer, in order (for monitors and hooks)."""
        return [self.net[i] for i in self._activation_positions]

    def pre_activation(self, x: Tensor, layer: int = 0) -> Tensor:
        """The input of hidden layer ``layer``'s activation (after its linear map and norm).

        Example:
            >>> import torch
            >>> mlp = MLP(3, hidden=[4], norm="layer")
            >>> mlp.pre_activation(torch.zeros(2, 3)).shape
            torch.Size([2, 4])
        """
        return self.net[: self._activation_positions[layer]](x)

    @staticmethod
    def _per_layer(activation: str | Sequence[str], n_layers: int) -> list[str]:
        if isinstance(activation, str):
            return [activation.lower()] * n_layers
        names = [str(a).lower() for a in activation]
        if len(names) != n_layers:
            raise ValueError(
                f"got {len(names)} activations {names} for {n_layers} hidden layers: "
                "give one name for all layers or exactly one per layer"
            )
        return names

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def _linear(
    members: int,
    ensemble_type: str,
    width: int,
    out: int,
    first: tuple[Sequence[int] | None, str] | None,
) -> nn.Module:
    """One layer; ``first``: the first layer's (chunks, first scaling), None for the others."""
    if members == 1 or ensemble_type == "mini":
        return nn.Linear(width, out)
    if ensemble_type == "batch":
        chunks, scaling = first or (None, "random_signs")
        return BatchEnsembleLinear(members, width, out, first is not None, chunks, scaling)
    return MemberLinear(members, width, out)
