"""Layers that hold the weights of several ensemble members side by side, so that one
forward pass (batched matrix products) computes every member: an ensemble of N networks
trains in one vectorised pass instead of N fits.

A member dimension comes first: inputs are ``(members, batch, features)`` or, for the first
layer, ``(batch, features)``, which every member reads.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["MemberEmbedding", "MemberLinear", "member_linear"]


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
