"""The estimator itself: :class:`SoftzooRegressor` (see :mod:`softzoo.sklearn`)."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from numbers import Integral, Real
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
import yaml
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import (
    check_array,
    check_is_fitted,
    validate_data,
)

from softzoo._io import atomic_write
from softzoo._options import fit_config
from softzoo.data import encode_features
from softzoo.data.checks import check_row_values, require_columns
from softzoo.data.files import header_names
from softzoo.data.roles import numeric_values
from softzoo.data.tabular import MISSING_POLICIES
from softzoo.families import PredictiveDistribution, get_family
from softzoo.models import SoftRegressor, check_checkpoint, load_checkpoint
from softzoo.models.calibration import CALIBRATIONS
from softzoo.nn.embeddings import NUMERIC_EMBEDDINGS
from softzoo.nn.members import ENSEMBLE_TYPES
from softzoo.recipe import AUTO
from softzoo.runner import fit_in_process
from softzoo.sklearn._rows import (
    free_name,
    of_x,
    sample_weight_values,
    target_values,
    write_parquet,
)
from softzoo.sklearn._saved import check_agrees, checked_fields, checked_params

__all__ = ["SoftzooRegressor"]

#: The key of a saved estimator's own fields in its checkpoint file.
_SAVED = "softzoo_estimator"
#: "auto": the default recipe's setting, for the training rows (softzoo.recipe).
_AUTO = StrOptions({AUTO})


class SoftzooRegressor(RegressorMixin, BaseEstimator):
    """A softzoo model with scikit-learn's conventions: ``softzoo fit`` on the rows of X.

    Every argument is the ``softzoo fit`` option of the same name (``--model.*``,
    ``--data.*``, ``--trainer.*``); the defaults are the one-line CLI form's. ``fit``
    carves the validation rows (early stopping, calibration) from X by ``val_fraction``,
    or takes ``eval_set=(X_val, y_val)``. Columns are found by name in a DataFrame (their
    order and any extra columns do not matter; names are stripped of surrounding spaces,
    as in a file's header); an array's columns are taken in the order of fit and named
    ``x0``, ``x1``, ….

    Parameters
    ----------
    family : str, default="gaussian"
        The output family (``softzoo.families.list_families()``): gaussian, student_t,
        lognormal, gamma, poisson, negative_binomial, positive (a point), tweedie, the
        hurdle and zero-inflated families.
    family_options : dict or None, default=None
        The family's options, e.g. ``{"beta_nll": 0.5}`` or ``{"power": "learned"}``.
    hidden : list of int or "auto", default="auto"
        The hidden layers' widths; "auto": the default recipe's for the training rows.
    activation : str or list of str, default="softplus"
        "softplus", "relu", … for every hidden layer, or one per layer.
    dropout : float, default=0.0
        Dropout after each hidden layer.
    ensemble_size : int or "auto", default="auto"
        Members trained side by side; the prediction is their mixture.
    ensemble_type : {"auto", "independent", "batch", "mini"}, default="auto"
        How the members share weights (independent, TabM, TabM-mini).
    numeric_embedding : {"auto", "none", "piecewise_linear", "periodic"}, default="auto"
        How numeric columns enter the network.
    numeric_bins : int or "auto", default="auto"
        The most piecewise-linear bins per numeric column.
    calibration : {"none", "conformal"}, default="none"
        "conformal": intervals calibrated on the validation rows.
    interval_level : float, default=0.9
        The central interval's level (``predict_interval``, the metrics).
    missing : {"impute", "error"}, default="impute"
        Empty cells: imputed inside the model (numeric: the training median and an
        indicator; categorical: their own code), or refused.
    categorical : list of str or None, default=None
        Columns to use as categories even where they hold numbers.
    ignore : list of str or None, default=None
        Columns of X to leave out.
    exposure_column : str or None, default=None
        A column of X with each row's exposure (> 0: months insured, hours observed): the
        predicted mean is multiplied by it; never a feature, and needed at predict too.
    lr : float, default=3e-3
        The learning rate.
    weight_decay : float, default=1e-4
        The optimiser's weight decay.
    batch_size : int or "auto", default="auto"
        Training rows per batch.
    max_epochs : int or None, default=None
        The most epochs (None: the recipe's).
    early_stopping_patience : int or None, default=None
        Epochs without a better validation loss before stopping (None: the recipe's; 0:
        no early stopping).
    warmup_fraction : float or "auto", default="auto"
        The share of the epochs that fit the mean alone first.
    val_fraction : float, default=0.1
        The share of X's rows held out for validation (without ``eval_set``).
    random_state : int, RandomState instance or None, default=0
        Seeds the initial weights, the shuffles and the validation split; None: a fresh
        seed each fit. The caller's own generators are never used or changed.
    accelerator : str, default="auto"
        Lightning's accelerator ("cpu", "gpu", …).
    devices : int or str, default=1
        Lightning's devices.
    verbose : bool, default=False
        Show the roles table, Lightning's notices and the progress bar.

    Attributes
    ----------
    model_ : SoftRegressor
        The trained model (the best validation epoch's weights).
    columns_ : list of str
        The columns of X at fit, in order (an array's: ``x0``, ``x1``, …).
    n_features_in_ : int
        The number of columns of X at fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        The column names of a DataFrame X at fit (absent for an array).
    target_name_ : str
        The target's name (a Series' name, else "y").

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 3))
    >>> y = np.exp(X[:, 0] + 0.1 * rng.normal(size=300))
    >>> model = SoftzooRegressor(family="lognormal", max_epochs=5).fit(X, y)
    >>> model.predict_quantiles(X[:4], [0.05, 0.5, 0.95]).shape
    (4, 3)
    """

    _parameter_constraints: ClassVar[dict[str, list]] = {
        "family": [str],
        "family_options": [dict, None],
        "hidden": [list, tuple, _AUTO],
        "activation": [str, list, tuple],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "ensemble_size": [Interval(Integral, 1, None, closed="left"), _AUTO],
        "ensemble_type": [StrOptions({AUTO, *ENSEMBLE_TYPES})],
        "numeric_embedding": [StrOptions({AUTO, *NUMERIC_EMBEDDINGS})],
        "numeric_bins": [Interval(Integral, 1, None, closed="left"), _AUTO],
        "calibration": [StrOptions(set(CALIBRATIONS))],
        "interval_level": [Interval(Real, 0, 1, closed="neither")],
        "missing": [StrOptions(set(MISSING_POLICIES))],
        "categorical": [list, tuple, None],
        "ignore": [list, tuple, None],
        "exposure_column": [str, None],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left"), _AUTO],
        "max_epochs": [Interval(Integral, 1, None, closed="left"), None],
        "early_stopping_patience": [Interval(Integral, 0, None, closed="left"), None],
        "warmup_fraction": [Interval(Real, 0, 1, closed="left"), _AUTO],
        "val_fraction": [Interval(Real, 0, 1, closed="left")],
        "random_state": ["random_state"],
        "accelerator": [str],
        "devices": [Interval(Integral, 1, None, closed="left"), str],
        "verbose": ["boolean"],
    }

    def __init__(
        self,
        *,
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
        exposure_column: str | None = None,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        batch_size: int | str = AUTO,
        max_epochs: int | None = None,
        early_stopping_patience: int | None = None,
        warmup_fraction: float | str = AUTO,
        val_fraction: float = 0.1,
        random_state: int | np.random.RandomState | None = 0,
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
        self.exposure_column = exposure_column
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.early_stopping_patience = early_stopping_patience
        self.warmup_fraction = warmup_fraction
        self.val_fraction = val_fraction
        self.random_state = random_state
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
        """Train on (X, y) with ``softzoo fit``.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            The rows: text, bool and category columns and empty cells are welcome.
        y : array-like of shape (n_samples,)
            The target, in its own units.
        sample_weight : array-like of shape (n_samples,) or None
            One weight >= 0 per row of X (``--data.weight_column``): a weighted loss and
            weighted validation metrics; a weight of 2 counts as the row twice.
        eval_set : (X_val, y_val) or None
            The validation rows, instead of ``val_fraction`` of X's (each weighing 1).

        Returns
        -------
        self : SoftzooRegressor
        """
        self._validate_params()  # before anything is written
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None"
            )
        frame = self._frame(X, reset=True)
        target = free_name("y" if not isinstance(y, pd.Series) else str(y.name), frame)
        frame[target] = self._target(y, len(frame))
        # X's rows are the training split, and the data module carves its validation rows
        # from them exactly as from a file's train rows (softzoo fit --data.split_column)
        split = free_name("split", frame)
        frame[split] = "train"
        data = {"target": target, "split_column": split}
        if self.exposure_column is not None:
            data["exposure_column"] = self._exposure_name(frame)
        if sample_weight is not None:
            data["weight_column"] = free_name("weight", frame)
            frame[data["weight_column"]] = sample_weight_values(sample_weight, len(frame))
        if eval_set is not None:
            frame = self._with_eval_rows(frame, data, eval_set)
        with tempfile.TemporaryDirectory(prefix="softzoo-fit-") as tmp:
            path = Path(tmp) / "rows.parquet"
            write_parquet(frame, path)
            self.model_ = self._train({"path": str(path), **data}, Path(tmp))
        self.target_name_ = target
        return self

    def _target(self, y: Any, rows: int) -> np.ndarray:
        """y as float64 values, one per row of X, within the family's support."""
        values = target_values(y, rows)
        family = get_family(self.family, **(self.family_options or {}))
        family.check_support(torch.as_tensor(values), "target y")
        return values

    def _exposure_name(self, frame: pd.DataFrame) -> str:
        """The exposure column of X, checked: present, every value > 0."""
        name = self.exposure_column
        require_columns(frame, [name], "exposure", "X")
        values = numeric_values(frame, name, "exposure", "X")
        check_row_values(values, "exposure", f"exposure column {name!r} of X", row_name=of_x)
        return name

    def _with_eval_rows(
        self, frame: pd.DataFrame, data: dict[str, str], eval_set: tuple[Any, Any]
    ) -> pd.DataFrame:
        if not (isinstance(eval_set, (tuple, list)) and len(eval_set) == 2):
            raise ValueError("eval_set must be a pair (X_val, y_val)")
        rows = self._frame(eval_set[0], reset=False)
        require_columns(rows, self.columns_, "feature", "eval_set's X_val")
        rows[data["target"]] = self._target(eval_set[1], len(rows))
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
        """The ``softzoo fit`` options (``softzoo._options``) of this estimator's arguments."""
        options = self._plain_params()
        for key in ("verbose", "exposure_column", "random_state"):
            options.pop(key)
        options["seed"] = _seed(self.random_state)
        return options

    def _plain_params(self) -> dict[str, Any]:
        """The arguments as plain values (lists for sequences; a RandomState as None)."""
        params = self.get_params()
        for key in ("hidden", "activation", "categorical", "ignore"):
            value = params[key]
            params[key] = value if isinstance(value, str) or value is None else list(value)
        if not isinstance(params["random_state"], (int, np.integer, type(None))):
            params["random_state"] = None
        elif params["random_state"] is not None:
            params["random_state"] = int(params["random_state"])
        return params

    # ---- predictions ----------------------------------------------------------------
    def predict(self, X: Any) -> np.ndarray:
        """The predictive mean of each row."""
        return self._dist(X).mean

    def predict_median(self, X: Any) -> np.ndarray:
        """The predictive median of each row."""
        return self.predict_dist(X).quantile(0.5)

    def predict_quantiles(self, X: Any, q: float | Sequence[float]) -> np.ndarray:
        """The ``q`` quantiles of each row, shape (rows, len(q)) (or (rows,) for one);
        every level strictly between 0 and 1."""
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
        target = torch.tensor(target_values(y, len(dist.params[0])), dtype=torch.float32)
        return self.model_.evaluate(torch.as_tensor(self._features(X)), target)[name]

    # ---- files ----------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the fitted estimator to ``path``: a softzoo checkpoint (weights and plain
        values only: loading it runs no code), which ``softzoo predict``, ``softzoo test``
        and ``softzoo export`` read too (``--ckpt_path``)."""
        import lightning

        model = self._fitted()
        saved = {
            "params": self._plain_params(),
            "columns": list(self.columns_),
            "feature_names_in": _names_or_none(self),
            "target_name": self.target_name_,
        }
        content = {
            "state_dict": model.state_dict(),
            "hyper_parameters": dict(model.hparams),
            "pytorch-lightning_version": lightning.__version__,
            _SAVED: saved,
        }
        return atomic_write(path, lambda tmp: torch.save(content, tmp))

    @classmethod
    def load(cls, path: str | Path) -> SoftzooRegressor:
        """An estimator saved by :meth:`save` (or any softzoo checkpoint: wrapped as
        :meth:`from_model` does). A file whose estimator fields were edited, or disagree
        with its model, is one error."""
        saved = check_checkpoint(path).get(_SAVED)
        model = load_checkpoint(path)
        if saved is None:
            return cls.from_model(model)
        fields = checked_fields(saved, path)
        estimator = cls(**checked_params(cls, fields["params"], path))
        check_agrees(estimator, model, fields["columns"], path)
        names = fields["feature_names_in"]
        return estimator._wrap(model, fields["columns"], names, fields["target_name"])

    @classmethod
    def from_model(cls, model: SoftRegressor) -> SoftzooRegressor:
        """A fitted estimator around a trained :class:`~softzoo.models.SoftRegressor`: its
        columns are its features (an array's in that order: numeric, then categorical),
        then its exposure column, if it has one."""
        hparams = model.hparams
        accepted = cls._get_param_names()
        params = {k: hparams[k] for k in accepted if k in hparams}
        params.update(missing=hparams.get("missing_policy", "impute"))
        exposure = hparams.get("exposure_column")
        names = [*model.feature_names, *([exposure] if exposure else [])]
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
        """X as a DataFrame with string column names (an array's: x0, x1, ...; a
        DataFrame's by the header rule of a file: stripped, none empty or repeated);
        checks (reset=False) or records (reset=True) the number and names of X's columns."""
        if isinstance(X, pd.DataFrame):
            named = all(isinstance(c, str) for c in X.columns)
            if not named and any(isinstance(c, str) for c in X.columns):
                raise ValueError(
                    "X mixes text and non-text column names: name every column with a string"
                )
            frame = X.reset_index(drop=True)
            if named:
                frame = frame.set_axis(header_names(list(frame.columns), "X"), axis=1)
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
            model.hparams.get("exposure_column"),
            row_name=of_x,
        )


def _numpy(values: torch.Tensor) -> np.ndarray:
    return values.detach().double().cpu().numpy()


def _seed(random_state: Any) -> int:
    """The seed of a fit: an int as given, a RandomState's next draw, None a fresh seed
    from the operating system (never the caller's global generators)."""
    if random_state is None:
        return int(np.random.SeedSequence().entropy % (2**31))
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(2**31 - 1))
    return int(random_state)


def _names_or_none(estimator: SoftzooRegressor) -> list[str] | None:
    names = getattr(estimator, "feature_names_in_", None)
    return None if names is None else [str(n) for n in names]
