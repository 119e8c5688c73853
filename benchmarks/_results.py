"""Writing benchmark results: one JSON and optionally one Markdown file, each atomically."""

from __future__ import annotations

import json
from pathlib import Path

from softzoo._io import atomic_write


def write_results(out: str | Path, stem: str, data: dict, markdown: str | None = None) -> None:
    """``out/stem.json`` (and ``out/stem.md``); a crash leaves the previous files."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(
        out / f"{stem}.json", lambda tmp: tmp.write_text(json.dumps(data, indent=2) + "\n")
    )
    if markdown is not None:
        atomic_write(out / f"{stem}.md", lambda tmp: tmp.write_text(markdown + "\n"))
