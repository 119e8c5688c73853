#!/usr/bin/env python3
"""Predict with a softzoo ONNX model using only numpy and onnxruntime (no torch).

    python export/predict.py MODEL.onnx INPUT.csv -o OUT.csv [--sha256 HEX | --manifest FILE]
                             [--threads 1] [--batch 65536]

The model's metadata names its feature columns; INPUT.csv must have a header with all of
them (any order; other columns are ignored). Header names follow softzoo's rule: a UTF-8
byte-order mark is dropped, spaces around names are stripped, an empty or repeated name
is an error. OUT.csv has one row per input row, one column per distribution parameter
(in the model's output order) and the predictive mean.

Before use, the file can be verified: ``--sha256`` against a published checksum, or
``--manifest export/manifest.json`` against the zoo manifest's entry for the file.
Python use: ``Predictor("model.onnx").predict(rows)`` with rows of shape (n, n_features).
"""

from __future__ import annotations

import argparse
import csv
import errno
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

__all__ = ["FAMILY_PARAMS", "Predictor", "header_names", "main", "read_features", "verify"]

#: The output parameters of each softzoo family, in output order.
FAMILY_PARAMS = {
    "gamma": ["concentration", "rate"],
    "gaussian": ["loc", "scale"],
    "lognormal": ["loc", "scale"],
    "negative_binomial": ["mean", "concentration"],
    "poisson": ["rate"],
    "positive": ["mean"],
    "student_t": ["loc", "scale", "df"],
}
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class InputError(ValueError):
    """Bad input, reported as one line."""


def _mean(family: str, params: dict[str, np.ndarray]) -> np.ndarray:
    """The predictive mean in closed form, per family."""
    if family == "lognormal":
        return np.exp(params["loc"] + 0.5 * params["scale"] ** 2)
    if family == "gamma":
        return params["concentration"] / params["rate"]
    key = {"poisson": "rate", "negative_binomial": "mean", "positive": "mean"}.get(family, "loc")
    return params[key]


