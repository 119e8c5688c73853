"""Checkpoint I/O: read a Lightning checkpoint without unpickling code, check that it is a
softzoo model's and that its hyper-parameters are of the types the model declares, and
upgrade the state dicts of older softzoo versions as they load. The model's class is not
known here: the type hints come from the caller (:mod:`softzoo.models.loading`)."""

from __future__ import annotations

import collections.abc
import types
import typing
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["check_hyperparameters", "read_checkpoint", "upgrade_state_dict"]


#: State-dict keys of softzoo 0.1.0 models (the feature scaling lived on the model).
_RENAMED = {"x_shift": "inputs.shift", "x_scale": "inputs.scale"}


def upgrade_state_dict(module: nn.Module, state: dict, prefix: str, *args: Any) -> None:
    """Load a 0.1.0 checkpoint or weights file: rename its scaling buffers; its model had
    no missing values, so the median fill only needs a value (the mean). A load-state-dict
    pre-hook of :class:`~softzoo.models.SoftRegressor`."""
    for old, new in _RENAMED.items():
        if prefix + old in state and prefix + new not in state:
            state[prefix + new] = state.pop(prefix + old)
    if prefix + "inputs.shift" in state and prefix + "inputs.fill" not in state:
        state[prefix + "inputs.fill"] = state[prefix + "inputs.shift"].clone()
        state.setdefault(prefix + "inputs.indicators", torch.zeros(0, dtype=torch.long))
    for name in ("calibration_scale", "calibration_level", "marginal", "target_resolution"):
        state.setdefault(prefix + name, getattr(module, name).clone())  # older models


def read_checkpoint(path: str | Path, hints: dict[str, Any]) -> dict:
    """Read a Lightning checkpoint with ``weights_only=True`` (no pickled code runs) and
    return it, or raise one clear ``ValueError``: missing file, not a checkpoint, a
    checkpoint of another kind of model, or hyper-parameters not of the types ``hints``
    (the model constructor's type hints) declare."""
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
    check_hyperparameters(hparams, repr(str(path)), hints)
    return content


#: Keys by which jsonargparse (LightningCLI's parser) imports and instantiates a class.
_INSTANTIATING = ("class_path", "init_args", "__path__")
#: What a recorded hyper-parameter that is no constructor argument may hold: plain values.
_PLAIN = (str, int, float, bool, type(None))


def check_hyperparameters(hparams: dict, source: str, hints: dict[str, Any]) -> None:
    """Refuse recorded hyper-parameters that could choose what runs: a ``class_path`` (or
    ``init_args``) anywhere, which LightningCLI's parser would import, and any value that
    is not of its constructor argument's declared type in ``hints`` (plain values only).
    Called on every checkpoint before a parser or a model sees its hyper-parameters."""
    for key, value in hparams.items():
        where = f"checkpoint {source} hyper-parameter {key!r}"
        _refuse_instantiation(value, where)
        expected = hints.get(key, Any)
        if key != "_instantiator" and not _matches(value, expected):
            raise ValueError(
                f"{where} is {_short(value)}, not of its declared type {_type_name(expected)}: "
                "the checkpoint was edited or comes from elsewhere; do not use it"
            )


def _refuse_instantiation(value: Any, where: str) -> None:
    if isinstance(value, dict):
        named = [k for k in _INSTANTIATING if k in value]
        if named:
            raise ValueError(
                f"{where} holds {named[0]!r}: a checkpoint may not name code to import; it "
                "was edited or comes from elsewhere, do not use it"
            )
        for item in value.values():
            _refuse_instantiation(item, where)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _refuse_instantiation(item, where)


def _matches(value: Any, expected: Any) -> bool:
    """Whether ``value`` is of the type hint ``expected`` (the plain types of the
    constructor's hints: scalars, unions, sequences, dicts; ``Any``: plain values)."""
    origin, args = typing.get_origin(expected), typing.get_args(expected)
    if expected is Any:
        return _plain(value)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if expected is type(None):
        return value is None
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (list, tuple, collections.abc.Sequence):
        item = args[0] if args else Any
        return isinstance(value, (list, tuple)) and all(_matches(v, item) for v in value)
    if origin is dict:
        key, item = args or (Any, Any)
        return isinstance(value, dict) and all(
            _matches(k, key) and _matches(v, item) for k, v in value.items()
        )
    return isinstance(value, expected)


def _plain(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return isinstance(value, _PLAIN)


def _type_name(hint: Any) -> str:
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "").replace("collections.abc.", "")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
