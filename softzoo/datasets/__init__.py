"""Real data sets bundled inside the package (no download): eight UCI regression sets, the
RAND HIE counts, and the Palmer penguins table (text columns and empty cells).

Example:
    >>> from softzoo import datasets
    >>> datasets.list_datasets()[:3]
    ['concrete', 'energy', 'kin8nm']
    >>> ds = datasets.load("concrete")
    >>> ds.features.shape, ds.target_name
    ((1030, 8), 'compressive_strength_mpa')
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import numpy as np
import pandas as pd
from pandas.api.types import is_numeric_dtype

from softzoo._names import unknown_name_error
from softzoo.datasets._catalog import CATALOG, DatasetInfo

__all__ = ["Dataset", "DatasetInfo", "info", "list_datasets", "load", "load_frame"]


@dataclass(frozen=True)
class Dataset:
    """Features (n, d) and target (n,) as float64 arrays, with names and a description."""

    features: np.ndarray
    target: np.ndarray
    feature_names: tuple[str, ...]
    target_name: str
    description: str
    source: str


def list_datasets() -> list[str]:
    """Sorted names of the bundled data sets."""
    return sorted(CATALOG)


def info(name: str) -> DatasetInfo:
    """The catalog entry of a bundled data set (columns, target, source)."""
    if name not in CATALOG:
        raise unknown_name_error("dataset", name, list_datasets())
    return CATALOG[name]


def load_frame(name: str) -> pd.DataFrame:
    """All columns of a bundled data set as a DataFrame."""
    entry = info(name)
    with resources.files("softzoo.datasets").joinpath("files", entry.file).open("rb") as f:
        return pd.read_csv(f, compression="gzip")


def load(name: str) -> Dataset:
    """A bundled data set with its default target and features.

    Example:
        >>> load("yacht").features.shape
        (308, 6)
    """
    entry, frame = info(name), load_frame(name)
    text = [c for c in entry.features if not is_numeric_dtype(frame[c])]
    if text:
        raise ValueError(
            f"data set {name!r} has text columns ({', '.join(text)}): load it as a table with "
            f"datasets.load_frame({name!r}), or train on it with TabularDataModule(dataset="
            f"{name!r}), which encodes them"
        )
    return Dataset(
        features=frame[list(entry.features)].to_numpy(np.float64),
        target=frame[entry.target].to_numpy(np.float64),
        feature_names=entry.features,
        target_name=entry.target,
        description=entry.description,
        source=entry.source,
    )
