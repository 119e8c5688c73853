"""softzoo as a scikit-learn estimator: :class:`SoftzooRegressor` takes a DataFrame (text,
bool, category columns and gaps, in any order) or an array, and trains exactly what
``softzoo fit`` trains on the same rows: the same roles table, errors, leak-free
statistics and default recipe, because it *is* ``softzoo fit``, run in this process on a
temporary copy of the rows. It works with ``clone``, ``Pipeline``, ``cross_val_score``,
``GridSearchCV``, MAPIE and crepes, and adds what a probabilistic model has: medians,
quantiles, calibrated intervals, the predictive distribution, NLL and CRPS.

Example:
    >>> from softzoo.datasets import load_frame
    >>> frame = load_frame("penguins").dropna(subset=["body_mass_g"])
    >>> X, y = frame.drop(columns="body_mass_g"), frame["body_mass_g"]
    >>> model = SoftzooRegressor(family="gamma", max_epochs=3).fit(X, y)
    >>> model.predict_interval(X.head(2)).shape
    (2, 2)
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import (
    check_array,
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from softzoo._io import atomic_write
from softzoo._options import fit_config
from softzoo.data import encode_features
from softzoo.families import Family
from softzoo.models import SoftRegressor, check_checkpoint, load_checkpoint
from softzoo.recipe import AUTO
from softzoo.runner import fit_in_process

__all__ = ["PredictiveDistribution", "SoftzooRegressor"]

#: The key of a saved estimator's own fields in its checkpoint file.
_SAVED = "softzoo_estimator"


class PredictiveDistribution:
    """The predictive distribution of each row, in the target's units: the model's family,
    or the equal-weight mixture of an ensemble's members (calibrated, if the model is).

    Example:
        >>> from softzoo.families import get_family
        >>> d = PredictiveDistribution(get_family("gaussian"), (torch.zeros(2), torch.ones(2)))
        >>> d.mean.tolist(), d.quantile(0.5).tolist(), d.cdf([0.0, 0.0]).tolist()
        ([0.0, 0.0], [0.0, 0.0], [0.5, 0.5])
    """

    def __init__(self, family: Family, params: tuple[torch.Tensor, ...]) -> None:
        self.family, self.params = family, params

    @property
    def mean(self) -> np.ndarray:
        return _numpy(self.family.mean(self.params))

    @property
    def variance(self) -> np.ndarray:
        return _numpy(self.family.variance(self.params))

    def quantile(self, q: float | Sequence[float]) -> np.ndarray:
        """The ``q`` quantile of each row: shape (rows,) for one level, (rows, len(q)) for
        several."""
        levels = np.atleast_1d(np.asarray(q, dtype=float))
        if ((levels <= 0) | (levels >= 1)).any():
            raise ValueError(f"quantile levels must lie strictly between 0 and 1, got {q!r}")
        columns = [_numpy(self.family.quantile(self.params, float(v))) for v in levels]
        return columns[0] if np.ndim(q) == 0 else np.stack(columns, axis=1)

    def cdf(self, y: Any) -> np.ndarray:
        """P(Y <= y) for each row's y."""
        return _numpy(self.family.cdf(self.params, self._target(y)))

    def log_prob(self, y: Any) -> np.ndarray:
        """The log density (log probability for counts) of each row's y."""
        return -_numpy(self.family.nll(self.params, self._target(y)))

    def sample(self, n: int = 1, seed: int | None = None) -> np.ndarray:
        """``n`` draws per row, shape (n, rows)."""
        # torch.distributions draw from the global generator: a seeded draw forks it
        forked = torch.random.fork_rng() if seed is not None else contextlib.nullcontext()
        with forked:
            if seed is not None:
                torch.manual_seed(seed)
            return _numpy(self.family.sample(self.params, n))

    def _target(self, y: Any) -> torch.Tensor:
        values = np.asarray(y, dtype=np.float64).reshape(-1)
        if len(values) != len(self.params[0]):
            raise ValueError(f"y has {len(values)} value(s) for {len(self.params[0])} row(s)")
        return torch.tensor(values, dtype=torch.float32)


