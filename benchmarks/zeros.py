"""Zeros, exposure and weights, measured side by side in one run.

    python benchmarks/zeros.py [--out benchmarks/results] [--epochs 60]

(A) RAND HIE medical spending (bundled ``randhie``, target ``meddol``: 0 for 22 % of the
    person-years; its nine default features; the bundled seed-0 split, 70/10/20):
    softzoo ``tweedie`` (power 1.5, and learned), ``hurdle_lognormal`` and ``hurdle_gamma``
    against LightGBM's Tweedie objective (a point prediction) and a Tweedie GLM
    (scikit-learn's ``TweedieRegressor``, power 1.5, log link; its dispersion from the
    Pearson statistic of the training rows, so that it has a likelihood). Test NLL where
    defined, RMSE of the mean, MAE, CRPS, PICP90, and the calibration of P(y = 0): rows in
    ten equal deciles of predicted P(y = 0), predicted against observed share of zeros.
(B) A simulation with known truth: zero-inflated negative binomial counts with an exposure
    (log-uniform over 0.1 to 10), inflation π(x) and concentration r = 2. softzoo's
    ``zero_inflated_negative_binomial`` with and without the exposure, ``negative_binomial``
    and ``poisson`` with it; the truth's own NLL; how close the fitted π and r come.

Every softzoo model is one network (2 x 64, softplus), Adam 3e-3, batch 256, early stopping
on the validation rows: the families are compared, not the recipe. Results: ``zeros.json``
and ``zeros.md`` with the host.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import host_info, result_stem, write_results

from softzoo.cli import main
from softzoo.data import TabularDataModule
from softzoo.families import get_family
from softzoo.models import load_checkpoint
from softzoo.runner import QUIET_RUN

DECILES = 10


def _p0_calibration(p0: np.ndarray, y: np.ndarray) -> dict:
    """Predicted against observed share of zeros in ten equal-count deciles of p0."""
    order = np.argsort(p0, kind="stable")
    bins = np.array_split(order, DECILES)
    predicted = [float(p0[b].mean()) for b in bins]
    observed = [float((y[b] == 0).mean()) for b in bins]
    gaps = np.abs(np.array(predicted) - np.array(observed))
    return {
        "p0_predicted": predicted,
        "p0_observed": observed,
        "p0_max_gap": float(gaps.max()),
        "p0_mean_gap": float(gaps.mean()),
    }


def _family_scores(family, params, y: torch.Tensor) -> dict:
    """NLL, RMSE, MAE, CRPS, PICP90 and the P(0) calibration of a family's predictions."""
    mean = family.mean(params)
    lower, upper = family.interval(params, 0.9)
    return {
        "nll": float(family.nll(params, y).mean()),
        "rmse": float(torch.sqrt(((mean - y) ** 2).mean())),
        "mae": float((mean - y).abs().mean()),
        "crps": float(family.crps(params, y).mean()),
        "picp90": float(((y >= lower) & (y <= upper)).double().mean()),
        **_p0_calibration(family.prob_zero(params).numpy(), y.numpy()),
    }


def _fit_softzoo(args: list[str], folder: Path) -> tuple[object, float]:
    start = time.perf_counter()
    run = ["fit", *args, "--checkpoint.dirpath", str(folder), "--trainer.logger", "false"]
    run += ["--checkpoint.save_last", "false"]
    if main([*run, *QUIET_RUN]) != 0:
        raise RuntimeError(f"softzoo fit failed: {' '.join(args)}")
    return load_checkpoint(folder / "best.ckpt"), time.perf_counter() - start


def _network(epochs: int) -> list[str]:
    return [
        "--model.hidden", "[64, 64]", "--model.ensemble_size", "1",
        "--model.numeric_embedding", "none", "--model.warmup_fraction", "0",
        "--model.lr", "3e-3", "--data.batch_size", "256",
        "--trainer.max_epochs", str(epochs), "--early_stopping_patience", "10",
        "--seed_everything", "0",
    ]  # fmt: skip


# ---- (A) RAND HIE medical spending -------------------------------------------------------
SPENDING = {
    "softzoo tweedie (p = 1.5)": ("tweedie", "{power: 1.5}"),
    "softzoo tweedie (p learned)": ("tweedie", "{power: learned}"),
    "softzoo hurdle_lognormal": ("hurdle_lognormal", "{}"),
    "softzoo hurdle_gamma": ("hurdle_gamma", "{}"),
}


def _spending_rows() -> tuple[TabularDataModule, dict]:
    data = TabularDataModule(dataset="randhie", target="meddol", seed=0)
    x, y = data.arrays.features, data.arrays.target
    return data, {s: (x[i], y[i]) for s, i in data.split_indices.items()}


