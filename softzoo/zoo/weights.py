"""Weights as safetensors (no pickle), verified by their full sha256 on every load."""

from __future__ import annotations

import hashlib
import json
import re
import urllib.parse
import urllib.request
from pathlib import Path

import safetensors.torch
from torch import nn

from softzoo._io import atomic_write

__all__ = ["cache_dir", "fetch", "file_sha256", "load_weights", "save_weights", "verify_sha256"]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: str | Path, expected: str) -> None:
    """Raise ``ValueError`` unless the file's full sha256 equals ``expected``."""
    if not _SHA256.match(str(expected).lower()):
        raise ValueError(f"expected sha256 must be 64 hex digits, got {expected!r}")
    actual = file_sha256(path)
    if actual != expected.lower():
        raise ValueError(
            f"weights file {str(path)!r} failed verification: sha256 is {actual}, expected "
            f"{expected.lower()}. The file is corrupted or was modified; reinstall softzoo (for "
            "a zoo model) or download the file again"
        )


def cache_dir() -> Path:
    """Where downloaded weights are kept: $SOFTZOO_CACHE or ~/.cache/softzoo."""
    import os

    return Path(os.environ.get("SOFTZOO_CACHE", Path.home() / ".cache" / "softzoo"))


def fetch(source: str, sha256: str) -> Path:
    """A local path for ``source`` (a path, or an http(s)/file URL downloaded once into the
    cache), verified against ``sha256``."""
    if not _SHA256.match(str(sha256 or "").lower()):
        raise ValueError(
            "loading weights from a path or URL needs sha256=<64 hex digits> "
            "(the checksum published with the file)"
        )
    scheme = urllib.parse.urlparse(source).scheme
    if scheme in ("http", "https", "file"):
        target = cache_dir() / f"{sha256.lower()}.safetensors"
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with urllib.request.urlopen(source, timeout=60) as response:
                    payload = response.read()
            except OSError as err:
                raise ValueError(f"could not download {source!r}: {err}") from None
            atomic_write(target, lambda tmp: tmp.write_bytes(payload))
        path = target
    else:
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"weights file {source!r} does not exist")
    verify_sha256(path, sha256)
    return path


def save_weights(module: nn.Module, path: str | Path, metadata: dict[str, object]) -> Path:
    """Write the module's state dict (buffers included) as safetensors, atomically."""
    state = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    text = {k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}
    return atomic_write(
        path, lambda tmp: safetensors.torch.save_file(state, str(tmp), metadata=text)
    )


def load_weights(module: nn.Module, path: str | Path, sha256: str) -> nn.Module:
    """Verify ``path`` and load it into ``module`` (strictly: same architecture)."""
    verify_sha256(path, sha256)
    state = safetensors.torch.load_file(str(path))
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise ValueError(
            f"weights {str(path)!r} do not fit this model ({first}); architecture overrides "
            "(hidden, activation, family, …) cannot be combined with pretrained weights"
        ) from None
    return module
