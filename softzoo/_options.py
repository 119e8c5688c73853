"""The training options a user sets, as flat names, and the ``softzoo fit`` config that
they make: one mapping shared by the scikit-learn estimator (``softzoo.sklearn``) and the
tuner (``softzoo tune``), so that both train exactly what ``softzoo fit --config`` trains.

Example:
    >>> fit_config({"family": "gamma", "max_epochs": 5, "seed": 3})["trainer"]
    {'max_epochs': 5}
"""

from __future__ import annotations

from typing import Any

__all__ = ["DATA_OPTIONS", "MODEL_OPTIONS", "TRAINER_OPTIONS", "fit_config"]

#: Options of the model (``--model.NAME``).
MODEL_OPTIONS = (
    "family",
    "family_options",
    "hidden",
    "activation",
    "dropout",
    "ensemble_size",
    "ensemble_type",
    "numeric_embedding",
    "numeric_bins",
    "calibration",
    "interval_level",
    "lr",
    "weight_decay",
    "warmup_fraction",
)
#: Options of the data module (``--data.NAME``); ``seed`` seeds its split too.
DATA_OPTIONS = ("missing", "categorical", "ignore", "batch_size", "val_fraction", "seed")
#: Options of the Trainer (``--trainer.NAME``).
TRAINER_OPTIONS = ("max_epochs", "accelerator", "devices")
#: Options of ``softzoo fit`` itself.
_FIT_OPTIONS = ("early_stopping_patience",)


def fit_config(options: dict[str, Any], data: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``softzoo fit`` config (as its YAML holds it) of flat ``options``; ``data``:
    further data-module arguments (the file, the target). An option that is None is left
    to ``softzoo fit``'s default."""
    given = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(given) - {*MODEL_OPTIONS, *DATA_OPTIONS, *TRAINER_OPTIONS, *_FIT_OPTIONS})
    if unknown:
        raise ValueError(f"unknown training option(s): {', '.join(unknown)}")
    config: dict[str, Any] = {}
    if "seed" in given:
        config["seed_everything"] = given["seed"]
    config["model"] = {k: given[k] for k in MODEL_OPTIONS if k in given}
    init_args = {**(data or {}), **{k: given[k] for k in DATA_OPTIONS if k in given}}
    config["data"] = {"class_path": "softzoo.data.TabularDataModule", "init_args": init_args}
    config["trainer"] = {k: given[k] for k in TRAINER_OPTIONS if k in given}
    config.update({k: given[k] for k in _FIT_OPTIONS if k in given})
    return config
