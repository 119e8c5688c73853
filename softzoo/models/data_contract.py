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
from softzoo.families import Family

__all__ = ["ModelData", "check_data_module", "missing_members", "model_data"]


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


def check_data_module(
    datamodule: ModelData, stage: str, family: Family, hparams: Any, calibrated: bool
) -> None:
    """Refuse a data module that does not serve the model (of ``family``, built with
    ``hparams``, ``calibrated`` or not) for ``stage``: another width, other category
    vocabularies (codes would silently mean other categories), another exposure column, a
    calibration it cannot fit, quantile bins of a table whose processes each hold a share,
    or targets outside ``family``'s support (named by their row in the source table)."""
    in_features = int(hparams["in_features"])
    categories = {k: list(v) for k, v in (hparams.get("categories") or {}).items()}
    exposure_column = hparams.get("exposure_column")
    binned = hparams.get("numeric_embedding") == "piecewise_linear"
    if datamodule.n_features != in_features:
        raise ValueError(
            f"the model expects {in_features} features, the data has "
            f"{datamodule.n_features} ({', '.join(datamodule.feature_names)})"
        )
    if datamodule.categories and datamodule.categories != categories:
        raise ValueError(
            "the data module's category vocabularies differ from the model's (another "
            "training split?): give the data the model was trained on, or build the data "
            "module with vocabularies=model.categories"
        )
    given = getattr(datamodule, "exposure_column", None)
    if given != exposure_column:
        raise ValueError(
            f"the model was built with exposure_column={exposure_column!r} and the data "
            f"module has exposure_column={given!r}: give both the same"
        )
    if calibrated and datamodule.sharded:
        raise ValueError(
            "calibration='conformal' fits one map on the whole validation split, and with "
            "shard_row_groups each process holds only its share of it: use "
            "calibration='none' (or train without shard_row_groups)"
        )
    if stage == "fit" and binned and datamodule.sharded:
        raise ValueError(
            "numeric_embedding='piecewise_linear' (the default recipe's) takes its bins "
            "from quantiles of the whole training split, and with shard_row_groups each "
            "process holds only its share of it: set --model.numeric_embedding periodic "
            "or none (or train without shard_row_groups)"
        )
    if stage == "fit" and calibrated and not len(datamodule.split_indices["val"]):
        raise ValueError(
            "calibration='conformal' fits its map on the validation split, and it is "
            "empty: set --data.val_fraction > 0 (or give val rows), or calibration='none'"
        )
    splits = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",)}.get(stage, ())
    for split in splits:
        target, rows = datamodule.split_target(split), datamodule.file_rows(split)
        family.check_support(target, f"{split} target", rows)
