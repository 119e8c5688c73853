"""The input of a tabular network: numeric columns imputed, flagged and standardised,
categorical codes embedded, all in ``forward`` so that an exported graph does the same.

A row is a float tensor of ``n_numeric`` raw numeric values (NaN where a cell is missing)
followed by one code per categorical column (as a float): ``MISSING_CODE`` for a missing
cell, ``UNSEEN_CODE`` for a category the training split did not have, and
``FIRST_CODE + i`` for the i-th category of the column's vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from softzoo._codes import FIRST_CODE, MISSING_CODE, UNSEEN_CODE
from softzoo.nn.embeddings import (
    NUMERIC_EMBEDDINGS,
    PeriodicEmbedding,
    PiecewiseLinearEncoding,
    bin_edges,
)
from softzoo.nn.members import MemberEmbedding

__all__ = [
    "FIRST_CODE",
    "MISSING_CODE",
    "UNSEEN_CODE",
    "TabularInput",
    "column_statistics",
    "embedding_dim",
]


def column_statistics(values: Tensor) -> tuple[float, float, float] | None:
    """Median, mean and standard deviation (n - 1; 1 where it is 0) of the observed
    (not NaN) values of one column, in float64; None where none is observed. What
    :meth:`TabularInput.fit` fills, shifts and scales a numeric column by.

    Example:
        >>> column_statistics(torch.tensor([1.0, float("nan"), 3.0, 8.0]))
        (3.0, 4.0, 3.605551275463989)
    """
    observed = values.double()
    observed = observed[~torch.isnan(observed)]
    if not len(observed):
        return None
    mean = observed.sum() / len(observed)
    std = float(((observed - mean) ** 2).sum().div(max(len(observed) - 1, 1)).sqrt())
    return float(torch.quantile(observed, 0.5)), float(mean), std if std > 0 else 1.0


def embedding_dim(n_codes: int) -> int:
    """Width of a categorical column's embedding: fastai's rule ``round(1.6·n^0.56)``
    for ``n`` codes (categories + the missing and unseen codes), capped at 50.

    Example:
        >>> [embedding_dim(n) for n in (3, 5, 12, 1000)]
        [3, 4, 6, 50]
    """
    return int(min(50, round(1.6 * n_codes**0.56)))


class TabularInput(nn.Module):
    """Missing numeric cells → the training median (``fill``), a 0/1 indicator for each
    column of ``indicators`` (those with gaps in training), the numeric columns as
    ``(x - shift) / scale`` or their ``numeric_embedding``, and an embedding per
    categorical column; the parts are concatenated in that order.

    Args:
        n_numeric: numeric columns (the first ones of a row).
        category_sizes: the number of categories of each categorical column (the codes
            also include the missing and unseen ones).
        indicators: positions (among the numeric columns) that get a missing indicator.
        members: ensemble members: each has its own embeddings, and the output is
            ``(members, batch, out_features)`` (the numeric part shared).
        numeric_embedding: ``none`` (the standardised values), ``piecewise_linear``
            (:class:`~softzoo.nn.embeddings.PiecewiseLinearEncoding` of the filled values,
            on quantile bins of the training rows) or ``periodic``
            (:class:`~softzoo.nn.embeddings.PeriodicEmbedding` of the standardised values,
            one per member).
        n_bins: the most bins of a piecewise-linear encoding per column.

    Example:
        >>> layer = TabularInput(2, category_sizes=[3], indicators=[1])
        >>> row = torch.tensor([[0.5, float("nan"), 4.0]])  # code 4: the third category
        >>> layer(row).shape, layer.out_features
        (torch.Size([1, 7]), 7)
    """

    def __init__(
        self,
        n_numeric: int,
        category_sizes: Sequence[int] = (),
        indicators: Sequence[int] = (),
        members: int = 1,
        numeric_embedding: str = "none",
        n_bins: int = 48,
    ) -> None:
        super().__init__()
        if numeric_embedding not in NUMERIC_EMBEDDINGS:
            raise ValueError(
                f"unknown numeric_embedding {numeric_embedding!r}; valid: "
                f"{', '.join(NUMERIC_EMBEDDINGS)}"
            )
        if any(not 0 <= i < n_numeric for i in indicators):
            raise ValueError(f"indicator positions {list(indicators)} outside 0..{n_numeric - 1}")
        self.n_numeric = int(n_numeric)
        self.register_buffer("shift", torch.zeros(n_numeric))
        self.register_buffer("scale", torch.ones(n_numeric))
        self.register_buffer("fill", torch.zeros(n_numeric))
        self.register_buffer("indicators", torch.tensor(list(indicators), dtype=torch.long))
        sizes = [int(s) + FIRST_CODE for s in category_sizes]
        self.members = members
        self.embeddings = nn.ModuleList(
            nn.Embedding(n, embedding_dim(n))
            if members == 1
            else MemberEmbedding(members, n, embedding_dim(n))
            for n in sizes
        )
        self.numeric_embedding = numeric_embedding
        self.numeric: nn.Module | None = None
        if numeric_embedding == "piecewise_linear":
            self.numeric = PiecewiseLinearEncoding(n_numeric, n_bins)
        elif numeric_embedding == "periodic":
            self.numeric = PeriodicEmbedding(n_numeric, members=members)
        self.in_features = self.n_numeric + len(sizes)
        self.out_features = sum(self.chunks())

    def chunks(self) -> list[int]:
        """The width of each column's block of the output, in order: one per numeric
        column (1, or its embedding's width), one per indicator, one embedding per
        categorical column (TabM's first per-member scaling draws one sign per block)."""
        numeric = self.numeric.chunks() if self.numeric is not None else [1] * self.n_numeric
        embedded = [e.embedding_dim for e in self.embeddings]
        return [*numeric, *[1] * len(self.indicators), *embedded]

    @torch.no_grad()
    def fit(
        self, x: Tensor, rows: Tensor | None = None, names: Sequence[str] | None = None
    ) -> None:
        """Fit ``fill`` (median), ``shift`` (mean) and ``scale`` (standard deviation) on the
        observed numeric cells of the training rows of ``x`` (``rows``; default: all);
        ``names``: the numeric columns' names, for the error about an empty one."""
        # A column at a time: a (rows, columns) float64 temporary of a large table would
        # cost twice the float32 table.
        rows = slice(None) if rows is None else rows
        stats = [column_statistics(x[rows, i]) for i in range(self.n_numeric)]
        empty = [names[i] if names else f"x{i}" for i, s in enumerate(stats) if s is None]
        if empty:
            listed = ", ".join(map(str, empty))
            raise ValueError(
                f"numeric column(s) {', '.join(map(repr, empty))} have no value in the training "
                f"rows: leave them out of the features (--data.ignore '[{listed}]')"
            )
        self.set_statistics(*([s[j] for s in stats] for j in range(3)))
        if isinstance(self.numeric, PiecewiseLinearEncoding):
            for i in range(self.n_numeric):
                self.numeric.set_edges(i, bin_edges(x[rows, i], self.numeric.n_bins))

    @torch.no_grad()
    def set_statistics(
        self, fill: Sequence[float], shift: Sequence[float], scale: Sequence[float]
    ) -> None:
        """Set the median, mean and standard deviation of each numeric column (what
        :meth:`fit` computes; e.g. reduced over the shares of several processes)."""
        for buffer, values in ((self.fill, fill), (self.shift, shift), (self.scale, scale)):
            buffer.copy_(torch.tensor(list(values), dtype=torch.float64))

    def forward(self, x: Tensor) -> Tensor:
        numeric = x[..., : self.n_numeric]  # (batch, ...) or, per member, (members, batch, ...)
        missing = torch.isnan(numeric)
        filled = torch.where(missing, self.fill, numeric)
        if isinstance(self.numeric, PiecewiseLinearEncoding):
            parts = [self.numeric(filled)]
        elif self.numeric is not None:
            parts = [self.numeric((filled - self.shift) / self.scale)]
        else:
            parts = [(filled - self.shift) / self.scale]
        if self.indicators.numel():
            parts.append(missing[..., self.indicators].to(numeric.dtype))
        if self.members > 1 and x.dim() == 2:  # every member reads the same rows
            parts = [p if p.dim() == 3 else p.expand(self.members, *p.shape) for p in parts]
        if self.embeddings:
            codes = x[..., self.n_numeric :].long()
            parts += [embed(codes[..., j]) for j, embed in enumerate(self.embeddings)]
        return torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0]
