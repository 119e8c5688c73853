"""The rows of X and y as a table for ``softzoo fit``: each column of X by its name, the
target, the weights and the split as columns the estimator adds, each value checked
before the table is written (errors name X's rows, counting from 0)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_array, check_consistent_length, column_or_1d

from softzoo.data.checks import check_row_values

__all__ = ["free_name", "of_x", "sample_weight_values", "target_values", "write_parquet"]


def of_x(row: int) -> str:
    """How an error names a row of X."""
    return f"row {row} of X (counting from 0)"


def target_values(y: Any, rows: int) -> np.ndarray:
    """y as float64 values, one per row; NaN and infinities are errors."""
    values = check_array(y, ensure_2d=False, dtype="numeric", input_name="y")
    values = column_or_1d(values, warn=True)
    check_consistent_length(np.empty(rows), values)
    return values.astype(np.float64)


def free_name(name: str, frame: pd.DataFrame) -> str:
    """``name`` (of a column the estimator adds: the target, the split), or a variant that
    no column of ``frame`` holds."""
    candidate = name if name not in ("None", "") else "y"
    while candidate in frame.columns:
        candidate = f"_{candidate}"
    return candidate


def sample_weight_values(sample_weight: Any, rows: int) -> np.ndarray:
    """One weight >= 0 per row, within float32's range, not all 0."""
    weight = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
    if len(weight) != rows:
        raise ValueError(f"sample_weight has {len(weight)} value(s) for {rows} row(s) of X")
    check_row_values(weight, "weight", "sample_weight", row_name=of_x)
    if not weight.any():
        raise ValueError(
            "sample_weight must be finite, >= 0 and not all 0 (a weight of 2 counts as the "
            "row twice)"
        )
    return weight


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """``frame`` as a Parquet file, or one error naming a column pyarrow cannot store."""
    try:
        frame.to_parquet(path, index=False)
    except Exception as err:  # pyarrow's own errors too (ArrowInvalid, ArrowTypeError)
        raise ValueError(_unwritable_column(frame, err)) from None


def _unwritable_column(frame: pd.DataFrame, err: BaseException) -> str:
    """The error for a column that pyarrow cannot store (e.g. numbers mixed with text)."""
    import pyarrow as pa

    for name in frame.columns:
        try:
            pa.Array.from_pandas(frame[name])
        except Exception:
            kinds = sorted({type(v).__name__ for v in frame[name].dropna()})
            return (
                f"column {name!r} of X holds values of several types ({', '.join(kinds)}): "
                f"give it one type, e.g. X[{name!r}].astype(str) for a category"
            )
    return f"X could not be stored as a table: {err}"