def verify(model: str | Path, sha256: str) -> None:
    """Raise ``InputError`` unless the file's full sha256 equals ``sha256``."""
    digest = hashlib.sha256()
    with open(model, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != sha256.strip().lower():
        raise InputError(
            f"{str(model)!r} failed verification: sha256 is {digest.hexdigest()}, expected "
            f"{sha256.strip().lower()}; do not use this file"
        )


def _manifest_sha256(model: str | Path, manifest: str | Path) -> str:
    try:
        entries = json.loads(Path(manifest).read_text())["models"]
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(f"manifest {str(manifest)!r} is not a softzoo manifest.json") from None
    for entry in entries.values():
        if entry.get("file") == Path(model).name:
            return entry["sha256"]
    raise InputError(f"manifest {str(manifest)!r} has no entry for {Path(model).name!r}")


def _json_metadata(meta: dict[str, str], key: str, model: str | Path) -> object:
    if key not in meta:
        raise InputError(f"{str(model)!r} has no softzoo metadata {key!r}: export it with softzoo")
    try:
        return json.loads(meta[key])
    except ValueError:
        raise InputError(
            f"{str(model)!r} has unreadable metadata {key!r} ({meta[key][:40]!r}): the file "
            "was damaged or edited; export it again"
        ) from None


class Predictor:
    """An onnxruntime session over a softzoo ONNX file, checked against its metadata: the
    metadata must parse and agree with the graph (input width, output names) and with its
    family's parameters, else one clear error."""

    def __init__(self, model: str | Path, threads: int = 1) -> None:
        if not Path(model).is_file():
            raise InputError(f"model file {str(model)!r} does not exist")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(
                str(model), options, providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # onnxruntime raises its own exception types
            raise InputError(f"{str(model)!r} is not a loadable ONNX model: {err}") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        self.family: str = meta.get("family", "")
        self.feature_names: list[str] = list(_json_metadata(meta, "feature_names", model))
        declared = list(_json_metadata(meta, "param_names", model))
        self.param_names = [o.name for o in self.session.get_outputs()]
        self.input_name = self.session.get_inputs()[0].name
        self._check(model, declared)

    def _check(self, model: str | Path, declared: list[str]) -> None:
        problems = []
        if self.family not in FAMILY_PARAMS:
            problems.append(f"family {self.family!r} is not one of {sorted(FAMILY_PARAMS)}")
        elif FAMILY_PARAMS[self.family] != self.param_names:
            problems.append(
                f"family {self.family!r} has parameters {FAMILY_PARAMS[self.family]}, the "
                f"graph outputs {self.param_names}"
            )
        if declared != self.param_names:
            problems.append(f"param_names {declared} but the graph outputs {self.param_names}")
        width = self.session.get_inputs()[0].shape[-1]
        if width != len(self.feature_names):
            problems.append(
                f"{len(self.feature_names)} feature_names but the graph takes {width} features"
            )
        if len(set(self.feature_names)) != len(self.feature_names):
            problems.append("feature_names repeat a name")
        if problems:
            raise InputError(
                f"{str(model)!r} has metadata that contradicts its graph ({'; '.join(problems)}):"
                " the file was damaged or edited; export it again"
            )

    def predict(self, rows: np.ndarray, batch: int = 65536) -> dict[str, np.ndarray]:
        """Parameters and mean for rows of shape (n, n_features), in the metadata's order."""
        rows = np.asarray(rows, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[1] != len(self.feature_names):
            raise InputError(
                f"expected rows with {len(self.feature_names)} features "
                f"({', '.join(self.feature_names)}), got shape {rows.shape}"
            )
        chunks = [
            self.session.run(None, {self.input_name: rows[i : i + batch]})
            for i in range(0, len(rows), batch)
        ] or [[np.zeros(0, np.float32)] * len(self.param_names)]
        params = {n: np.concatenate([c[k] for c in chunks]) for k, n in enumerate(self.param_names)}
        return params | {"mean": _mean(self.family, params)}


def header_names(cells: list[str], source: str) -> list[str]:
    """Column names by softzoo's header rule (``softzoo.data.header_names``): the byte-order
    mark dropped, spaces stripped, an empty or repeated name an error."""
    names = [c.strip() for c in cells]
    if names:
        names[0] = names[0].removeprefix("\ufeff").strip()
    seen: dict[str, int] = {}
    for position, name in enumerate(names, start=1):
        if not name:
            raise InputError(f"column {position} of the header of {source} has no name")
        if name in seen:
            raise InputError(
                f"the header of {source} names {name!r} twice (columns {seen[name]} and "
                f"{position}): rename one"
            )
        seen[name] = position
    return names


def _parse_row(record: list[str], columns: list[int], names: list[str], where: str) -> list:
    try:
        values = [float(record[c]) for c in columns]
    except (ValueError, IndexError):
        raise InputError(f"{where}: a feature value is missing or not a number") from None
    bad = [names[k] for k, v in enumerate(values) if not abs(v) <= _FLOAT32_MAX]
    if bad:
        raise InputError(
            f"{where}: NaN/inf, or a value too large for float32, in feature(s) {', '.join(bad)}"
        )
    return values


def read_features(path: str | Path, names: list[str]) -> np.ndarray:
    """The named columns of a CSV as float32, with one clear error for each problem."""
    if not Path(path).is_file():
        raise InputError(f"input file {str(path)!r} does not exist")
    source = repr(str(path))
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header:
            raise InputError(f"input file {source} is empty: it needs a header row")
        header = header_names(header, source)
        if len(header) == 1 and any(s in header[0] for s in ";\t|"):
            raise InputError(
                f"input file {source} has one column {header[0]!r}: it does not look "
                "comma-separated; convert it to a CSV"
            )
        missing = [n for n in names if n not in header]
        if missing:
            raise InputError(
                f"input file {source} lacks feature column(s) {', '.join(missing)}; the "
                f"model needs {len(names)}: {', '.join(names)}"
            )
        columns = [header.index(n) for n in names]
        rows = [
            _parse_row(record, columns, names, f"{source} line {line}")
            for line, record in enumerate(reader, start=2)
            if record
        ]
    return np.asarray(rows, dtype=np.float32).reshape(-1, len(names))


def _check_output(output: Path, inputs: dict[str, str]) -> None:
    if output.is_dir():
        raise InputError(f"cannot write {str(output)!r}: it is a directory; give a file name")
    folder = output.parent if str(output.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"cannot write {str(output)!r}: directory {str(folder)!r} does not exist")
    for what, path in inputs.items():
        same = output.exists() and Path(path).exists() and os.path.samefile(output, path)
        if same or output.resolve() == Path(path).resolve():
            raise InputError(
                f"the output {str(output)!r} is the {what} {path!r}: writing it would destroy "
                "the input; choose another output path"
            )


def _write_csv(path: Path, columns: dict[str, np.ndarray]) -> None:
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)
    try:
        with os.fdopen(fd, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(columns)
            writer.writerows(zip(*(np.char.mod("%.9g", v) for v in columns.values()), strict=True))
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        if err.errno in _NO_SPACE:
            raise InputError(
                f"could not write {str(path)!r}: {os.strerror(err.errno)} (is the disk full?); "
                "free some space and run again; the previous file, if any, is unchanged"
            ) from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("input")
    parser.add_argument("-o", "--output", required=True)
    check = parser.add_mutually_exclusive_group()
    check.add_argument("--sha256", help="verify the model file against this checksum first")
    check.add_argument("--manifest", help="verify the model file against this manifest.json")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=65536)
    args = parser.parse_args(argv)
    try:
        output = Path(args.output)
        _check_output(output, {"model file": args.model, "input file": args.input})
        if args.sha256 or args.manifest:
            if not Path(args.model).is_file():
                raise InputError(f"model file {args.model!r} does not exist")
            verify(args.model, args.sha256 or _manifest_sha256(args.model, args.manifest))
        predictor = Predictor(args.model, args.threads)
        rows = read_features(args.input, predictor.feature_names)
        _write_csv(output, predictor.predict(rows, args.batch))
    except InputError as err:
        print(f"predict.py: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {len(rows)} predictions to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
