"""The handshake between :class:`~softzoo.models.SoftRegressor` and its data module: every
attribute the model reads from a data module attached to its Trainer, and the one it
writes. :class:`softzoo.data.ArrayDataModule` and its subclasses fulfil it; another
``LightningDataModule`` is refused by :func:`model_data` with the list of what it lacks.

Example:
    >>> from softzoo.data import SyntheticDataModule
    >>> missing_members(SyntheticDataModule)
    []
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
from torch import Tensor

from softzoo.data.shards import TrainingStatistics

__all__ = ["ModelData", "missing_members", "model_data"]


class ModelData(Protocol):
    """What the model reads from a data module (and ``member_shuffles``, which it sets)."""

    #: written by the model: one training shuffle per ensemble member
    member_shuffles: int

    @property
    def n_features(self) -> int:
        """Feature columns; must equal the model's ``in_features``."""

    @property
    def feature_names(self) -> list[str]: ...

    @property
    def categories(self) -> dict[str, list[str]]:
        """Each categorical column's vocabulary; must equal the model's."""

    @property
    def sharded(self) -> bool:
        """Whether this process holds only its share of the rows."""

    @property
    def split_indices(self) -> dict[str, np.ndarray]:
        """The rows of "train", "val" and "test"."""

    @property
    def features_tensor(self) -> Tensor: ...

    @property
    def target_tensor(self) -> Tensor: ...

    @property
    def training_statistics(self) -> TrainingStatistics | None:
        """Statistics of all training rows where the process holds a share, else None."""

    def tensors(self, split: str) -> tuple[Tensor, Tensor]:
        """(features, target) of a split."""

    def split_target(self, split: str) -> Tensor:
        """The target of a split."""

    def file_rows(self, split: str) -> np.ndarray:
        """Each row of a split as its row in the source table (0-based), for messages."""


_MEMBERS = tuple(
    name for name in (*ModelData.__annotations__, *vars(ModelData)) if not name.startswith("_")
)


def missing_members(cls: type) -> list[str]:
    """The :class:`ModelData` members a data module class lacks."""
    return [name for name in dict.fromkeys(_MEMBERS) if not hasattr(cls, name)]


def model_data(datamodule: Any) -> ModelData | None:
    """``datamodule`` as a :class:`ModelData`, None for no data module, or one clear error
    naming what a data module of another kind lacks."""
    if datamodule is None:
        return None
    missing = missing_members(type(datamodule))
    if missing:
        raise ValueError(
            f"SoftRegressor trains on softzoo data modules (softzoo.data.ArrayDataModule and "
            f"its subclasses); {type(datamodule).__name__} lacks {', '.join(missing)}"
        )
    return datamodule