class SoftzooRegressor(RegressorMixin, BaseEstimator):
    """A softzoo model with scikit-learn's conventions. Every argument is the
    ``softzoo fit`` option of the same name (``--model.*``, ``--data.*``,
    ``--trainer.*``); the defaults are the one-line CLI form's (``"auto"``: the default
    recipe's, from the number of training rows; ``max_epochs`` and
    ``early_stopping_patience`` None: the recipe's). ``seed`` seeds the weights and the
    validation split; ``verbose`` shows the roles table, Lightning's notices and the
    progress bar.

    ``fit`` carves the validation rows (early stopping, calibration) from X by
    ``val_fraction``, or takes ``eval_set=(X_val, y_val)``. Columns are found by name in a
    DataFrame (their order and any extra columns do not matter); an array's columns are
    taken in the order of fit.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> X = rng.normal(size=(300, 3))
        >>> y = np.exp(X[:, 0] + 0.1 * rng.normal(size=300))
        >>> model = SoftzooRegressor(family="lognormal", max_epochs=5).fit(X, y)
        >>> model.predict_quantiles(X[:4], [0.05, 0.5, 0.95]).shape
        (4, 3)
    """

    def __init__(
        self,
        family: str = "gaussian",
        family_options: dict[str, Any] | None = None,
        hidden: Sequence[int] | str = AUTO,
        activation: str | Sequence[str] = "softplus",
        dropout: float = 0.0,
        ensemble_size: int | str = AUTO,
        ensemble_type: str = AUTO,
        numeric_embedding: str = AUTO,
        numeric_bins: int | str = AUTO,
        calibration: str = "none",
        interval_level: float = 0.9,
        missing: str = "impute",
        categorical: Sequence[str] | None = None,
        ignore: Sequence[str] | None = None,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        batch_size: int | str = AUTO,
        max_epochs: int | None = None,
        early_stopping_patience: int | None = None,
        warmup_fraction: float | str = AUTO,
        val_fraction: float = 0.1,
        seed: int = 0,
        accelerator: str = "auto",
        devices: int | str = 1,
        verbose: bool = False,
    ) -> None:
        self.family = family
        self.family_options = family_options
        self.hidden = hidden
        self.activation = activation
        self.dropout = dropout
        self.ensemble_size = ensemble_size
        self.ensemble_type = ensemble_type
        self.numeric_embedding = numeric_embedding
        self.numeric_bins = numeric_bins
        self.calibration = calibration
        self.interval_level = interval_level
        self.missing = missing
        self.categorical = categorical
        self.ignore = ignore
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.early_stopping_patience = early_stopping_patience
        self.warmup_fraction = warmup_fraction
        self.val_fraction = val_fraction
        self.seed = seed
        self.accelerator = accelerator
        self.devices = devices
        self.verbose = verbose

    # ---- scikit-learn's protocol ----------------------------------------------------
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # imputed inside the model
        tags.input_tags.string = True  # text columns are categories
        tags.input_tags.categorical = True
        return tags

    def fit(
        self,
        X: Any,
        y: Any,
        sample_weight: Any = None,
        eval_set: tuple[Any, Any] | None = None,
    ) -> SoftzooRegressor:
        """Train on (X, y) with ``softzoo fit``; ``sample_weight``: one weight >= 0 per row
        of X (``--data.weight_column``: a weighted loss and weighted validation metrics; a
        weight of 2 counts as the row twice); ``eval_set`` = (X_val, y_val): the
        validation rows, instead of ``val_fraction`` of X's (each weighing 1)."""
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None"
            )
        frame = self._frame(X, reset=True)
        target = _free_name("y" if not isinstance(y, pd.Series) else str(y.name), frame)
        frame[target] = _target_values(y, len(frame))
        # X's rows are the training split, and the data module carves its validation rows
        # from them exactly as from a file's train rows (softzoo fit --data.split_column)
        split = _free_name("split", frame)
        frame[split] = "train"
        data = {"target": target, "split_column": split}
        if sample_weight is not None:
            data["weight_column"] = _free_name("weight", frame)
            frame[data["weight_column"]] = _sample_weight(sample_weight, len(frame))
        if eval_set is not None:
            frame = self._with_eval_rows(frame, data, eval_set)
        with tempfile.TemporaryDirectory(prefix="softzoo-fit-") as tmp:
            path = Path(tmp) / "rows.parquet"
            _write_parquet(frame, path)
            self.model_ = self._train({"path": str(path), **data}, Path(tmp))
        self.target_name_ = target
        return self

    def _with_eval_rows(
        self, frame: pd.DataFrame, data: dict[str, str], eval_set: tuple[Any, Any]
    ) -> pd.DataFrame:
        if not (isinstance(eval_set, (tuple, list)) and len(eval_set) == 2):
            raise ValueError("eval_set must be a pair (X_val, y_val)")
        rows = self._frame(eval_set[0], reset=False)
        rows[data["target"]] = _target_values(eval_set[1], len(rows))
        rows[data["split_column"]] = "val"
        if "weight_column" in data:
            rows[data["weight_column"]] = 1.0
        return pd.concat([frame, rows[frame.columns]], ignore_index=True)

    def _train(self, data: dict[str, str], workdir: Path) -> SoftRegressor:
        config_file = workdir / "config.yaml"
        config_file.write_text(yaml.safe_dump(fit_config(self._options(), data)))
        verbose = self.verbose
        return fit_in_process(config_file, workdir, quiet=not verbose, progress=verbose).model

    def _options(self) -> dict[str, Any]:
        options = self.get_params()
        options.pop("verbose")
        for key in ("hidden", "activation", "categorical", "ignore"):
            value = options[key]
            options[key] = value if isinstance(value, str) or value is None else list(value)
        return options

    # ---- predictions ----------------------------------------------------------------
    def predict(self, X: Any) -> np.ndarray:
        """The predictive mean of each row."""
        return self._dist(X).mean

    def predict_median(self, X: Any) -> np.ndarray:
        """The predictive median of each row."""
        return self.predict_dist(X).quantile(0.5)

    def predict_quantiles(self, X: Any, q: float | Sequence[float]) -> np.ndarray:
        """The ``q`` quantiles of each row, shape (rows, len(q)) (or (rows,) for one)."""
        return self.predict_dist(X).quantile(q)

    def predict_interval(self, X: Any, level: float | None = None) -> np.ndarray:
        """The central ``level`` interval of each row, shape (rows, 2); ``level`` None: the
        model's ``interval_level``. A model calibrated by its interval level (the
        ensembles and the count families) has a calibrated interval for that level only."""
        model = self._fitted()
        nominal = float(model.hparams.interval_level)
        level = nominal if level is None else float(level)
        if level != nominal and model.calibration_method == "level":
            raise ValueError(
                f"this model's intervals are calibrated for level {nominal}, not {level}: "
                f"fit it with interval_level={level}, or ask for level={nominal}"
            )
        dist = self.predict_dist(X)
        effective = model.effective_level if level == nominal else level
        lower, upper = model.family.interval(dist.params, effective)
        return np.stack([_numpy(lower), _numpy(upper)], axis=1)

    def predict_dist(self, X: Any) -> PredictiveDistribution:
        """The predictive distribution of each row (:class:`PredictiveDistribution`)."""
        family = self._fitted().family
        if not family.probabilistic:
            raise ValueError(
                f"family {family.name!r} predicts a point, not a distribution: choose a "
                "probabilistic family (e.g. family='gamma') for quantiles, intervals and NLL"
            )
        return self._dist(X)

    def _dist(self, X: Any) -> PredictiveDistribution:
        model = self._fitted()
        x = torch.as_tensor(self._features(X))
        return PredictiveDistribution(model.family, model.predict_params(x))

    def nll(self, X: Any, y: Any) -> float:
        """The mean negative log-likelihood of y (lower is better)."""
        return self._metric("nll", X, y)

    def crps(self, X: Any, y: Any) -> float:
        """The mean continuous ranked probability score of y (lower is better)."""
        return self._metric("crps", X, y)

    def _metric(self, name: str, X: Any, y: Any) -> float:
        dist = self.predict_dist(X)  # refuses a point family
        target = torch.tensor(_target_values(y, len(dist.params[0])), dtype=torch.float32)
        return self.model_.evaluate(torch.as_tensor(self._features(X)), target)[name]

    # ---- files ----------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the fitted estimator to ``path``: a softzoo checkpoint (weights and plain
        values only: loading it runs no code), which ``softzoo predict``/``export`` read
        too."""
        model = self._fitted()
        saved = {
            "params": self._options() | {"verbose": self.verbose},
            "columns": list(self.columns_),
            "feature_names_in": _names_or_none(self),
            "target_name": self.target_name_,
        }
        content = {
            "state_dict": model.state_dict(),
            "hyper_parameters": dict(model.hparams),
            _SAVED: saved,
        }
        return atomic_write(path, lambda tmp: torch.save(content, tmp))

    @classmethod
    def load(cls, path: str | Path) -> SoftzooRegressor:
        """An estimator saved by :meth:`save` (or any softzoo checkpoint: wrapped as
        :meth:`from_model` does)."""
        saved = check_checkpoint(path).get(_SAVED)
        model = load_checkpoint(path)
        if saved is None:
            return cls.from_model(model)
        estimator = cls(**_checked_params(cls, saved.get("params"), path))
        names = saved.get("feature_names_in")
        return estimator._wrap(model, saved["columns"], names, saved["target_name"])

    @classmethod
    def from_model(cls, model: SoftRegressor) -> SoftzooRegressor:
        """A fitted estimator around a trained :class:`~softzoo.models.SoftRegressor`: its
        columns are its features (an array's in that order: numeric, then categorical)."""
        hparams = model.hparams
        accepted = cls._get_param_names()
        params = {k: hparams[k] for k in accepted if k in hparams and k != "seed"}
        params.update(missing=hparams.get("missing_policy", "impute"))
        names = list(model.feature_names)
        estimator = cls(**params)
        return estimator._wrap(model.eval(), names, names, str(hparams.target_name))

    @classmethod
    def from_pretrained(cls, name: str) -> SoftzooRegressor:
        """A zoo model (its shipped, sha256-verified weights) as a fitted estimator.

        Example:
            >>> SoftzooRegressor.from_pretrained("concrete-gaussian-softplus").n_features_in_
            8
        """
        from softzoo.zoo import get_model

        return cls.from_model(get_model(name, weights="DEFAULT"))

    def to_onnx(self, path: str | Path, name: str | None = None) -> Any:
        """Export to ONNX and certify it as ``softzoo export`` does; returns the parity
        report (``.passed``, ``.summary()``), which is stored in the file too."""
        from softzoo.onnx import export_certified

        return export_certified(self._fitted(), path, model_name=name)

    # ---- helpers --------------------------------------------------------------------
    def _wrap(
        self, model: SoftRegressor, columns: list[str], names: list[str] | None, target: str
    ) -> SoftzooRegressor:
        self.model_, self.columns_, self.target_name_ = model, list(columns), target
        self.n_features_in_ = len(columns)
        if names is not None:
            self.feature_names_in_ = np.asarray(names, dtype=object)
        return self

    def _fitted(self) -> SoftRegressor:
        check_is_fitted(self, "model_")
        return self.model_

    def _frame(self, X: Any, reset: bool) -> pd.DataFrame:
        """X as a DataFrame with string column names (an array's: x0, x1, ...); checks
        (reset=False) or records (reset=True) the number and names of X's columns."""
        if isinstance(X, pd.DataFrame):
            named = all(isinstance(c, str) for c in X.columns)
            if not named and any(isinstance(c, str) for c in X.columns):
                raise ValueError(
                    "X mixes text and non-text column names: name every column with a string"
                )
            frame = X.reset_index(drop=True)
        else:
            named = False
            array = check_array(X, dtype=None, ensure_all_finite=False)
            frame = pd.DataFrame(array)
        if reset or not named:  # a DataFrame's columns are found by name, as in a file
            checked = frame if named else frame.to_numpy()
            validate_data(self, checked, reset=reset, skip_check_array=True)
        if reset:
            self.columns_ = (
                [str(c) for c in frame.columns]
                if named
                else [f"x{i}" for i in range(frame.shape[1])]
            )
        if not named:
            frame = frame.set_axis(self.columns_, axis=1)
        if len(frame) == 0:
            raise ValueError("X has no rows")
        return frame.copy() if reset else frame

    def _features(self, X: Any) -> np.ndarray:
        model = self._fitted()
        return encode_features(
            self._frame(X, reset=False),
            model.feature_names,
            model.categories,
            model.hparams.get("column_roles"),
            model.hparams.get("missing_policy", "impute"),
            "X",
        )


def _numpy(values: torch.Tensor) -> np.ndarray:
    return values.detach().double().cpu().numpy()


def _names_or_none(estimator: SoftzooRegressor) -> list[str] | None:
    names = getattr(estimator, "feature_names_in_", None)
    return None if names is None else [str(n) for n in names]


def _target_values(y: Any, rows: int) -> np.ndarray:
    """y as float64 values, one per row; NaN and infinities are errors."""
    values = check_array(y, ensure_2d=False, dtype="numeric", input_name="y")
    values = column_or_1d(values, warn=True)
    check_consistent_length(np.empty(rows), values)
    return values.astype(np.float64)


def _free_name(name: str, frame: pd.DataFrame) -> str:
    """``name`` (of a column the estimator adds: the target, the split), or a variant that
    no column of ``frame`` holds."""
    candidate = name if name not in ("None", "") else "y"
    while candidate in frame.columns:
        candidate = f"_{candidate}"
    return candidate


def _sample_weight(sample_weight: Any, rows: int) -> np.ndarray:
    """One finite weight >= 0 per row, not all 0."""
    weight = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
    if len(weight) != rows:
        raise ValueError(f"sample_weight has {len(weight)} value(s) for {rows} row(s) of X")
    if not (np.isfinite(weight).all() and (weight >= 0).all() and weight.any()):
        raise ValueError(
            "sample_weight must be finite, >= 0 and not all 0 (a weight of 2 counts as the "
            "row twice)"
        )
    return weight


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
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


def _checked_params(cls: type, params: Any, path: str | Path) -> dict[str, Any]:
    """The saved constructor arguments, or one error if the file was edited."""
    accepted = set(cls._get_param_names())
    plain = (str, int, float, bool, type(None), list, dict)
    if not isinstance(params, dict) or set(params) - accepted:
        raise ValueError(f"{str(path)!r}: its saved estimator arguments are not softzoo's")
    if not all(isinstance(v, plain) for v in params.values()):
        raise ValueError(f"{str(path)!r}: its saved estimator arguments are not plain values")
    return params
