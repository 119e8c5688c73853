"""CSV/Parquet files and the bundled data sets as a Lightning data module."""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch

from softzoo import datasets
from softzoo._codes import MISSING_CODE
from softzoo.data.base import (
    BATCHES_PER_STEP,
    SPLITS,
    ArrayDataModule,
    TabularArrays,
    fraction_splits,
)
from softzoo.data.checks import check_finite, check_row_values, missing_message, require_columns
from softzoo.data.files import (
    PARQUET_SUFFIXES,
    ParquetSource,
    header_names,
    is_parquet,
    read_table,
)
from softzoo.data.loader import InMemoryBatchLoader
from softzoo.data.roles import (
    ColumnRole,
    column_facts,
    encode_categories,
    encode_features,
    fit_vocabulary,
    infer_roles,
    numeric_values,
    roles_table,
)
from softzoo.data.shards import (
    GroupLayout,
    Ranks,
    RankShare,
    TableReading,
    TrainingStatistics,
    layout_across,
    read_share,
)

__all__ = ["MISSING_POLICIES", "TabularDataModule", "header_names", "read_table"]


#: What a data module does with empty cells: "impute" (numeric: the training median inside
#: the model, plus a missing indicator for columns with gaps in training; categorical: a
#: missing code; rows with a missing target are left out) or "error" (refuse them).
MISSING_POLICIES = ("impute", "error")