def spending(epochs: int, work: Path) -> dict:
    data, rows = _spending_rows()
    x_test, y_test = (torch.as_tensor(a, dtype=torch.float32) for a in rows["test"])
    results = {}
    for label, (family, options) in SPENDING.items():
        args = ["--data.dataset", "randhie", "--data.target", "meddol"]
        args += ["--model.family", family, "--model.family_options", options, *_network(epochs)]
        model, seconds = _fit_softzoo(args, work / family / options.strip("{}: ").replace(" ", ""))
        params = model.predict_params(x_test)
        results[label] = _family_scores(model.family, params, y_test) | {"fit_s": seconds}
        print(f"{label}: {results[label]['nll']:.4f} nll", flush=True)
    results["Tweedie GLM (scikit-learn, p = 1.5)"] = _glm(rows, y_test)
    results["LightGBM tweedie (point)"] = _lightgbm(rows)
    return {
        "rows": {s: len(r[1]) for s, r in rows.items()},
        "zero_share_test": float((rows["test"][1] == 0).mean()),
        "features": data.feature_names,
        "models": results,
    }


def _glm(rows: dict, y_test: torch.Tensor) -> dict:
    from sklearn.linear_model import TweedieRegressor
    from sklearn.preprocessing import StandardScaler

    (xt, yt), (xs, _) = rows["train"], rows["test"]
    scaler = StandardScaler().fit(xt)
    start = time.perf_counter()
    glm = TweedieRegressor(power=1.5, link="log", alpha=0.0, max_iter=1000)
    glm.fit(scaler.transform(xt), yt)
    seconds = time.perf_counter() - start
    fitted = glm.predict(scaler.transform(xt))
    # the Pearson estimate of the dispersion: Σ (y − μ)² / μ^p over n − parameters
    dispersion = float(np.sum((yt - fitted) ** 2 / fitted**1.5) / (len(yt) - xt.shape[1] - 1))
    mean = torch.as_tensor(glm.predict(scaler.transform(xs)), dtype=torch.float64)
    params = (mean, torch.full_like(mean, dispersion), torch.full_like(mean, 1.5))
    scores = _family_scores(get_family("tweedie"), params, y_test.double())
    return scores | {"fit_s": seconds, "dispersion": dispersion}


def _lightgbm(rows: dict) -> dict:
    import lightgbm as lgb

    (xt, yt), (xv, yv), (xs, ys) = rows["train"], rows["val"], rows["test"]
    start = time.perf_counter()
    model = lgb.LGBMRegressor(
        objective="tweedie", tweedie_variance_power=1.5, n_estimators=5000,
        learning_rate=0.05, verbose=-1,
    )  # fmt: skip
    model.fit(xt, yt, eval_set=[(xv, yv)], callbacks=[lgb.early_stopping(100, verbose=False)])
    mean = model.predict(xs)
    return {
        "nll": None, "crps": None, "picp90": None, "p0_max_gap": None, "p0_mean_gap": None,
        "rmse": float(np.sqrt(np.mean((ys - mean) ** 2))),
        "mae": float(np.mean(np.abs(ys - mean))),
        "fit_s": time.perf_counter() - start,
    }  # fmt: skip


# ---- (B) simulated zero-inflated counts with an exposure ---------------------------------
TRUE_CONCENTRATION = 2.0


