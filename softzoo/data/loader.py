"""A fast loader for in-memory tabular tensors: whole-batch slices, no per-sample collate.

``DataLoader(TensorDataset)`` indexes and collates sample by sample; on small MLPs that
costs more than the step itself. This loader gathers the shuffled rows once per epoch
and then yields contiguous views.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

__all__ = ["InMemoryBatchLoader", "move_batch"]


class _EpochSampler:
    """Holds the epoch; Lightning calls ``loader.sampler.set_epoch`` before each epoch."""

    def __init__(self) -> None:
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)


class InMemoryBatchLoader:
    """Iterate ``batch_size`` slices of equally long tensors, reshuffled every epoch.

    Args:
        tensors: tensors with the same first dimension (e.g. features, target).
        batch_size: rows per batch; the last batch is smaller unless ``drop_last``.
        shuffle: reshuffle each epoch with ``seed + epoch`` (reproducible, also on resume).
        batches_per_step: yield lists of this many consecutive batches (the last list may
            be shorter), one per Lightning step: :class:`~softzoo.models.SoftRegressor` takes
            one optimiser step per batch, so Lightning's fixed per-step cost is paid once
            per list. 1 yields plain batches.
        members: with ``shuffle``, one shuffle per ensemble member: every tensor of a batch
            gets a leading member dimension, ``(members, batch, ...)``, member m's rows drawn
            from its own permutation (seed ``seed + epoch + 7919·m``).
        index: the rows of the tensors to iterate (e.g. one split's), gathered a step's
            rows at a time, so a split is never copied whole; default: every row.
        rank, world_size: this process's shard under DDP. With ``shuffle`` every rank
            draws the same permutation and takes every ``world_size``-th row, truncated to
            an equal length, so all ranks run the same number of steps; without it, ranks
            take contiguous near-equal chunks and together see every row exactly once.

    Example:
        >>> import torch
        >>> loader = InMemoryBatchLoader(torch.arange(10.0), batch_size=4)
        >>> [b[0].tolist() for b in loader]
        [[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0], [8.0, 9.0]]
        >>> grouped = InMemoryBatchLoader(torch.arange(10.0), batch_size=4, batches_per_step=2)
        >>> [[b[0].tolist() for b in step] for step in grouped]
        [[[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0]], [[8.0, 9.0]]]
    """

    def __init__(
        self,
        *tensors: Tensor,
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        batches_per_step: int = 1,
        rank: int = 0,
        world_size: int = 1,
        members: int = 1,
        index: Tensor | None = None,
        epoch_rows: int | None = None,
    ) -> None:
        if not tensors:
            raise ValueError("InMemoryBatchLoader needs at least one tensor")
        n = tensors[0].shape[0]
        if any(t.shape[0] != n for t in tensors):
            raise ValueError(f"tensors differ in length: {[t.shape[0] for t in tensors]}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if batches_per_step < 1:
            raise ValueError(f"batches_per_step must be >= 1, got {batches_per_step}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world_size {world_size}")
        self.tensors, self.batch_size, self.shuffle = tensors, int(batch_size), shuffle
        self.index = index
        self._n = n if index is None else len(index)
        self.epoch_rows = epoch_rows
        self.drop_last, self.seed, self.rank, self.world_size = drop_last, seed, rank, world_size
        self.batches_per_step = int(batches_per_step)
        self.members = int(members)
        self.sampler = _EpochSampler()
        # Lightning inspects `batch_sampler` whenever a loader has a `sampler`.
        self.batch_sampler = None

    @property
    def rows(self) -> int:
        """Rows this rank iterates over per epoch."""
        if self.shuffle:
            share = self._n // self.world_size
            return share if self.epoch_rows is None else min(share, self.epoch_rows)
        start, stop = self._chunk()
        return stop - start

    def _chunk(self) -> tuple[int, int]:
        n = self._n
        return n * self.rank // self.world_size, n * (self.rank + 1) // self.world_size

    @property
    def num_batches(self) -> int:
        """Batches (optimiser steps) per epoch on this rank."""
        full, rest = divmod(self.rows, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def __len__(self) -> int:
        return -(-self.num_batches // self.batches_per_step)

    def _order(self, member: int) -> Tensor:
        """This rank's rows of one member's permutation for the current epoch, as rows of
        the tensors."""
        seed = self.seed + self.sampler.epoch + 7919 * member
        order = torch.randperm(self._n, generator=torch.Generator().manual_seed(seed))
        order = order[self.rank :: self.world_size][: self.rows]
        if self.index is not None:
            order = self.index[order]
        return order.to(self.tensors[0].device)

    def _stop(self) -> int:
        return self.rows - self.rows % self.batch_size if self.drop_last else self.rows

    def _batches(self) -> Iterator[tuple[Tensor, ...]]:
        """Batches from one step's rows at a time: gathered (shuffled or indexed rows) or
        sliced (a contiguous chunk), so no epoch-sized copy is made."""
        if self.members > 1 and self.shuffle:
            yield from self._member_batches()
            return
        start, _ = self._chunk()
        rows = self._order(0) if self.shuffle else None
        if rows is None and self.index is not None:
            rows = self.index[start : start + self.rows]
        span = self.batch_size * self.batches_per_step
        for first in range(0, self._stop(), span):
            last = min(first + span, self._stop())
            if rows is None:
                part = tuple(t[start + first : start + last] for t in self.tensors)
            else:
                part = tuple(t[rows[first:last]] for t in self.tensors)
            for offset in range(0, last - first, self.batch_size):
                yield tuple(p[offset : offset + self.batch_size] for p in part)

    def _member_batches(self) -> Iterator[tuple[Tensor, ...]]:
        """Batches of (members, batch, ...): each member's rows from its own shuffle,
        gathered batch by batch (the data is not copied per member)."""
        orders = torch.stack([self._order(m) for m in range(self.members)])
        for start in range(0, self._stop(), self.batch_size):
            rows = orders[:, start : start + self.batch_size]
            yield tuple(t[rows] for t in self.tensors)

    def __iter__(self) -> Iterator[tuple[Tensor, ...] | list[tuple[Tensor, ...]]]:
        if self.batches_per_step == 1:
            yield from self._batches()
            return
        batches = self._batches()
        while step := list(itertools.islice(batches, self.batches_per_step)):
            yield step


def _is_batch(batch: Any) -> bool:
    """(x, y) or a weighted (x, y, weight): the batches softzoo's loaders yield."""
    return (
        isinstance(batch, (list, tuple))
        and len(batch) in (2, 3)
        and all(isinstance(t, Tensor) for t in batch)
    )


def move_batch(batch: Any, device: torch.device) -> Any | None:
    """softzoo's batches, ``(x, y)``, ``(x, y, weight)`` or a list of them, moved tensor by
    tensor (as Lightning would, non-blocking off the CPU): Lightning's generic walk over
    collections cost a tenth of a small training step on CPU. None for any other batch.

    Example:
        >>> x, y = torch.zeros(2, 3), torch.ones(2)
        >>> move_batch([(x, y), (x, y, y)], torch.device("cpu"))[1][2] is y
        True
    """
    options = {} if device.type in ("cpu", "mps") else {"non_blocking": True}
    if _is_batch(batch):
        return tuple(t.to(device, **options) for t in batch)
    if isinstance(batch, list) and batch and all(_is_batch(b) for b in batch):
        return [tuple(t.to(device, **options) for t in b) for b in batch]
    return None
