"""The checks of :class:`~softzoo.models.SoftRegressor`'s options, each one clear error
before anything is built (docs/errors.md), and the model's input layer from its columns.

Example:
    >>> check_options(optimizer="adam", scheduler="cosine", interval_level=1.5)
    Traceback (most recent call last):
    ...
    ValueError: interval_level must lie in (0, 1), got 1.5
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from softzoo.families import Family, get_family, list_families
from softzoo.models.calibration import CALIBRATIONS
from softzoo.models.scaling import DEQUANTIZE
from softzoo.models.steps import OPTIMIZERS
from softzoo.nn import TabularInput
from softzoo.nn.embeddings import NUMERIC_EMBEDDINGS
from softzoo.nn.members import ENSEMBLE_TYPES, FIRST_SCALINGS
from softzoo.recipe import AUTO_MODEL_KEYS, resolve_model_options

__all__ = [
    "SCHEDULERS",
    "check_family_options",
    "check_options",
    "check_precision",
    "check_width",
    "settle_options",
    "tabular_input",
]

#: The learning-rate schedules a model takes (None and "none": a constant rate).
SCHEDULERS = (None, "none", "cosine", "plateau")


#: The options :func:`check_options` checks (with "auto" resolved).
_CHECKED = (
    "optimizer",
    "scheduler",
    "interval_level",
    "feature_names",
    "in_features",
    "gradient_clip_val",
    "ensemble_size",
    "ensemble_type",
    "first_scaling",
    "numeric_embedding",
    "numeric_bins",
    "warmup_epochs",
    "warmup_fraction",
    "calibration",
    "dequantize",
)


def settle_options(given: dict[str, Any]) -> dict[str, Any]:
    """The "auto" settings (:data:`softzoo.recipe.AUTO_MODEL_KEYS`) of a model's
    constructor arguments ``given``, resolved for its ``train_rows`` and ``categories``,
    once every option has passed :func:`check_options`."""
    family = get_family(given["family"], **(given.get("family_options") or {}))
    auto = {k: given[k] for k in (*AUTO_MODEL_KEYS, "warmup_epochs")}
    resolved = resolve_model_options(
        auto,
        given.get("train_rows"),
        point=not family.probabilistic,
        categorical=bool(given.get("categories")),
    )
    settled = {**given, **resolved}
    check_options(**{k: settled[k] for k in _CHECKED if k in settled})
    return {k: resolved[k] for k in AUTO_MODEL_KEYS}


def check_precision(precision: Any) -> None:
    """Refuse a Trainer precision the float32 heads do not train in."""
    if str(precision).startswith("64"):
        raise ValueError(
            f"precision {precision!r} is not supported: softzoo trains, tests and exports in "
            "float32 (its heads are float32 by design); use 32-true, or bf16-mixed / "
            "16-mixed"
        )


def check_width(
    x: Any, in_features: int, exposure_column: str | None, feature_names: Sequence[str]
) -> None:
    """Refuse rows ``x`` of another width than the model's ``in_features`` (and its
    exposure, the last column of a model trained with one)."""
    if x.shape[-1] != in_features + bool(exposure_column):
        last = f" and the exposure {exposure_column!r} last" if exposure_column else ""
        raise ValueError(
            f"expected {in_features} features per row ({', '.join(feature_names)})"
            f"{last}, got {x.shape[-1]}"
        )


def check_options(
    *,
    optimizer: str = "adam",
    scheduler: str | None = "cosine",
    interval_level: float = 0.9,
    feature_names: Sequence[str] | None = None,
    in_features: int = 0,
    gradient_clip_val: float | None = None,
    ensemble_size: Any = 1,
    ensemble_type: str = "independent",
    first_scaling: str = "random_signs",
    numeric_embedding: str = "none",
    numeric_bins: Any = 48,
    warmup_epochs: Any = 0,
    warmup_fraction: float = 0.0,
    calibration: str = "none",
    dequantize: str = "auto",
) -> None:
    """Refuse a model option outside its range, or two that contradict each other (the
    "auto" settings already resolved)."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; valid: {', '.join(OPTIMIZERS)}")
    if scheduler not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {scheduler!r}; valid: None, cosine, plateau")
    if not 0.0 < interval_level < 1.0:
        raise ValueError(f"interval_level must lie in (0, 1), got {interval_level}")
    if feature_names is not None and len(feature_names) != in_features:
        raise ValueError(f"{len(feature_names)} feature_names for in_features={in_features}")
    if gradient_clip_val is not None and not gradient_clip_val > 0:
        raise ValueError(f"gradient_clip_val must be > 0 or None, got {gradient_clip_val}")
    _check_ensemble(ensemble_size, ensemble_type)
    if first_scaling not in FIRST_SCALINGS:
        raise ValueError(
            f"first_scaling must be one of {FIRST_SCALINGS} (or 'auto': the default recipe's), "
            f"got {first_scaling!r}"
        )
    if numeric_embedding not in NUMERIC_EMBEDDINGS:
        raise ValueError(
            f"numeric_embedding must be one of {NUMERIC_EMBEDDINGS} (or 'auto': the default "
            f"recipe's), got {numeric_embedding!r}"
        )
    if not isinstance(numeric_bins, int) or numeric_bins < 1:
        raise ValueError(f"numeric_bins must be a whole number >= 1, got {numeric_bins!r}")
    _check_warmup(warmup_epochs, warmup_fraction)
    if calibration not in CALIBRATIONS:
        raise ValueError(f"calibration must be one of {CALIBRATIONS}, got {calibration!r}")
    if dequantize not in DEQUANTIZE:
        raise ValueError(f"dequantize must be one of {DEQUANTIZE}, got {dequantize!r}")


