"""Checkpoints written atomically: a crash leaves the previous file, never half a file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from softzoo._io import atomic_write

__all__ = ["AtomicCheckpointIO"]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO, but each file is written to a temporary file beside its
    target, fsynced and renamed over it. ``softzoo fit`` uses it unless the config gives
    ``trainer.plugins``; pass it yourself as ``Trainer(plugins=[AtomicCheckpointIO()])``.

    Lightning's own IO writes the target in place, so a ``kill -9`` during a save of
    ``last.ckpt`` destroys the only checkpoint a resume could use.

    Example:
        >>> import tempfile, pathlib, torch
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "run" / "last.ckpt"
        >>> AtomicCheckpointIO().save_checkpoint({"epoch": 3}, path)
        >>> torch.load(path, weights_only=True)
        {'epoch': 3}
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(
                "AtomicCheckpointIO.save_checkpoint takes no storage_options; got "
                f"{storage_options!r}"
            )
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))
