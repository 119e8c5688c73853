"""CSV/Parquet files and the bundled data sets as a Lightning data module."""

from __future__ import annotations

import difflib
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from pandas.api.types import is_bool_dtype, is_numeric_dtype

from softzoo import datasets
from softzoo.data.base import SPLITS, ArrayDataModule, TabularArrays, check_finite
from softzoo.data.loader import InMemoryBatchLoader

__all__ = ["TabularDataModule", "read_table"]

_READERS = {
    ".csv": pd.read_csv,
    ".gz": pd.read_csv,
    ".parquet": pd.read_parquet,
    ".pq": pd.read_parquet,
}


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV (also .csv.gz) or Parquet file with one clear error per failure."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"data file {str(path)!r} does not exist (check the path)")
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise ValueError(
            f"data file {str(path)!r}: unsupported type {path.suffix!r}; use .csv or .parquet"
        )
    try:
        frame = reader(path)
    except pd.errors.EmptyDataError:
        raise ValueError(
            f"data file {str(path)!r} is empty: it needs a header row and data rows"
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as err:
        raise ValueError(f"data file {str(path)!r} could not be parsed: {err}") from None
    if frame.empty:
        raise ValueError(f"data file {str(path)!r} has a header but no data rows")
    return frame


def _numeric_column(frame: pd.DataFrame, name: str, role: str, source: str) -> np.ndarray:
    column = frame[name]
    if is_numeric_dtype(column) or is_bool_dtype(column):
        return column.to_numpy(np.float64, na_value=np.nan)
    numbers = pd.to_numeric(column, errors="coerce")
    bad = numbers.isna() & column.notna()
    row = int(np.flatnonzero(bad.to_numpy())[0]) if bad.any() else 0
    raise ValueError(
        f"{role} column {name!r} in {source} is not numeric (first non-number: "
        f"{column.iloc[row]!r} at row {row}): encode it as numbers or leave it out of the features"
    )


def _require_columns(frame: pd.DataFrame, names: list[str], role: str, source: str) -> None:
    columns = [str(c) for c in frame.columns]
    for name in names:
        if name not in frame.columns:
            close = difflib.get_close_matches(str(name), columns, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"{role} column {name!r} not found in {source}.{hint} "
                f"Its columns are: {', '.join(columns)}"
            )


class TabularDataModule(ArrayDataModule):
    """Train on a CSV/Parquet file (``path``) or a bundled data set (``dataset``).

    Args:
        path: a .csv, .csv.gz or .parquet file with a header row.
        dataset: a bundled data set name (see ``softzoo.datasets.list_datasets()``).
        target: the target column (default for ``dataset``: its usual target).
        features: feature columns (default: every other numeric column; for a bundled data
            set, its usual features).
        index_files: optional files of 0-based row indices, one per line, for "train",
            "val" and "test"; they replace the fractions.
        predict_path: a file with the feature columns to predict on (default: the test split).
        batch_size, eval_batch_size, val_fraction, test_fraction, seed, batches_per_step:
            see ArrayDataModule.

    Example:
        >>> dm = TabularDataModule(dataset="concrete")
        >>> dm.n_features, dm.target_name
        (8, 'compressive_strength_mpa')
    """

    def __init__(
        self,
        path: str | None = None,
        dataset: str | None = None,
        target: str | None = None,
        features: list[str] | None = None,
        index_files: dict[str, str] | None = None,
        predict_path: str | None = None,
        batch_size: int = 256,
        eval_batch_size: int = 4096,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        seed: int = 0,
        batches_per_step: int = 16,
    ) -> None:
        super().__init__(
            batch_size, eval_batch_size, val_fraction, test_fraction, seed, batches_per_step
        )
        if (path is None) == (dataset is None):
            raise ValueError(
                "give exactly one of path (a CSV/Parquet file) or dataset (a bundled data set)"
            )
        if path is not None and target is None:
            raise ValueError(f"target is required with path={path!r}: name the column to predict")
        if dataset is not None:
            datasets.info(dataset)
        if index_files is not None and set(index_files) - set(SPLITS):
            raise ValueError(f"index_files keys must be among {SPLITS}, got {sorted(index_files)}")
        self.save_hyperparameters()
        self.path, self.dataset, self.target, self.features = path, dataset, target, features
        self.index_files, self.predict_path = index_files, predict_path

    @property
    def source(self) -> str:
        return repr(self.path) if self.path else f"dataset {self.dataset!r}"

    def _frame(self) -> pd.DataFrame:
        return read_table(self.path) if self.path else datasets.load_frame(self.dataset)

    def _columns(self, frame: pd.DataFrame) -> tuple[str, list[str]]:
        info = datasets.info(self.dataset) if self.dataset else None
        target = self.target or info.target
        _require_columns(frame, [target], "target", self.source)
        if self.features is not None:
            features = list(self.features)
            _require_columns(frame, features, "feature", self.source)
        elif info is not None:
            features = [c for c in info.features if c != target]
        else:
            features = [str(c) for c in frame.columns if c != target and is_numeric_dtype(frame[c])]
        if not features:
            raise ValueError(
                f"{self.source} has no numeric feature columns besides the target {target!r}"
            )
        if target in features:
            raise ValueError(
                f"the target {target!r} is also listed as a feature; remove it from features"
            )
        return target, features

    def load_arrays(self) -> TabularArrays:
        frame = self._frame()
        target, features = self._columns(frame)
        x = np.stack([_numeric_column(frame, c, "feature", self.source) for c in features], axis=1)
        y = _numeric_column(frame, target, "target", self.source)
        splits = self._read_index_files(len(frame)) if self.index_files else None
        return TabularArrays(x, y, tuple(features), target, splits)

    def _read_index_files(self, n_rows: int) -> dict[str, np.ndarray]:
        splits = {}
        for split, file in self.index_files.items():
            try:
                rows = np.loadtxt(file, dtype=np.int64, ndmin=1)
            except (OSError, ValueError) as err:
                raise ValueError(f"index file {file!r} for split {split!r}: {err}") from None
            if rows.size and (rows.min() < 0 or rows.max() >= n_rows):
                raise ValueError(f"index file {file!r} has rows outside 0..{n_rows - 1}")
            splits[split] = rows
        seen = np.concatenate(list(splits.values()))
        if len(np.unique(seen)) != len(seen):
            raise ValueError(
                "index files overlap or repeat rows: each row may be in one split once"
            )
        return splits

    def predict_dataloader(self) -> InMemoryBatchLoader | list:
        if self.predict_path is None:
            return super().predict_dataloader()
        frame = read_table(self.predict_path)
        source = repr(self.predict_path)
        _require_columns(frame, self.feature_names, "feature", source)
        x = np.stack(
            [_numeric_column(frame, c, "feature", source) for c in self.feature_names], axis=1
        )
        check_finite(x, self.feature_names, "feature")
        features = torch.as_tensor(x, dtype=torch.float32)
        return InMemoryBatchLoader(features, batch_size=self.eval_batch_size)
