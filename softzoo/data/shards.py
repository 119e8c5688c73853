"""Training statistics of a table spread over processes: each rank holds only its share
of the rows (whole row groups), and the statistics of all training rows are reduced across
the ranks exactly, independent of how many ranks there are.

Sums are taken per row group and added in row-group order, so one process and N give the
same bits; medians are selected exactly from counts of the values' bit patterns summed
across ranks (integers: order does not matter), so they equal the median of all values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "Ranks",
    "TrainingStatistics",
    "gather_in_group_order",
    "median_across",
    "shard_groups",
    "statistics_across",
]

#: bits of the sortable key resolved per round of the median search (4 rounds of 16)
_BITS = 16


class Ranks:
    """The processes sharing a table: ``rank`` of ``world_size``. With more than one, the
    reductions run through ``torch.distributed`` (which Lightning's DDP has initialised).

    Example:
        >>> Ranks().gather("a"), int(Ranks().sum(torch.tensor([2]))[0])
        (['a'], 2)
    """

    def __init__(self, rank: int = 0, world_size: int = 1) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world_size {world_size}")
        self.rank, self.world_size = int(rank), int(world_size)

    def gather(self, value: object) -> list:
        """Every rank's ``value``, in rank order, on every rank."""
        if self.world_size == 1:
            return [value]
        values: list = [None] * self.world_size
        torch.distributed.all_gather_object(values, value)
        return values

    def sum(self, tensor: Tensor) -> Tensor:
        """The element-wise sum of every rank's ``tensor`` (integers: exact)."""
        if self.world_size == 1:
            return tensor
        # NCCL (Lightning's backend on GPUs) reduces CUDA tensors only
        device = "cuda" if torch.distributed.get_backend() == "nccl" else "cpu"
        moved = tensor.to(device)
        torch.distributed.all_reduce(moved, op=torch.distributed.ReduceOp.SUM)
        return moved.cpu()


def shard_groups(n_groups: int, rank: int, world_size: int) -> list[int]:
    """The row groups a rank holds: every ``world_size``-th, starting at its rank.

    Example:
        >>> shard_groups(5, 1, 2)
        [1, 3]
    """
    if n_groups < world_size:
        raise ValueError(
            f"the table has {n_groups} row group(s) for {world_size} processes: each process "
            "reads whole row groups, so write the Parquet file(s) with at least as many row "
            "groups as processes (pyarrow: pq.write_table(table, path, row_group_size=ROWS)), "
            "or train on fewer processes"
        )
    return list(range(rank, n_groups, world_size))


def _sortable_keys(values: np.ndarray) -> np.ndarray:
    """uint64 keys in the order of the float64 ``values`` (no NaN)."""
    bits = np.ascontiguousarray(values, dtype=np.float64).view(np.uint64)
    negative = (bits >> np.uint64(63)).astype(bool)
    return np.where(negative, ~bits, bits | np.uint64(1 << 63))


def _key_value(key: int) -> float:
    bits = key & ~(1 << 63) if key >> 63 else ~key & (2**64 - 1)
    return float(np.array([bits], dtype=np.uint64).view(np.float64)[0])


def _order_statistic(keys: np.ndarray, k: int, ranks: Ranks) -> float:
    """The ``k``-th smallest (0-based) of every rank's values, from their keys: 16 bits of
    the key per round, each round one histogram of the candidates summed across ranks."""
    prefix, candidates = 0, keys
    for shift in range(64 - _BITS, -1, -_BITS):
        digits = ((candidates >> np.uint64(shift)) & np.uint64(2**_BITS - 1)).astype(np.int64)
        counts = ranks.sum(torch.as_tensor(np.bincount(digits, minlength=2**_BITS)))
        below = torch.cumsum(counts, 0)
        digit = int(torch.searchsorted(below, k, right=True))
        k -= int(below[digit - 1]) if digit else 0
        prefix = (prefix << _BITS) | digit
        candidates = candidates[digits == digit]
    return _key_value(prefix)


def median_across(values: np.ndarray, ranks: Ranks) -> float:
    """The median of every rank's observed (not NaN) ``values`` together, exactly as
    ``torch.quantile(all_values, 0.5)`` gives it; NaN where no rank has one.

    Example:
        >>> median_across(np.array([3.0, 1.0, np.nan, 10.0, 2.0]), Ranks())
        2.5
    """
    keys = _sortable_keys(values[~np.isnan(values)])
    n = int(ranks.sum(torch.tensor([len(keys)]))[0])
    if not n:
        return float("nan")
    low = _order_statistic(keys, (n - 1) // 2, ranks)
    if n % 2:
        return low
    high = _order_statistic(keys, n // 2, ranks)
    return float(torch.quantile(torch.tensor([low, high], dtype=torch.float64), 0.5))


def _sum_in_group_order(partials: list[tuple[int, float]], ranks: Ranks) -> float:
    total = 0.0
    for _, value in sorted(p for rank in ranks.gather(partials) for p in rank):
        total += value
    return total


@dataclass(frozen=True)
class TrainingStatistics:
    """What a model fits on the training rows, reduced over every rank's share: per numeric
    column its median, mean and standard deviation (those of
    :func:`softzoo.nn.tabular.column_statistics`), and every training row's target in
    table order."""

    fill: tuple[float, ...]
    shift: tuple[float, ...]
    scale: tuple[float, ...]
    target: Tensor


def statistics_across(
    values: np.ndarray, groups: np.ndarray, ranks: Ranks
) -> tuple[float, float, float] | None:
    """Median, mean and standard deviation of one column's training values over all ranks
    (None where no rank has an observed value). ``values`` are this rank's, ``groups`` the
    row group of each (values of a group are contiguous); sums go per row group, in group
    order, so the result does not depend on how the groups are spread over ranks.

    Example:
        >>> statistics_across(np.array([1.0, np.nan, 3.0, 8.0]), np.array([0, 0, 1, 1]), Ranks())
        (3.0, 4.0, 3.605551275463989)
    """
    observed = ~np.isnan(values)
    values, groups = values[observed], groups[observed]
    cuts = [int(c) for c in np.flatnonzero(groups[1:] != groups[:-1]) + 1]
    bounds = list(zip([0, *cuts], [*cuts, len(groups)], strict=True)) if len(groups) else []
    count = int(ranks.sum(torch.tensor([len(values)]))[0])
    if not count:
        return None
    column = torch.as_tensor(values)
    sums = [(int(groups[a]), float(column[a:b].sum())) for a, b in bounds]
    mean = _sum_in_group_order(sums, ranks) / count
    squares = [(int(groups[a]), float(((column[a:b] - mean) ** 2).sum())) for a, b in bounds]
    std = math.sqrt(_sum_in_group_order(squares, ranks) / max(count - 1, 1))
    return median_across(values, ranks), mean, std if std > 0 else 1.0


def gather_in_group_order(parts: Sequence[tuple[int, np.ndarray]], ranks: Ranks) -> np.ndarray:
    """Every rank's ``(group, array)`` parts, concatenated in row-group order."""
    ordered = sorted((p for rank in ranks.gather(list(parts)) for p in rank), key=lambda p: p[0])
    return np.concatenate([a for _, a in ordered]) if ordered else np.zeros(0)