class TabularDataModule(ArrayDataModule):
    """Train on a CSV/Parquet file (``path``) or a bundled data set (``dataset``).

    Every column gets a role (target, numeric, categorical, ignored) by the rules of
    :mod:`softzoo.data.roles`, shown as one table when ``fit`` starts and stored in the
    checkpoint; categorical vocabularies and the missing indicators are fitted on the
    training split only.

    Args:
        path: a .csv, .csv.gz or .parquet file with a header row.
        dataset: a bundled data set name (see ``softzoo.datasets.list_datasets()``).
        target: the target column (default for ``dataset``: its usual target).
        features: feature columns (default: every other column; for a bundled data set,
            its usual features).
        categorical: columns to use as categories even if they hold numbers.
        ignore: columns to leave out.
        missing: "impute" (default) or "error", see :data:`MISSING_POLICIES`.
        split_column: a column with the values train/val/test for each row; with only
            train and test, the validation rows are carved from train by ``val_fraction``.
        index_files: optional files of 0-based row indices, one per line, for "train",
            "val" and "test"; they replace the fractions.
        predict_path: a file with the feature columns to predict on (default: the test
            split); other columns and their order do not matter.
        vocabularies: fixed vocabularies (name → categories) instead of fitting them, e.g.
            a trained model's ``categories``, to encode new rows as it was trained.
        exposure_column: a column with each row's exposure (> 0: months insured, hours
            observed, store size): the predicted mean is multiplied by it (a log offset);
            it is an input of the model, never a feature, and every row to predict on
            needs it. Exposure 1 gives the prediction per unit.
        weight_column: a column with each row's weight (>= 0): the training loss and the
            validation and test metrics are weighted means (docs/families.md).
        batch_size, eval_batch_size, val_fraction, test_fraction, seed, batches_per_step:
            see ArrayDataModule (``batch_size`` "auto", the default here: the default
            recipe's for the number of training rows).
        shard_row_groups: for a Parquet source (a file, or a directory of files) under
            DDP: each process reads and holds only its share of the row groups (every
            world_size-th), and the statistics the model fits (medians, means, standard
            deviations, the target's) come from all training rows, reduced across the
            processes; roles, vocabularies and missing indicators come from a pass over the
            row groups that every process makes (docs/scaling.md).

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
        categorical: list[str] | None = None,
        ignore: list[str] | None = None,
        missing: str = "impute",
        split_column: str | None = None,
        index_files: dict[str, str] | None = None,
        predict_path: str | None = None,
        vocabularies: dict[str, list[str]] | None = None,
        exposure_column: str | None = None,
        weight_column: str | None = None,
        batch_size: int | Literal["auto"] = "auto",
        eval_batch_size: int = 4096,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        seed: int = 0,
        batches_per_step: int = BATCHES_PER_STEP,
        shard_row_groups: bool = False,
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
        if missing not in MISSING_POLICIES:
            raise ValueError(f"missing must be one of {MISSING_POLICIES}, got {missing!r}")
        if split_column is not None and index_files is not None:
            raise ValueError("give split_column or index_files, not both")
        both = sorted(set(categorical or []) & set(ignore or []))
        if both:
            raise ValueError(f"column(s) {both} are listed both as categorical and to ignore")
        if shard_row_groups and not _names_parquet(path):
            raise ValueError(
                "shard_row_groups reads Parquet row groups: give path a .parquet file or a "
                f"directory of them, got {path!r} (pandas converts a CSV: "
                "pd.read_csv(csv).to_parquet(path, row_group_size=1_000_000))"
            )
        _check_row_columns(target, split_column, exposure_column, weight_column, shard_row_groups)
        self.save_hyperparameters()
        self.shard_row_groups = shard_row_groups
        self.row_columns = {"exposure": exposure_column, "weight": weight_column}
        self._rank_share: RankShare | None = None
        self.path, self.dataset, self.target, self.features = path, dataset, target, features
        self.categorical, self.ignore = list(categorical or []), list(ignore or [])
        self.missing, self.split_column, self.vocabularies = missing, split_column, vocabularies
        self.index_files, self.predict_path = index_files, predict_path

    @property
    def source(self) -> str:
        return repr(self.path) if self.path else f"dataset {self.dataset!r}"

    def _frame(self) -> pd.DataFrame | ParquetSource:
        if self.dataset:
            return datasets.load_frame(self.dataset)
        path = Path(self.path)
        if is_parquet(path):
            return ParquetSource(path)
        return read_table(path, [*self.categorical, *(self.vocabularies or {})])

    def _columns(self, frame: pd.DataFrame) -> tuple[str, list[str]]:
        """The target and the candidate feature columns (all present in ``frame``)."""
        info = datasets.info(self.dataset) if self.dataset else None
        target = self.target or info.target
        require_columns(frame, [target], "target", self.source)
        named = [*self.categorical, *self.ignore, *(self.vocabularies or {})]
        named += [self.split_column] if self.split_column else []
        require_columns(frame, named, "listed", self.source)
        for role, column in self.row_columns.items():
            if column is not None:
                require_columns(frame, [column], role, self.source)
                if column in (self.features or ()) or column in self.categorical:
                    raise ValueError(
                        f"column {column!r} is the {role} column and also listed as a "
                        f"feature; the {role} column is never a feature: remove it from the "
                        "features"
                    )
        if self.features is not None:
            features = list(self.features)
            require_columns(frame, features, "feature", self.source)
            repeated = sorted({c for c in features if features.count(c) > 1})
            if repeated:
                raise ValueError(
                    f"features lists {', '.join(map(repr, repeated))} more than once: list "
                    "each column once"
                )
        elif info is not None:
            features = [c for c in info.features if c != target]
        else:
            features = [str(c) for c in frame.columns]
        not_features = (target, self.split_column, *self.row_columns.values())
        features = [c for c in features if c not in not_features]
        if self.features is not None and target in self.features:
            raise ValueError(
                f"the target {target!r} is also listed as a feature; remove it from features"
            )
        if not [c for c in features if c not in self.ignore]:
            raise ValueError(f"{self.source} has no feature columns besides the target {target!r}")
        return target, features

    def _kinds(self, frame: pd.DataFrame, target: str, candidates: list[str]):
        if self.vocabularies is not None:
            fixed = list(self.vocabularies)
            numeric = [c for c in candidates if c not in fixed and c not in self.ignore]
            return numeric, fixed
        return infer_roles(frame, target, candidates, self.categorical, self.ignore, self.source)

    def load_arrays(self) -> TabularArrays:
        if self.shard_row_groups:
            return self._sharded_layout()
        frame = self._frame()
        target, candidates = self._columns(frame)
        y = numeric_values(frame, target, "target", self.source)
        no_target = np.isnan(y)
        if no_target.any() and self.missing == "error":
            check_finite(y, [target], "target")
        splits = _without_rows(self._split_rows(frame), no_target)
        self._kept_rows = np.flatnonzero(~no_target)
        numeric, categorical = self._kinds(frame, target, candidates)
        train = splits["train"]
        facts = column_facts(frame, target, frame.columns)
        dtypes = {c: facts[c][0] for c in categorical}
        vocabulary = self.vocabularies or {
            c: fit_vocabulary(frame[c].iloc[_file_rows(train, no_target)], dtypes[c])
            for c in categorical
        }
        x, indicators, medians = self._features(
            frame, (numeric, categorical), vocabulary, splits, ~no_target, dtypes
        )
        kinds = (numeric, categorical)
        roles = self._roles(facts, target, kinds, vocabulary, medians, indicators)
        exposure, weight = (
            self._row_values(frame, r, ~no_target, splits) for r in self.row_columns
        )
        return TabularArrays(
            x,
            y[~no_target],
            tuple(numeric + categorical),
            target,
            splits,
            {c: list(vocabulary[c]) for c in categorical},
            tuple(indicators),
            allow_missing=self.missing == "impute",
            roles=tuple(r.to_dict() for r in roles),
            exposure=exposure,
            weight=weight,
            exposure_column=self.row_columns["exposure"],
            weight_column=self.row_columns["weight"],
        )

    def _row_values(
        self, frame: pd.DataFrame, role: str, kept: np.ndarray, splits: dict[str, np.ndarray]
    ) -> np.ndarray | None:
        """The kept rows' exposure (every one > 0) or weight (every one >= 0, not all 0 in
        the training split; divided by the largest, so that no sum of them overflows
        float32: every weighted mean is the same for weights times a constant), or None
        where no such column is given."""
        column = self.row_columns[role]
        if column is None:
            return None
        values = numeric_values(frame, column, role, self.source)[kept]
        what = f"{role} column {column!r} of {self.source}"
        check_row_values(values, role, what, np.flatnonzero(kept))
        if role == "weight" and len(splits["train"]) and not values[splits["train"]].any():
            raise ValueError(
                f"weight column {column!r} is 0 for every training row of {self.source}: "
                "nothing would be learned; check the column (weights are >= 0, most > 0)"
            )
        return values / values.max() if role == "weight" else values

    def _features(
        self,
        frame: pd.DataFrame | ParquetSource,
        kinds: tuple[list[str], list[str]],
        vocabulary: dict[str, list[str]],
        splits: dict[str, np.ndarray],
        kept: np.ndarray,
        dtypes: dict[str, str],
    ) -> tuple[np.ndarray, list[str], dict[str, float]]:
        """The float32 feature matrix of the kept rows, filled a column at a time (each
        checked in float64 before the cast, as the whole table was), the numeric columns
        with gaps in the training rows, and each numeric column's training median."""
        numeric, categorical = kinds
        train = splits["train"]
        x = np.empty((int(kept.sum()), len(numeric) + len(categorical)), dtype=np.float32)
        indicators, medians = [], {}
        for j, name in enumerate(numeric):
            values = numeric_values(frame, name, "feature", self.source)[kept]
            check_finite(values, [name], "feature", allow_nan=self.missing == "impute")
            in_train = values[train]
            if np.isnan(in_train).any():
                indicators.append(name)
            medians[name] = float(np.nanmedian(in_train)) if len(in_train) else math.nan
            x[:, j] = values
        for j, name in enumerate(categorical, start=len(numeric)):
            codes = encode_categories(frame[name], vocabulary[name], dtypes[name])[kept]
            missing = codes == MISSING_CODE
            if self.missing == "error" and missing.any():
                rows = np.flatnonzero(missing)
                raise ValueError(missing_message("feature", name, rows.size, rows[0]))
            x[:, j] = codes
        return x, indicators, medians

    def _roles(
        self,
        facts: dict[str, tuple[str, int]],
        target: str,
        kinds: tuple[list[str], list[str]],
        vocabulary: dict[str, list[str]],
        medians: dict[str, float] | None,
        indicators: list[str],
    ) -> list[ColumnRole]:
        """One role per column of the file, in file order, from each column's dtype and
        missing cells (:func:`~softzoo.data.roles.column_facts`); ``medians`` None: not
        known yet (a sharded table's are reduced across the processes later)."""
        numeric, categorical = kinds
        roles = []
        for name, (dtype, n_missing) in facts.items():
            if name == target:
                note = "rows left out" if n_missing else "-"
                roles.append(ColumnRole(name, "target", dtype, None, n_missing, note))
            elif name in numeric:
                fill = "training median" if medians is None else f"median {medians[name]:.6g}"
                fill += " + indicator" if name in indicators else ""
                roles.append(
                    ColumnRole(name, "numeric", dtype, None, n_missing, fill if n_missing else "-")
                )
            elif name in categorical:
                note = "missing code" if n_missing else "-"
                roles.append(
                    ColumnRole(name, "categorical", dtype, len(vocabulary[name]), n_missing, note)
                )
            else:
                by_column = {v: k for k, v in self.row_columns.items() if v is not None}
                role = "split" if name == self.split_column else by_column.get(name, "ignored")
                roles.append(ColumnRole(name, role, dtype, None, n_missing))
        return roles

    # ---- a Parquet source shared out by row groups (shard_row_groups) -----------------
    def _sharded_layout(self) -> TabularArrays:
        """What every process must agree on while the model is built (the network's shape
        and the splits): :func:`~softzoo.data.shards.layout_across`. The features stay
        unread until :meth:`setup`."""
        source = self._frame()
        target, candidates = self._columns(source)
        y = numeric_values(source, target, "target", self.source)
        no_target = np.isnan(y)
        check_finite(y, [target], "target", allow_nan=self.missing == "impute")
        splits = _without_rows(self._split_rows(source), no_target)
        labels = np.full(len(y), -1, dtype=np.int8)  # the split of each row of the file
        for code, split in enumerate(SPLITS):
            labels[_file_rows(splits[split], no_target)] = code
        del y
        reading = TableReading(target, candidates, self._kinds, self.missing, self.source)
        layout = layout_across(source, reading, labels)
        self._labels = labels
        numeric, categorical = layout.kinds
        return TabularArrays(
            np.zeros((0, len(numeric) + len(categorical)), dtype=np.float32),
            np.zeros(0),
            tuple(numeric + categorical),
            target,
            {s: np.zeros(0, dtype=np.int64) for s in SPLITS},
            {
                c: list(self.vocabularies[c]) if self.vocabularies else sorted(layout.vocabulary[c])
                for c in categorical
            },
            tuple(c for c in numeric if c in layout.indicators),
            allow_missing=self.missing == "impute",
            roles=tuple(r.to_dict() for r in self._layout_roles(layout, target)),
        )

    def _layout_roles(self, layout: GroupLayout, target: str) -> list[ColumnRole]:
        vocabulary = {c: sorted(v) for c, v in layout.vocabulary.items()}
        return self._roles(
            layout.facts, target, layout.kinds, vocabulary, None, sorted(layout.indicators)
        )

    def _load_share(self, ranks: Ranks, with_statistics: bool) -> None:
        """Read this process's row groups into the arrays (the rows of its groups that are
        in a split, in file order) and, for training, reduce the statistics across the
        processes."""
        layout = self.arrays
        columns = (list(layout.feature_names), layout.categories, layout.target_name)
        x, y, split_of, share = read_share(
            self._frame(), columns, self._labels, ranks, with_statistics, self.source
        )
        self._rank_share = share
        splits = {s: np.flatnonzero(split_of == code) for code, s in enumerate(SPLITS)}
        self.__dict__["arrays"] = dataclasses.replace(layout, features=x, target=y, splits=splits)
        for cached in ("split_indices", "features_tensor", "target_tensor"):
            self.__dict__.pop(cached, None)

    @property
    def sharded(self) -> bool:
        return self.shard_row_groups

    @property
    def _rows(self) -> TabularArrays:
        if self.shard_row_groups and self._rank_share is None:
            # used outside a Trainer (a report, a script): one process reads every row group
            self._load_share(Ranks(), with_statistics=False)
        return self.arrays

    @property
    def training_statistics(self) -> TrainingStatistics | None:
        return self._rank_share.statistics if self._rank_share else None

    def file_rows(self, split: str) -> np.ndarray:
        """A split's rows as rows of the file (rows without a target were left out)."""
        kept = getattr(self, "_kept_rows", None)
        rows = super().file_rows(split)
        return rows if kept is None or self.shard_row_groups else kept[rows]

    def _train_rows_per_process(self) -> int:
        if self._rank_share is None:
            return super()._train_rows_per_process()
        return self._rank_share.train_rows

    def _shard(self) -> dict[str, int]:
        # a process's share is already its own rows: its loaders iterate all of them
        return {} if self.shard_row_groups else super()._shard()

    # ---- splits ----------------------------------------------------------------------
    def _split_rows(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """Row indices of the file per split."""
        if self.index_files:
            return self._read_index_files(len(frame))
        if self.split_column:
            return self._split_column_rows(frame[self.split_column])
        return fraction_splits(len(frame), self.val_fraction, self.test_fraction, self.seed)

    def _split_column_rows(self, column: pd.Series) -> dict[str, np.ndarray]:
        values = column.map(lambda v: None if pd.isna(v) else str(v).strip().lower())
        unknown = sorted(set(values.dropna()) - set(SPLITS))
        if values.isna().any() or unknown:
            first = int(np.flatnonzero(values.isna() | ~values.isin(SPLITS))[0])
            found = unknown + (["(empty)"] if values.isna().any() else [])
            shown = ", ".join(repr(v) for v in found[:5])
            more = f" and {len(found) - 5} more" if len(found) > 5 else ""
            raise ValueError(
                f"split column {column.name!r} in {self.source} must hold train, val or test in "
                f"every row; found {len(found)} other value(s): {shown}{more} (first at row "
                f"{first}); is it the split column?"
            )
        splits = {s: np.flatnonzero((values == s).to_numpy()) for s in SPLITS}
        if not len(splits["train"]):
            raise ValueError(f"split column {column.name!r} in {self.source} has no train rows")
        if not len(splits["val"]) and self.val_fraction > 0:
            order = np.random.default_rng(self.seed).permutation(splits["train"])
            n_val = round(len(order) * self.val_fraction)
            splits["val"], splits["train"] = np.sort(order[:n_val]), np.sort(order[n_val:])
        return splits

    def _read_index_files(self, n_rows: int) -> dict[str, np.ndarray]:
        splits = {s: np.zeros(0, dtype=np.int64) for s in SPLITS}
        for split, file in self.index_files.items():
            what = f"index file {str(file)!r} for split {split!r}"
            if not Path(file).is_file():  # a FIFO or a device would block or never end
                raise ValueError(f"{what} is not a regular file (missing, a folder or a device)")
            try:
                rows = np.loadtxt(file, dtype=np.int64, ndmin=1)
            except OSError as err:
                raise ValueError(f"{what} could not be read: {err.strerror}") from None
            except ValueError:  # numpy's message quotes the file's content: not shown
                raise ValueError(
                    f"{what} is not a list of row numbers (one whole number per line)"
                ) from None
            if rows.size and (rows.min() < 0 or rows.max() >= n_rows):
                raise ValueError(f"index file {file!r} has rows outside 0..{n_rows - 1}")
            splits[split] = rows
        seen = np.concatenate(list(splits.values()))
        if len(np.unique(seen)) != len(seen):
            raise ValueError(
                "index files overlap or repeat rows: each row may be in one split once"
            )
        return splits

    # ---- showing the roles, predicting on a raw file ---------------------------------
    def setup(self, stage: str) -> None:
        if self.shard_row_groups:
            trainer = self.trainer
            ranks = Ranks(trainer.global_rank, trainer.world_size) if trainer else Ranks()
            held = self._rank_share
            if (
                held is None
                or held.ranks != (ranks.rank, ranks.world_size)
                or (stage == "fit" and held.statistics is None)
            ):
                self._load_share(ranks, with_statistics=stage == "fit")
        if stage == "fit" and (not self.trainer or self.trainer.is_global_zero):
            print(f"softzoo: the columns of {self.source}:", file=sys.stderr)
            print(roles_table([ColumnRole(**r) for r in self.arrays.roles]), file=sys.stderr)

    def predict_dataloader(self) -> InMemoryBatchLoader | list:
        if self.predict_path is None:
            return super().predict_dataloader()
        frame = read_table(self.predict_path, list(self.categories))
        x = encode_features(
            frame,
            self.feature_names,
            self.categories,
            self.arrays.roles,
            self.missing,
            f"predict file {self.predict_path!r}",
            self.exposure_column,
        )
        return InMemoryBatchLoader(torch.as_tensor(x), batch_size=self.eval_batch_size)


def _check_row_columns(
    target: str | None,
    split_column: str | None,
    exposure_column: str | None,
    weight_column: str | None,
    sharded: bool,
) -> None:
    named = {"exposure_column": exposure_column, "weight_column": weight_column}
    for option, column in named.items():
        if column is not None and column in (target, split_column):
            what = "target" if column == target else "split_column"
            raise ValueError(f"{option} {column!r} is also the {what}: give another column")
    if exposure_column is not None and exposure_column == weight_column:
        raise ValueError(
            f"exposure_column and weight_column are both {exposure_column!r}: an exposure "
            "multiplies the mean, a weight weighs the loss; give one of them"
        )
    if sharded and (exposure_column or weight_column):
        raise ValueError(
            "exposure_column and weight_column are not available with shard_row_groups: "
            "train without shard_row_groups"
        )


def _names_parquet(path: str | None) -> bool:
    return path is not None and (
        Path(path).is_dir() or Path(path).suffix.lower() in PARQUET_SUFFIXES
    )


def _without_rows(splits: dict[str, np.ndarray], dropped: np.ndarray) -> dict[str, np.ndarray]:
    """File-row splits as indices into the rows that are kept."""
    kept = ~dropped
    new_index = np.cumsum(kept) - 1
    return {s: new_index[rows[kept[rows]]] for s, rows in splits.items()}


def _file_rows(rows: np.ndarray, dropped: np.ndarray) -> np.ndarray:
    return np.flatnonzero(~dropped)[rows]
