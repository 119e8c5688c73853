"""Weights as safetensors (no pickle), verified by their full sha256 on every load."""

from __future__ import annotations

import hashlib
import json
import re
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
from torch import nn

from softzoo._io import atomic_write
from softzoo.models import check_architecture

__all__ = [
    "HPARAMS_KEY",
    "cache_dir",
    "fetch",
    "file_sha256",
    "load_weights",
    "save_weights",
    "trained_hparams",
    "verify_sha256",
]

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
    if scheme not in ("http", "https", "file"):
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"weights file {source!r} does not exist")
        verify_sha256(path, sha256)
        return path
    target = cache_dir() / f"{sha256.lower()}.safetensors"
    if target.is_file():
        try:
            verify_sha256(target, sha256)
            return target
        except ValueError:
            target.unlink()  # a damaged cache entry: download it again below
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(source, timeout=60) as response:
            payload = response.read()
    except OSError as err:
        raise ValueError(f"could not download {source!r}: {err}") from None
    actual = hashlib.sha256(payload).hexdigest()
    if actual != sha256.lower():
        raise ValueError(
            f"the download of {source!r} failed verification: sha256 is {actual}, expected "
            f"{sha256.lower()}; nothing was kept in the cache. Check the URL and the checksum "
            "published with the file"
        )
    return atomic_write(target, lambda tmp: tmp.write_bytes(payload))


#: safetensors metadata key: the hyper-parameters of the model the weights were trained for.
HPARAMS_KEY = "softzoo_hparams"


def save_weights(module: nn.Module, path: str | Path, metadata: dict[str, object]) -> Path:
    """Write the module's state dict (buffers included) as safetensors, atomically, with
    ``metadata`` and the module's hyper-parameters (so a load can check the architecture)."""
    state = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    hparams = dict(getattr(module, "hparams", {}))
    metadata = {HPARAMS_KEY: hparams, **metadata} if hparams else metadata
    text = {k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}
    return atomic_write(
        path, lambda tmp: safetensors.torch.save_file(state, str(tmp), metadata=text)
    )


def trained_hparams(path: str | Path) -> dict[str, Any] | None:
    """The hyper-parameters a weights file records for the model it was trained for."""
    with safetensors.safe_open(str(path), framework="pt") as f:
        text = (f.metadata() or {}).get(HPARAMS_KEY)
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        raise ValueError(
            f"weights file {str(path)!r} has unreadable {HPARAMS_KEY} metadata"
        ) from None


def load_weights(module: nn.Module, path: str | Path, sha256: str) -> nn.Module:
    """Verify ``path`` and load it into ``module``: the sha256 must match, the model the
    file records (its hyper-parameters) must be ``module``'s architecture (see
    :func:`softzoo.models.check_architecture`), and the tensors must fit strictly."""
    verify_sha256(path, sha256)
    trained = trained_hparams(path)
    if trained is not None and hasattr(module, "hparams"):
        check_architecture(trained, module.hparams, f"weights file {str(path)!r}")
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
