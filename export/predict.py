#!/usr/bin/env python3
"""Predict with a softzoo ONNX model using only numpy and onnxruntime (no torch).

    python export/predict.py MODEL.onnx INPUT.csv -o OUT.csv [--sha256 HEX | --manifest FILE]
                             [--threads 1] [--batch 65536]

INPUT.csv is a raw table: it must have a header with every input column the model's
metadata lists (any order; other columns are ignored). Numeric cells may be empty (the
model imputes them) unless the model was trained with missing='error'; categorical cells
are text, empty for a missing one, and a category the model never saw gets its "unseen"
code. Header names follow softzoo's rule: a UTF-8 byte-order mark is dropped, spaces
around names are stripped, an empty or repeated name is an error. OUT.csv has one row per
input row: the distribution's parameters (an ensemble's per member), the predictive mean
and, for every probabilistic family, the central interval ends (from the graph where the
family's interval is closed-form, else computed here in numpy; calibrated where the
model is).

Before use, the file can be verified: ``--sha256`` against a published checksum, or
``--manifest export/manifest.json`` against the zoo manifest's entry for the file.
Python use: ``Predictor("model.onnx").predict({"species": [...], "bill_length_mm": [...]})``
(columns by name), or ``.predict(rows)`` with rows (n, n_numeric) for a numeric-only model.
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
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

__all__ = ["FAMILY_PARAMS", "Predictor", "header_names", "main", "read_table", "verify"]

#: The output parameters of each softzoo family, in output order.
FAMILY_PARAMS = {
    "gamma": ["concentration", "rate"],
    "gaussian": ["loc", "scale"],
    "hurdle_gamma": ["zero_logit", "concentration", "rate"],
    "hurdle_lognormal": ["zero_logit", "loc", "scale"],
    "lognormal": ["loc", "scale"],
    "negative_binomial": ["mean", "concentration"],
    "poisson": ["rate"],
    "positive": ["mean"],
    "student_t": ["loc", "scale", "df"],
    "tweedie": ["mean", "dispersion", "power"],
    "zero_inflated_negative_binomial": ["inflation_logit", "mean", "concentration"],
    "zero_inflated_poisson": ["inflation_logit", "rate"],
}
#: The families with a point mass at 0 beside another family: their base family.
ZERO_MASS_BASES = {
    "hurdle_gamma": "gamma",
    "hurdle_lognormal": "lognormal",
    "zero_inflated_negative_binomial": "negative_binomial",
    "zero_inflated_poisson": "poisson",
}
_DISCRETE = (
    "poisson",
    "negative_binomial",
    "zero_inflated_poisson",
    "zero_inflated_negative_binomial",
)
#: The Tweedie CDF sums this many Poisson terms at most (then the normal approximation).
_TWEEDIE_TERMS = 4096
#: The cells pandas (and so softzoo's training) reads as missing.
NA_TOKENS = frozenset(
    [
        "",
        "#N/A",
        "#N/A N/A",
        "#NA",
        "-1.#IND",
        "-1.#QNAN",
        "-NaN",
        "-nan",
        "1.#IND",
        "1.#QNAN",
        "<NA>",
        "N/A",
        "NA",
        "NULL",
        "NaN",
        "None",
        "n/a",
        "nan",
        "null",
    ]
)
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_TEXT_DTYPES = {"text", "object", "str", "string", "category"}


class InputError(ValueError):
    """Bad input, reported as one line."""


def _require_model_file(model: str | Path) -> None:
    if not Path(model).is_file():
        raise InputError(f"model file {str(model)!r} does not exist")


def verify(model: str | Path, sha256: str) -> None:
    """Raise ``InputError`` unless the file's full sha256 equals ``sha256``."""
    _require_model_file(model)
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


def _category(cell: str, source_dtype: str) -> str:
    """A categorical cell as softzoo's training wrote the category ("" when missing):
    numbers in a numeric-typed column in their shortest form, booleans as True/False."""
    text = cell.strip()
    if text in NA_TOKENS:
        return ""
    if source_dtype == "bool" and text.lower() in ("true", "false"):
        return text.capitalize()
    if source_dtype not in _TEXT_DTYPES and source_dtype != "bool":
        try:
            number = float(text)
        except ValueError:
            return text
        return str(int(number)) if number.is_integer() and abs(number) < 2**53 else repr(number)
    return text


