"""Column roles of a table: which column is the target, numeric, categorical or ignored,
decided by rules a user can predict, and shown as one table.

The rules, in order, for every column but the target:
1. listed in ``ignore`` → ignored; listed in ``categorical`` → categorical;
2. numbers (integer or float) → numeric;
3. text, bool and pandas/Parquet ``category`` columns → categorical, except
   - a text column whose cells are mostly numbers is an error (a typo in a numeric
     column: the message names the cells), and
   - a text column that looks like an identifier (more than half its values distinct,
     at least 20 values) is an error that suggests ``ignore`` or ``categorical``.

A category is its cell's text (surrounding spaces stripped); numbers in a column listed
as categorical are written in their shortest form (2007, not 2007.0).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_numeric_dtype

from softzoo._codes import FIRST_CODE, MISSING_CODE, UNSEEN_CODE
from softzoo.data.checks import check_finite, check_row_values, missing_message, require_columns

__all__ = [
    "TEXT_DTYPES",
    "ColumnRole",
    "category_text",
    "column_dtype",
    "column_facts",
    "encode_categories",
    "encode_features",
    "fit_vocabulary",
    "infer_roles",
    "missing_cells",
    "numeric_values",
    "roles_table",
]

#: A text column with more distinct values than this share (and at least
#: _IDENTIFIER_MIN_VALUES values) looks like an identifier.
_IDENTIFIER_SHARE = 0.5
_IDENTIFIER_MIN_VALUES = 20
#: "1,200" or "12,345.5": a number with thousands separators.
_THOUSANDS = re.compile(r"^[-+]?\d{1,3}(,\d{3})+(\.\d*)?$")


@dataclass(frozen=True)
class ColumnRole:
    """One row of the roles table: a column, its role, dtype, number of categories, its
    missing cells (in the rows used; for the target, in the whole table) and what was done
    with them."""

    name: str
    role: str
    dtype: str
    n_categories: int | None = None
    n_missing: int = 0
    missing: str = "-"

    def to_dict(self) -> dict:
        return asdict(self)


def _unparsable(column: pd.Series) -> pd.Series:
    """Cells that hold something but are no number."""
    return pd.to_numeric(column, errors="coerce").isna() & column.notna()


def numeric_values(frame: pd.DataFrame, name: str, role: str, source: str) -> np.ndarray:
    """A column as float64 (NaN where empty); one clear error for cells that are no number."""
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
    if role != "feature":  # a target, an exposure, a weight: never a category
        advice = f"the {role} must be a number in every row"
    elif rows.size <= column.notna().sum() / 2:
        advice = (
            "fix those cells, or list the column in --data.categorical to use it as a "
            "category: softzoo never drops or guesses values"
        )
    else:
        advice = "encode it as numbers, or list the features to use with --data.features"
    if rows.size <= column.notna().sum() / 2:
        text = f"{what} is numeric except for {rows.size} cell(s): {shown}"
    else:
        text = f"{what} is not numeric (first non-numbers: {shown})"
    if _THOUSANDS.match(str(column.iloc[rows[0]]).strip()):
        advice = "it looks like numbers written with thousands separators: remove them"
    return f"{text}: {advice}"


def _is_text(column: pd.Series) -> bool:
    return not (is_numeric_dtype(column) and not is_bool_dtype(column))


#: The recorded dtypes whose cells are text as written (no number or boolean rule).
TEXT_DTYPES = frozenset({"text", "object", "str", "string", "category"})


def _all_bools(column: pd.Series) -> bool:
    """A column of booleans with gaps: pandas reads it as objects True/False/NaN."""
    if column.dtype != object:
        return False
    observed = column.dropna()
    return bool(len(observed)) and all(isinstance(v, (bool, np.bool_)) for v in observed.unique())


def column_dtype(column: pd.Series) -> str:
    """The dtype a column's role records: "bool" for booleans (with gaps too), "text" for
    strings, else pandas' dtype. A categorical cell's category follows from its text and
    this dtype alone (:func:`category_text`), whatever the other rows of a file hold."""
    if is_bool_dtype(column) or _all_bools(column):
        return "bool"
    dtype = str(column.dtype)
    return "text" if dtype in ("object", "str", "string") else dtype


def _text_column_role(column: pd.Series, source: str) -> str:
    """ "numeric" for a text column of numbers (e.g. integers beyond int64), else
    "categorical"; a numeric column with typos or an identifier is an error. Booleans are
    categories, with gaps too (a missing flag is no False)."""
    if is_bool_dtype(column) or _all_bools(column):
        return "categorical"
    observed = column.dropna()
    bad = _unparsable(observed)
    if len(observed) and not bad.any():
        return "numeric"
    if len(observed) and bad.sum() <= len(observed) / 2:
        raise ValueError(_not_numeric_message(column, _unparsable(column), "feature", source))
    distinct = observed.astype(str).nunique()
    if len(observed) >= _IDENTIFIER_MIN_VALUES and distinct > _IDENTIFIER_SHARE * len(observed):
        raise ValueError(
            f"text column {column.name!r} in {source} looks like an identifier ({distinct} "
            f"distinct values in {len(observed)} rows): leave it out with --data.ignore "
            f"'[{column.name}]', or list it in --data.categorical to use it as a category"
        )
    return "categorical"


def infer_roles(
    frame: pd.DataFrame,
    target: str,
    features: Sequence[str] | None,
    categorical: Sequence[str],
    ignore: Sequence[str],
    source: str,
) -> tuple[list[str], list[str]]:
    """(numeric, categorical) feature columns of ``frame`` by the rules of this module."""
    columns = list(features) if features is not None else list(frame.columns)
    kinds: dict[str, list[str]] = {"numeric": [], "categorical": []}
    for name in columns:
        if name == target or name in ignore:
            continue
        column = frame[name]
        if name in categorical:
            kinds["categorical"].append(name)
        elif not _is_text(column):
            kinds["numeric"].append(name)
        else:
            kinds[_text_column_role(column, source)].append(name)
    return kinds["numeric"], kinds["categorical"]


def category_text(value: object, dtype: str = "text") -> str | None:
    """The category a cell stands for (None when it is missing): a typed value as its
    shortest text; a cell read as text, by the column's recorded ``dtype``: a number's
    shortest form in a numeric column, True/False in a boolean one, else the text itself
    (spaces stripped). ``export/predict.py`` applies the same rule (a test keeps them equal).

    Example:
        >>> [category_text(v) for v in (" Adelie ", 2007.0, True, float("nan"), "")]
        ['Adelie', '2007', 'True', None, None]
        >>> category_text("007"), category_text("007", "int64"), category_text("true", "bool")
        ('007', '7', 'True')
    """
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, float, np.integer, np.floating)):
        return _number_text(float(value))
    text = str(value).strip()
    if not text:
        return None
    if dtype == "bool" and text.lower() in ("true", "false"):
        return text.capitalize()
    if dtype not in TEXT_DTYPES and dtype != "bool":
        try:
            return _number_text(float(text))
        except ValueError:
            return text
    return text


def _number_text(number: float) -> str:
    return str(int(number)) if number.is_integer() and abs(number) < 2**53 else repr(number)


def _distinct_texts(column: pd.Series, dtype: str) -> tuple[np.ndarray, list[str | None]]:
    """Each cell's position among the column's distinct cells (-1: missing) and the
    category of each distinct cell: ``category_text`` runs once per distinct value, not
    once per row, so a column of millions of rows never becomes millions of strings."""
    positions, distinct = pd.factorize(column, use_na_sentinel=True)
    return positions, [category_text(v, dtype) for v in distinct]


def fit_vocabulary(column: pd.Series, dtype: str = "text") -> list[str]:
    """The sorted distinct categories of a column (its training rows)."""
    return sorted({t for t in _distinct_texts(column, dtype)[1] if t is not None})


def encode_categories(
    column: pd.Series, vocabulary: Sequence[str], dtype: str = "text"
) -> np.ndarray:
    """Codes as float64: MISSING_CODE, UNSEEN_CODE, or FIRST_CODE + position in the
    vocabulary (see :mod:`softzoo.nn.tabular`); ``dtype``: the column's recorded one."""
    index = {category: FIRST_CODE + i for i, category in enumerate(vocabulary)}
    positions, texts = _distinct_texts(column, dtype)
    codes = [MISSING_CODE if t is None else index.get(t, UNSEEN_CODE) for t in texts]
    return np.append(np.array(codes, dtype=np.float64), MISSING_CODE)[positions]


