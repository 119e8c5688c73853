"""SoftRegressor: an MLP with the parameter heads of an output family, as a LightningModule."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.plugins.precision import MixedPrecision
from torch import Tensor, nn
from torchmetrics import MeanMetric

from softzoo._lightning import attached_trainer
from softzoo.families import Family, Mixture, Params, get_family
from softzoo.models import calibration as _calibration
from softzoo.models import craft, evaluation, steps
from softzoo.models.checkpoints import upgrade_state_dict
from softzoo.models.data_contract import ModelData, check_data_module, model_data
from softzoo.models.options import (
    check_family_options,
    check_precision,
    check_width,
    settle_options,
    tabular_input,
)
from softzoo.models.scaling import fit_target
from softzoo.nn import MLP, ParameterHeads
from softzoo.recipe import AUTO_MODEL_KEYS

__all__ = ["SoftRegressor"]


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
            are softzoo's default recipe, chosen on UCI training rows: docs/training.md;
            ``lr="auto"``: the recipe's for ``train_rows``, higher for its short schedule).
        scheduler: None, "cosine" (to 0 over the run, per step) or "plateau" (on val_loss).
        gradient_clip_val: clip the gradient norm to this value before each step (the
            model optimises manually, so the Trainer's ``gradient_clip_val`` does not apply).
        interval_level: the central interval logged (PICP, width) and predicted.
        feature_names, target_name: recorded in checkpoints and exports.
        categories: each categorical column's vocabulary (the last columns of
            ``feature_names``, arriving as codes: :mod:`softzoo.nn.tabular`).
        missing_indicators: numeric columns with gaps in the training split: each gets a
            0/1 indicator input (gaps are filled with the training median in ``forward``).
        column_roles: the data module's roles table (for reports and exports only).
        missing_policy: the data module's missing-value policy, "impute" or "error" (for
            exports: whether a deployed model accepts empty numeric cells).
        ensemble_size: N > 1 trains N members side by side; the predictive is their
            equal-weight mixture, and every parameter ``forward`` returns is ``(batch, N)``.
        ensemble_type: "independent" (nothing shared), "batch" (TabM) or "mini"
            (TabM-mini): :mod:`softzoo.nn.members`.
        first_scaling: how a TabM type's first per-member scaling starts: "random_signs"
            (TabM's) or "ones" (:func:`softzoo.nn.members.first_scaling`).
        numeric_embedding: "none", "piecewise_linear" (quantile bins of the training rows)
            or "periodic": :mod:`softzoo.nn.embeddings`.
        numeric_bins: the most piecewise-linear bins per numeric column.
        warmup_epochs: the mean warm-up: for the first epochs fit only the parameters that
            carry the mean, the others held at the target's marginal fit (docs/training.md).
        warmup_fraction: the warm-up as a share of the Trainer's ``max_epochs`` (0.1: the
            first 10 %); give ``warmup_epochs`` or ``warmup_fraction``, not both.
        faithful: faithful heteroscedastic training (Stirn et al., 2023; docs/training.md).
        calibration: "none", or "conformal": a split-conformal map fitted on the validation
            split after every validation epoch (docs/calibration.md).
        dequantize: "auto", "always" or "never": uniform noise as wide as the rounding step
            of a target recorded on a coarse grid, added to the training targets (Theis et
            al., 2016; docs/training.md); "auto": at most sqrt(rows) distinct values.
        train_rows: the training rows (``softzoo fit`` links it), for the "auto" settings
            of the default recipe (:func:`softzoo.recipe.default_recipe`).
        compile: ``torch.compile`` the training loss and the evaluation forward while
            fitting (eager, with one line saying why, where compiling fails).
        exposure_column: the data's exposure column (the last input; it multiplies the
            mean), weight_column: its weight column (the data module links both).

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
        lr: float | Literal["auto"] = 3e-3,
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
        first_scaling: str | Literal["auto"] = "random_signs",
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
        given = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        resolved = settle_options(given)
        self.save_hyperparameters()
        # LightningCLI hands save_hyperparameters the config's values ("auto" included)
        self.hparams.update({k: resolved[k] for k in AUTO_MODEL_KEYS})
        hp = self.hparams
        ensemble_size, ensemble_type = hp.ensemble_size, hp.ensemble_type
        self.inputs = tabular_input(
            in_features,
            self.feature_names,
            categories or {},
            missing_indicators or [],
            # TabM shares the input layer between members; independent members do not
            ensemble_size if ensemble_type == "independent" else 1,
            hp.numeric_embedding,
            hp.numeric_bins,
        )
        self.automatic_optimization = False  # a Lightning step: several optimiser steps
        base = get_family(family, **(family_options or {}))
        self.family: Family = base if ensemble_size == 1 else Mixture(base, ensemble_size)
        check_family_options(self.family, family, dequantize, exposure_column, calibration)
        self.body = MLP(
            self.inputs.out_features,
            hp.hidden,
            activation,
            {"beta": softplus_beta, "threshold": softplus_threshold},
            dropout,
            norm,
            ensemble_size,
            ensemble_type,
            self.inputs.chunks(),
            hp.first_scaling,
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
        self.register_load_state_dict_post_hook(_loaded)
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
        check_width(x, self.in_features, self.hparams.get("exposure_column"), self.feature_names)
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
        ``batch_size`` rows at a time, without gradients: ``loc, scale =
        model.eval().predict_params(x)``."""
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
        hp = self.hparams
        fitted = fit_target(
            self.family, y, float(hp.floor), hp.target_name, hp.get("dequantize", "never")
        )
        self.y_shift.fill_(fitted.shift)
        self.y_scale.fill_(fitted.scale)
        self.heads.set_initial_values(fitted.initial)
        start = [fitted.initial.get(n, math.nan) for n in self.param_names]
        self.marginal.copy_(torch.tensor(start))
        self.target_resolution.fill_(fitted.resolution)
        self._dequantizing = fitted.resolution > 0
        self.scaling_fitted.fill_(True)

    def _datamodule(self) -> ModelData | None:
        trainer = attached_trainer(self)
        return None if trainer is None else model_data(getattr(trainer, "datamodule", None))

    def setup(self, stage: str) -> None:
        trainer = attached_trainer(self)
        if trainer is not None:
            check_precision(trainer.precision)
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
        calibrated = self.calibration_method is not None
        check_data_module(datamodule, stage, self.family, self.hparams, calibrated)
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
        self.family.check_support(statistics.target, "training target")
        self.inputs.set_statistics(statistics.fill, statistics.shift, statistics.scale)
        self._fit_target(statistics.target)

    # ---- training and evaluation -------------------------------------------------------
    def _make_metrics(self, every_epoch: bool = False) -> nn.ModuleDict:
        weighted = self.hparams.get("weight_column") is not None
        return evaluation.make_metrics(
            self.family, self.hparams.interval_level, weighted, every_epoch
        )

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
        max_steps, epoch = self.trainer.max_steps, self.current_epoch
        clip = self.hparams.gradient_clip_val
        losses, rows = [], []
        for x, y, *weight in batch if isinstance(batch[0], (list, tuple)) else [batch]:
            if 0 <= max_steps <= self.trainer.global_step:
                break
            # under member shuffles y and weight are (members, batch): one shuffle each
            target, weight = craft.per_row(self._scaled_target(y), weight[0] if weight else None)
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
            mean = craft.group_loss(losses, rows, self.hparams.ensemble_size, epoch)
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
        dequantized where ``target_resolution`` > 0): the family's loss, under the mean
        warm-up or faithful training as :func:`~softzoo.models.craft.craft_loss` says,
        weighted by the rows' ``weight`` (Σ wᵢ·lossᵢ / Σ wᵢ per batch); an ensemble's members
        summed (independent: each gets the gradient it would get alone, so Adam's coupled
        weight decay weighs on it as on one model) or averaged (TabM's shared weights:
        :func:`~softzoo.models.craft.members_loss`)."""
        warming = self.warming_up(epoch)
        if self._dequantizing:
            target = craft.dequantized(target, self.target_resolution)
        if warming or self.hparams.get("faithful", False):
            craft.check_marginal(self.marginal)
        loss = self._compiled.get("training loss", self._craft_loss)(x, target, warming, weight)
        kind = self.hparams.get("ensemble_type", "independent")
        return craft.members_loss(loss, self.hparams.ensemble_size, kind)

    def validation_loss(self, scaled: Params, target: Tensor) -> Tensor:
        """The per-row ``val_loss`` (scaled units), what early stopping and the best
        checkpoint go by: the family's loss for one model; for an ensemble, the NLL of its
        mixture, the predictive it is used as (the members' mean loss follows the noisiest
        member: docs/training.md, "Numeric embeddings and TabM-style ensembles").

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
        """The loss :func:`softzoo.models.craft.craft_loss` makes of this network (the
        part ``torch.compile`` compiles)."""
        features, exposure = self.split_exposure(x)
        hidden = self.body(self.inputs(features))

        def heads(h: Tensor) -> Params:
            return self.exposed(self.heads(h), exposure)

        faithful = bool(self.hparams.get("faithful", False))
        return craft.craft_loss(
            self.family, self.marginal, hidden, heads, target, warming, faithful, weight
        )

    @contextlib.contextmanager
    def holding_heads(self, epoch: int) -> Iterator[None]:
        """Wrap ``optimizer.step()`` of a custom training loop in this (with
        :meth:`training_loss`, as ``benchmarks/uci.py`` does): during the warm-up the held
        parameters' head rows stay as they are (weight decay would move them)."""
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
        forward = self._compiled.get("evaluation", self.scaled_params)
        self._update_metrics(metrics, forward(x), y, stage == "test", *weight)
        self.log_dict(
            {f"{stage}_{name}": metric for name, metric in metrics.items()},
            on_step=False,
            on_epoch=True,
            batch_size=len(y),
            prog_bar=False,
        )

    def on_test_start(self) -> None:
        evaluation.set_level(self.eval_metrics["test"], self.effective_level)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate("val", batch)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate("test", batch)

    @torch.no_grad()
    def evaluate(
        self,
        x: Tensor,
        y: Tensor,
        batch_size: int = 4096,
        weight: Tensor | None = None,
        calibrated: bool = True,
    ) -> dict[str, float]:
        """The test metrics (NLL, RMSE, MAE, CRPS, PICP and width, loss) of (x, y), computed
        exactly as ``trainer.test`` logs them (weighted means with ``weight``; ``calibrated``
        False: before the calibration map, as validation logs them); keys without the
        ``test_`` prefix."""
        self.family.check_support(y, "target")
        metrics = self._make_metrics().to(self.device)
        evaluation.set_level(metrics, self.effective_level)
        for start in range(0, len(y), batch_size):
            part = slice(start, start + batch_size)
            given = () if weight is None else (weight[part],)
            scaled = self.scaled_params(x[part])
            self._update_metrics(metrics, scaled, y[part], calibrated, *given)
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
        evaluation.update_metrics(metrics, self.family, params, loss, y, weight)

    def predict_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> dict[str, Tensor]:
        """Parameters (an ensemble's per member, as ``member_<name>``), mean, median (for
        continuous probabilistic families), an ensemble's variance, P(y = 0) (``prob_zero``,
        for the families with a point mass at 0) and, for probabilistic
        families, the central interval; the target too when the batch has one."""
        out = evaluation.prediction_columns(
            self.family, self(batch[0]), self.hparams.interval_level, self.effective_level
        )
        if len(batch) > 1:
            out["target"] = batch[1]
        return out

    def configure_optimizers(self) -> Any:
        """The optimiser (fused kernels on CPU and CUDA) and the scheduler, which
        ``training_step`` steps itself: per optimiser step (cosine) or per epoch on
        ``val_loss`` (plateau)."""
        hp = self.hparams
        # Lightning's mixed-precision plugin refuses to clip a fused optimiser's gradients
        # (it unscales them inside its step): clipping under AMP takes the plain kernel
        clips_under_amp = (
            hp.gradient_clip_val is not None
            and attached_trainer(self) is not None
            and isinstance(self.trainer.precision_plugin, MixedPrecision)
        )
        optimizer = steps.make_optimizer(
            hp.optimizer, list(self.parameters()), hp.lr, hp.weight_decay, not clips_under_amp
        )
        if hp.scheduler in (None, "none"):
            return optimizer
        return [optimizer], [steps.make_scheduler(hp.scheduler, optimizer, self.trainer)]


def _loaded(module: SoftRegressor, incompatible: Any) -> None:
    """After a state dict is loaded: dequantize where the loaded resolution says so."""
    module._dequantizing = bool(module.target_resolution > 0)
