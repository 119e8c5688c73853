"""CSV/Parquet files and the bundled data sets as a Lightning data module."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from pandas.api.types import is_bool_dtype, is_numeric_dtype

from softzoo import datasets
from softzoo._names import did_you_mean
from softzoo.data.base import SPLITS, ArrayDataModule, TabularArrays, check_finite
from softzoo.data.loader import InMemoryBatchLoader

__all__ = ["TabularDataModule", "header_names", "read_table"]

_READERS = {
    ".csv": pd.read_csv,
    ".gz": pd.read_csv,
    ".parquet": pd.read_parquet,
    ".pq": pd.read_parquet,
}


#: Separators that, found in the only header cell of a "CSV", mean it is not comma-separated.
_OTHER_SEPARATORS = {";": "semicolon", "\t": "tab", "|": "pipe"}


def header_names(cells: list[str], source: str) -> list[str]:
    """Column names from a header row, by the one rule that training, ``softzoo predict``
    and ``export/predict.py`` share: a UTF-8 byte-order mark is dropped, names are
    stripped of surrounding spaces, and an empty or repeated name is an error.

    Example:
        >>> header_names(["\ufeffa", " b ", "y"], "t.csv")
        ['a', 'b', 'y']
    """
    names = [str(c).strip() for c in cells]
    if names:
        names[0] = names[0].removeprefix("\ufeff").strip()
    for position, name in enumerate(names, start=1):
        if not name:
            raise ValueError(
                f"column {position} of the header of {source} has no name: name it (a pandas "
                "index saved with the data leaves an empty name: save with index=False)"
            )
    seen: dict[str, int] = {}
    for position, name in enumerate(names, start=1):
        if name in seen:
            raise ValueError(
                f"the header of {source} names {name!r} twice (columns {seen[name]} and "
                f"{position}): rename one, so that every column has one meaning"
            )
        seen[name] = position
    return names


def _check_separator(frame: pd.DataFrame, source: str) -> None:
    if frame.shape[1] != 1:
        return
    cell = str(frame.columns[0])
    for separator, word in _OTHER_SEPARATORS.items():
        if separator in cell:
            raise ValueError(
                f"{source} has one column named {cell!r}: it looks {word}-separated, and "
                f"softzoo reads comma-separated files; convert it (pandas: "
                f"pd.read_csv(path, sep={separator!r}).to_csv(new_path, index=False))"
            )


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV (also .csv.gz) or Parquet file with one clear error per failure; column
    names follow :func:`header_names`."""
    path = Path(path)
    source = repr(str(path))
    if not path.is_file():
        raise ValueError(f"data file {source} does not exist (check the path)")
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise ValueError(
            f"data file {source}: unsupported type {path.suffix!r}; use .csv or .parquet"
        )
    try:
        frame = _read_csv(path, source) if reader is pd.read_csv else reader(path)
    except pd.errors.EmptyDataError:
        raise ValueError(
            f"data file {source} is empty: it needs a header row and data rows"
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as err:
        raise ValueError(f"data file {source} could not be parsed: {err}") from None
    if reader is not pd.read_csv:
        frame.columns = header_names([str(c) for c in frame.columns], source)
    _check_separator(frame, source)
    if frame.empty:
        raise ValueError(f"data file {source} has a header but no data rows")
    return frame


def _read_csv(path: Path, source: str) -> pd.DataFrame:
    # The header is read as raw text first: pandas would rename a repeated name (a, a.1)
    # and keep the spaces around names.
    header = pd.read_csv(path, header=None, nrows=1, dtype=str, na_filter=False)
    names = header_names(list(header.iloc[0]), source)
    return pd.read_csv(path, header=0, names=names)


def _unparsable(column: pd.Series) -> pd.Series:
    """Cells that hold something but are no number."""
    return pd.to_numeric(column, errors="coerce").isna() & column.notna()


def _numeric_column(frame: pd.DataFrame, name: str, role: str, source: str) -> np.ndarray:
    column = frame[name]
    if is_numeric_dtype(column) or is_bool_dtype(column):
        return column.to_numpy(np.float64, na_value=np.nan)
    bad = _unparsable(column)
    if not bad.any():  # e.g. integers beyond int64, which pandas keeps as Python ints
        return pd.to_numeric(column, errors="coerce").to_numpy(np.float64, na_value=np.nan)
    raise ValueError(_not_numeric_message(column, bad, role, source))


def _not_numeric_message(column: pd.Series, bad: pd.Series, role: str, source: str) -> str:
    rows = np.flatnonzero(bad.to_numpy())
    shown = ", ".join(f"{column.iloc[r]!r} (row {r})" for r in rows[:3])
    what = f"{role} column {column.name!r} in {source}"
    if rows.size <= column.notna().sum() / 2:
        advice = "fix those cells: softzoo never drops or guesses values"
        text = f"{what} is numeric except for {rows.size} cell(s): {shown}"
    else:
        advice = (
            "the target must be a number in every row"
            if role == "target"
            else "encode it as numbers, or list the features to use with --data.features"
        )
        text = f"{what} is not numeric (first non-numbers: {shown})"
    if _THOUSANDS.match(str(column.iloc[rows[0]]).strip()):
        advice = "it looks like numbers written with thousands separators: remove them"
    return f"{text}: {advice}"


#: "1,200" or "12,345.5": a number with thousands separators.
_THOUSANDS = re.compile(r"^[-+]?\d{1,3}(,\d{3})+(\.\d*)?$")


def _require_columns(frame: pd.DataFrame, names: list[str], role: str, source: str) -> None:
    columns = [str(c) for c in frame.columns]
    for name in names:
        if name not in frame.columns:
            raise ValueError(
                f"{role} column {name!r} not found in {source}.{did_you_mean(name, columns)} "
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
            # every other column: one that is not numeric is an error, never left out silently
            features = [str(c) for c in frame.columns if c != target]
        if not features:
            raise ValueError(f"{self.source} has no feature columns besides the target {target!r}")
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
