"""Atomic file writing: a reader sees the old file or the new one, never a partial one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "check_writable"]


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


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, fsync it, then rename it
    over ``path``. On any error the temporary file is removed and ``path`` is untouched.

    Example:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
        >>> _ = atomic_write(target, lambda tmp: tmp.write_text("hello"))
        >>> target.read_text()
        'hello'
    """
    path = check_writable(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
