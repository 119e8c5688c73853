"""Rebuild the bundled files (maintainers only).

    python tools/vendor_datasets.py ../shared/data/uci   # needs statsmodels, palmerpenguins

UCI sets: only each folder's ``data.txt`` is read; the split index files are not shipped
(their license is non-commercial). randhie comes from statsmodels' copy of the public-domain
RAND HIE data. Files are gzip CSV with a header, floats written with ``repr``,
byte-reproducible (gzip mtime 0).
"""

from __future__ import annotations

import gzip
import io
import sys
from pathlib import Path

import numpy as np

from softzoo.datasets._catalog import CATALOG

FILES = Path(__file__).resolve().parents[1] / "softzoo/datasets/files"


def _source_rows(root: Path, name: str) -> np.ndarray:
    if name == "randhie":
        from statsmodels.datasets import randhie

        return randhie.load_pandas().data[list(CATALOG[name].columns)].to_numpy(np.float64)
    return np.loadtxt(root / name / "data.txt", ndmin=2)


def _write_gzip(name: str, text: bytes) -> None:
    with (
        open(FILES / CATALOG[name].file, "wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz,
    ):
        gz.write(text)


def _vendor_penguins() -> None:
    """The palmerpenguins package's penguins.csv, unchanged (pip install palmerpenguins)."""
    from importlib import resources

    source = resources.files("palmerpenguins").joinpath("data", "penguins.csv").read_bytes()
    _write_gzip("penguins", source)
    rows = len(source.splitlines()) - 1
    print(f"penguins: {rows} rows (text columns and NA cells kept)")


def vendor(root: Path) -> None:
    _vendor_penguins()
    for info in CATALOG.values():
        if info.name == "penguins":
            continue
        data = _source_rows(root, info.name)
        if data.shape[1] != len(info.columns):
            raise SystemExit(
                f"{info.name}: {data.shape[1]} columns, catalog has {len(info.columns)}"
            )
        text = io.StringIO()
        text.write(",".join(info.columns) + "\n")
        for row in data:
            text.write(",".join(repr(float(v)) for v in row) + "\n")
        _write_gzip(info.name, text.getvalue().encode())
        print(f"{info.name}: {data.shape[0]} rows x {data.shape[1]} columns")


if __name__ == "__main__":
    vendor(Path(sys.argv[1]))
