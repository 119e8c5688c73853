"""Lightning data modules for in-memory tabular data.

Example:
    >>> from softzoo.data import TabularDataModule
    >>> TabularDataModule(dataset="yacht").n_features
    6
"""

from softzoo.data.base import ArrayDataModule, TabularArrays
from softzoo.data.loader import InMemoryBatchLoader
from softzoo.data.registry import DATA_MODULE_ENTRY_POINT_GROUP, data_module_class
from softzoo.data.roles import ColumnRole, encode_features, roles_table
from softzoo.data.synthetic import SyntheticDataModule, synthetic_table, true_mean, true_scale
from softzoo.data.tabular import TabularDataModule, read_table
from softzoo.data.uci import UCISplitDataModule, uci_splits

__all__ = [
    "DATA_MODULE_ENTRY_POINT_GROUP",
    "ArrayDataModule",
    "ColumnRole",
    "InMemoryBatchLoader",
    "SyntheticDataModule",
    "TabularArrays",
    "TabularDataModule",
    "UCISplitDataModule",
    "data_module_class",
    "encode_features",
    "read_table",
    "roles_table",
    "synthetic_table",
    "true_mean",
    "true_scale",
    "uci_splits",
]
