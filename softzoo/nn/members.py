"""Layers that hold the weights of several ensemble members side by side, so that one
forward pass (batched matrix products) computes every member: an ensemble of N networks
trains in one vectorised pass instead of N fits.

A member dimension comes first: inputs are ``(members, batch, features)`` or, for the first
layer, ``(batch, features)``, which every member reads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = [
    "ENSEMBLE_TYPES",
    "FIRST_SCALINGS",
    "BatchEnsembleLinear",
    "MemberEmbedding",
    "MemberLinear",
    "ScaleEnsemble",
    "first_scaling",
    "member_linear",
]

#: How the members of an ensemble share weights: ``independent`` (none: MemberLinear),
#: ``batch`` (TabM: BatchEnsemble layers) and ``mini`` (TabM-mini: one ScaleEnsemble).
ENSEMBLE_TYPES = ("independent", "batch", "mini")


class MemberLinear(nn.Module):
    """``members`` independent ``nn.Linear(in_features, out_features)`` layers, each
    initialised as ``nn.Linear`` initialises itself (its own random draw).

    Example:
        >>> import torch
        >>> layer = MemberLinear(5, 3, 2)
        >>> layer(torch.zeros(4, 3)).shape, layer(torch.zeros(5, 4, 3)).shape
        (torch.Size([5, 4, 2]), torch.Size([5, 4, 2]))
    """

    def __init__(self, members: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.members, self.in_features, self.out_features = members, in_features, out_features
        self.weight = nn.Parameter(torch.empty(members, out_features, in_features))
        self.bias = nn.Parameter(torch.empty(members, out_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1 / math.sqrt(self.in_features) if self.in_features else 0.0
        for member in range(self.members):
            nn.init.kaiming_uniform_(self.weight[member], a=math.sqrt(5))
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2:
            x = x.expand(self.members, *x.shape)
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight.transpose(1, 2))

    def extra_repr(self) -> str:
        return f"members={self.members}, in={self.in_features}, out={self.out_features}"


class MemberEmbedding(nn.Module):
    """``members`` independent ``nn.Embedding(n, dim)`` tables; codes ``(batch,)`` (every
    member's) or ``(members, batch)`` (each member's own) give ``(members, batch, dim)``.

    Example:
        >>> import torch
        >>> MemberEmbedding(3, 5, 2)(torch.tensor([0, 4])).shape
        torch.Size([3, 2, 2])
    """

    def __init__(self, members: int, num_embeddings: int, embedding_dim: int) -> None:
        super().__init__()
        self.embedding_dim = embedding_dim
        self.weight = nn.Parameter(torch.randn(members, num_embeddings, embedding_dim))

    def forward(self, codes: Tensor) -> Tensor:
        if codes.dim() == 2:  # (members, batch): each member's own rows
            members = torch.arange(self.weight.shape[0], device=codes.device)[:, None]
            return self.weight[members, codes]
        return self.weight[:, codes, :]


def member_linear(members: int, in_features: int, out_features: int) -> nn.Module:
    """``nn.Linear`` for one member (its usual state-dict layout), else :class:`MemberLinear`."""
    if members == 1:
        return nn.Linear(in_features, out_features)
    return MemberLinear(members, in_features, out_features)


#: The first per-member scaling of TabM's ensembles: TabM's random signs, or 1 for every
#: member (softzoo's recipe for a table with text columns: :func:`first_scaling`).
FIRST_SCALINGS = ("random_signs", "ones")


def first_scaling(members: int, chunks: Sequence[int], kind: str = "random_signs") -> Tensor:
    """The first per-member scaling of TabM, ``(members, sum(chunks))``: ``random_signs``
    draws ±1 per member and block (TabM's "random-signs" with sections: every column of a
    feature's block gets the same sign); ``ones`` starts every member at 1 (the members
    then differ by their shuffles of the rows, their heads and what they learn).

    softzoo's recipe takes ``ones`` for a table with text columns and the signs for an
    all-numeric one. A member whose sign on a block starts negative feeds the shared layers
    inputs of the other sign there, which they learn only where many rows reach: a rare
    category's embedding, or a piecewise-linear top bin (not 0 only for the rows above its
    edge). On nycflights two of eight members kept a negative sign on the longest
    distances and predicted the 43 flights to Honolulu at 2 minutes with a log-scale sigma
    of 3.6 (validation NLL 3.72 against 3.51 with ``ones``); on the other three peers
    tables ``ones`` was as good or better. On the all-numeric UCI sets the signs' diversity
    pays instead (kin8nm -1.18 against -0.50, naval -4.88 against -2.79 on selection
    rows; docs/training.md).

    Example:
        >>> first_scaling(2, [3, 1]).shape, first_scaling(2, [3], "ones").unique()
        (torch.Size([2, 4]), tensor([1.]))
    """
    if kind not in FIRST_SCALINGS:
        raise ValueError(f"unknown first_scaling {kind!r}; valid: {', '.join(FIRST_SCALINGS)}")
    if kind == "ones":
        return torch.ones(members, sum(chunks))
    signs = torch.randint(0, 2, (members, len(chunks))).float() * 2 - 1
    return signs.repeat_interleave(torch.tensor(list(chunks)), dim=1)


class BatchEnsembleLinear(nn.Module):
    """``members`` linear layers sharing one weight matrix W, each with its own input
    scaling r, output scaling s and bias (BatchEnsemble, Wen et al. 2020):
    ``((x * r_m) @ W.T) * s_m + b_m``. TabM's initialisation (Gorishniy et al., 2025):
    W and the bias as ``U(-1/sqrt(in), 1/sqrt(in))``, the bias the same for every member;
    s = 1; r = random signs per input chunk in the ``first`` layer (where the members
    start to differ; or 1 with ``scaling="ones"``: :func:`first_scaling`), 1 in the others.

    Example:
        >>> import torch
        >>> layer = BatchEnsembleLinear(4, 3, 2, first=True)
        >>> layer(torch.zeros(5, 3)).shape
        torch.Size([4, 5, 2])
    """

    def __init__(
        self,
        members: int,
        in_features: int,
        out_features: int,
        first: bool = False,
        chunks: Sequence[int] | None = None,
        scaling: str = "random_signs",
    ) -> None:
        super().__init__()
        self.members, self.in_features, self.out_features = members, in_features, out_features
        bound = in_features**-0.5
        self.weight = nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))
        shared_bias = torch.empty(out_features).uniform_(-bound, bound)
        self.bias = nn.Parameter(shared_bias.repeat(members, 1))
        r = first_scaling(members, chunks or [1] * in_features, scaling) if first else None
        self.r = nn.Parameter(torch.ones(members, in_features) if r is None else r)
        self.s = nn.Parameter(torch.ones(members, out_features))

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2:
            x = x.expand(self.members, *x.shape)
        scaled = (x * self.r.unsqueeze(1)) @ self.weight.T
        return scaled * self.s.unsqueeze(1) + self.bias.unsqueeze(1)

    def extra_repr(self) -> str:
        return f"members={self.members}, in={self.in_features}, out={self.out_features}"


class ScaleEnsemble(nn.Module):
    """The one per-member layer of TabM-mini: each member scales the shared input by its
    own vector, initialised to random signs per chunk (one sign per feature block) or to 1
    (``scaling``: :func:`first_scaling`);
    ``(batch, features)`` or ``(members, batch, features)`` in, ``(members, batch,
    features)`` out. Everything after it is shared except the heads.

    Example:
        >>> import torch
        >>> ScaleEnsemble(4, 3)(torch.ones(2, 3)).abs().unique().tolist()
        [1.0]
    """

    def __init__(
        self,
        members: int,
        features: int,
        chunks: Sequence[int] | None = None,
        scaling: str = "random_signs",
    ) -> None:
        super().__init__()
        self.members = members
        self.weight = nn.Parameter(first_scaling(members, chunks or [1] * features, scaling))

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2:
            x = x.expand(self.members, *x.shape)
        return x * self.weight.unsqueeze(1)

    def extra_repr(self) -> str:
        return f"members={self.members}, features={self.weight.shape[1]}"