def _check_ensemble(size: Any, kind: str) -> None:
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"ensemble_size must be a whole number >= 1 (1: one model), got {size!r}")
    if kind not in ENSEMBLE_TYPES:
        raise ValueError(
            f"ensemble_type must be one of {ENSEMBLE_TYPES} (or 'auto': the default "
            f"recipe's), got {kind!r}"
        )
    if kind != "independent" and size == 1:
        raise ValueError(
            f"ensemble_type={kind!r} shares weights between the members of an ensemble, and "
            "ensemble_size is 1: set ensemble_size > 1 (TabM uses 32), or "
            "ensemble_type='independent'"
        )


def _check_warmup(epochs: Any, fraction: float) -> None:
    if not isinstance(epochs, int) or epochs < 0:
        raise ValueError(
            f"warmup_epochs must be a whole number >= 0 (0: no warm-up), got {epochs!r}"
        )
    if not 0.0 <= fraction < 1.0:
        raise ValueError(
            f"warmup_fraction must lie in [0, 1) (0.1: the first 10 % of max_epochs), "
            f"got {fraction!r}"
        )
    if epochs and fraction:
        raise ValueError(
            f"give warmup_epochs ({epochs}) or warmup_fraction ({fraction}), not both: set "
            "the other to 0"
        )


def check_family_options(
    family: Family, name: str, dequantize: str, exposure_column: str | None, calibration: str
) -> None:
    """Refuse options that ``family`` (the model's: a family or its members' mixture, named
    ``name``) cannot serve: dequantizing a target it does not spread, an exposure without
    a multiplicative mean, calibrating a point."""
    if dequantize == "always":
        kind = _undequantizable(family)
        if kind:
            raise ValueError(
                f"dequantize='always' spreads a rounded continuous target over its rounding "
                f"interval, and family {name!r} {kind}: use 'auto' or 'never'"
            )
    if exposure_column is not None and not family.takes_exposure:
        takes = ", ".join(n for n in list_families() if get_family(n).takes_exposure)
        raise ValueError(
            f"family {name!r} has no mean that an exposure multiplies, so it takes no "
            f"exposure_column ({exposure_column!r}): choose one of {takes}, or train "
            "without the exposure"
        )
    if calibration != "none" and not family.probabilistic:
        raise ValueError(
            f"calibration={calibration!r} needs intervals, and family {name!r} is a point "
            "predictor: use calibration='none', or a probabilistic family"
        )


def _undequantizable(family: Family) -> str | None:
    """Why a family's targets are not spread by dequantization noise, or None."""
    if family.discrete:
        return "is discrete"
    if not family.probabilistic:
        return "is a point predictor"
    if family.zero_mass:
        return "has a point mass at 0 (noise would move its zeros below 0)"
    return None


def tabular_input(
    in_features: int,
    feature_names: list[str],
    categories: dict[str, list[str]],
    indicators: Sequence[str],
    members: int,
    numeric_embedding: str,
    n_bins: int,
) -> TabularInput:
    """The model's first layer for its columns: the numeric ones, then the categorical
    ones (their vocabularies), the missing indicators among the numeric ones."""
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
