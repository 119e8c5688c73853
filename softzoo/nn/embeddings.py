"""Embeddings of numeric features (Gorishniy et al., 2022, "On Embeddings for Numerical
Features in Tabular Deep Learning"): piecewise-linear encodings on quantile bins and
periodic embeddings, written here rather than taken from ``rtdl_num_embeddings`` because
softzoo's differ where a deployed model needs them to:

* the piecewise-linear encoding **saturates** outside the training range (the reference
  lets the first and last bins extrapolate linearly), so a row far from every training
  row reads as the nearest training extreme instead of driving the network off its map;
* the periodic embedding can hold one set of weights per ensemble member, in the member
  layout of :mod:`softzoo.nn.members`, so that independent members stay independent;
* both are plain ``Sub``/``Div``/``Clip``/``Sin``/``Cos``/``MatMul`` in an ONNX graph.

Example:
    >>> import torch
    >>> encoding = PiecewiseLinearEncoding(1, n_bins=4)
    >>> encoding.fit(torch.arange(9.0)[:, None])
    >>> encoding(torch.tensor([[-5.0], [3.0], [100.0]]))
    tensor([[0.0000, 0.0000, 0.0000, 0.0000],
            [1.0000, 0.5000, 0.0000, 0.0000],
            [1.0000, 1.0000, 1.0000, 1.0000]])
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["NUMERIC_EMBEDDINGS", "PeriodicEmbedding", "PiecewiseLinearEncoding", "bin_edges"]

#: The embeddings of numeric features a model can have.
NUMERIC_EMBEDDINGS = ("none", "piecewise_linear", "periodic")


def bin_edges(values: Tensor, n_bins: int) -> Tensor:
    """The edges of at most ``n_bins`` quantile bins of the observed (not NaN) ``values``
    of one column: the distinct observed values at the ``0, 1/n_bins, …, 1`` quantiles
    (numpy's ``method="lower"``: no edge between two observed values, so a 0/1 column
    gets one bin, not 48), as float32; fewer than two edges for a column with at most one
    distinct value.

    Example:
        >>> bin_edges(torch.tensor([0.0, 1.0, 1.0, 1.0, float("nan")]), 4).tolist()
        [0.0, 1.0]
    """
    observed = values.double()
    observed = torch.sort(observed[~torch.isnan(observed)]).values
    if not len(observed):
        return observed.float()
    # torch.quantile refuses more than 2**24 values: index the sorted column instead
    position = torch.linspace(0, len(observed) - 1, n_bins + 1, dtype=torch.float64)
    return torch.unique(observed[position.floor().long()].float())


class PiecewiseLinearEncoding(nn.Module):
    """Each numeric feature as ``n_bins`` values in [0, 1]: 1 for the bins below its
    value, its relative position in the bin it falls into, 0 for the bins above; values
    outside the training range saturate (all 0 below the first edge, all 1 above the
    last). The bins are quantile bins of the training rows (:meth:`fit`), stored as
    buffers; a feature with fewer distinct values has fewer bins, and its unused ones
    always read 0. Input ``(..., n_features)`` without NaN (impute first), output
    ``(..., n_features * n_bins)``, feature by feature.

    Example:
        >>> encoding = PiecewiseLinearEncoding(2, n_bins=3)
        >>> encoding(torch.zeros(5, 2)).shape
        torch.Size([5, 6])
    """

    def __init__(self, n_features: int, n_bins: int = 48) -> None:
        super().__init__()
        if not isinstance(n_bins, int) or n_bins < 1:
            raise ValueError(f"n_bins must be a whole number >= 1, got {n_bins!r}")
        self.n_features, self.n_bins = int(n_features), n_bins
        # until fitted: bins of width 1 from 0 (a placeholder; fit replaces them)
        self.register_buffer("left", torch.arange(float(n_bins)).repeat(n_features, 1))
        self.register_buffer("width", torch.ones(n_features, n_bins))
        self.register_buffer("used", torch.ones(n_features, n_bins))

    @property
    def out_features(self) -> int:
        return self.n_features * self.n_bins

    @torch.no_grad()
    def fit(self, columns: Tensor) -> None:
        """Quantile bins of each column of ``columns`` (the training rows, NaN ignored)."""
        for i in range(self.n_features):
            self.set_edges(i, bin_edges(columns[:, i], self.n_bins))

    @torch.no_grad()
    def set_edges(self, feature: int, edges: Tensor) -> None:
        """Use ``edges`` (increasing, at most ``n_bins + 1``) as the bins of ``feature``."""
        count = max(len(edges) - 1, 0)
        self.left[feature].zero_()
        self.width[feature].fill_(1.0)
        self.used[feature].zero_()
        if count:
            self.left[feature, :count] = edges[:-1]
            self.width[feature, :count] = torch.diff(edges)
            self.used[feature, :count] = 1.0

    def chunks(self) -> list[int]:
        """The width of each feature's block of the output (for per-feature adapters)."""
        return [self.n_bins] * self.n_features

    def forward(self, x: Tensor) -> Tensor:
        position = (x.unsqueeze(-1) - self.left) / self.width
        encoded = position.clamp(0.0, 1.0) * self.used
        return encoded.flatten(-2)

    def extra_repr(self) -> str:
        return f"features={self.n_features}, bins={self.n_bins}"


