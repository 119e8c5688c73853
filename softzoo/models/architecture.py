"""Architecture identity: the constructor arguments that define the function a trained
:class:`~softzoo.models.SoftRegressor` computes, normalised so that equal functions compare
equal, and the check that refuses weights or a checkpoint trained for another model."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from softzoo.families import get_family

__all__ = ["ARCHITECTURE_KEYS", "architecture", "architecture_mismatches", "check_architecture"]

#: The constructor arguments that define the function a trained SoftRegressor computes:
#: its graph and what its weights mean. Weights and checkpoints refuse a model that differs
#: in any of them. ``dropout`` counts only as present or absent (dropout layers change the
#: layout of the weights; their rate does not). ``interval_level`` counts only for a
#: calibrated model: its conformal map serves the level it was fitted at, and no other.
#: The other arguments (optimiser, lr, schedule, an uncalibrated model's interval level,
#: target name, and family options that only change the loss, such as ``beta_nll``) may
#: change when fine-tuning or testing.
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
    "ensemble_type",
    "numeric_embedding",
    "numeric_bins",
    "calibration",
    "interval_level",
    "exposure_column",
)


def _constructor_defaults() -> dict[str, Any]:
    from softzoo.models.regressor import SoftRegressor

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
        "ensemble_type": str(hp["ensemble_type"]),
        "numeric_embedding": str(hp["numeric_embedding"]),
        "numeric_bins": (
            int(hp["numeric_bins"]) if hp["numeric_embedding"] == "piecewise_linear" else None
        ),
        "calibration": str(hp["calibration"]),
        "interval_level": None if hp["calibration"] == "none" else float(hp["interval_level"]),
        "exposure_column": hp["exposure_column"],
    }


def architecture_mismatches(trained: Mapping[str, Any], requested: Mapping[str, Any]) -> list[str]:
    """One ``"key: trained X, requested Y"`` line per architecture setting that differs."""
    a, b = architecture(trained), architecture(requested)
    return [_mismatch(k, a[k], b[k]) for k in ARCHITECTURE_KEYS if _differs(k, a, b)]


def _mismatch(key: str, trained: Any, requested: Any) -> str:
    if key == "interval_level" and None not in (trained, requested):
        return (
            f"interval_level: calibrated at {trained:g}, requested {requested:g} (a conformal "
            f"map serves only its own level: train with --model.interval_level {requested:g} "
            "to calibrate that one)"
        )
    return f"{key}: trained {trained!r}, requested {requested!r}"


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