# ---- distributions in numpy: CDFs, quantiles and intervals (no scipy on a deployment) -----
_LANCZOS = (
    0.99999999999980993,
    676.5203681218851,
    -1259.1392167224028,
    771.32342877765313,
    -176.61502916214059,
    12.507343278686905,
    -0.13857109526572012,
    9.9843695780195716e-6,
    1.5056327351493116e-7,
)


def _lgamma(x: np.ndarray) -> np.ndarray:
    """log Γ(x) for x > 0 (Lanczos, g = 7: about 1e-15 relative)."""
    x = np.asarray(x, dtype=np.float64) - 1.0
    series = np.full_like(x, _LANCZOS[0])
    for i, c in enumerate(_LANCZOS[1:], start=1):
        series += c / (x + i)
    t = x + 7.5
    return 0.5 * np.log(2 * np.pi) + (x + 0.5) * np.log(t) - t + np.log(series)


def _erfc(x: np.ndarray) -> np.ndarray:
    """erfc(x) (Numerical Recipes' Chebyshev fit: relative error below 1.2e-7)."""
    z = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = (
        -z * z
        - 1.26551223
        + t
        * (
            1.00002368
            + t
            * (
                0.37409196
                + t
                * (
                    0.09678418
                    + t
                    * (
                        -0.18628806
                        + t
                        * (
                            0.27886807
                            + t
                            * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))
                        )
                    )
                )
            )
        )
    )
    r = t * np.exp(poly)
    return np.where(x >= 0, r, 2.0 - r)


def _normal_cdf(z: np.ndarray) -> np.ndarray:
    return 0.5 * _erfc(-z / np.sqrt(2.0))


