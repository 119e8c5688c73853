"""Lightning data modules for in-memory tabular data.

Example:
    >>> from softzoo.data import TabularDataModule
    >>> TabularDataModule(dataset="yacht").n_features
    6
"""

from softzoo.data.base import ArrayDataModule, TabularArrays
from softzoo.data.loader import InMemoryBatchLoader
from softzoo.data.synthetic import SyntheticDataModule, true_mean, true_scale
from softzoo.data.tabular import TabularDataModule, read_table
from softzoo.data.uci import UCISplitDataModule, uci_splits

__all__ = [
    "ArrayDataModule",
    "InMemoryBatchLoader",
    "SyntheticDataModule",
    "TabularArrays",
    "TabularDataModule",
    "UCISplitDataModule",
    "read_table",
    "true_mean",
    "true_scale",
    "uci_splits",
]
