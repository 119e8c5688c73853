"""The UCI regression benchmark with its standard splits, read from a folder you give."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from softzoo.data.base import BATCHES_PER_STEP, ArrayDataModule, TabularArrays

__all__ = ["UCISplitDataModule", "uci_splits"]


def uci_splits(root: str | Path, name: str) -> int:
    """The number of standard splits of a UCI benchmark data set under ``root``."""
    return len(list((Path(root) / name).glob("index_train_*.txt")))


class UCISplitDataModule(ArrayDataModule):
    """Split ``split`` of data set ``name`` in the layout of the UCI benchmark folders
    (``data.txt``, ``index_features.txt``, ``index_target.txt``, ``index_train_K.txt``,
    ``index_test_K.txt``). The published protocol has no validation split; ``val_fraction``
    > 0 carves one out of the training rows with ``seed``.

    Example:
        ``UCISplitDataModule("../shared/data/uci", "concrete", split=0)``
    """

    def __init__(
        self,
        root: str,
        name: str,
        split: int = 0,
        batch_size: int = 32,
        eval_batch_size: int = 4096,
        val_fraction: float = 0.0,
        seed: int = 0,
        batches_per_step: int = BATCHES_PER_STEP,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, val_fraction, 0.0, seed, batches_per_step)
        self.folder = Path(root) / name
        if not (self.folder / "data.txt").is_file():
            raise ValueError(
                f"UCI data set {name!r} not found: {self.folder / 'data.txt'} does not exist "
                "(point root at the folder holding the UCI benchmark data sets)"
            )
        n_splits = uci_splits(root, name)
        if not 0 <= split < n_splits:
            raise ValueError(f"split must lie in 0..{n_splits - 1} for {name!r}, got {split}")
        self.save_hyperparameters()  # lets `softzoo report` rebuild the data
        self.name, self.split = name, split

    def _index(self, stem: str) -> np.ndarray:
        return np.loadtxt(self.folder / f"{stem}.txt", dtype=np.int64, ndmin=1)

    def load_arrays(self) -> TabularArrays:
        data = np.loadtxt(self.folder / "data.txt", ndmin=2)
        features, target = self._index("index_features"), int(self._index("index_target")[0])
        train, test = (
            self._index(f"index_train_{self.split}"),
            self._index(f"index_test_{self.split}"),
        )
        order = np.random.default_rng(self.seed).permutation(train)
        n_val = round(len(train) * self.val_fraction)
        splits = {"train": np.sort(order[n_val:]), "val": np.sort(order[:n_val]), "test": test}
        names = tuple(f"x{i}" for i in features)
        return TabularArrays(data[:, features], data[:, target], names, "y", splits)
