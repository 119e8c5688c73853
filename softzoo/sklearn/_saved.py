"""A saved estimator's own fields, checked as it loads: its constructor arguments (plain
values, valid, and in agreement with the model beside them), its columns and names. An
edited file is one error, never a silently different model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from softzoo.models import SoftRegressor
from softzoo.recipe import AUTO

__all__ = ["check_agrees", "checked_fields", "checked_params"]


def _edited(path: str | Path, what: str) -> ValueError:
    return ValueError(
        f"{str(path)!r}: its saved estimator {what}: the file was edited or comes from "
        "elsewhere; do not use it"
    )


def checked_fields(saved: Any, path: str | Path) -> dict[str, Any]:
    """The saved estimator's fields, each of its type, or one error."""
    columns, names = (
        saved.get(k) if isinstance(saved, dict) else None for k in ("columns", "feature_names_in")
    )
    valid = (
        isinstance(saved, dict)
        and {"params", "columns", "target_name"} <= set(saved)
        and isinstance(columns, list)
        and all(isinstance(c, str) for c in columns)
        and (names is None or (isinstance(names, list) and all(isinstance(n, str) for n in names)))
        and isinstance(saved["target_name"], str)
    )
    if not valid:
        raise _edited(path, "fields are not softzoo's")
    return {**saved, "feature_names_in": names}


def checked_params(cls: type, params: Any, path: str | Path) -> dict[str, Any]:
    """The saved constructor arguments (an older file's ``seed`` is ``random_state``), or
    one error if the file was edited."""
    if isinstance(params, dict) and "seed" in params and "random_state" not in params:
        params = {("random_state" if k == "seed" else k): v for k, v in params.items()}
    accepted = set(cls._get_param_names())
    plain = (str, int, float, bool, type(None), list, dict)
    if not isinstance(params, dict) or set(params) - accepted:
        raise ValueError(f"{str(path)!r}: its saved estimator arguments are not softzoo's")
    if not all(isinstance(v, plain) for v in params.values()):
        raise ValueError(f"{str(path)!r}: its saved estimator arguments are not plain values")
    try:
        cls(**params)._validate_params()
    except (ValueError, TypeError):  # scikit-learn's InvalidParameterError is a ValueError
        raise _edited(path, "arguments are not valid") from None
    return params


#: The estimator's arguments that the model records (the hyper-parameter's name).
_RECORDED = {
    **{k: k for k in ("family", "family_options", "hidden", "activation", "dropout")},
    **{k: k for k in ("ensemble_size", "ensemble_type", "numeric_embedding", "numeric_bins")},
    **{k: k for k in ("calibration", "interval_level", "lr", "weight_decay")},
    "missing": "missing_policy",
    "exposure_column": "exposure_column",
}


def check_agrees(
    estimator: Any, model: SoftRegressor, columns: list[str], path: str | Path
) -> None:
    """Refuse saved arguments that disagree with the model beside them (an edited
    ``family`` would load silently and describe another model), or columns that lack
    the model's features."""
    hparams = model.hparams
    for argument, recorded in _RECORDED.items():
        given = getattr(estimator, argument)
        if given == AUTO or recorded not in hparams:
            continue
        if _plain(given) != _plain(hparams[recorded]):
            raise _edited(
                path,
                f"arguments disagree with its model ({argument}: {given!r} saved, "
                f"{hparams[recorded]!r} trained)",
            )
    needed = [*model.feature_names, *filter(None, [hparams.get("exposure_column")])]
    if not set(needed) <= set(columns):
        raise _edited(path, "columns lack the model's features")


def _plain(value: Any) -> Any:
    """Sequences as lists (a tuple and a list of the same values are the same argument)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