def _gammainc(a: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The regularised lower incomplete gamma P(a, x): the series below a + 1, Lentz's
    continued fraction above (Numerical Recipes' gser/gcf), each on its own elements and
    until every one has converged (300 terms at most)."""
    a, x = np.broadcast_arrays(np.asarray(a, np.float64), np.maximum(np.asarray(x, np.float64), 0))
    out = np.zeros(a.shape)
    low, high = (x > 0) & (x < a + 1.0), x >= a + 1.0
    out[low] = _gamma_series(a[low], x[low])
    out[high] = 1.0 - _gamma_fraction(a[high], x[high])
    return np.clip(out, 0.0, 1.0)


def _gamma_front(a: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.exp(a * np.log(x) - x - _lgamma(a))


def _gamma_series(a: np.ndarray, x: np.ndarray) -> np.ndarray:
    term = 1.0 / a
    total = term.copy()
    for n in range(1, 300):
        term = term * x / (a + n)
        total = total + term
        if np.all(term <= total * 1e-17):
            break
    return total * _gamma_front(a, x)


def _gamma_fraction(a: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Q(a, x) = 1 − P(a, x) for x >= a + 1."""
    b = x + 1.0 - a
    c, d = np.full_like(b, 1e300), 1.0 / b
    h = d.copy()
    for i in range(1, 300):
        an = -i * (i - a)
        b = b + 2.0
        d = an * d + b
        d = 1.0 / np.where(np.abs(d) < 1e-300, 1e-300, d)
        c = b + an / np.where(np.abs(c) < 1e-300, 1e-300, c)
        h = h * d * c
        if np.all(np.abs(d * c - 1.0) < 1e-16):
            break
    return _gamma_front(a, x) * h


def _betacf(a: np.ndarray, b: np.ndarray, x: np.ndarray) -> np.ndarray:
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = np.ones_like(x)
    d = 1.0 - qab * x / qap
    d = 1.0 / np.where(np.abs(d) < 1e-300, 1e-300, d)
    h = d.copy()
    for m in range(1, 300):
        m2 = 2 * m
        for aa in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1.0 + aa * d
            d = 1.0 / np.where(np.abs(d) < 1e-300, 1e-300, d)
            c = 1.0 + aa / np.where(np.abs(c) < 1e-300, 1e-300, c)
            h = h * d * c
        if np.all(np.abs(d * c - 1.0) < 1e-15):  # every fraction has converged
            break
    return h


def _betainc(a: np.ndarray, b: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The regularised incomplete beta I_x(a, b) (Numerical Recipes' betai)."""
    a, b, x = np.broadcast_arrays(*(np.asarray(v, np.float64) for v in (a, b, x)))
    inner = np.clip(x, 1e-300, 1 - 1e-16)
    log_front = _lgamma(a + b) - _lgamma(a) - _lgamma(b) + a * np.log(inner) + b * np.log1p(-inner)
    front = np.exp(log_front)
    direct = front * _betacf(a, b, inner) / a
    mirrored = 1.0 - front * _betacf(b, a, 1.0 - inner) / b
    out = np.where(inner < (a + 1.0) / (a + b + 2.0), direct, mirrored)
    return np.clip(np.where(x <= 0, 0.0, np.where(x >= 1, 1.0, out)), 0.0, 1.0)


def family_cdf(family: str, params: dict[str, np.ndarray], y: np.ndarray) -> np.ndarray:
    """F(y) of one softzoo family in numpy (params broadcast against y)."""
    # the series are evaluated on both sides of np.where: the side not taken may divide by 0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return _family_cdf(family, params, y)


def _family_cdf(family: str, params: dict[str, np.ndarray], y: np.ndarray) -> np.ndarray:
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    y = np.asarray(y, np.float64)
    if family in ZERO_MASS_BASES:  # w·δ₀ + (1 − w)·G
        logit = p.pop("zero_logit", p.pop("inflation_logit", None))
        w = 1.0 / (1.0 + np.exp(-logit))
        inside = _family_cdf(ZERO_MASS_BASES[family], p, np.maximum(y, 0.0))
        return np.where(y < 0, 0.0, w + (1.0 - w) * inside)
    if family == "tweedie":
        return _tweedie_cdf(p["mean"], p["dispersion"], p["power"], y)
    if family == "gaussian":
        return _normal_cdf((y - p["loc"]) / p["scale"])
    if family == "lognormal":
        log_y = np.log(np.where(y > 0, y, 1.0))
        return np.where(y > 0, _normal_cdf((log_y - p["loc"]) / p["scale"]), 0.0)
    if family == "student_t":
        t = (y - p["loc"]) / p["scale"]
        tail = 0.5 * _betainc(p["df"] / 2, 0.5, p["df"] / (p["df"] + t * t))
        return np.where(t > 0, 1.0 - tail, tail)
    if family == "gamma":
        return _gammainc(p["concentration"], p["rate"] * np.maximum(y, 0))
    k = np.floor(y)
    if family == "poisson":
        return np.where(k >= 0, 1.0 - _gammainc(k + 1, p["rate"]), 0.0)
    if family == "negative_binomial":
        r, mean = p["concentration"], p["mean"]
        return np.where(k >= 0, _betainc(r, np.maximum(k, 0) + 1, r / (r + mean)), 0.0)
    raise InputError(f"no distribution for family {family!r}")


def _tweedie_cdf(mu: np.ndarray, phi: np.ndarray, power: np.ndarray, y: np.ndarray) -> np.ndarray:
    """e^(−λ) + Σₙ Poisson(n; λ)·P(Gamma(nα, τ) <= y), n within λ ± (6√λ + 4) (softzoo's
    rule)."""
    shape = np.broadcast_shapes(*(np.shape(a) for a in (mu, phi, power, y)))
    mu, phi, power, y = (a.reshape(-1) for a in np.broadcast_arrays(mu, phi, power, y))
    lam = mu ** (2 - power) / (phi * (2 - power))
    alpha = (2 - power) / (power - 1)
    tau = phi * (power - 1) * mu ** (power - 1)
    half = np.ceil(6.0 * np.sqrt(lam) + 4.0)
    start = np.maximum(np.floor(lam) - half, 1.0)
    span = np.floor(lam) + half - start + 1
    fits = span <= _TWEEDIE_TERMS
    n = start[:, None] + np.arange(int(span[fits].max()) if fits.any() else 1)
    log_pmf = n * np.log(lam[:, None]) - lam[:, None] - _lgamma(n + 1)
    inside = np.maximum(y, 0.0)[:, None] / tau[:, None]
    series = np.exp(-lam) + (np.exp(log_pmf) * _gammainc(n * alpha[:, None], inside)).sum(1)
    normal = _normal_cdf((y - mu) / np.sqrt(phi * mu**power))
    value = np.clip(np.where(fits, series, normal), 0.0, 1.0)
    return np.where(y < 0, 0.0, value).reshape(shape)


def _spread(family: str, p: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(mean, standard deviation) of each member, for the bisection's first bracket."""
    if family in ZERO_MASS_BASES:
        return _spread(ZERO_MASS_BASES[family], p)
    if family == "tweedie":
        return p["mean"], np.sqrt(p["dispersion"] * p["mean"] ** p["power"])
    if family in ("gaussian", "student_t"):
        return p["loc"], p["scale"] * (3.0 if family == "student_t" else 1.0)
    if family == "lognormal":
        return np.exp(p["loc"]), np.exp(p["loc"]) * np.expm1(p["scale"])
    if family == "gamma":
        return p["concentration"] / p["rate"], np.sqrt(p["concentration"]) / p["rate"]
    mean = p.get("rate", p.get("mean"))
    extra = mean**2 / p["concentration"] if "concentration" in p else 0.0
    return mean, np.sqrt(mean + extra)


def mixture_quantile(family: str, params: dict[str, np.ndarray], q: float) -> np.ndarray:
    """The q-quantile of each row's equal-weight mixture of members (member parameters
    (n, members); a single model is (n,)) by bisection on the mixture CDF."""
    p = {k: np.asarray(v, np.float64).reshape(len(v), -1) for k, v in params.items()}

    def cdf(y: np.ndarray) -> np.ndarray:
        return family_cdf(family, p, y[:, None]).mean(axis=1)

    mean, sd = _spread(family, p)
    lo = (mean - 20 * sd).min(axis=1)
    hi = (mean + 20 * sd).max(axis=1)
    if family not in ("gaussian", "student_t"):  # the support starts at 0
        lo = np.full_like(lo, -1.0 if family in _DISCRETE else 0.0)
    for _ in range(200):  # widen until the bracket holds the quantile
        low_ok, high_ok = cdf(lo) < q, cdf(hi) >= q
        if low_ok.all() and high_ok.all():
            break
        width = hi - lo
        lo = np.where(low_ok, lo, lo - width)
        hi = np.where(high_ok, hi, hi + width)
    discrete = family in _DISCRETE
    for _ in range(200):
        if discrete and np.all(hi - lo <= 1):
            break
        if not discrete and np.all(hi - lo <= 1e-15 * np.maximum(np.abs(lo), np.abs(hi))):
            break  # the bracket is as narrow as float64 allows
        mid = np.floor((lo + hi) / 2) if discrete else (lo + hi) / 2
        below = cdf(mid) < q
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    if discrete:
        return hi
    if family in ("gaussian", "student_t"):
        return (lo + hi) / 2
    return np.where(cdf(np.zeros_like(lo)) >= q, 0.0, (lo + hi) / 2)  # a point mass at 0


class Predictor:
    """An onnxruntime session over a softzoo ONNX file, checked against its metadata: the
    metadata must parse and agree with the graph (inputs, output names) and with its
    family's parameters, else one clear error."""

    def __init__(self, model: str | Path, threads: int = 1) -> None:
        _require_model_file(model)
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
        self.columns: list[dict] = list(_json_metadata(meta, "input_columns", model))
        self.impute = meta.get("missing_policy", "impute") == "impute"
        #: the column of each row's exposure (> 0), fed to the graph's "exposure" input
        self.exposure_column: str | None = meta.get("exposure_column")
        calibration = _json_metadata(meta, "calibration", model) if "calibration" in meta else {}
        self.nominal_level = float(meta.get("interval_level", 0.9))
        self.level = float(calibration.get("level", self.nominal_level))
        declared = list(_json_metadata(meta, "param_names", model))
        self.output_names = [o.name for o in self.session.get_outputs()]
        self._check(model, declared)

    @property
    def numeric_names(self) -> list[str]:
        return [c["name"] for c in self.columns if c["role"] == "numeric"]

    @property
    def input_names(self) -> list[str]:
        """Every column a table must have: the features, then the exposure column."""
        return self.feature_names + ([self.exposure_column] if self.exposure_column else [])

    def _check(self, model: str | Path, declared: list[str]) -> None:
        problems = []
        expected = FAMILY_PARAMS.get(self.family)
        if expected is None:
            problems.append(f"family {self.family!r} is not one of {sorted(FAMILY_PARAMS)}")
        else:
            outputs = [n.removeprefix("member_") for n in self.output_names]
            if outputs[: len(expected)] != expected:
                problems.append(
                    f"family {self.family!r} has parameters {expected}, the graph outputs "
                    f"{self.output_names}"
                )
            if declared != expected:
                problems.append(f"param_names {declared} but family {self.family!r} has {expected}")
        if self.output_names[0].startswith("member_"):
            graph_params = [n.removeprefix("member_") for n in self.output_names]
            if expected is not None and graph_params[: len(expected)] != expected:
                problems.append(f"the members' outputs {self.output_names} are not {expected}")
        names = [c.get("name") for c in self.columns]
        if names != self.feature_names or len(set(names)) != len(names):
            problems.append(f"input_columns {names} do not match feature_names")
        graph = {i.name: i.shape[-1] for i in self.session.get_inputs()}
        expected = {_input(c): "batch" for c in self.columns if c["role"] == "categorical"}
        if self.numeric_names:
            expected = {"features": len(self.numeric_names), **expected}
        if self.exposure_column:
            expected["exposure"] = "batch"
        if graph != expected:
            problems.append(f"the input columns make inputs {expected} but the graph takes {graph}")
        if problems:
            raise InputError(
                f"{str(model)!r} has metadata that contradicts its graph ({'; '.join(problems)}):"
                " the file was damaged or edited; export it again"
            )

    def predict(
        self, table: Mapping[str, Sequence] | np.ndarray, batch: int = 65536
    ) -> dict[str, np.ndarray]:
        """Every graph output for a table: a mapping column name → raw values (numbers, or
        text for categorical columns; None/"" for a missing cell), or, for a numeric-only
        model, rows of shape (n, n_features) in the metadata's order."""
        feeds = self._feeds(table)
        n = len(next(iter(feeds.values()))) if feeds else 0
        chunks = [
            self.session.run(None, {k: v[i : i + batch] for k, v in feeds.items()})
            for i in range(0, n, batch)
        ] or [[np.zeros((0, *_member_shape(o)), np.float32) for o in self.session.get_outputs()]]
        outputs = {
            name: np.concatenate([c[k] for c in chunks]) for k, name in enumerate(self.output_names)
        }
        return outputs | self._intervals(outputs)

    def _intervals(self, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The central interval where the graph has none: a mixture's, and single models of
        families without a closed form, at the (calibrated) level of the metadata."""
        tag = f"{round(self.nominal_level * 100):d}"
        if f"lower_{tag}" in outputs or self.family == "positive" or not len(self.output_names):
            return {}
        params = {
            name: outputs[f"member_{name}" if f"member_{name}" in outputs else name]
            for name in FAMILY_PARAMS[self.family]
        }
        tail = (1.0 - self.level) / 2.0
        return {
            f"lower_{tag}": mixture_quantile(self.family, params, tail),
            f"upper_{tag}": mixture_quantile(self.family, params, 1.0 - tail),
        }

    def _feeds(self, table: Mapping[str, Sequence] | np.ndarray) -> dict[str, np.ndarray]:
        if not isinstance(table, Mapping):
            rows = np.asarray(table, dtype=np.float32)
            if (
                len(self.numeric_names) != len(self.feature_names)
                or self.exposure_column
                or rows.ndim != 2
                or (rows.shape[1] != len(self.feature_names))
            ):
                raise InputError(
                    f"expected rows with {len(self.feature_names)} features "
                    f"({', '.join(self.feature_names)}), got shape {rows.shape}; a model with "
                    "categorical columns or an exposure takes a mapping of columns"
                )
            return {"features": rows}
        missing = [c for c in self.input_names if c not in table]
        if missing:
            raise InputError(f"the table lacks column(s) {', '.join(missing)}")
        feeds = {}
        if self.numeric_names:
            feeds["features"] = np.stack(
                [self._numbers(table[c], c) for c in self.numeric_names], axis=1
            )
        for column in self.columns:
            if column["role"] == "categorical":
                values = [
                    "" if v is None else _category(str(v), column.get("source_dtype", "text"))
                    for v in table[column["name"]]
                ]
                feeds[_input(column)] = np.array(values, dtype=object)
        if self.exposure_column:
            feeds["exposure"] = self._exposure(table[self.exposure_column])
        return feeds

    def _exposure(self, values: Sequence) -> np.ndarray:
        name = self.exposure_column
        out = np.array([_number(v, name, row) for row, v in enumerate(values)], np.float32)
        bad = np.flatnonzero(~(out > 0) | ~np.isfinite(out))
        if bad.size:
            raise InputError(
                f"row {bad[0]}: exposure column {name!r} is {values[bad[0]]!r}; every row needs "
                f"an exposure > 0 ({bad.size} row(s) do not): fix or drop those rows"
            )
        return out

    def _numbers(self, values: Sequence, name: str) -> np.ndarray:
        out = np.empty(len(values), dtype=np.float32)
        for row, value in enumerate(values):
            number = _number(value, name, row)
            if np.isnan(number) and not self.impute:
                raise InputError(
                    f"row {row}: column {name!r} is missing and the model was trained with "
                    "missing='error'"
                )
            out[row] = number
        return out


def _input(column: dict) -> str:
    """The graph input of a categorical column (its name, unless the metadata says)."""
    return str(column.get("input", column["name"]))


def _number(value: object, name: str, row: int) -> float:
    if value is None or (isinstance(value, str) and value.strip() in NA_TOKENS):
        return float("nan")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"row {row}: column {name!r} holds {value!r}, not a number") from None
    if not (np.isnan(number) or abs(number) <= _FLOAT32_MAX):
        raise InputError(f"row {row}: column {name!r} holds {value!r}: inf or beyond float32")
    return number


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


def read_table(path: str | Path, names: list[str]) -> dict[str, list[str]]:
    """The named columns of a CSV as lists of raw cells, with one clear error per problem."""
    if not Path(path).is_file():
        raise InputError(f"input file {str(path)!r} does not exist")
    source = repr(str(path))
    try:
        return _read_columns(path, names, source)
    except UnicodeDecodeError as err:
        raise InputError(
            f"input file {source} is not UTF-8 text (byte {err.start}: "
            f"{err.object[err.start : err.start + 1]!r}): save it as UTF-8 (Excel: CSV UTF-8)"
        ) from None


def _read_columns(path: str | Path, names: list[str], source: str) -> dict[str, list[str]]:
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
        positions = [header.index(n) for n in names]
        columns: dict[str, list[str]] = {n: [] for n in names}
        for line, record in enumerate(reader, start=2):
            if not record:
                continue
            if len(record) < len(header):
                raise InputError(
                    f"{source} line {line}: {len(record)} cells for {len(header)} columns"
                )
            if any(cell.strip() for cell in record[len(header) :]):
                raise InputError(_extra_cells_message(source, line, len(record), len(header)))
            for name, position in zip(names, positions, strict=True):
                columns[name].append(record[position])
    if names and not columns[names[0]]:
        raise InputError(f"input file {source} has a header but no data rows")
    return columns


def _extra_cells_message(source: str, line: int, cells: int, columns: int) -> str:
    """The error for a row with more cells than the header (softzoo.data's rule too)."""
    return (
        f"{source} line {line}: {cells} cells for {columns} columns, and the extra cells are "
        "not empty: the rows start with row names (as R's write.table writes them) or "
        "the header lacks a name; write the file without row names (row.names = FALSE), "
        "or name every column in the header"
    )


def _positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


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


def _member_shape(output: object) -> tuple:
    shape = getattr(output, "shape", ["batch"])
    return tuple(s for s in shape[1:] if isinstance(s, int))


def _flat(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """An ensemble's member outputs (n, members) as columns ``loc_0``, ``loc_1``, …"""
    flat = {}
    for name, values in columns.items():
        if values.ndim == 2:
            base = name.removeprefix("member_")
            flat |= {f"{base}_{m}": values[:, m] for m in range(values.shape[1])}
        else:
            flat[name] = values
    return flat


def _write_csv(path: Path, columns: dict[str, np.ndarray]) -> None:
    columns = _flat(columns)
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


def _errors_by_line(error: InputError, source: str) -> InputError:
    """A row-numbered error of the predictor, with the CSV line instead (header is line 1)."""
    text = str(error)
    if text.startswith("row "):
        row, rest = text[4:].split(":", 1)
        return InputError(f"{source} line {int(row) + 2}:{rest}")
    return error


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("input")
    parser.add_argument("-o", "--output", required=True)
    check = parser.add_mutually_exclusive_group()
    check.add_argument("--sha256", help="verify the model file against this checksum first")
    check.add_argument("--manifest", help="verify the model file against this manifest.json")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=_positive_int, default=65536, help="rows per run (>= 1)")
    args = parser.parse_args(argv)
    try:
        output = Path(args.output)
        _check_output(output, {"model file": args.model, "input file": args.input})
        if args.sha256 or args.manifest:
            verify(args.model, args.sha256 or _manifest_sha256(args.model, args.manifest))
        predictor = Predictor(args.model, args.threads)
        table = read_table(args.input, predictor.input_names)
        try:
            predictions = predictor.predict(table, args.batch)
        except InputError as err:
            raise _errors_by_line(err, repr(args.input)) from None
        _write_csv(output, predictions)
    except InputError as err:
        print(f"predict.py: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {len(next(iter(predictions.values())))} predictions to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
