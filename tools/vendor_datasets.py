"""Rebuild the bundled files (maintainers only).

    python tools/vendor_datasets.py ../shared/data/uci   # needs statsmodels for randhie

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


def vendor(root: Path) -> None:
    for info in CATALOG.values():
        data = _source_rows(root, info.name)
        if data.shape[1] != len(info.columns):
            raise SystemExit(
                f"{info.name}: {data.shape[1]} columns, catalog has {len(info.columns)}"
            )
        text = io.StringIO()
        text.write(",".join(info.columns) + "\n")
        for row in data:
            text.write(",".join(repr(float(v)) for v in row) + "\n")
        with (
            open(FILES / info.file, "wb") as raw,
            gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz,
        ):
            gz.write(text.getvalue().encode())
        print(f"{info.name}: {data.shape[0]} rows x {data.shape[1]} columns")


if __name__ == "__main__":
    vendor(Path(sys.argv[1]))
