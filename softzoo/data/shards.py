"""A Parquet table shared out over processes by row groups (``shard_row_groups``): the
layout every process agrees on (roles, vocabularies, missing indicators: one pass over the
row groups), each process's share of the rows, and the training statistics of all
training rows reduced across the ranks exactly, independent of how many ranks there are.

Sums are taken per row group and added in row-group order, so one process and N give the
same bits; medians are selected exactly from counts of the values' bit patterns summed
across ranks (integers: order does not matter), so they equal the median of all values.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from softzoo._codes import MISSING_CODE
from softzoo.data.checks import check_finite, missing_message
from softzoo.data.files import ParquetSource
from softzoo.data.roles import column_facts, encode_categories, fit_vocabulary, numeric_values

__all__ = [
    "GroupLayout",
    "RankShare",
    "Ranks",
    "TableReading",
    "TrainingStatistics",
    "gather_in_group_order",
    "layout_across",
    "median_across",
    "read_share",
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


@dataclass(frozen=True)
class RankShare:
    """What one process holds of a table shared out by row groups."""

    statistics: TrainingStatistics | None
    train_rows: int  # the fewest training rows of any process: every one takes as many steps
    ranks: tuple[int, int]  # (rank, world_size) it was read for


def share_statistics(
    x: np.ndarray,
    y: np.ndarray,
    group_of: np.ndarray,
    train: np.ndarray,
    numeric: list[str],
    ranks: Ranks,
) -> TrainingStatistics:
    """The training statistics of all processes' rows, from this process's share."""
    columns = []
    for j, name in enumerate(numeric):
        stats = statistics_across(x[train, j].astype(np.float64), group_of[train], ranks)
        if stats is None:
            raise ValueError(
                f"numeric column {name!r} has no value in the training rows: leave it out of "
                "the features"
            )
        columns.append(stats)
    parts = [(int(g), y[train][group_of[train] == g]) for g in np.unique(group_of[train])]
    target = gather_in_group_order(parts, ranks)
    fill, shift, scale = (tuple(c[i] for c in columns) for i in range(3))
    return TrainingStatistics(fill, shift, scale, torch.as_tensor(target, dtype=torch.float32))


@dataclass
class GroupLayout:
    """What one row group says about the layout (see
    :func:`layout_across`); ``error``: the first bad input in it."""

    group: int
    start: int
    kinds: tuple[list[str], list[str]] | None = None
    vocabulary: dict[str, set[str]] = field(default_factory=dict)
    indicators: set[str] = field(default_factory=set)
    facts: dict[str, tuple[str, int]] = field(default_factory=dict)
    error: str | None = None


def group_layout(
    reading: TableReading,
    frame: ParquetSource,
    group: int,
    start: int,
    labels: np.ndarray,
) -> GroupLayout:
    """The layout of one row group (``frame``: a view of it): its roles, the vocabularies
    and gaps of its training rows, its missing cells; a bad cell ends it with an error."""
    target, candidates = reading.target, reading.candidates
    layout = GroupLayout(group, start)
    try:
        layout.kinds = reading.kinds(frame, target, candidates)
        used, train = labels >= 0, labels == 0
        numeric, categorical = layout.kinds
        for name in numeric:
            values = numeric_values(frame, name, "feature", reading.source)
            allow_nan = reading.missing == "impute"
            check_finite(values[used], [name], "feature", allow_nan=allow_nan, offset=start)
            if np.isnan(values[train]).any():
                layout.indicators.add(name)
        for name in categorical:
            # a blank text cell is a missing category, as in the unsharded path
            missing = encode_categories(frame[name], [])[used] == MISSING_CODE
            if reading.missing == "error" and missing.any():
                rows = np.flatnonzero(missing)
                raise ValueError(missing_message("feature", name, rows.size, start + rows[0]))
            layout.vocabulary[name] = set(fit_vocabulary(frame[name][train]))
        layout.facts = column_facts(frame, target, list(frame.columns))
    except ValueError as err:
        layout.error = str(err)
    return layout


def merge_layouts(parts: list[GroupLayout], candidates: list[str], source: str) -> GroupLayout:
    """The row groups' layouts in group order, as one: the first error in group order (as
    one process reading the groups in order would meet it), roles that must agree,
    vocabularies and indicators joined, missing cells summed."""
    merged = GroupLayout(-1, 0)
    for part in sorted(parts, key=lambda p: p.group):
        if merged.kinds is not None and part.kinds is not None and part.kinds != merged.kinds:
            changed = next(c for c in candidates if (c in part.kinds[0]) != (c in merged.kinds[0]))
            was, now = ("numeric", "categorical")[:: 1 if changed in merged.kinds[0] else -1]
            raise ValueError(
                f"column {changed!r} of {source} is {was} in row group 0 and {now} in "
                f"row group {part.group} (rows from {part.start}): list it in "
                "--data.categorical (or --data.ignore), so that every row group gives it "
                "the same role"
            )
        if part.error is not None:
            raise ValueError(part.error)
        merged.kinds = merged.kinds or part.kinds
        for name, categories in part.vocabulary.items():
            merged.vocabulary.setdefault(name, set()).update(categories)
        merged.indicators |= part.indicators
        for name, (dtype, missing) in part.facts.items():
            first_dtype, counted = merged.facts.get(name, (dtype, 0))
            merged.facts[name] = (first_dtype, counted + missing)
    return merged


def ranks_before_setup() -> Ranks:
    """The processes as they are while the model is built: where a launcher started them
    all at once (torchrun), their process group, formed here if need be (Lightning then
    uses it); otherwise one process alone (Lightning's own launcher starts the others only
    after the model is built)."""
    distributed = torch.distributed
    if not distributed.is_available():
        return Ranks()
    if not distributed.is_initialized():
        if not distributed.is_torchelastic_launched():
            return Ranks()
        if torch.cuda.is_available():  # as Lightning will: one GPU per local rank
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        distributed.init_process_group()
    return Ranks(distributed.get_rank(), distributed.get_world_size())


@dataclass(frozen=True)
class TableReading:
    """How a table's columns are read: its ``target`` and candidate feature columns, how
    a frame's candidates split into numeric and categorical ones (``kinds``), the missing
    policy and the table's name for messages."""

    target: str
    candidates: list[str]
    kinds: Callable[[Any, str, list[str]], tuple[list[str], list[str]]]
    missing: str
    source: str