def simulated_table(n: int = 20_000, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """Counts ~ π(x)·δ₀ + (1 − π(x))·NB(μ(x)·e, r = 2), with the truth's parameters."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3))
    exposure = np.exp(rng.uniform(math.log(0.1), math.log(10.0), n))
    mean = np.exp(0.5 + 0.6 * x[:, 0] - 0.4 * x[:, 1]) * exposure
    inflation = 1 / (1 + np.exp(-(-0.85 + 0.8 * x[:, 2])))
    counts = rng.negative_binomial(
        TRUE_CONCENTRATION, TRUE_CONCENTRATION / (TRUE_CONCENTRATION + mean)
    )
    y = np.where(rng.uniform(size=n) < inflation, 0, counts)
    split = np.where(
        rng.uniform(size=n) < 0.7, "train", np.where(rng.uniform(size=n) < 1 / 3, "val", "test")
    )
    frame = pd.DataFrame(x, columns=["x0", "x1", "x2"]).assign(exposure=exposure, split=split, y=y)
    truth = {"mean": mean, "inflation": inflation}
    return frame, truth


COUNTS = {
    "zero_inflated_negative_binomial + exposure": ("zero_inflated_negative_binomial", True),
    "zero_inflated_negative_binomial, no exposure": ("zero_inflated_negative_binomial", False),
    "negative_binomial + exposure": ("negative_binomial", True),
    "poisson + exposure": ("poisson", True),
}


def counts(epochs: int, work: Path) -> dict:
    frame, truth = simulated_table()
    path = work / "zinb.csv"
    frame.to_csv(path, index=False)
    test = (frame["split"] == "test").to_numpy()
    y = torch.as_tensor(frame["y"].to_numpy()[test], dtype=torch.float64)
    true_params = (
        torch.as_tensor(np.log(truth["inflation"][test] / (1 - truth["inflation"][test]))),
        torch.as_tensor(truth["mean"][test]),
        torch.full((int(test.sum()),), TRUE_CONCENTRATION, dtype=torch.float64),
    )
    zinb = get_family("zero_inflated_negative_binomial")
    results = {"truth": {"nll": float(zinb.nll(true_params, y).mean())}}
    for label, (family, exposed) in COUNTS.items():
        args = ["--data.path", str(path), "--data.target", "y", "--data.split_column", "split"]
        args += ["--model.family", family, *_network(epochs)]
        args += (
            ["--data.exposure_column", "exposure"] if exposed else ["--data.ignore", "[exposure]"]
        )
        model, seconds = _fit_softzoo(args, work / label.replace(" ", "_").replace(",", ""))
        columns = ["x0", "x1", "x2"] + (["exposure"] if exposed else [])
        x = torch.as_tensor(frame.loc[test, columns].to_numpy(), dtype=torch.float32)
        params = tuple(p.double() for p in model.predict_params(x))
        family_ = model.family
        row = {
            "nll": float(family_.nll(params, y).mean()),
            "rmse": float(torch.sqrt(((family_.mean(params) - y) ** 2).mean())),
            "fit_s": seconds,
        }
        if family == "zero_inflated_negative_binomial":
            fitted = torch.sigmoid(params[0]).numpy()
            row["inflation_mean_abs_error"] = float(
                np.abs(fitted - truth["inflation"][test]).mean()
            )
            row["concentration_median"] = float(params[2].median())
        results[label] = row
        print(f"{label}: {row['nll']:.4f} nll", flush=True)
    return {
        "rows": {s: int((frame["split"] == s).sum()) for s in ("train", "val", "test")},
        "models": results,
    }


def _fmt(value: object, digits: int = 3) -> str:
    return (
        "—" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)
    )


def markdown(results: dict) -> str:
    lines = [
        "# Zeros, exposure and weights (`benchmarks/zeros.py`)",
        "",
        f"Host: {results['host']['cpu']}, {results['host']['torch_threads']} torch thread(s), "
        f"torch {results['host']['torch']}. Command: `{results['command']}`.",
        "",
        "## (A) RAND HIE medical spending (`meddol`, test rows: "
        f"{results['spending']['rows']['test']}, zeros {results['spending']['zero_share_test']:.1%})",
        "",
        "| model | NLL | RMSE | MAE | CRPS | PICP90 | P(0) max gap | P(0) mean gap | fit s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in results["spending"]["models"].items():
        lines.append(
            f"| {name} | {_fmt(row['nll'])} | {_fmt(row['rmse'], 1)} | {_fmt(row['mae'], 1)} | "
            f"{_fmt(row['crps'], 1)} | {_fmt(row['picp90'])} | {_fmt(row['p0_max_gap'])} | "
            f"{_fmt(row['p0_mean_gap'])} | {_fmt(row['fit_s'], 0)} |"
        )
    lines += [
        "",
        "## (B) Simulated zero-inflated NB counts with an exposure (truth: r = 2)",
        "",
        "| model | test NLL | RMSE | mean abs error of π | median r |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, row in results["counts"]["models"].items():
        lines.append(
            f"| {name} | {_fmt(row['nll'], 4)} | {_fmt(row.get('rmse'), 3)} | "
            f"{_fmt(row.get('inflation_mean_abs_error'))} | {_fmt(row.get('concentration_median'), 2)} |"
        )
    return "\n".join(lines)


def run(epochs: int, out: Path) -> dict:
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="softzoo-zeros-") as tmp:
        work = Path(tmp)
        results = {
            "host": host_info(),
            "command": " ".join(["python", "benchmarks/zeros.py", *sys.argv[1:]]),
            "spending": spending(epochs, work),
            "counts": counts(epochs, work),
        }
    write_results(out, result_stem("zeros"), results, markdown(results))
    return results


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--epochs", type=int, default=60)
    args = parser.parse_args()
    print(markdown(run(args.epochs, Path(args.out))))


if __name__ == "__main__":
    main_()