class PeriodicEmbedding(nn.Module):
    """The published periodic embedding with a linear layer and ReLU ("PLR"): each
    standardised feature x becomes ``ReLU(W [cos(2π c x), sin(2π c x)] + b)`` with
    ``n_frequencies`` learned frequencies c (initialised from N(0, ``sigma``²), truncated
    at 3σ) and a linear layer of its own per feature. With ``members`` > 1 every member
    has its own frequencies and layers (input ``(batch, n)`` or ``(members, batch, n)``,
    output ``(members, batch, n * dim)``); otherwise ``(..., n * dim)``.

    Example:
        >>> PeriodicEmbedding(3, dim=4, n_frequencies=5)(torch.zeros(2, 3)).shape
        torch.Size([2, 12])
    """

    def __init__(
        self,
        n_features: int,
        dim: int = 24,
        n_frequencies: int = 48,
        sigma: float = 0.01,
        members: int = 1,
    ) -> None:
        super().__init__()
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0, got {sigma!r}")
        self.n_features, self.dim, self.members = int(n_features), int(dim), int(members)
        lead = (members,) if members > 1 else ()
        self.frequencies = nn.Parameter(torch.empty(*lead, n_features, n_frequencies))
        self.weight = nn.Parameter(torch.empty(*lead, n_features, 2 * n_frequencies, dim))
        self.bias = nn.Parameter(torch.empty(*lead, n_features, 1, dim))
        nn.init.trunc_normal_(self.frequencies, 0.0, sigma, -3 * sigma, 3 * sigma)
        bound = (2 * n_frequencies) ** -0.5
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    @property
    def out_features(self) -> int:
        return self.n_features * self.dim

    def chunks(self) -> list[int]:
        """The width of each feature's block of the output (for per-feature adapters)."""
        return [self.dim] * self.n_features

    def forward(self, x: Tensor) -> Tensor:
        if self.members > 1 and x.dim() == 2:
            x = x.expand(self.members, *x.shape)
        frequencies = self.frequencies.unsqueeze(-3) if self.members > 1 else self.frequencies
        angle = (2 * math.pi) * x.unsqueeze(-1) * frequencies  # (..., batch, n, k)
        periodic = torch.cat([torch.cos(angle), torch.sin(angle)], dim=-1)
        # one (2k → dim) layer per feature: features lead the batched matrix product
        per_feature = periodic.transpose(-3, -2) @ self.weight + self.bias
        return torch.relu(per_feature).transpose(-3, -2).flatten(-2)

    def extra_repr(self) -> str:
        k = self.frequencies.shape[-1]
        return f"features={self.n_features}, frequencies={k}, dim={self.dim}"
