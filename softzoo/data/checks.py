"""Checks of a table, each one clear error naming the column (and for values the count
and the first row): a column that is not there, values that are not finite in float32
(the dtype softzoo trains and predicts in), missing cells under ``missing='error'``, and
each row's exposure and weight.

Example:
    >>> check_finite(np.array([1.0, np.inf]), ["a"], "feature")
    Traceback (most recent call last):
    ...
    ValueError: feature 'a' has 1 infinite value(s) (first at row 1, value inf): ...
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from softzoo._names import did_you_mean

__all__ = [
    "FLOAT32_MAX",
    "check_finite",
    "check_row_values",
    "missing_message",
    "require_columns",
]

#: The largest finite float32: softzoo trains and predicts in float32.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_finite(
    values: np.ndarray,
    names: Sequence[str],
    what: str,
    allow_nan: bool = False,
    offset: int = 0,
) -> None:
    """Raise ``ValueError`` naming the first column that is not finite in float32 (the
    dtype softzoo trains and predicts in): NaN (unless ``allow_nan``: a missing cell the
    model imputes), inf, or a number beyond float32's range (1e300 is finite in float64
    and inf after the cast). Its count and first row too (``offset``: the row number of
    ``values[0]``, for a part of a table). Checked a column at a time, so a large table
    is never copied whole."""
    values = np.asarray(values)
    matrix = values.reshape(len(values), 1) if values.ndim == 1 else values
    for column in range(matrix.shape[1]):
        wide = matrix[:, column].astype(np.float64)
        bad = np.isinf(wide) | (np.abs(wide) > FLOAT32_MAX)
        if not allow_nan:
            bad |= np.isnan(wide)
        if bad.any():
            raise ValueError(_not_finite_message(wide, bad, names[column], what, offset))


def _not_finite_message(
    wide: np.ndarray, bad: np.ndarray, name: str, what: str, offset: int
) -> str:
    value = float(wide[np.flatnonzero(bad)[0]])
    kind = np.isnan if np.isnan(value) else np.isinf if np.isinf(value) else np.isfinite
    rows = np.flatnonzero(bad & kind(wide))
    first = offset + rows[0]
    if np.isnan(value):
        return missing_message(what, name, rows.size, first)
    if np.isinf(value):
        return (
            f"{what} {name!r} has {rows.size} infinite value(s) (first at row {first}, value "
            f"{value}): softzoo never fills or clips them; clean the data"
        )
    return (
        f"{what} {name!r} has {rows.size} value(s) too large for float32 (first at row {first}, "
        f"value {value:g}; float32 holds magnitudes up to {FLOAT32_MAX:.3g}): rescale the "
        "column (e.g. divide it by a power of ten) before training"
    )


def missing_message(what: str, name: str, count: int, first: int) -> str:
    """The error for missing cells under ``missing='error'``."""
    return (
        f"{what} {name!r} has {count} missing value(s) (first at row {first}) and "
        "missing='error': fill or drop them, or use missing='impute'"
    )


def check_row_values(
    values: np.ndarray,
    role: str,
    what: str,
    rows: np.ndarray | None = None,
    row_name: Callable[[int], str] | None = None,
) -> None:
    """Raise ``ValueError`` naming where an exposure is missing or not > 0, or a weight
    missing or negative, or either too large for float32 (``what``: the values' name, e.g.
    "weight column 'w' of 'claims.csv'"; ``rows``: each value's 0-based row in its table;
    ``row_name``: how the message names a row; default: "row N after the header")."""
    row_name = row_name or _after_header
    values = np.asarray(values, dtype=np.float64)
    huge = np.abs(values) > FLOAT32_MAX  # inf too
    bad = np.isnan(values) | ((values <= 0) if role == "exposure" else (values < 0))
    for wrong, kind in ((bad & ~huge, "missing or not"), (huge, "too large for")):
        where = np.flatnonzero(wrong)
        if not where.size:
            continue
        first = int(where[0] if rows is None else rows[where[0]])
        value = f"first: {float(values[where[0]])!r} at {row_name(first)}"
        raise ValueError(f"{what} has {where.size} value(s) {_rule(role, kind, value)}")


def _after_header(row: int) -> str:
    return f"row {row + 1} after the header"


def _rule(role: str, kind: str, value: str) -> str:
    if kind == "too large for":
        advice = (
            "divide the weights by a constant (only their ratios matter)"
            if role == "weight"
            else "give the exposure in a larger unit"
        )
        return f"too large for float32 ({value}; float32 holds up to {FLOAT32_MAX:.3g}): {advice}"
    if role == "exposure":
        rule, meaning = "> 0", "an exposure > 0 (the time, area or size it was observed over)"
    else:
        rule, meaning = ">= 0", "a weight >= 0"
    return (
        f"that are missing or not {rule} ({value}); every row needs {meaning}: fix or drop "
        "those rows"
    )


def require_columns(frame: pd.DataFrame, names: list[str], role: str, source: str) -> None:
    """Refuse a frame that lacks one of the columns ``names`` (of this ``role``)."""
    columns = [str(c) for c in frame.columns]
    for name in names:
        if name not in frame.columns:
            raise ValueError(
                f"{role} column {name!r} not found in {source}.{did_you_mean(name, columns)} "
                f"Its columns are: {', '.join(columns)}"
            )
