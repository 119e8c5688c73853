"""Reading the table files softzoo trains on: CSV and Parquet with one header rule, and
Parquet files (one, or a directory of them) a column or a row group at a time."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["PARQUET_SUFFIXES", "ParquetSource", "header_names", "is_parquet", "read_table"]

#: File name endings read as Parquet; a directory of such files is one table.
PARQUET_SUFFIXES = (".parquet", ".pq")

_READERS = {
    ".csv": pd.read_csv,
    ".gz": pd.read_csv,
    **dict.fromkeys(PARQUET_SUFFIXES, pd.read_parquet),
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


def read_table(path: str | Path, text_columns: Sequence[str] = ()) -> pd.DataFrame:
    """Read a CSV (also .csv.gz) or Parquet file with one clear error per failure; column
    names follow :func:`header_names`. ``text_columns`` of a CSV are read as the text of
    their cells (categorical columns: '007' stays '007' whatever the other rows hold);
    Parquet columns keep their stored types."""
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
        frame = _read_csv(path, source, text_columns) if reader is pd.read_csv else reader(path)
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


def _table_files(folder: Path) -> list[Path]:
    """The Parquet files of a directory that make its table, by name: hidden and
    underscore files (``.x.parquet``, ``_SUCCESS``, ``_metadata``: Spark's and pyarrow's
    bookkeeping) are not part of it, as pyarrow.dataset and Spark read it."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.suffix.lower() in PARQUET_SUFFIXES and not p.name.startswith((".", "_"))
    )


def is_parquet(path: Path) -> bool:
    """Whether ``path`` is a Parquet file or a directory (read as one table of its Parquet
    files)."""
    return path.is_dir() or (path.is_file() and path.suffix.lower() in PARQUET_SUFFIXES)


class ParquetSource:
    """A Parquet file, or a directory of Parquet files (sorted by name, every one with the
    same columns), as one table whose rows are numbered file by file and row group by
    row group. ``source[name]`` reads one whole column (a pandas Series exactly as
    ``pd.read_parquet`` gives it), :meth:`select` a view of some row groups:
    training never holds the whole table, only the float32 features it builds from it.
    Names follow :func:`header_names`; a pandas index a file carries is not a column.

    Example:
        >>> source = ParquetSource(Path("table.parquet"))  # doctest: +SKIP
        >>> source.group_rows, list(source.columns)  # doctest: +SKIP
        ([1000000, 1000000, 500000], ['x0', 'x1', 'y'])
    """

    def __init__(self, path: Path) -> None:
        import pyarrow.parquet as pq

        self.source = repr(str(path))
        files = _table_files(path) if path.is_dir() else [path]
        if not files:
            raise ValueError(
                f"directory {self.source} holds no Parquet files (names ending in "
                f"{' or '.join(PARQUET_SUFFIXES)})"
            )
        self._files = []
        for file in files:
            try:
                self._files.append(pq.ParquetFile(file))
            except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError
                where = self.source if file == path else f"{file.name!r} in {self.source}"
                raise ValueError(f"data file {where} could not be parsed: {err}") from None
        raw = [self._raw_names(f) for f in self._files]
        for file, names in zip(files[1:], raw[1:], strict=True):
            if names != raw[0]:
                raise ValueError(
                    f"{file.name} in {self.source} has the columns {names}, {files[0].name} "
                    f"has {raw[0]}: every file of a table needs the same columns in the same "
                    "order"
                )
        self._raw = dict(zip(header_names(raw[0], self.source), raw[0], strict=True))
        self.columns = pd.Index(list(self._raw))
        #: (file, row group within it) of each row group of the table, in row order
        self.groups = [(i, g) for i, f in enumerate(self._files) for g in range(f.num_row_groups)]
        #: rows of each row group, in the order of :attr:`groups`
        self.group_rows = [self._files[i].metadata.row_group(g).num_rows for i, g in self.groups]
        self._selected = list(range(len(self.groups)))
        if not sum(self.group_rows) or not raw[0]:
            raise ValueError(f"data file {self.source} has a header but no data rows")

    def select(self, groups: Sequence[int]) -> ParquetSource:
        """The same table restricted to some row groups (positions in :attr:`groups`, in
        that order): its columns are read from those groups only."""
        view = copy.copy(self)
        view._selected = list(groups)
        return view

    @staticmethod
    def _raw_names(file) -> list[str]:
        schema = file.schema_arrow
        index = {
            c for c in (schema.pandas_metadata or {}).get("index_columns", []) if isinstance(c, str)
        }
        return [n for n in schema.names if n not in index]

    def __len__(self) -> int:
        return sum(self.group_rows[k] for k in self._selected)

    def __getitem__(self, name: str) -> pd.Series:
        raw = self._raw[name]
        parts = [
            self._files[i].read_row_group(g, columns=[raw]).to_pandas()[raw]
            for i, g in (self.groups[k] for k in self._selected)
        ]
        column = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
        return column.reset_index(drop=True).rename(name)


#: The name of the column that catches cells beyond the header, to find the first row
#: with one (never a header name: a header name is stripped text, this starts with a NUL).
_EXTRA = "\x00extra cells"


def _read_csv(path: Path, source: str, text_columns: Sequence[str] = ()) -> pd.DataFrame:
    # The header is read as raw text first: pandas would rename a repeated name (a, a.1)
    # and keep the spaces around names.
    header = pd.read_csv(path, header=None, nrows=1, dtype=str, na_filter=False)
    names = header_names(list(header.iloc[0]), source)
    # index_col=False: a row's first cell is never taken as its index (pandas would, where
    # rows have one cell more than the header, and shift every column one to the left);
    # empty trailing cells (a trailing comma) are dropped, and pandas warns of any other
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", pd.errors.ParserWarning)
        text = {c: str for c in text_columns if c in names}
        frame = pd.read_csv(path, header=0, names=names, index_col=False, dtype=text)
    if any(issubclass(w.category, pd.errors.ParserWarning) for w in caught):
        extra = pd.read_csv(path, header=0, names=[*names, _EXTRA], index_col=False)[_EXTRA]
        first = int(np.flatnonzero(extra.notna().to_numpy())[0])
        raise ValueError(
            f"data file {source} row {first + 1} (after the header) has more cells than "
            f"the header's {len(names)} columns, and the extra cells are not empty: the rows "
            "start with row names (as R's write.table writes them) or the header lacks a "
            "name; write the file without row names (row.names = FALSE), or name every column"
        )
    return frame
