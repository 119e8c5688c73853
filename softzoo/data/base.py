"""The data module every softzoo data source builds on: arrays in memory, split, validated,
served by :class:`~softzoo.data.loader.InMemoryBatchLoader`."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import torch
from torch import Tensor

from softzoo.data.checks import check_finite
from softzoo.data.loader import InMemoryBatchLoader, move_batch
from softzoo.data.shards import TrainingStatistics
from softzoo.recipe import AUTO, default_recipe

__all__ = ["BATCHES_PER_STEP", "SPLITS", "ArrayDataModule", "TabularArrays", "fraction_splits"]

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class TabularArrays:
    """Features (n, d), target (n,) and optional fixed splits (row indices per split).

    ``categories`` names the categorical columns (the last ones of ``feature_names``; their
    features are codes, see :mod:`softzoo._codes`) with their vocabularies;
    ``missing_indicators`` the numeric columns with gaps in the training split;
    ``allow_missing`` whether numeric features may be NaN (imputed by the model); ``roles``
    the roles table; ``exposure`` (n,) each row's exposure (> 0) and ``weight`` (n,) each
    row's weight (>= 0), with the columns they came from."""

    features: np.ndarray
    target: np.ndarray
    feature_names: tuple[str, ...]
    target_name: str
    splits: dict[str, np.ndarray] | None = None
    categories: dict[str, list[str]] = field(default_factory=dict)
    missing_indicators: tuple[str, ...] = ()
    allow_missing: bool = False
    roles: tuple[dict, ...] = ()
    exposure: np.ndarray | None = None
    weight: np.ndarray | None = None
    exposure_column: str | None = None
    weight_column: str | None = None


def fraction_splits(n: int, val: float, test: float, seed: int) -> dict[str, np.ndarray]:
    """Sorted row indices of a seeded random train/val/test split of ``n`` rows."""
    order = np.random.default_rng(seed).permutation(n)
    n_test, n_val = round(n * test), round(n * val)
    return {
        "test": np.sort(order[:n_test]),
        "val": np.sort(order[n_test : n_test + n_val]),
        "train": np.sort(order[n_test + n_val :]),
    }


#: Training batches per Lightning step by default: Lightning's own cost per step (about
#: 0.4 ms on one CPU thread, half an optimiser step of a 64-64 MLP at batch 256) is paid
#: once per group; at 64 it is under 1 % of the raw loop's step (benchmarks/train_throughput.py).
BATCHES_PER_STEP = 64