def roles_table(roles: Sequence[ColumnRole]) -> str:
    """The roles as an aligned text table (what ``softzoo fit`` prints)."""
    head = ("column", "role", "dtype", "categories", "missing", "missing cells")
    rows = [
        (
            r.name,
            r.role,
            r.dtype,
            "-" if r.n_categories is None else str(r.n_categories),
            str(r.n_missing),
            r.missing,
        )
        for r in roles
    ]
    widths = [max(len(str(row[i])) for row in [head, *rows]) for i in range(len(head))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [head, *rows]
    )


def column_facts(frame: Any, target: str, columns: list[str]) -> dict[str, tuple[str, int]]:
    """Each column's dtype ("text" for strings) and missing cells in ``frame`` (a DataFrame,
    or a :class:`~softzoo.data.files.ParquetSource`): for the target in every row, for the
    others in the rows with a target (the rows used)."""
    used = frame[target].notna().to_numpy()
    facts = {}
    for name in columns:
        column = frame[name] if name == target else frame[name][used]
        dtype = column_dtype(column)
        facts[name] = (dtype, missing_cells(column, dtype))
    return facts


def missing_cells(column: pd.Series, dtype: str) -> int:
    """Empty cells: missing values, and in a text column blank ones too (a Parquet file
    stores "" where a CSV reader sees an empty cell)."""
    missing = column.isna()
    if dtype == "text":
        missing |= column.astype("string").str.strip().eq("").fillna(False)
    return int(missing.sum())


