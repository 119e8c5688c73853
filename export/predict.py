#!/usr/bin/env python3
"""Predict with a softzoo ONNX model using only numpy and onnxruntime (no torch).

    python export/predict.py MODEL.onnx INPUT.csv -o OUT.csv [--threads 1] [--batch 65536]

The model's metadata names its feature columns; INPUT.csv must have a header with all of
them (any order; other columns are ignored). OUT.csv has one row per input row, one column
per distribution parameter (in the model's output order) and the predictive mean.
Python use: ``Predictor("model.onnx").predict(rows)`` with rows of shape (n, n_features).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

__all__ = ["Predictor", "main", "read_features"]


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


class Predictor:
    """An onnxruntime session over a softzoo ONNX file, checked against its metadata."""

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
        if "feature_names" not in meta or "family" not in meta:
            raise InputError(f"{str(model)!r} has no softzoo metadata (feature_names, family)")
        self.feature_names: list[str] = json.loads(meta["feature_names"])
        self.family: str = meta["family"]
        self.param_names = [o.name for o in self.session.get_outputs()]
        self.input_name = self.session.get_inputs()[0].name

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


def read_features(path: str | Path, names: list[str]) -> np.ndarray:
    """The named columns of a CSV as float32, with one clear error for each problem."""
    if not Path(path).is_file():
        raise InputError(f"input file {str(path)!r} does not exist")
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header:
            raise InputError(f"input file {str(path)!r} is empty: it needs a header row")
        header = [h.strip() for h in header]
        missing = [n for n in names if n not in header]
        if missing:
            raise InputError(
                f"input file {str(path)!r} lacks feature column(s) {', '.join(missing)}; the "
                f"model needs {len(names)}: {', '.join(names)}"
            )
        columns = [header.index(n) for n in names]
        rows = []
        for line, record in enumerate(reader, start=2):
            if not record:
                continue
            try:
                values = [float(record[c]) for c in columns]
            except (ValueError, IndexError):
                raise InputError(
                    f"{str(path)!r} line {line}: a feature value is missing or not a number"
                ) from None
            bad = [names[k] for k, v in enumerate(values) if not math.isfinite(v)]
            if bad:
                raise InputError(
                    f"{str(path)!r} line {line}: NaN/inf in feature(s) {', '.join(bad)}"
                )
            rows.append(values)
    return np.asarray(rows, dtype=np.float32).reshape(-1, len(names))


def _write_csv(path: Path, columns: dict[str, np.ndarray]) -> None:
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"cannot write {str(path)!r}: directory {str(folder)!r} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)
    try:
        with os.fdopen(fd, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(columns)
            writer.writerows(zip(*(np.char.mod("%.9g", v) for v in columns.values()), strict=True))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("input")
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=65536)
    args = parser.parse_args(argv)
    try:
        predictor = Predictor(args.model, args.threads)
        rows = read_features(args.input, predictor.feature_names)
        _write_csv(Path(args.output), predictor.predict(rows, args.batch))
    except InputError as err:
        print(f"predict.py: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {len(rows)} predictions to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