class ArrayDataModule(pl.LightningDataModule):
    """Split in-memory arrays into train/val/test and serve whole-batch slices.

    Subclasses implement :meth:`load_arrays`. Splits come from the arrays (fixed index
    sets) or from ``val_fraction``/``test_fraction`` with ``seed``.

    Args:
        batch_size: training batch size, or "auto": the default recipe's for the number
            of training rows (:func:`softzoo.recipe.default_recipe`).
        eval_batch_size: batch size for validation, test and predict.
        val_fraction, test_fraction: shares of the rows for validation and test.
        seed: seeds the split and the per-epoch shuffling.
        batches_per_step: training batches per Lightning step; the model takes one
            optimiser step per batch, so Lightning's fixed per-step cost (about 0.4 ms on
            one CPU thread) is paid once per group. Optimiser steps, ``global_step`` and
            ``max_steps`` still count batches; 1 gives one batch per Lightning step.
    """

    #: one training shuffle per ensemble member (an ensemble model sets it in setup)
    member_shuffles: int = 1

    def __init__(
        self,
        batch_size: int | Literal["auto"] = 256,
        eval_batch_size: int = 4096,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        seed: int = 0,
        batches_per_step: int = BATCHES_PER_STEP,
    ) -> None:
        super().__init__()
        if (batch_size != AUTO and batch_size < 1) or eval_batch_size < 1:
            raise ValueError(f"batch sizes must be >= 1, got {batch_size} and {eval_batch_size}")
        if batches_per_step < 1:
            raise ValueError(f"batches_per_step must be >= 1, got {batches_per_step}")
        self.batches_per_step = int(batches_per_step)
        for name, frac in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not 0.0 <= frac < 1.0:
                raise ValueError(f"{name} must lie in [0, 1), got {frac}")
        if val_fraction + test_fraction >= 1.0:
            raise ValueError(
                f"val_fraction + test_fraction = {val_fraction + test_fraction:g} leaves no "
                "training rows; keep their sum below 1"
            )
        self._batch_size = batch_size if batch_size == AUTO else int(batch_size)
        self.eval_batch_size = int(eval_batch_size)
        self.val_fraction, self.test_fraction, self.seed = val_fraction, test_fraction, seed

    # ---- what subclasses provide ------------------------------------------------------
    def load_arrays(self) -> TabularArrays:
        raise NotImplementedError

    def transfer_batch_to_device(
        self, batch: Any, device: torch.device, dataloader_idx: int
    ) -> Any:
        """This module's batches moved tensor by tensor (:func:`~softzoo.data.loader.move_batch`);
        anything else goes to Lightning's."""
        moved = move_batch(batch, device)
        if moved is None:
            return super().transfer_batch_to_device(batch, device, dataloader_idx)
        return moved

    # ---- loading, validation, splitting (once, lazily) --------------------------------
    @cached_property
    def arrays(self) -> TabularArrays:
        arrays = self.load_arrays()
        check_finite(arrays.features, arrays.feature_names, "feature", arrays.allow_missing)
        check_finite(arrays.target, [arrays.target_name], "target")
        return arrays

    @property
    def batch_size(self) -> int:
        """The training batch size; "auto": the default recipe's for the training rows
        (:func:`softzoo.recipe.default_recipe`)."""
        if self._batch_size == AUTO:
            return default_recipe(max(self.train_rows, 1)).batch_size
        return self._batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        self._batch_size = int(value)

    @property
    def train_rows(self) -> int:
        """The number of rows in the training split (of all processes; linked to the
        model's ``train_rows`` by the CLI, for its "auto" settings)."""
        return len(self.split_indices["train"])

    @property
    def n_features(self) -> int:
        """Number of feature columns (linked to the model's ``in_features`` by the CLI)."""
        return len(self.arrays.feature_names)

    @property
    def feature_names(self) -> list[str]:
        return list(self.arrays.feature_names)

    @property
    def target_name(self) -> str:
        return self.arrays.target_name

    @property
    def categories(self) -> dict[str, list[str]]:
        """Vocabulary of each categorical column (linked to the model by the CLI)."""
        return dict(self.arrays.categories)

    @property
    def missing_indicators(self) -> list[str]:
        """Numeric columns with gaps in the training split (linked to the model)."""
        return list(self.arrays.missing_indicators)

    @property
    def missing_policy(self) -> str:
        """ "impute" when numeric features may be missing (the model fills them), else "error"
        (linked to the model, for exports)."""
        return "impute" if self.arrays.allow_missing else "error"

    @property
    def column_roles(self) -> list[dict] | None:
        """The roles table (linked to the model, for reports and exports)."""
        return [dict(r) for r in self.arrays.roles] or None

    @property
    def exposure_column(self) -> str | None:
        """The column of each row's exposure (linked to the model): it multiplies the
        predicted mean and travels as the last column of :attr:`features_tensor`."""
        return self.arrays.exposure_column

    @property
    def weight_column(self) -> str | None:
        """The column of each row's weight (linked to the model): loaders then yield
        (x, y, weight) batches, and the loss and metrics are weighted."""
        return self.arrays.weight_column

    @property
    def sharded(self) -> bool:
        """Whether this process holds only its share of the rows (then its loaders iterate
        all of them, and :attr:`training_statistics` holds what the model fits)."""
        return False

    @property
    def training_statistics(self) -> TrainingStatistics | None:
        """The statistics of all training rows, reduced across processes, where this
        process holds only its share; None: the model fits them on :meth:`tensors`."""
        return None

    def _train_rows_per_process(self) -> int:
        return len(self.split_indices["train"]) // self._shard().get("world_size", 1)

    @cached_property
    def split_indices(self) -> dict[str, np.ndarray]:
        arrays = self._rows
        n = len(arrays.target)
        if arrays.splits is not None:
            return {s: np.asarray(arrays.splits.get(s, []), dtype=np.int64) for s in SPLITS}
        return fraction_splits(n, self.val_fraction, self.test_fraction, self.seed)

    def tensors(self, split: str) -> tuple[Tensor, Tensor]:
        """(features, target) of a split as float32 tensors (a copy of its rows; the
        exposure, if any, is the last column of the features)."""
        rows = torch.as_tensor(self.split_indices[split])
        return self.features_tensor[rows], self.target_tensor[rows]

    def split_weight(self, split: str) -> Tensor | None:
        """The weights of a split's rows (None: unweighted)."""
        if self._rows.weight is None:
            return None
        weight = torch.as_tensor(self._rows.weight, dtype=torch.float32)
        return weight[torch.as_tensor(self.split_indices[split])]

    def split_target(self, split: str) -> Tensor:
        """The float32 target of a split (without copying the features)."""
        return self.target_tensor[torch.as_tensor(self.split_indices[split])]

    def file_rows(self, split: str) -> np.ndarray:
        """Each row of a split as its row in the source table (0-based): the arrays' rows,
        unless a subclass dropped some while reading (for messages naming a row)."""
        return self.split_indices[split]

    @cached_property
    def features_tensor(self) -> Tensor:
        """Every row's features as one float32 tensor, sharing the arrays' memory where they
        are float32 already (with an exposure: a copy, the exposure its last column);
        :attr:`split_indices` picks a split's rows."""
        features = torch.as_tensor(self._rows.features, dtype=torch.float32)
        if self._rows.exposure is None:
            return features
        exposure = torch.as_tensor(self._rows.exposure, dtype=torch.float32)
        return torch.cat([features, exposure[:, None]], dim=1)

    @cached_property
    def target_tensor(self) -> Tensor:
        """Every row's target as one float32 tensor."""
        return torch.as_tensor(self._rows.target, dtype=torch.float32)

    @property
    def _rows(self) -> TabularArrays:
        """The arrays with their rows (where a process holds a share, once it has read it)."""
        return self.arrays

    def _loader(self, split: str, **options) -> InMemoryBatchLoader:
        """A loader over one split's rows of the arrays, gathered a step at a time."""
        index = torch.as_tensor(self.split_indices[split])
        tensors = [self.features_tensor, self.target_tensor]
        if self._rows.weight is not None:
            tensors.append(torch.as_tensor(self._rows.weight, dtype=torch.float32))
        return InMemoryBatchLoader(*tensors, index=index, **options, **self._shard())

    # ---- loaders -----------------------------------------------------------------------
    def _shard(self) -> dict[str, int]:
        trainer = self.trainer
        return {"rank": trainer.global_rank, "world_size": trainer.world_size} if trainer else {}

    def train_dataloader(self) -> InMemoryBatchLoader:
        rows = self._train_rows_per_process()
        if rows == 0:
            world_size = self.trainer.world_size if self.trainer else 1
            raise ValueError(
                f"the training split has {len(self.split_indices['train'])} row(s) here, "
                f"fewer than the {world_size} processes: train on more rows or fewer devices"
            )
        batch_size = min(self.batch_size, rows)
        if batch_size < self.batch_size and (not self.trainer or self.trainer.is_global_zero):
            # as a DataLoader does: the rows there are make one short batch
            print(
                f"softzoo: batch_size {self.batch_size} is larger than the {rows} training rows "
                f"per process: each epoch is one batch of {rows} rows",
                file=sys.stderr,
                flush=True,
            )
        return self._loader(
            "train",
            batch_size=batch_size,
            shuffle=True,
            seed=self.seed,
            batches_per_step=self.batches_per_step,
            members=self.member_shuffles,
            epoch_rows=rows,
        )

    def _eval_loader(self, split: str) -> InMemoryBatchLoader | list:
        if not len(self.split_indices[split]):
            return []
        return self._loader(split, batch_size=self.eval_batch_size)

    def val_dataloader(self) -> InMemoryBatchLoader | list:
        return self._eval_loader("val")

    def test_dataloader(self) -> InMemoryBatchLoader | list:
        return self._eval_loader("test")

    def predict_dataloader(self) -> InMemoryBatchLoader | list:
        return self._eval_loader("test")
