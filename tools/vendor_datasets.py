"""Rebuild the bundled files (maintainers only).

    python tools/vendor_datasets.py ../shared/data/uci RandHIE.rda
        # needs statsmodels, palmerpenguins, rdata; RandHIE.rda: data/RandHIE.rda of the
        # sampleSelection R package (github.com/cran/sampleSelection)

UCI sets: only each folder's ``data.txt`` is read; the split index files are not shipped
(their license is non-commercial). randhie comes from statsmodels' copy of the public-domain
RAND HIE data; its spending (meddol) and eligible share of the year (time) come from the
same 20,190 person-years in sampleSelection's RandHIE (rows checked equal on the shared
columns). Files are gzip CSV with a header, floats written with ``repr``,
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


#: The columns of statsmodels' randhie and their names in sampleSelection's RandHIE.
_RANDHIE_SHARED = {"mdvis": "mdvis", "idp": "idp", "hlthg": "hlthg", "hlthp": "hlthp"}
_RANDHIE_EXTRA = ("time", "meddol")


def _randhie(rda: Path) -> np.ndarray:
    import rdata
    from statsmodels.datasets import randhie

    frame = randhie.load_pandas().data
    extra = rdata.conversion.convert(rdata.parser.parse_file(rda))["RandHIE"]
    for ours, theirs in _RANDHIE_SHARED.items():
        if not np.array_equal(frame[ours].to_numpy(float), extra[theirs].to_numpy(float)):
            raise SystemExit(f"randhie: column {ours!r} differs from RandHIE's {theirs!r}")
    for column in _RANDHIE_EXTRA:
        frame[column] = extra[column].to_numpy(np.float64)
    return frame[list(CATALOG["randhie"].columns)].to_numpy(np.float64)


def _source_rows(root: Path, name: str, rda: Path) -> np.ndarray:
    if name == "randhie":
        return _randhie(rda)
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


def vendor(root: Path, rda: Path) -> None:
    _vendor_penguins()
    for info in CATALOG.values():
        if info.name == "penguins":
            continue
        data = _source_rows(root, info.name, rda)
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
    vendor(Path(sys.argv[1]), Path(sys.argv[2]))
