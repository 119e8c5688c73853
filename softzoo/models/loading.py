"""A softzoo checkpoint checked and loaded: :func:`check_checkpoint` (no pickled code runs,
the hyper-parameters of the types :class:`~softzoo.models.SoftRegressor` declares) and
:func:`load_checkpoint` (the model, built from them, with its weights).

Example::

    model = load_checkpoint("runs/ckpt/best.ckpt")
    loc, scale = model.predict_params(x)
"""

from __future__ import annotations

import functools
import inspect
import typing
from pathlib import Path
from typing import Any

import torch

from softzoo.models.checkpoints import read_checkpoint
from softzoo.models.regressor import SoftRegressor

__all__ = ["check_checkpoint", "load_checkpoint", "model_hints"]


@functools.cache
def model_hints() -> dict[str, Any]:
    """The type hints of :class:`~softzoo.models.SoftRegressor`'s constructor: what a
    checkpoint's hyper-parameters are checked against."""
    return typing.get_type_hints(SoftRegressor.__init__)


def check_checkpoint(path: str | Path) -> dict:
    """Read a Lightning checkpoint with ``weights_only=True`` (no pickled code runs) and
    return it, or raise one clear ``ValueError``: missing file, not a checkpoint, or a
    checkpoint of another kind of model (:func:`softzoo.models.checkpoints.read_checkpoint`)."""
    return read_checkpoint(path, model_hints())


def load_checkpoint(path: str | Path) -> SoftRegressor:
    """A SoftRegressor from a Lightning checkpoint (see :func:`check_checkpoint`), in eval
    mode on the CPU."""
    content = check_checkpoint(path)
    hparams = content["hyper_parameters"]
    accepted = inspect.signature(SoftRegressor.__init__).parameters
    # the initial weights are replaced by the checkpoint's: drawing them must not move
    # the caller's generator
    with torch.random.fork_rng(devices=[]):
        model = SoftRegressor(**{k: v for k, v in hparams.items() if k in accepted})
    try:
        model.load_state_dict(content["state_dict"])
    except RuntimeError as err:
        raise ValueError(f"{str(path)!r} does not match its own hyper-parameters: {err}") from None
    return model.eval()
