"""The files a ``softzoo fit`` run keeps beside its checkpoints: the resolved config, saved
without ever overwriting a file softzoo did not write, and a lock that keeps two runs out of
one checkpoint directory."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.cli import SaveConfigCallback

from softzoo import __version__
from softzoo._io import atomic_write

__all__ = ["CONFIG_HEADER", "LOCK_NAME", "RunConfigSaver", "RunLock", "check_checkpoint_folder"]

#: First line of every config file softzoo saves; a file without it is never overwritten.
CONFIG_HEADER = f"# softzoo {__version__}: the resolved config of a run (rewritten by softzoo)"

#: The lock file a running ``softzoo fit`` keeps in its checkpoint directory.
LOCK_NAME = ".softzoo-fit.lock"


def _checkpoint_dir(trainer: pl.Trainer) -> Path | None:
    """Where the run's checkpoints go: the callback's ``dirpath``, else Lightning's default
    (the logger's version folder, or ``default_root_dir/checkpoints`` without a logger)."""
    callback = trainer.checkpoint_callback
    if callback is None:
        return None
    if callback.dirpath:
        return Path(callback.dirpath)
    if trainer.loggers:
        return Path(trainer.log_dir) / "checkpoints"
    return Path(trainer.default_root_dir) / "checkpoints"


def check_checkpoint_folder(trainer: pl.Trainer, resuming: bool) -> None:
    """Before a fit: its checkpoint folder must be a folder (or not exist yet), and, unless
    the run resumes, hold no checkpoint of an earlier run: a second model's ``best-v1.ckpt``
    beside the first one's ``best.ckpt`` and ``last.ckpt``, under the second one's
    ``config.yaml``, would describe two models as one."""
    folder = _checkpoint_dir(trainer)
    if folder is None or not folder.exists():
        return
    if not folder.is_dir():
        raise ValueError(
            f"the checkpoint folder {str(folder)!r} is a file: give --checkpoint.dirpath a "
            "folder (new, or one of a run to resume)"
        )
    if (folder / "config.yaml").is_dir():
        raise ValueError(
            f"{str(folder / 'config.yaml')!r} is a folder, where the run's config file goes: "
            "move it, or give the run another --checkpoint.dirpath"
        )
    lock = folder / LOCK_NAME
    if lock.exists():
        RunLock.refuse_a_live_holder(lock)  # a run in progress: say so, not "earlier run"
    earlier = sorted(p.name for p in folder.glob("*.ckpt"))
    if earlier and not resuming:
        raise ValueError(
            f"the checkpoint folder {str(folder)!r} holds an earlier run's checkpoints "
            f"({', '.join(earlier[:4])}{', ...' if len(earlier) > 4 else ''}): give this run a "
            "new --checkpoint.dirpath, or resume that run with --ckpt_path last"
        )


class RunConfigSaver(SaveConfigCallback):
    """Save the resolved config as ``config.yaml`` in the run's log folder, or, without a
    logger, beside the checkpoints of a ``fit`` (a ``validate``/``test``/``predict`` without
    a logger records nothing). Lightning's own callback writes into the log folder, which
    without a logger is the working directory, and so overwrote a user's ``config.yaml``.
    A file at the target that softzoo did not write (no :data:`CONFIG_HEADER`) is an error.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.target: Path | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.already_saved:
            return
        # trainer.log_dir broadcasts, so every rank computes the target here
        if trainer.loggers:
            self.target = Path(trainer.log_dir) / self.config_filename
        elif stage == "fit" and (folder := _checkpoint_dir(trainer)) is not None:
            self.target = folder / self.config_filename
        if stage != "fit":
            self._save(trainer)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # after ModelCheckpoint.setup, which would warn about a non-empty directory
        self._save(trainer)

    def _save(self, trainer: pl.Trainer) -> None:
        if self.already_saved:
            return
        self.already_saved = True
        target = self.target
        if target is None or not trainer.is_global_zero:
            return
        if target.exists() and not target.read_text(errors="replace").startswith(CONFIG_HEADER):
            raise ValueError(
                f"{str(target)!r} exists and was not written by softzoo: the run's resolved "
                "config would overwrite it; move the file, or give the run another folder "
                "(--checkpoint.dirpath or --trainer.default_root_dir)"
            )
        text = self.parser.dump(self.config, skip_none=False)
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, lambda tmp: tmp.write_text(f"{CONFIG_HEADER}\n{text}"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock(Callback):
    """Hold :data:`LOCK_NAME` (owner's host and pid) in the checkpoint directory while
    ``fit`` runs, so a second run that would share the directory, and delete the first
    run's checkpoints as it rotates its own, stops before it starts. A lock left by a
    process that no longer runs (``kill -9``) is taken over, with one line saying so.
    """

    def __init__(self) -> None:
        self.path: Path | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        folder = _checkpoint_dir(trainer)
        if folder is None or not trainer.is_global_zero:
            return
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / LOCK_NAME
        owner = {"host": socket.gethostname(), "pid": os.getpid()}
        try:
            with open(path, "x") as f:
                json.dump(owner, f)
        except FileExistsError:
            self._take_over_stale(path, owner)
        self.path = path

    @staticmethod
    def refuse_a_live_holder(path: Path) -> dict[str, Any]:
        """The holder of the lock at ``path``; an error where it is another process that
        still runs (or one on another host, whose liveness cannot be known)."""
        try:
            holder = json.loads(path.read_text())
        except (OSError, ValueError):
            holder = {}
        same_host = holder.get("host") == socket.gethostname()
        pid = int(holder.get("pid", 0))
        if not same_host or (pid != os.getpid() and _alive(pid)):
            raise ValueError(
                f"checkpoint directory {str(path.parent)!r} is in use by another softzoo fit "
                f"(pid {holder.get('pid', '?')} on {holder.get('host', '?')}, lock file "
                f"{str(path)!r}); two runs in one directory delete each other's checkpoints: "
                "give this run another --checkpoint.dirpath, or delete the lock file if that "
                "run has ended"
            )
        return holder

    @classmethod
    def _take_over_stale(cls, path: Path, owner: dict[str, Any]) -> None:
        holder = cls.refuse_a_live_holder(path)
        print(
            f"softzoo: taking over the lock {str(path)!r} of pid {holder.get('pid')}, which has "
            "ended",
            flush=True,
        )
        atomic_write(path, lambda tmp: tmp.write_text(json.dumps(owner)))

    def _release(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            self.path = None

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._release()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        self._release()
