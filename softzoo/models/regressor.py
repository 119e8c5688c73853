"""SoftRegressor: an MLP with the parameter heads of an output family, as a LightningModule."""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.plugins.precision import MixedPrecision
from torch import Tensor, nn
from torchmetrics import MeanAbsoluteError, MeanMetric, MeanSquaredError, Metric

from softzoo._lightning import attached_trainer
from softzoo.families import Family, Mixture, Params, get_family, list_families
from softzoo.metrics import (
    CRPS,
    IntervalCoverage,
    IntervalWidth,
    NegativeLogLikelihood,
    WeightedError,
)
from softzoo.models import calibration as _calibration
from softzoo.models import craft, steps
from softzoo.models.calibration import CALIBRATIONS
from softzoo.models.checkpoints import upgrade_state_dict
from softzoo.models.data_contract import ModelData, model_data
from softzoo.models.scaling import DEQUANTIZE, dequantization_step, initial_values
from softzoo.nn import MLP, ParameterHeads, TabularInput
from softzoo.nn.embeddings import NUMERIC_EMBEDDINGS
from softzoo.nn.members import ENSEMBLE_TYPES
from softzoo.recipe import AUTO_MODEL_KEYS, resolve_model_options

__all__ = ["SoftRegressor"]

# Lightning tells whoever overrides transfer_batch_to_device and passes a data module that
# the module's hook is used: that is what this one is for (steps.move_batch), for every
# fit, test and predict, so the notice is no news; only that exact notice is silenced.
warnings.filterwarnings(
    "ignore", message="You have overridden `transfer_batch_to_device` in `LightningModule` but"
)

_OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
_SCHEDULERS = (None, "none", "cosine", "plateau")


