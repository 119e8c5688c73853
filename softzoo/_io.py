"""Safe file writing: a reader sees the old file or the new one, never a partial one; an
output never lands on top of an input; a full disk is one clear error."""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = [
    "WriteError",
    "atomic_write",
    "check_folder_writable",
    "check_not_input",
    "check_writable",
]

#: errno values that mean "the device cannot take more bytes".
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
#: What torch's zip writer (torch.save) says when a write comes up short, e.g. on a full disk.
_TORCH_SHORT_WRITE = ("unexpected pos", "file write failed")


class WriteError(OSError):
    """A file could not be written (for example, the disk is full); the previous version
    of the file, if any, is unchanged."""


def check_writable(path: str | Path) -> Path:
    """Raise ``ValueError`` unless ``path``'s directory exists and is writable."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ValueError(
            f"cannot write {str(path)!r}: directory {str(folder)!r} does not exist "
            "(create it first)"
        )
    if not os.access(folder, os.W_OK):
        raise ValueError(f"cannot write {str(path)!r}: no write permission in {str(folder)!r}")
    if path.is_dir():
        raise ValueError(f"cannot write {str(path)!r}: it is a directory; give a file name")
    return path


def check_folder_writable(folder: str | Path, what: str) -> None:
    """Raise ``ValueError`` unless ``folder`` (where a run writes its ``what``) can be
    written, or made: its nearest existing ancestor is a folder this process may write.

    Example:
        >>> check_folder_writable("runs/new/logs", "logs")
    """
    folder = Path(folder).absolute()
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if existing.is_dir() and not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(
            f"the run's {what} go to {str(folder)!r}, and {str(existing)!r} cannot be written "
            "(a read-only folder?): run from a folder you can write, or point the run's "
            "options at one (--trainer.default_root_dir, --checkpoint.dirpath; softzoo demo: "
            "--root)"
        )


def _same_file(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def check_not_input(output: str | Path, inputs: Iterable[tuple[str, str | Path | None]]) -> Path:
    """Raise ``ValueError`` if ``output`` is (or links to) one of the named ``inputs``, so a
    writer never replaces the file it reads. ``inputs`` are (what, path) pairs; None paths
    are skipped.

    Example:
        >>> check_not_input("out.csv", [("input file", "in.csv")]).name
        'out.csv'
        >>> check_not_input("in.csv", [("input file", "in.csv")])
        Traceback (most recent call last):
        ...
        ValueError: the output 'in.csv' is the input file 'in.csv': writing it would destroy ...
    """
    output = Path(output)
    for what, source in inputs:
        if source is not None and _same_file(output, Path(source)):
            raise ValueError(
                f"the output {str(output)!r} is the {what} {str(source)!r}: writing it would "
                "destroy the input; choose another output path"
            )
    return output


def _write_failure(path: Path, err: BaseException) -> WriteError | None:
    """The clear error for a failed write caused by the device, or None for other errors."""
    short = isinstance(err, RuntimeError) and any(s in str(err) for s in _TORCH_SHORT_WRITE)
    if not (short or (isinstance(err, OSError) and err.errno in _NO_SPACE)):
        return None
    reason = os.strerror(err.errno) if isinstance(err, OSError) else "the write came up short"
    return WriteError(
        f"could not write {str(path)!r}: {reason} (is the disk full?); free some space and run "
        "again; the previous version of the file, if any, is unchanged"
    )


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, fsync it, then rename it
    over ``path``. On any error the temporary file is removed and ``path`` is untouched; a
    full disk raises :class:`WriteError` with one clear message.

    Example:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
        >>> _ = atomic_write(target, lambda tmp: tmp.write_text("hello"))
        >>> target.read_text()
        'hello'
    """
    path = check_writable(path)
    tmp = None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as err:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        clear = _write_failure(path, err)
        if clear is not None:
            raise clear from None
        raise
    return path