def layout_across(source: ParquetSource, reading: TableReading, labels: np.ndarray) -> GroupLayout:
    """What every process must agree on while the model is built, from one pass over the
    row groups, one at a time: roles (the same rules, per row group; they must agree),
    vocabularies and missing indicators of the training rows (``labels``: each row's split
    code, 0 for training, -1 for none), missing cells. Where the processes already run
    together (torchrun) each reads its own row groups and the results are gathered;
    otherwise every process reads them all."""
    ranks = ranks_before_setup()
    starts = np.cumsum([0, *source.group_rows])
    parts = [
        group_layout(
            reading, source.select([g]), g, int(starts[g]), labels[starts[g] : starts[g + 1]]
        )
        for g in range(ranks.rank, len(source.groups), ranks.world_size)
    ]
    merged = [p for rank in ranks.gather(parts) for p in rank]
    return merge_layouts(merged, reading.candidates, reading.source)


def read_share(
    source: ParquetSource,
    columns: tuple[list[str], dict[str, list[str]], str],
    labels: np.ndarray,
    ranks: Ranks,
    with_statistics: bool,
    name: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, RankShare]:
    """This process's row groups read into arrays: the features (``columns``: the feature
    names, the categories' vocabularies, the target), the target, each row's split code
    (the rows of its groups that are in a split, in file order) and what it holds; for
    training, the statistics reduced across the processes."""
    feature_names, categories, target = columns
    groups = shard_groups(len(source.groups), ranks.rank, ranks.world_size)
    starts = np.cumsum([0, *source.group_rows])
    numeric = [c for c in feature_names if c not in categories]
    taken = [labels[starts[g] : starts[g + 1]] >= 0 for g in groups]
    x = np.empty((sum(int(t.sum()) for t in taken), len(feature_names)), np.float32)
    y, group_of = np.empty(len(x)), np.empty(len(x), np.int64)
    split_of = np.empty(len(x), np.int8)
    position = 0
    for g, take in zip(groups, taken, strict=True):
        frame = source.select([g])
        rows = slice(position, position + int(take.sum()))
        for j, column in enumerate(feature_names):
            x[rows, j] = (
                numeric_values(frame, column, "feature", name)
                if column in numeric
                else encode_categories(frame[column], categories[column])
            )[take]
        y[rows] = numeric_values(frame, target, "target", name)[take]
        group_of[rows], split_of[rows] = g, labels[starts[g] : starts[g + 1]][take]
        position = rows.stop
    train = np.flatnonzero(split_of == 0)
    share = RankShare(
        statistics=share_statistics(x, y, group_of, train, numeric, ranks)
        if with_statistics
        else None,
        train_rows=min(ranks.gather(len(train))),
        ranks=(ranks.rank, ranks.world_size),
    )
    return x, y, split_of, share