class SoftRegressor(pl.LightningModule):
    """An MLP (Softplus or ReLU per hidden layer) with the heads of an output family.

    ``forward(x)`` takes RAW features and returns the family's parameters as a tuple of
    ``(batch,)`` tensors in ORIGINAL target units (for the Gaussian: loc, scale). Feature
    and target scaling are buffers fitted on the training split when ``fit`` starts, so a
    checkpoint, a safetensors file and an ONNX graph all carry them. Positive parameters
    stay positive: unscaling only multiplies or divides them by a positive scale.

    Args:
        in_features: number of features (the CLI links it to the data module).
        family: output family name (see ``softzoo.families.list_families()``).
        family_options: options of the family, e.g. ``{"beta_nll": 0.5}``.
        hidden: hidden layer widths.
        activation: "softplus", "relu", … for all hidden layers, or one name per layer.
        softplus_beta, softplus_threshold: parameters of softplus hidden layers.
        dropout, norm: see :class:`softzoo.nn.MLP`.
        floor: smallest value of each positive head, in the head's (scaled) units.
        optimizer: "adam", "adamw" or "sgd"; lr, weight_decay: its settings (the defaults
            are softzoo's default recipe, chosen on UCI training rows: docs/training.md).
        scheduler: None, "cosine" (to 0 over the run, per step) or "plateau" (on val_loss).
        gradient_clip_val: clip the gradient norm to this value before each step (the
            model optimises manually, so the Trainer's ``gradient_clip_val`` does not apply).
        interval_level: the central interval logged (PICP, width) and predicted.
        feature_names, target_name: recorded in checkpoints and exports.
        categories: the vocabulary of each categorical column (name → categories), fitted
            on the training split by the data module; these columns are the last ones of
            ``feature_names`` and arrive as codes (see :mod:`softzoo.nn.tabular`).
        missing_indicators: numeric columns that had gaps in the training split: each
            gets a 0/1 missing-indicator input. Missing numeric cells are always filled
            with the training median inside ``forward``.
        column_roles: the data module's roles table (for reports and exports only).
        missing_policy: the data module's missing-value policy, "impute" or "error" (for
            exports: whether a deployed model accepts empty numeric cells).
        ensemble_size: N > 1 trains N members of this architecture side by side in one
            vectorised pass (different initialisations, the same batches); the predictive
            is their equal-weight mixture (:class:`~softzoo.families.Mixture`) and every
            parameter ``forward`` returns is ``(batch, N)``.
        ensemble_type: how the members share weights: "independent" (nothing shared),
            "batch" (TabM: one weight matrix per layer, per-member rank-1 scalings and
            biases) or "mini" (TabM-mini: one per-member scaling of the input, then a
            shared MLP); every member has its own heads (:mod:`softzoo.nn.members`).
        numeric_embedding: "none" (standardised values), "piecewise_linear" (quantile bins
            of the training rows; values outside them saturate) or "periodic" (learned
            frequencies, sin/cos, a linear layer): :mod:`softzoo.nn.embeddings`.
        numeric_bins: the most piecewise-linear bins per numeric column.
        warmup_epochs: for the first epochs, fit only the parameters that carry the mean
            (``family.mean_params``: the location, the gamma rate, …) with the others held at
            the marginal fit of the target, then the full likelihood (mean warm-up:
            "burn-in" in lightning-uq-box; Sluijterman et al., 2023).
        warmup_fraction: the warm-up as a share of the Trainer's ``max_epochs`` (0.1: the
            first 10 %, rounded down), so that it scales with the run; the example configs
            use it. Give ``warmup_epochs`` or ``warmup_fraction``, not both.
        faithful: faithful heteroscedastic training (Stirn et al., 2023): the mean is fitted
            as a homoscedastic model would (the others held at the marginal fit) through
            the shared body, and the other parameters' heads learn the likelihood on the
            body's features with no gradient into the body or the mean.
        calibration: "none", or "conformal": after every validation epoch, fit a map on the
            validation split so that the central ``interval_level`` interval reaches its
            nominal coverage with a split-conformal guarantee (docs/calibration.md);
            ``forward``, predictions, test metrics and exports apply it.
        dequantize: "auto", "always" or "never". A target recorded on a coarse grid (wine
            scores 3-8, a quantity rounded to 0.001) lets a continuous density shrink its
            scale towards 0 where all rows share one value, and then a test row one step
            away costs hundreds of nats. Dequantizing adds uniform noise as wide as the
            rounding step (the smallest gap between distinct training targets) to each
            training target, each step anew, so the model fits the density of the values
            before rounding (Theis et al., 2016). "auto" does it where the target has at most
            sqrt(rows) distinct values; discrete and point families never.
        train_rows: the number of training rows (``softzoo fit`` links it from the data),
            from which the "auto" settings (``hidden``, ``numeric_embedding``,
            ``numeric_bins``, ``ensemble_type``, ``ensemble_size``, ``warmup_fraction``)
            take the default recipe's values (:func:`softzoo.recipe.default_recipe`).
        compile: compile the training loss (forward and backward) and the evaluation
            forward with ``torch.compile`` while fitting; where compiling fails (no C++
            compiler for inductor on CPU, an unsupported op), one line says so and training
            goes on eagerly.

    Example:
        >>> import torch
        >>> model = SoftRegressor(in_features=3, family="gaussian", hidden=[16])
        >>> loc, scale = model(torch.randn(4, 3))
        >>> bool((scale > 0).all())
        True
    """

    def __init__(
        self,
        in_features: int,
        family: str = "gaussian",
        family_options: dict[str, Any] | None = None,
        hidden: Sequence[int] | Literal["auto"] = (64, 64),
        activation: str | Sequence[str] = "softplus",
        softplus_beta: float = 1.0,
        softplus_threshold: float = 20.0,
        dropout: float = 0.0,
        norm: str | None = None,
        floor: float = 1e-6,
        optimizer: str = "adam",
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        scheduler: str | None = "cosine",
        gradient_clip_val: float | None = None,
        interval_level: float = 0.9,
        feature_names: Sequence[str] | None = None,
        target_name: str = "y",
        categories: dict[str, list[str]] | None = None,
        missing_indicators: Sequence[str] | None = None,
        column_roles: list[dict[str, Any]] | None = None,
        missing_policy: str = "impute",
        ensemble_size: int | Literal["auto"] = 1,
        ensemble_type: str = "independent",
        numeric_embedding: str = "none",
        numeric_bins: int | Literal["auto"] = 48,
        calibration: str = "none",
        warmup_epochs: int = 0,
        warmup_fraction: float | Literal["auto"] = 0.0,
        faithful: bool = False,
        dequantize: str = "auto",
        compile: bool = False,
        train_rows: int | None = None,
        exposure_column: str | None = None,
        weight_column: str | None = None,
    ) -> None:
        super().__init__()
        # "auto" settings become the default recipe's for the training split's size,
        # before the hyper-parameters are recorded: a checkpoint holds what was built
        resolved = resolve_model_options(
            {
                "hidden": hidden,
                "numeric_embedding": numeric_embedding,
                "numeric_bins": numeric_bins,
                "ensemble_type": ensemble_type,
                "ensemble_size": ensemble_size,
                "warmup_fraction": warmup_fraction,
                "warmup_epochs": warmup_epochs,
            },
            train_rows,
            point=not get_family(family, **(family_options or {})).probabilistic,
        )
        hidden, numeric_embedding, numeric_bins, ensemble_type, ensemble_size, warmup_fraction = (
            resolved[k] for k in AUTO_MODEL_KEYS
        )
        if optimizer not in _OPTIMIZERS:
            raise ValueError(f"unknown optimizer {optimizer!r}; valid: {', '.join(_OPTIMIZERS)}")
        if scheduler not in _SCHEDULERS:
            raise ValueError(f"unknown scheduler {scheduler!r}; valid: None, cosine, plateau")
        if not 0.0 < interval_level < 1.0:
            raise ValueError(f"interval_level must lie in (0, 1), got {interval_level}")
        if feature_names is not None and len(feature_names) != in_features:
            raise ValueError(f"{len(feature_names)} feature_names for in_features={in_features}")
        if gradient_clip_val is not None and not gradient_clip_val > 0:
            raise ValueError(f"gradient_clip_val must be > 0 or None, got {gradient_clip_val}")
        if not isinstance(ensemble_size, int) or ensemble_size < 1:
            raise ValueError(
                f"ensemble_size must be a whole number >= 1 (1: one model), got {ensemble_size!r}"
            )
        if ensemble_type not in ENSEMBLE_TYPES:
            raise ValueError(
                f"ensemble_type must be one of {ENSEMBLE_TYPES} (or 'auto': the default "
                f"recipe's), got {ensemble_type!r}"
            )
        if ensemble_type != "independent" and ensemble_size == 1:
            raise ValueError(
                f"ensemble_type={ensemble_type!r} shares weights between the members of an "
                "ensemble, and ensemble_size is 1: set ensemble_size > 1 (TabM uses 32), or "
                "ensemble_type='independent'"
            )
        if numeric_embedding not in NUMERIC_EMBEDDINGS:
            raise ValueError(
                f"numeric_embedding must be one of {NUMERIC_EMBEDDINGS} (or 'auto': the default "
                f"recipe's), got {numeric_embedding!r}"
            )
        if not isinstance(numeric_bins, int) or numeric_bins < 1:
            raise ValueError(f"numeric_bins must be a whole number >= 1, got {numeric_bins!r}")
        if not isinstance(warmup_epochs, int) or warmup_epochs < 0:
            raise ValueError(
                f"warmup_epochs must be a whole number >= 0 (0: no warm-up), got {warmup_epochs!r}"
            )
        if not 0.0 <= warmup_fraction < 1.0:
            raise ValueError(
                f"warmup_fraction must lie in [0, 1) (0.1: the first 10 % of max_epochs), "
                f"got {warmup_fraction!r}"
            )
        if warmup_epochs and warmup_fraction:
            raise ValueError(
                f"give warmup_epochs ({warmup_epochs}) or warmup_fraction ({warmup_fraction}), "
                "not both: set the other to 0"
            )
        if calibration not in CALIBRATIONS:
            raise ValueError(f"calibration must be one of {CALIBRATIONS}, got {calibration!r}")
        if dequantize not in DEQUANTIZE:
            raise ValueError(f"dequantize must be one of {DEQUANTIZE}, got {dequantize!r}")
        self.save_hyperparameters()
        # LightningCLI hands save_hyperparameters the config's values ("auto" included)
        self.hparams.update({k: resolved[k] for k in AUTO_MODEL_KEYS})
        self.inputs = _tabular_input(
            in_features,
            self.feature_names,
            categories or {},
            missing_indicators or [],
            # TabM shares the input layer between members; independent members do not
            ensemble_size if ensemble_type == "independent" else 1,
            numeric_embedding,
            numeric_bins,
        )
        # Manual optimisation: one Lightning step can carry several batches (see
        # ArrayDataModule.batches_per_step), each with its own optimiser step.
        self.automatic_optimization = False
        base = get_family(family, **(family_options or {}))
        self.family: Family = base if ensemble_size == 1 else Mixture(base, ensemble_size)
        if dequantize == "always" and (self.family.discrete or not self.family.probabilistic):
            raise ValueError(
                f"dequantize='always' spreads a rounded continuous target over its rounding "
                f"interval, and family {family!r} is {_kind(self.family)}: use 'auto' or 'never'"
            )
        if exposure_column is not None and not base.takes_exposure:
            takes = ", ".join(n for n in list_families() if get_family(n).takes_exposure)
            raise ValueError(
                f"family {family!r} has no mean that an exposure multiplies, so it takes no "
                f"exposure_column ({exposure_column!r}): choose one of {takes}, or train "
                "without the exposure"
            )
        if calibration != "none" and not self.family.probabilistic:
            raise ValueError(
                f"calibration={calibration!r} needs intervals, and family {family!r} is a point "
                "predictor: use calibration='none', or a probabilistic family"
            )
        self.body = MLP(
            self.inputs.out_features,
            hidden,
            activation,
            {"beta": softplus_beta, "threshold": softplus_threshold},
            dropout,
            norm,
            ensemble_size,
            ensemble_type,
            self.inputs.chunks(),
        )
        self.heads = ParameterHeads(
            self.body.out_features, self.family.head_specs(), floor=floor, members=ensemble_size
        )
        # the calibration map (identity until fitted): a factor on the scale parameter, or
        # the central level whose interval reaches the nominal coverage
        self.register_buffer("calibration_scale", torch.tensor(1.0))
        self.register_buffer("calibration_level", torch.tensor(float(interval_level)))
        # the marginal fit of the target per parameter (scaled units; NaN: none), where the
        # mean warm-up and faithful training hold the parameters that do not carry the mean
        self.register_buffer("marginal", torch.full((len(self.param_names),), math.nan))
        # the rounding step of the training target (scaled units; 0: not dequantised)
        self.register_buffer("target_resolution", torch.tensor(0.0))
        self._dequantizing = False
        self._direct_steps = False  # set when fitting starts: see _step_functions
        self._compiled: dict[str, steps.CompiledOrEager] = {}  # while fitting with compile=True
        self.register_buffer("y_shift", torch.tensor(0.0))
        self.register_buffer("y_scale", torch.tensor(1.0))
        self.register_buffer("scaling_fitted", torch.tensor(False))
        self.example_input_array = torch.zeros(2, in_features + bool(exposure_column))
        self.register_load_state_dict_pre_hook(upgrade_state_dict)
        self.train_loss = MeanMetric()
        self.eval_metrics = nn.ModuleDict(
            {"val": self._make_metrics(every_epoch=True), "test": self._make_metrics()}
        )

    # ---- the exported computation ----------------------------------------------------
    @property
    def in_features(self) -> int:
        return int(self.hparams.in_features)

    @property
    def param_names(self) -> tuple[str, ...]:
        return self.family.param_names

    def scaled_params(self, x: Tensor) -> Params:
        """The family's parameters for standardised features and the scaled target (with
        an exposure, the last column of ``x``: the mean multiplied by it)."""
        exposed = self.hparams.get("exposure_column")
        if x.shape[-1] != self.in_features + bool(exposed):
            last = f" and the exposure {exposed!r} last" if exposed else ""
            raise ValueError(
                f"expected {self.in_features} features per row ({', '.join(self.feature_names)})"
                f"{last}, got {x.shape[-1]}"
            )
        features, exposure = self.split_exposure(x)
        return self.exposed(self.heads(self.body(self.inputs(features))), exposure)

    def split_exposure(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """(features, exposure): the exposure is the last column of a model trained with
        one (shape (batch,), or (batch, members) for an ensemble's member shuffles)."""
        if not self.hparams.get("exposure_column"):
            return x, None
        exposure = x[..., -1]
        return x[..., :-1], exposure.T if exposure.dim() == 2 else exposure

    def exposed(self, params: Params, exposure: Tensor | None) -> Params:
        """The parameters of rows observed over ``exposure`` units (None: one unit)."""
        return params if exposure is None else self.family.with_exposure(params, exposure)

    def forward(self, x: Tensor) -> Params:
        return self._calibrate(self.uncalibrated(x))

    def uncalibrated(self, x: Tensor) -> Params:
        """The parameters before the calibration map (what the network itself says)."""
        return self.family.unscale(self.scaled_params(x), self.y_shift, self.y_scale)

    # ---- calibration ---------------------------------------------------------------------
    @property
    def calibration_method(self) -> str | None:
        """None (no calibration), "scale" (a factor on the scale parameter: one Gaussian,
        Student-t or log-normal model) or "level" (the central level whose interval reaches
        the nominal coverage: the other families and every ensemble)."""
        return _calibration.method(self.hparams.get("calibration", "none"), self.family)

    @property
    def effective_level(self) -> float:
        """The central level whose interval the model reports as its ``interval_level``
        interval: the calibrated one under the "level" method."""
        if self.calibration_method == "level":
            return float(self.calibration_level)
        return float(self.hparams.interval_level)

    def _calibrate(self, params: Params) -> Params:
        if self.calibration_method != "scale":
            return params
        return _calibration.apply_map(self.family, params, self.calibration_scale)

    @torch.no_grad()
    def fit_calibration(self, x: Tensor, y: Tensor) -> None:
        """Split-conformal calibration on held-out rows (x, y): on new exchangeable rows the
        ``interval_level`` interval then covers with probability >= that level
        (:func:`softzoo.models.calibration.fit_map`)."""
        how = self.calibration_method
        params = self._in_chunks(self.uncalibrated, x)
        value = _calibration.fit_map(how, self.family, params, y, self.hparams.interval_level)
        (self.calibration_scale if how == "scale" else self.calibration_level).fill_(value)

    @torch.no_grad()
    def predict_params(self, x: Tensor, batch_size: int = 4096) -> Params:
        """The parameters (``forward``: calibrated, if the model is) of many rows,
        ``batch_size`` rows at a time, without gradients.

        Example::

            loc, scale = model.eval().predict_params(features)
        """
        return self._in_chunks(self, x, batch_size)

    def _in_chunks(self, compute: Any, x: Tensor, rows: int = 4096) -> Params:
        parts = [compute(x[i : i + rows]) for i in range(0, len(x), rows)]
        return tuple(torch.cat(p) for p in zip(*parts, strict=True))

    def on_validation_epoch_end(self) -> None:
        datamodule = self._datamodule()
        if self.calibration_method is None or datamodule is None:
            return
        # every rank fits the same map from the whole validation split: no communication
        x, y = datamodule.tensors("val")
        self.fit_calibration(x.to(self.device), y.to(self.device))

    @property
    def feature_names(self) -> list[str]:
        names = self.hparams.get("feature_names")
        return list(names) if names else [f"x{i}" for i in range(self.in_features)]

    @property
    def categories(self) -> dict[str, list[str]]:
        """Vocabulary of each categorical column (empty for a numeric-only model)."""
        return {k: list(v) for k, v in (self.hparams.get("categories") or {}).items()}

    @property
    def numeric_names(self) -> list[str]:
        return self.feature_names[: self.inputs.n_numeric]

    @property
    def x_shift(self) -> Tensor:
        """Means of the numeric features (training split)."""
        return self.inputs.shift

    @property
    def x_scale(self) -> Tensor:
        """Standard deviations of the numeric features (training split)."""
        return self.inputs.scale

    # ---- scaling, fitted on the training split ---------------------------------------
    @torch.no_grad()
    def fit_scaling(self, x: Tensor, y: Tensor, rows: Tensor | None = None) -> None:
        """Fit feature/target scaling on training data and start every head at the
        marginal fit of the target (bias via inverse softplus, weights at 0). ``rows``
        picks the training rows of ``x`` and ``y`` (default: all), so a large table is
        read in place, a column at a time, instead of copied."""
        if rows is not None:
            y = y[rows]
        self.family.check_support(y, "training target")
        self.inputs.fit(x, rows, self.numeric_names)
        _, exposure = self.split_exposure(x if rows is None else x[rows])
        # the heads start at the marginal fit of the target per unit of exposure
        self._fit_target(y if exposure is None else y / exposure)

    def _fit_target(self, y: Tensor) -> None:
        """Target scaling, the heads' start at the marginal fit, the dequantization step."""
        y64 = y.double()
        shift, scale = self.family.fit_target_scaling(y64)
        self.y_shift.fill_(shift)
        self.y_scale.fill_(scale)
        hp = self.hparams
        initial = initial_values(
            self.family, (y64 - shift) / scale, y64, float(hp.floor), hp.target_name
        )
        self.heads.set_initial_values(initial)
        self.marginal.copy_(torch.tensor([initial.get(n, math.nan) for n in self.param_names]))
        step = dequantization_step(self.family, hp.get("dequantize", "never"), y64)
        self.target_resolution.fill_(step / scale)
        self._dequantizing = bool(self.target_resolution > 0)
        self.scaling_fitted.fill_(True)

    def _datamodule(self) -> ModelData | None:
        """The softzoo data module of the Trainer this model is attached to, or None."""
        trainer = attached_trainer(self)
        return None if trainer is None else model_data(getattr(trainer, "datamodule", None))

    def setup(self, stage: str) -> None:
        trainer = attached_trainer(self)
        if trainer is not None and str(trainer.precision).startswith("64"):
            raise ValueError(
                f"precision {self.trainer.precision!r} is not supported: softzoo trains, "
                "tests and exports in float32 (its heads are float32 by design); use "
                "32-true, or bf16-mixed / 16-mixed"
            )
        if stage == "fit" and trainer is not None:
            craft.check_warmup(self.family, self.warmup_length, trainer.max_epochs)
        datamodule = self._datamodule()
        if datamodule is None:
            if not bool(self.scaling_fitted):
                raise ValueError(
                    "SoftRegressor needs a softzoo data module to fit its scaling, "
                    "or call model.fit_scaling(x_train, y_train) before training"
                )
            return
        if datamodule.n_features != self.in_features:
            raise ValueError(
                f"the model expects {self.in_features} features, the data has "
                f"{datamodule.n_features} ({', '.join(datamodule.feature_names)})"
            )
        self._check_encoding(datamodule)
        given = getattr(datamodule, "exposure_column", None)
        if given != self.hparams.get("exposure_column"):
            raise ValueError(
                f"the model was built with exposure_column={self.hparams.get('exposure_column')!r}"
                f" and the data module has exposure_column={given!r}: give both the same"
            )
        if self.calibration_method and datamodule.sharded:
            raise ValueError(
                "calibration='conformal' fits one map on the whole validation split, and with "
                "shard_row_groups each process holds only its share of it: use "
                "calibration='none' (or train without shard_row_groups)"
            )
        if stage == "fit" and self.calibration_method and not len(datamodule.split_indices["val"]):
            raise ValueError(
                "calibration='conformal' fits its map on the validation split, and it is "
                "empty: set --data.val_fraction > 0 (or give val rows), or calibration='none'"
            )
        splits = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",)}.get(stage, ())
        for split in splits:
            target, rows = datamodule.split_target(split), datamodule.file_rows(split)
            self.family.check_support(target, f"{split} target", rows)
        if stage == "fit" and not bool(self.scaling_fitted):
            self._fit_scaling_on(datamodule)
        if stage == "fit":  # each member of an ensemble draws its own shuffle of the rows
            datamodule.member_shuffles = self.hparams.ensemble_size

    @torch.no_grad()
    def _fit_scaling_on(self, datamodule: ModelData) -> None:
        """Fit the scaling on a data module's training rows, or take the statistics it
        reduced across processes where each holds only its share."""
        statistics = datamodule.training_statistics
        if statistics is None:
            rows = torch.as_tensor(datamodule.split_indices["train"])
            self.fit_scaling(datamodule.features_tensor, datamodule.target_tensor, rows)
            return
        if self.hparams.get("numeric_embedding") == "piecewise_linear":
            raise ValueError(
                "numeric_embedding='piecewise_linear' (the default recipe's) takes its bins "
                "from quantiles of the whole training split, and with shard_row_groups each "
                "process holds only its share of it: set --model.numeric_embedding periodic "
                "or none (or train without shard_row_groups)"
            )
        self.family.check_support(statistics.target, "training target")
        self.inputs.set_statistics(statistics.fill, statistics.shift, statistics.scale)
        self._fit_target(statistics.target)

    def _check_encoding(self, datamodule: ModelData) -> None:
        """The data module must encode categories as this model was built for: another
        vocabulary would silently map codes to other categories."""
        data_categories = datamodule.categories
        if data_categories and data_categories != self.categories:
            raise ValueError(
                "the data module's category vocabularies differ from the model's (another "
                "training split?): give the data the model was trained on, or build the data "
                "module with vocabularies=model.categories"
            )

    # ---- training and evaluation -------------------------------------------------------
    def _make_metrics(self, every_epoch: bool = False) -> nn.ModuleDict:
        """The evaluation metrics; ``every_epoch`` (validation) leaves out CRPS and the
        interval metrics of an ensemble whose family's CDF is a series (Tweedie): each
        needs thousands of CDF evaluations per row, seconds per epoch."""
        weighted = self.hparams.get("weight_column") is not None
        metrics: dict[str, Metric] = {
            "loss": MeanMetric(),
            "rmse": WeightedError(squared=True) if weighted else MeanSquaredError(squared=False),
            "mae": WeightedError(squared=False) if weighted else MeanAbsoluteError(),
        }
        costly = every_epoch and isinstance(self.family, Mixture) and self.family.series_cdf
        if not costly:
            metrics["crps"] = CRPS(self.family)
        if self.family.probabilistic:
            metrics["nll"] = NegativeLogLikelihood(self.family)
        if self.family.probabilistic and not costly:
            level = self.hparams.interval_level
            tag = f"{round(level * 100):d}"
            metrics |= {
                f"picp_{tag}": IntervalCoverage(self.family, level),
                f"width_{tag}": IntervalWidth(self.family, level),
            }
        return nn.ModuleDict(metrics)

    def _scaled_target(self, y: Tensor) -> Tensor:
        return (y - self.y_shift) / self.y_scale

    def training_step(
        self, batch: tuple[Tensor, Tensor] | list[tuple[Tensor, Tensor]], batch_idx: int
    ) -> None:
        """One optimiser step per batch; ``batch`` is one (x, y) batch or a list of them
        (``batches_per_step`` of the data module)."""
        optimizer = self.optimizers()
        scheduler = self.lr_schedulers() if self.hparams.scheduler == "cosine" else None
        backward, step = steps.step_functions(self, optimizer, self._direct_steps)
        max_steps, epoch, clip = (
            self.trainer.max_steps,
            self.current_epoch,
            self.hparams.gradient_clip_val,
        )
        losses, rows = [], []
        for x, y, *weight in batch if isinstance(batch[0], (list, tuple)) else [batch]:
            if 0 <= max_steps <= self.trainer.global_step:
                break
            target = self._scaled_target(y)  # (members, batch) under member shuffles
            target = target.T if y.dim() == 2 else target
            weight = (weight[0].T if y.dim() == 2 else weight[0]) if weight else None
            loss = self.training_loss(x, target, epoch, weight).mean()
            optimizer.zero_grad(set_to_none=True)
            backward(loss)
            if clip is not None:
                self.clip_gradients(optimizer, gradient_clip_val=clip)
            with self.holding_heads(epoch):
                step()
            if scheduler is not None:
                scheduler.step()
            losses.append(loss.detach())
            rows.append(len(y))
        if rows:
            # one metric update per Lightning step: torchmetrics' update costs a tenth of a
            # step; logged as the members' mean loss, as val_loss is
            weights = torch.tensor(rows, dtype=losses[0].dtype, device=losses[0].device)
            mean = (torch.stack(losses) @ weights) / (sum(rows) * self.hparams.ensemble_size)
            self.train_loss.update(mean, weight=sum(rows))

    def on_train_start(self) -> None:
        trainer = self.trainer
        batches = getattr(trainer.train_dataloader, "num_batches", None)
        craft.check_warmup_steps(self.family, self.warmup_length, trainer.max_steps, batches)
        self._direct_steps = steps.direct_steps_possible(trainer, self)
        if self.hparams.get("compile", False):
            self._compiled = {
                "training loss": steps.CompiledOrEager(self._craft_loss, "the training loss"),
                "evaluation": steps.CompiledOrEager(self.scaled_params, "the evaluation forward"),
            }

    def on_train_end(self) -> None:
        self._compiled = {}  # compiled functions do not pickle or deep-copy

    def transfer_batch_to_device(
        self, batch: Any, device: torch.device, dataloader_idx: int
    ) -> Any:
        """softzoo's batches moved tensor by tensor (:func:`softzoo.models.steps.move_batch`);
        anything else goes to Lightning's."""
        moved = steps.move_batch(batch, device)
        if moved is None:
            return super().transfer_batch_to_device(batch, device, dataloader_idx)
        return moved

    # ---- training craft: mean warm-up, faithful training --------------------------------
    @property
    def warmup_length(self) -> int:
        """The mean warm-up's epochs: ``warmup_epochs``, or ``warmup_fraction`` of the
        Trainer's ``max_epochs`` (rounded down) once the model is attached to one."""
        trainer = attached_trainer(self)
        max_epochs = None if trainer is None else trainer.max_epochs
        return craft.warmup_length(self.hparams, max_epochs, trainer is not None)

    def warming_up(self, epoch: int) -> bool:
        """Whether ``epoch`` (0-based) is one of the mean warm-up's."""
        return epoch < self.warmup_length

    def training_loss(
        self, x: Tensor, target: Tensor, epoch: int, weight: Tensor | None = None
    ) -> Tensor:
        """The per-row loss the optimiser minimises at ``epoch`` (target in scaled units,
        dequantized where ``target_resolution`` > 0): the family's loss; during the mean
        warm-up, that loss with the parameters that do
        not carry the mean held at the marginal fit; with ``faithful``, that held loss for
        the mean and body plus the family's loss for the other heads on detached features
        and a detached mean. For an independent ensemble, the sum of its members' losses:
        each member gets the gradient it would get alone, so that Adam's (coupled) weight
        decay and its eps weigh on it as on a single model (under the members' mean,
        weight decay weighed N times as much on each member). For the TabM types
        ("batch", "mini"), the mean of the members' losses, as TabM trains: most weights
        are shared, and each gets the members' average gradient. With ``weight`` (a
        weight column), each row's loss is weighted so that the batch mean is
        Σ wᵢ·lossᵢ / Σ wᵢ."""
        return craft.training_loss(self, x, target, self.warming_up(epoch), weight)

    def validation_loss(self, scaled: Params, target: Tensor) -> Tensor:
        """The per-row ``val_loss`` (scaled units), what early stopping and the best
        checkpoint go by: the family's loss for one model; for an ensemble, the NLL of its
        mixture, the predictive it is used as. The members' mean loss would follow the
        noisiest member: on UCI naval at lr 3e-3 some member's loss spikes by 2-6 nats in
        most epochs, the 5-member mean rarely improves, and early stopping ended the
        ensemble at epoch 84 (test NLL -5.35; -6.16 on the mixture's NLL).

        Example::

            target = (y - model.y_shift) / model.y_scale
            loss = model.validation_loss(model.scaled_params(x), target)
        """
        if self.hparams.ensemble_size > 1:
            return self.family.nll(scaled, target)
        return self.family.loss(scaled, target)

    def _craft_loss(
        self, x: Tensor, target: Tensor, warming: bool, weight: Tensor | None = None
    ) -> Tensor:
        return craft.craft_loss(self, x, target, warming, weight)

    def _held(self, params: Params) -> Params:
        """The parameters, with those that do not carry the mean at the marginal fit."""
        return craft.held(self.family, self.marginal, params)

    @contextlib.contextmanager
    def holding_heads(self, epoch: int) -> Iterator[None]:
        """Wrap ``optimizer.step()`` of a custom training loop in this (with
        :meth:`training_loss`): during the warm-up the held parameters' head rows stay as
        they are (no gradient reaches them, but weight decay would move them).

        Example::

            loss = model.training_loss(x, target, epoch).mean()
            loss.backward()
            with model.holding_heads(epoch):
                optimizer.step()
        """
        with craft.holding_heads(self.family, self.heads.linear, self.warming_up(epoch)):
            yield

    def on_train_epoch_end(self) -> None:
        self.log("train_loss", self.train_loss, on_epoch=True, prog_bar=True)
        val_loss = self.trainer.callback_metrics.get("val_loss")
        if self.hparams.scheduler == "plateau" and val_loss is not None:
            self.lr_schedulers().step(val_loss)

    def _evaluate(self, stage: str, batch: tuple[Tensor, ...]) -> None:
        x, y, *weight = batch
        metrics = self.eval_metrics[stage]
        # validation sees the raw model (the calibration map is fitted on it), test the
        # calibrated one, as deployed
        scaled = self._compiled.get("evaluation", self.scaled_params)(x)
        self._update_metrics(metrics, scaled, y, stage == "test", weight[0] if weight else None)
        self.log_dict(
            {f"{stage}_{name}": metric for name, metric in metrics.items()},
            on_step=False,
            on_epoch=True,
            batch_size=len(y),
            prog_bar=False,
        )

    def on_test_start(self) -> None:
        self._set_interval_level(self.eval_metrics["test"], self.effective_level)

    @staticmethod
    def _set_interval_level(metrics: nn.ModuleDict, level: float) -> None:
        for metric in metrics.values():
            if hasattr(metric, "level"):
                metric.level = level

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate("val", batch)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate("test", batch)

    @torch.no_grad()
    def evaluate(
        self, x: Tensor, y: Tensor, batch_size: int = 4096, weight: Tensor | None = None
    ) -> dict[str, float]:
        """The test metrics (NLL, RMSE, MAE, CRPS, PICP and width, loss) of (x, y), computed
        exactly as ``trainer.test`` logs them (calibrated, if the model is; weighted means
        with ``weight``); keys without the ``test_`` prefix."""
        self.family.check_support(y, "target")
        metrics = self._make_metrics().to(self.device)
        self._set_interval_level(metrics, self.effective_level)
        for start in range(0, len(y), batch_size):
            part = slice(start, start + batch_size)
            scaled = self.scaled_params(x[part])
            self._update_metrics(
                metrics, scaled, y[part], True, None if weight is None else weight[part]
            )
        return {name: float(metric.compute()) for name, metric in metrics.items()}

    def _update_metrics(
        self,
        metrics: nn.ModuleDict,
        scaled: Params,
        y: Tensor,
        calibrated: bool,
        weight: Tensor | None = None,
    ) -> None:
        params = self.family.unscale(scaled, self.y_shift, self.y_scale)
        params = self._calibrate(params) if calibrated else params
        loss = self.validation_loss(scaled, self._scaled_target(y))
        if weight is None:
            metrics["loss"].update(loss.mean(), weight=len(y))
        else:
            total = weight.sum()
            metrics["loss"].update((loss * weight).sum() / total.clamp_min(1e-30), weight=total)
        mean = self.family.mean(params)
        for name, metric in metrics.items():
            if name == "loss":
                continue
            given = (mean, y) if name in ("rmse", "mae") else (params, y)
            if weight is None:
                metric.update(*given)
            else:
                metric.update(*given, weight=weight)

    def predict_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> dict[str, Tensor]:
        """Parameters (an ensemble's per member, as ``member_<name>``), mean, median (for
        continuous probabilistic families), an ensemble's variance, P(y = 0) (``prob_zero``,
        for the families with a point mass at 0) and, for probabilistic
        families, the central interval; the target too when the batch has one."""
        params = self(batch[0])
        mixture = isinstance(self.family, Mixture)
        # an ensemble's member parameters (batch, members) are "member_<name>", as in its
        # ONNX graph: the negative binomial's "mean" parameter then keeps its columns
        names = [f"member_{n}" if mixture else n for n in self.param_names]
        out = dict(zip(names, params, strict=True))
        out["mean"] = self.family.mean(params)
        if self.family.probabilistic and not self.family.discrete:
            # beside the mean: a heavy right tail (a log-normal with a large sigma) puts
            # the mean far above where most of the mass is
            out["median"] = self.family.quantile(params, 0.5)
        if mixture:
            out["variance"] = self.family.variance(params)
        if self.family.zero_mass:
            out["prob_zero"] = self.family.prob_zero(params)
        if self.family.probabilistic:
            tag = f"{round(self.hparams.interval_level * 100):d}"
            out[f"lower_{tag}"], out[f"upper_{tag}"] = self.family.interval(
                params, self.effective_level
            )
        if len(batch) > 1:
            out["target"] = batch[1]
        return out

    def configure_optimizers(self) -> Any:
        """The optimiser (fused kernels on CPU and CUDA) and the scheduler, which
        ``training_step`` steps itself: per optimiser step (cosine) or per epoch on
        ``val_loss`` (plateau)."""
        hp = self.hparams
        params = list(self.parameters())
        # Lightning's mixed-precision plugin refuses to clip a fused optimiser's gradients
        # (it unscales them inside its step): clipping under AMP takes the plain kernel
        clips_under_amp = (
            hp.gradient_clip_val is not None
            and attached_trainer(self) is not None
            and isinstance(self.trainer.precision_plugin, MixedPrecision)
        )
        fused = all(p.device.type in ("cpu", "cuda") for p in params) and not clips_under_amp
        optimizer = _OPTIMIZERS[hp.optimizer](
            params, lr=hp.lr, weight_decay=hp.weight_decay, fused=fused
        )
        if hp.scheduler in (None, "none"):
            return optimizer
        if hp.scheduler == "plateau":
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, factor=0.5, patience=5
            )
        else:
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
                optimizer, T_max=self._total_optimizer_steps()
            )
        return [optimizer], [scheduler]

    def _total_optimizer_steps(self) -> int:
        trainer = self.trainer
        lightning_steps = max(1, int(trainer.estimated_stepping_batches))
        loader = trainer.train_dataloader
        per_step = getattr(loader, "batches_per_step", 1)
        if per_step == 1 or trainer.max_epochs in (None, -1):
            return lightning_steps
        steps = trainer.max_epochs * loader.num_batches
        return min(steps, trainer.max_steps) if trainer.max_steps > 0 else steps


def _tabular_input(
    in_features: int,
    feature_names: list[str],
    categories: dict[str, list[str]],
    indicators: Sequence[str],
    members: int,
    numeric_embedding: str,
    n_bins: int,
) -> TabularInput:
    n_numeric = in_features - len(categories)
    if list(categories) != feature_names[n_numeric:]:
        raise ValueError(
            f"the categorical columns {list(categories)} must be the last of feature_names "
            f"({feature_names}), in the same order"
        )
    numeric = feature_names[:n_numeric]
    unknown = [c for c in indicators if c not in numeric]
    if unknown:
        raise ValueError(f"missing_indicators {unknown} are not numeric features ({numeric})")
    sizes = [len(vocabulary) for vocabulary in categories.values()]
    positions = [numeric.index(c) for c in indicators]
    return TabularInput(n_numeric, sizes, positions, members, numeric_embedding, n_bins)


def _kind(family: Family) -> str:
    return "discrete" if family.discrete else "a point predictor"