def encode_features(
    frame: pd.DataFrame,
    feature_names: Sequence[str],
    categories: dict[str, list[str]],
    roles: Sequence[dict] | None,
    missing: str = "impute",
    source: str = "the table",
    exposure_column: str | None = None,
    row_name: Callable[[int], str] | None = None,
) -> np.ndarray:
    """The float32 feature matrix that a model trained with these columns reads from the
    rows of ``frame``: its numeric columns as numbers (NaN where empty), then one code per
    categorical column by the recorded dtype (``roles``; text where none is recorded):
    0 for a missing cell, 1 for a category unseen in training, 2 for the first category.
    Other columns and their order do not matter; a row's values depend on that row alone.
    With ``exposure_column``, the row's exposure (> 0) follows as the last column;
    ``row_name`` says how an error names a row (default: "row N after the header").

    Example:
        >>> frame = pd.DataFrame({"colour": ["red", None], "size": [1.5, 2.0]})
        >>> encode_features(frame, ["size", "colour"], {"colour": ["red"]}, None).tolist()
        [[1.5, 2.0], [2.0, 0.0]]
    """
    require_columns(frame, list(feature_names), "feature", source)
    numeric = [c for c in feature_names if c not in categories]
    dtypes = {r["name"]: r["dtype"] for r in roles or ()}
    columns = [numeric_values(frame, c, "feature", source) for c in numeric]
    columns += [
        encode_categories(frame[c], v, dtypes.get(c, "text")) for c, v in categories.items()
    ]
    x = np.stack(columns, axis=1)
    if missing == "error":
        _refuse_gaps(x, list(feature_names), len(numeric), source)
    check_finite(x, list(feature_names), "feature", allow_nan=True)
    if exposure_column is not None:
        require_columns(frame, [exposure_column], "exposure", source)
        exposure = numeric_values(frame, exposure_column, "exposure", source)
        what = f"exposure column {exposure_column!r} of {source}"
        check_row_values(exposure, "exposure", what, row_name=row_name)
        x = np.column_stack([x, exposure])
    return x.astype(np.float32)


def _refuse_gaps(x: np.ndarray, names: list[str], n_numeric: int, source: str) -> None:
    """Under missing='error', rows to predict on may have no empty numeric cell and no
    missing category either: the first column with one is an error."""
    for j, name in enumerate(names):
        gaps = np.isnan(x[:, j]) if j < n_numeric else x[:, j] == MISSING_CODE
        if gaps.any():
            rows = np.flatnonzero(gaps)
            what = f"{source}: feature"
            raise ValueError(missing_message(what, name, rows.size, int(rows[0]) + 1))
