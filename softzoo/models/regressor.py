"""SoftRegressor: an MLP with the parameter heads of an output family, as a LightningModule."""

from __future__ import annotations

import contextlib
import inspect
import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.plugins.precision import MixedPrecision
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn
from torchmetrics import MeanAbsoluteError, MeanMetric, MeanSquaredError, Metric

from softzoo.families import Family, Mixture, Params, get_family
from softzoo.metrics import CRPS, IntervalCoverage, IntervalWidth, NegativeLogLikelihood
from softzoo.nn import MLP, ParameterHeads, TabularInput

__all__ = [
    "ARCHITECTURE_KEYS",
    "SoftRegressor",
    "architecture",
    "architecture_mismatches",
    "check_architecture",
    "check_checkpoint",
    "load_checkpoint",
]

_OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
_SCHEDULERS = (None, "none", "cosine", "plateau")
#: Families calibrated by a factor on their scale parameter (one model, not an ensemble).
_LOCATION_SCALE = {"gaussian", "student_t", "lognormal"}
#: The largest calibrated level (a level of 1 would be an unbounded interval).
_MAX_LEVEL = 1.0 - 1e-6
#: "none", or "conformal" (split-conformal on the validation split; docs/calibration.md).
CALIBRATIONS = ("none", "conformal")
#: When training targets are dequantized (see ``SoftRegressor``'s ``dequantize``).
DEQUANTIZE = ("auto", "always", "never")


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
        hidden: Sequence[int] = (64, 64),
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
        ensemble_size: int = 1,
        calibration: str = "none",
        warmup_epochs: int = 0,
        warmup_fraction: float = 0.0,
        faithful: bool = False,
        dequantize: str = "auto",
        compile: bool = False,
    ) -> None:
        super().__init__()
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
        self.inputs = _tabular_input(
            in_features,
            self.feature_names,
            categories or {},
            missing_indicators or [],
            ensemble_size,
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
        self._compiled: dict[str, _Compiled] = {}  # while fitting with compile=True
        self.register_buffer("y_shift", torch.tensor(0.0))
        self.register_buffer("y_scale", torch.tensor(1.0))
        self.register_buffer("scaling_fitted", torch.tensor(False))
        self.example_input_array = torch.zeros(2, in_features)
        self.register_load_state_dict_pre_hook(_upgrade_state_dict)
        self.train_loss = MeanMetric()
        self.eval_metrics = nn.ModuleDict({s: self._make_metrics() for s in ("val", "test")})

    # ---- the exported computation ----------------------------------------------------
    @property
    def in_features(self) -> int:
        return int(self.hparams.in_features)

    @property
    def param_names(self) -> tuple[str, ...]:
        return self.family.param_names

    def scaled_params(self, x: Tensor) -> Params:
        """The family's parameters for standardised features and the scaled target."""
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"expected {self.in_features} features per row ({', '.join(self.feature_names)}), "
                f"got {x.shape[-1]}"
            )
        return self.heads(self.body(self.inputs(x)))

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
        if self.hparams.get("calibration", "none") == "none":
            return None
        location_scale = self.family.name in _LOCATION_SCALE and not isinstance(
            self.family, Mixture
        )
        return "scale" if location_scale else "level"

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
        i = self.param_names.index("scale")
        return tuple(p * self.calibration_scale if k == i else p for k, p in enumerate(params))

    @torch.no_grad()
    def fit_calibration(self, x: Tensor, y: Tensor) -> None:
        """Split-conformal calibration on held-out rows (x, y): with k = ⌈(n + 1)·L⌉ for the
        nominal level L, the k-th smallest conformity score becomes the map, so that on new
        exchangeable rows the interval covers with probability ≥ L. Scores: |y − centre| /
        half-width of the raw L-interval ("scale", on log y for the log-normal), or
        |2·U − 1| with U the PIT (randomised between F(y−1) and F(y) for counts) ("level")."""
        level, n = float(self.hparams.interval_level), len(y)
        k = math.ceil((n + 1) * level)
        if k > n:
            needed = next(m for m in itertools.count(1) if math.ceil((m + 1) * level) <= m)
            raise ValueError(
                f"conformal calibration at level {level:g} needs at least {needed} validation "
                f"rows, the validation split has {n}"
            )
        params = self._in_chunks(self.uncalibrated, x)
        if self.calibration_method == "scale":
            lower, upper = self.family.interval(params, level)
            if self.family.name == "lognormal":
                lower, upper, y = torch.log(lower), torch.log(upper), torch.log(y)
            scores = (y - (lower + upper) / 2).abs() / ((upper - lower) / 2)
            self.calibration_scale.fill_(float(torch.sort(scores.double()).values[k - 1]))
        else:
            below, above = self.family.pit_bounds(params, y)
            generator = torch.Generator().manual_seed(0)
            u = below + (above - below) * torch.rand(len(y), generator=generator).to(y)
            scores = torch.sort((2 * u - 1).abs().double()).values
            self.calibration_level.fill_(min(float(scores[k - 1]), _MAX_LEVEL))

    def _in_chunks(self, compute: Any, x: Tensor, rows: int = 4096) -> Params:
        parts = [compute(x[i : i + rows]) for i in range(0, len(x), rows)]
        return tuple(torch.cat(p) for p in zip(*parts, strict=True))

    def on_validation_epoch_end(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
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
        self.inputs.fit(x, rows)
        self._fit_target(y)

    def _fit_target(self, y: Tensor) -> None:
        """Target scaling, the heads' start at the marginal fit, the dequantization step."""
        y64 = y.double()
        shift, scale = self.family.fit_target_scaling(y64)
        self.y_shift.fill_(shift)
        self.y_scale.fill_(scale)
        initial = self._initial_values((y64 - shift) / scale, y64)
        self.heads.set_initial_values(initial)
        self.marginal.copy_(torch.tensor([initial.get(n, math.nan) for n in self.param_names]))
        self.target_resolution.fill_(self._dequantization_step(y64) / scale)
        self._dequantizing = bool(self.target_resolution > 0)
        self.scaling_fitted.fill_(True)

    def _dequantization_step(self, y: Tensor) -> float:
        """The rounding step of a training target recorded on a coarse grid (the smallest
        gap between its distinct values), or 0 where it is not dequantised: ``never``; a
        discrete or point family; under ``auto``, a target with more than sqrt(rows)
        distinct values (then every value has few rows, and no region of inputs can pin
        sigma to one value). Under ``always`` every continuous target is."""
        mode = self.hparams.get("dequantize", "never")
        if mode == "never" or self.family.discrete or not self.family.probabilistic:
            return 0.0
        values = torch.unique(y)
        if len(values) < 2 or (mode == "auto" and len(values) > math.sqrt(len(y))):
            return 0.0
        step = float(torch.diff(values).min())
        if self.family.support == "positive" and float(values[0]) - step / 2 <= 0:
            if mode == "always":
                raise ValueError(
                    f"dequantize='always' would spread the smallest training target "
                    f"{float(values[0]):g} over +-{step / 2:g} (its rounding step {step:g}) down "
                    f"to 0 or below, where family {self.family.name!r} has no density: use "
                    "dequantize='never', or a family on the real line"
                )
            return 0.0
        rank_zero_info(
            f"dequantizing the training target: {len(values)} distinct values in {len(y)} "
            f"rows, rounding step {step:g} (each training step adds uniform noise of that "
            "width to the targets; --model.dequantize never turns it off)"
        )
        return step

    def _initial_values(self, scaled: Tensor, y: Tensor) -> dict[str, float]:
        """The family's marginal fit, or one clear error where a positive parameter cannot
        start above its floor: a constant target has no spread to fit."""
        try:
            values = self.family.initial_values(scaled)
        except ZeroDivisionError:
            values = {}
        floor = float(self.hparams.floor)
        for spec in self.family.params:
            value = values.get(spec.name, math.nan)
            if spec.positive and not (math.isfinite(value) and value > spec.lower + floor):
                raise ValueError(_flat_target_message(self, spec.name, value, y))
        return values

    def setup(self, stage: str) -> None:
        if self._trainer is not None and str(self.trainer.precision).startswith("64"):
            raise ValueError(
                f"precision {self.trainer.precision!r} is not supported: softzoo trains, "
                "tests and exports in float32 (its heads are float32 by design); use "
                "32-true, or bf16-mixed / 16-mixed"
            )
        if stage == "fit" and self._trainer is not None:
            self._check_warmup()
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer else None
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
            self.family.check_support(datamodule.split_target(split), f"{split} target")
        if stage == "fit" and not bool(self.scaling_fitted):
            self._fit_scaling_on(datamodule)
        if stage == "fit":  # each member of an ensemble draws its own shuffle of the rows
            datamodule.member_shuffles = self.hparams.ensemble_size

    @torch.no_grad()
    def _fit_scaling_on(self, datamodule: Any) -> None:
        """Fit the scaling on a data module's training rows, or take the statistics it
        reduced across processes where each holds only its share."""
        statistics = datamodule.training_statistics
        if statistics is None:
            rows = torch.as_tensor(datamodule.split_indices["train"])
            self.fit_scaling(datamodule.features_tensor, datamodule.target_tensor, rows)
            return
        self.family.check_support(statistics.target, "training target")
        self.inputs.set_statistics(statistics.fill, statistics.shift, statistics.scale)
        self._fit_target(statistics.target)

    def _check_encoding(self, datamodule: Any) -> None:
        """The data module must encode categories and flag gaps as this model was built
        for: another vocabulary would silently map codes to other categories."""
        data_categories = getattr(datamodule, "categories", {}) or {}
        if data_categories and data_categories != self.categories:
            raise ValueError(
                "the data module's category vocabularies differ from the model's (another "
                "training split?): give the data the model was trained on, or build the data "
                "module with vocabularies=model.categories"
            )

    # ---- training and evaluation -------------------------------------------------------
    def _make_metrics(self) -> nn.ModuleDict:
        metrics: dict[str, Metric] = {
            "loss": MeanMetric(),
            "rmse": MeanSquaredError(squared=False),
            "mae": MeanAbsoluteError(),
            "crps": CRPS(self.family),
        }
        if self.family.probabilistic:
            level = self.hparams.interval_level
            tag = f"{round(level * 100):d}"
            metrics |= {
                "nll": NegativeLogLikelihood(self.family),
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
        backward, step = self._step_functions(optimizer)
        max_steps, epoch, clip = (
            self.trainer.max_steps,
            self.current_epoch,
            self.hparams.gradient_clip_val,
        )
        losses, rows = [], []
        for x, y in batch if isinstance(batch[0], (list, tuple)) else [batch]:
            if 0 <= max_steps <= self.trainer.global_step:
                break
            target = self._scaled_target(y)  # (members, batch) under member shuffles
            target = target.T if y.dim() == 2 else target
            loss = self.training_loss(x, target, epoch).mean()
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
        self._direct_steps = _lightning_step_hooks_unused(self.trainer, self)
        if self.hparams.get("compile", False):
            self._compiled = {
                "training loss": _Compiled(self._craft_loss, "the training loss"),
                "evaluation": _Compiled(self.scaled_params, "the evaluation forward"),
            }

    def on_train_end(self) -> None:
        self._compiled = {}  # compiled functions do not pickle or deep-copy

    def transfer_batch_to_device(
        self, batch: Any, device: torch.device, dataloader_idx: int
    ) -> Any:
        """softzoo's batches, ``(x, y)`` or a list of them, moved tensor by tensor (as
        Lightning would, non-blocking off the CPU): Lightning's generic walk over
        collections cost a tenth of a small training step on CPU. Anything else goes
        to Lightning's."""
        options = {} if device.type in ("cpu", "mps") else {"non_blocking": True}
        if _is_pair(batch):
            return tuple(t.to(device, **options) for t in batch)
        if isinstance(batch, list) and batch and all(_is_pair(b) for b in batch):
            return [tuple(t.to(device, **options) for t in b) for b in batch]
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def _step_functions(self, optimizer: Any) -> tuple[Any, Any]:
        """Lightning's ``manual_backward`` and ``optimizer.step``, or, where nothing they
        add is in use (see :func:`_lightning_step_hooks_unused`), ``loss.backward()`` and
        the torch optimizer's step with the Trainer's step count kept: their hooks cost
        about 0.2 ms a step, an eighth of a step of a 64-64 network at batch 256 on CPU."""
        if not self._direct_steps:
            return self.manual_backward, optimizer.step
        inner = optimizer.optimizer

        def step() -> None:
            optimizer._on_before_step()  # the manual loop's step count (global_step)
            inner.step()
            optimizer._on_after_step()

        return Tensor.backward, step

    # ---- training craft: mean warm-up, faithful training --------------------------------
    @property
    def warmup_length(self) -> int:
        """The mean warm-up's epochs: ``warmup_epochs``, or ``warmup_fraction`` of the
        Trainer's ``max_epochs`` (rounded down) once the model is attached to one."""
        fraction = self.hparams.get("warmup_fraction", 0.0)
        if not fraction:
            return self.hparams.get("warmup_epochs", 0)
        max_epochs = self.trainer.max_epochs if self._trainer is not None else None
        if max_epochs is None or max_epochs < 0:
            raise ValueError(
                f"warmup_fraction={fraction} is a share of the Trainer's max_epochs, which is "
                "not set: set trainer.max_epochs, or give warmup_epochs instead"
            )
        return int(fraction * max_epochs)

    def _check_warmup(self) -> None:
        held = [n for n in self.param_names if n not in self.family.mean_params]
        length, max_epochs = self.warmup_length, self.trainer.max_epochs
        if held and length and max_epochs is not None and 0 <= max_epochs <= length:
            raise ValueError(
                f"warmup_epochs={length} covers all {max_epochs} epochs of the run: "
                f"{', '.join(held)} would never train; give fewer warm-up epochs than "
                "max_epochs, or warmup_fraction (a share of them)"
            )

    def warming_up(self, epoch: int) -> bool:
        """Whether ``epoch`` (0-based) is one of the mean warm-up's."""
        return epoch < self.warmup_length

    def training_loss(self, x: Tensor, target: Tensor, epoch: int) -> Tensor:
        """The per-row loss the optimiser minimises at ``epoch`` (target in scaled units,
        dequantized where ``target_resolution`` > 0): the family's loss; during the mean
        warm-up, that loss with the parameters that do
        not carry the mean held at the marginal fit; with ``faithful``, that held loss for
        the mean and body plus the family's loss for the other heads on detached features
        and a detached mean. For an ensemble, the sum of its members' losses: each member
        gets the gradient it would get alone, so that Adam's (coupled) weight decay and
        its eps weigh on it as on a single model (under the members' mean, weight decay
        weighed N times as much on each member)."""
        if self._dequantizing:
            target = target + (torch.rand_like(target) - 0.5) * self.target_resolution
        warming = self.warming_up(epoch)
        if (warming or self.hparams.get("faithful", False)) and torch.isnan(self.marginal).any():
            raise ValueError(
                "warmup_epochs and faithful hold parameters at the marginal fit of the "
                "target, which this model (saved by an older softzoo) does not have: call "
                "model.fit_scaling(x_train, y_train) first, or train without them"
            )
        members = self.hparams.ensemble_size
        loss = self._compiled.get("training loss", self._craft_loss)(x, target, warming)
        return loss * members if members > 1 else loss

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

    def _craft_loss(self, x: Tensor, target: Tensor, warming: bool) -> Tensor:
        hidden = self.body(self.inputs(x))
        params = self.heads(hidden)
        if warming:
            return self.family.loss(self._held(params), target)
        if not self.hparams.get("faithful", False):
            return self.family.loss(params, target)
        means = set(self.family.mean_params)
        detached = self.heads(hidden.detach())
        others = tuple(
            p.detach() if name in means else d
            for name, p, d in zip(self.param_names, params, detached, strict=True)
        )
        return self.family.loss(self._held(params), target) + self.family.loss(others, target)

    def _held(self, params: Params) -> Params:
        """The parameters, with those that do not carry the mean at the marginal fit."""
        means = set(self.family.mean_params)
        return tuple(
            p if name in means else self.marginal[i].to(p.dtype).expand_as(p)
            for i, (name, p) in enumerate(zip(self.param_names, params, strict=True))
        )

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
        if not self.warming_up(epoch):
            yield
            return
        rows = [i for i, n in enumerate(self.param_names) if n not in self.family.mean_params]
        linear = self.heads.linear
        saved = (
            linear.weight[..., rows, :].detach().clone(),
            linear.bias[..., rows].detach().clone(),
        )
        yield
        with torch.no_grad():
            linear.weight[..., rows, :] = saved[0]
            linear.bias[..., rows] = saved[1]

    def on_train_epoch_end(self) -> None:
        self.log("train_loss", self.train_loss, on_epoch=True, prog_bar=True)
        val_loss = self.trainer.callback_metrics.get("val_loss")
        if self.hparams.scheduler == "plateau" and val_loss is not None:
            self.lr_schedulers().step(val_loss)

    def _evaluate(self, stage: str, batch: tuple[Tensor, Tensor]) -> None:
        x, y = batch
        metrics = self.eval_metrics[stage]
        # validation sees the raw model (the calibration map is fitted on it), test the
        # calibrated one, as deployed
        scaled = self._compiled.get("evaluation", self.scaled_params)(x)
        self._update_metrics(metrics, scaled, y, calibrated=stage == "test")
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
    def evaluate(self, x: Tensor, y: Tensor, batch_size: int = 4096) -> dict[str, float]:
        """The test metrics (NLL, RMSE, MAE, CRPS, PICP and width, loss) of (x, y), computed
        exactly as ``trainer.test`` logs them (calibrated, if the model is); keys without
        the ``test_`` prefix."""
        self.family.check_support(y, "target")
        metrics = self._make_metrics().to(self.device)
        self._set_interval_level(metrics, self.effective_level)
        for start in range(0, len(y), batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            scaled = self.scaled_params(xb)
            self._update_metrics(metrics, scaled, yb, calibrated=True)
        return {name: float(metric.compute()) for name, metric in metrics.items()}

    def _update_metrics(
        self, metrics: nn.ModuleDict, scaled: Params, y: Tensor, calibrated: bool
    ) -> None:
        params = self.family.unscale(scaled, self.y_shift, self.y_scale)
        params = self._calibrate(params) if calibrated else params
        metrics["loss"].update(
            self.validation_loss(scaled, self._scaled_target(y)).mean(), weight=len(y)
        )
        mean = self.family.mean(params)
        metrics["rmse"].update(mean, y)
        metrics["mae"].update(mean, y)
        for name, metric in metrics.items():
            if name not in ("loss", "rmse", "mae"):
                metric.update(params, y)

    def predict_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> dict[str, Tensor]:
        """Parameters, mean and (probabilistic families) the central interval; the
        target too when the batch has one."""
        params = self(batch[0])
        out = dict(zip(self.param_names, params, strict=True))
        out["mean"] = self.family.mean(params)
        if isinstance(self.family, Mixture):
            out["variance"] = self.family.variance(params)
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
            and self._trainer is not None
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
    return TabularInput(n_numeric, sizes, [numeric.index(c) for c in indicators], members)


#: State-dict keys of softzoo 0.1.0 models (the feature scaling lived on the model).
_RENAMED = {"x_shift": "inputs.shift", "x_scale": "inputs.scale"}


def _upgrade_state_dict(module: nn.Module, state: dict, prefix: str, *args: Any) -> None:
    """Load a 0.1.0 checkpoint or weights file: rename its scaling buffers; its model had
    no missing values, so the median fill only needs a value (the mean)."""
    for old, new in _RENAMED.items():
        if prefix + old in state and prefix + new not in state:
            state[prefix + new] = state.pop(prefix + old)
    if prefix + "inputs.shift" in state and prefix + "inputs.fill" not in state:
        state[prefix + "inputs.fill"] = state[prefix + "inputs.shift"].clone()
        state.setdefault(prefix + "inputs.indicators", torch.zeros(0, dtype=torch.long))
    for name in ("calibration_scale", "calibration_level", "marginal", "target_resolution"):
        state.setdefault(prefix + name, getattr(module, name).clone())  # older models
    module._dequantizing = bool(state[prefix + "target_resolution"] > 0)


class _Compiled:
    """``torch.compile(fn)``; if its first call fails, one line says why and ``fn`` runs
    eagerly from then on."""

    def __init__(self, fn: Any, what: str) -> None:
        self.fn, self.what, self.compiled, self.tried = fn, what, torch.compile(fn), False

    def __call__(self, *args: Any) -> Any:
        if self.compiled is None:
            return self.fn(*args)
        if self.tried:
            return self.compiled(*args)
        self.tried = True
        try:
            return self.compiled(*args)
        except Exception as error:  # any failure to compile falls back to eager
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
            rank_zero_info(
                f"softzoo: torch.compile does not work here for {self.what} "
                f"({type(error).__name__}: {reason[:200]}); running it eagerly"
            )
            self.compiled = None
            return self.fn(*args)


def _is_pair(batch: Any) -> bool:
    return (
        isinstance(batch, (list, tuple))
        and len(batch) == 2
        and all(isinstance(t, Tensor) for t in batch)
    )


#: The hooks Lightning runs around a manual backward pass and optimiser step.
_STEP_HOOKS = ("on_before_backward", "on_after_backward", "on_before_optimizer_step")


def _lightning_step_hooks_unused(trainer: pl.Trainer, module: pl.LightningModule) -> bool:
    """Whether ``manual_backward`` and ``LightningOptimizer.step`` would do nothing but
    ``loss.backward()`` and ``optimizer.step()``: full 32-bit precision (no scaler, no
    autocast), one device (no gradient sync), no profiler, and neither the module nor any
    callback with a hook around the backward pass or the step."""
    from lightning.pytorch.plugins.precision import Precision
    from lightning.pytorch.profilers import PassThroughProfiler
    from lightning.pytorch.strategies import SingleDeviceStrategy

    def overrides(obj: Any, base: type) -> bool:
        return any(getattr(type(obj), hook) is not getattr(base, hook) for hook in _STEP_HOOKS)

    return (
        type(trainer.precision_plugin) is Precision
        and type(trainer.strategy) is SingleDeviceStrategy
        and isinstance(trainer.profiler, PassThroughProfiler)
        and type(module).backward is pl.LightningModule.backward
        and not overrides(module, pl.LightningModule)
        and not any(overrides(callback, pl.Callback) for callback in trainer.callbacks)
    )


def _kind(family: Family) -> str:
    return "discrete" if family.discrete else "a point predictor"


def _flat_target_message(model: SoftRegressor, param: str, value: float, y: Tensor) -> str:
    name, family = model.hparams.target_name, model.family.name
    low, high = float(y.min()), float(y.max())
    if low == high:
        return (
            f"the training target {name!r} is constant (every row is {low:g}): family "
            f"{family!r} cannot fit a spread to it (its {param!r} has nothing to start from); "
            "check the target column, or use family 'positive' for a point prediction"
        )
    return (
        f"the training target {name!r} varies too little for family {family!r} (from {low:.10g} "
        f"to {high:.10g}): its {param!r} would start at {value:.3g}, not above the floor "
        f"{model.hparams.floor:g}; check or rescale the target, or lower --model.floor"
    )


#: The constructor arguments that define the function a trained SoftRegressor computes:
#: its graph and what its weights mean. Weights and checkpoints refuse a model that differs
#: in any of them. ``dropout`` counts only as present or absent (dropout layers change the
#: layout of the weights; their rate does not). The other arguments (optimiser, lr,
#: schedule, interval level, target name, and family options that only change the loss,
#: such as ``beta_nll``) may change when fine-tuning or testing.
ARCHITECTURE_KEYS = (
    "in_features",
    "feature_names",
    "hidden",
    "activation",
    "softplus_beta",
    "softplus_threshold",
    "norm",
    "dropout",
    "family",
    "family_options",
    "floor",
    "categories",
    "missing_indicators",
    "ensemble_size",
    "calibration",
)


def _constructor_defaults() -> dict[str, Any]:
    parameters = inspect.signature(SoftRegressor.__init__).parameters.values()
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


def architecture(hparams: Mapping[str, Any]) -> dict[str, Any]:
    """The :data:`ARCHITECTURE_KEYS` settings of a model's hyper-parameters, normalised so
    that equal functions compare equal: defaults filled in, one activation per layer,
    default feature names spelt out, only the family options that define the distribution,
    softplus settings only where a layer is softplus.

    Example:
        >>> architecture({"in_features": 2, "hidden": [4, 4]})["activation"]
        ['softplus', 'softplus']
    """
    hp = {**_constructor_defaults(), **dict(hparams)}
    hidden = [int(h) for h in hp["hidden"]]
    activation = hp["activation"]
    layers = [activation] * len(hidden) if isinstance(activation, str) else list(activation)
    family = get_family(hp["family"], **(hp["family_options"] or {}))
    uses_softplus = "softplus" in layers
    n = int(hp["in_features"])
    return {
        "in_features": n,
        "feature_names": list(hp["feature_names"] or [f"x{i}" for i in range(n)]),
        "hidden": hidden,
        "activation": layers,
        "softplus_beta": float(hp["softplus_beta"]) if uses_softplus else None,
        "softplus_threshold": float(hp["softplus_threshold"]) if uses_softplus else None,
        "norm": hp["norm"],
        "dropout": float(hp["dropout"]),
        "family": family.name,
        "family_options": family.defining_options(),
        "floor": float(hp["floor"]),
        "categories": {k: list(v) for k, v in (hp["categories"] or {}).items()},
        "missing_indicators": list(hp["missing_indicators"] or []),
        "ensemble_size": int(hp["ensemble_size"]),
        "calibration": str(hp["calibration"]),
    }


def architecture_mismatches(trained: Mapping[str, Any], requested: Mapping[str, Any]) -> list[str]:
    """One ``"key: trained X, requested Y"`` line per architecture setting that differs."""
    a, b = architecture(trained), architecture(requested)
    return [
        f"{k}: trained {a[k]!r}, requested {b[k]!r}" for k in ARCHITECTURE_KEYS if _differs(k, a, b)
    ]


def _differs(key: str, a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    if key.startswith("softplus_") and None in (a[key], b[key]):
        return False  # one side has no softplus layer: its activation already differs
    if key == "dropout":
        return (a[key] > 0) != (b[key] > 0)
    return a[key] != b[key]


def check_architecture(
    trained: Mapping[str, Any], requested: Mapping[str, Any], source: str
) -> None:
    """Raise one ``ValueError`` naming every architecture setting in which the model that
    ``source`` (weights, a checkpoint) was trained for differs from the requested one."""
    mismatches = architecture_mismatches(trained, requested)
    if mismatches:
        raise ValueError(
            f"{source} was trained for a different model ({'; '.join(mismatches)}): use the "
            "data and options it was trained with, or train a new model"
        )


def check_checkpoint(path: str | Path) -> dict:
    """Read a Lightning checkpoint with ``weights_only=True`` (no pickled code runs) and
    return it, or raise one clear ``ValueError``: missing file, not a checkpoint, or a
    checkpoint of another kind of model."""
    if not str(path).strip():
        raise ValueError("the checkpoint path is empty: give the path of a checkpoint file (.ckpt)")
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {str(path)!r} does not exist")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch raises several types for files that are no checkpoint
        raise ValueError(f"{str(path)!r} is not a PyTorch Lightning checkpoint file") from None
    hparams = content.get("hyper_parameters", {}) if isinstance(content, dict) else {}
    if not {"in_features", "family"} <= set(hparams) or "state_dict" not in content:
        raise ValueError(
            f"{str(path)!r} is a checkpoint of a different model, not a softzoo SoftRegressor "
            "(its hyper-parameters lack in_features and family)"
        )
    return content


def load_checkpoint(path: str | Path) -> SoftRegressor:
    """A SoftRegressor from a Lightning checkpoint (see :func:`check_checkpoint`), in eval
    mode on the CPU."""
    content = check_checkpoint(path)
    hparams = content["hyper_parameters"]
    accepted = inspect.signature(SoftRegressor.__init__).parameters
    model = SoftRegressor(**{k: v for k, v in hparams.items() if k in accepted})
    try:
        model.load_state_dict(content["state_dict"])
    except RuntimeError as err:
        raise ValueError(f"{str(path)!r} does not match its own hyper-parameters: {err}") from None
    return model.eval()
