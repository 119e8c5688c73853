"""softzoo's one-line default against what a practitioner tries first, side by side on
public tables with text columns: LightGBM (native categoricals; a point model and 5 %/95 %
quantile models), CatBoost ``RMSEWithUncertainty`` on y and on log y (native
categoricals), NGBoost (LogNormal, or Poisson for counts, on one-hot columns).

    python benchmarks/peers.py [--tables cps1988 yrbss nycflights loans] [--out benchmarks/results]

Every system gets the same rows: a seeded 80/20 train/test split of each table, and 10 %
of the training rows held out for early stopping (softzoo's validation split, the
boosters' eval set). softzoo runs as a new user would: ``softzoo fit --data.path F
--data.target T --data.split_column split --model.family FAMILY`` (plus ``--data.ignore``
for the row-name and leaking columns, and ``--data.categorical`` where its error asks for
it: yrbss's grade is a number except for 16 cells 'other', its hours of TV a number except
for '5+', '<1' and 'do not watch'), nothing else. The tables come from Rdatasets
(R packages' data sets as CSV) at a pinned commit and are checked against their sha256;
they are cached under ``benchmarks/data/`` (git-ignored). The peers are the optional
``bench`` extra (``pip install softzoo[bench]``); a missing one is skipped with a line.

Per table and system: test NLL (per row, in the target's units; discrete tables: the
pmf's, so continuous peers have none there), RMSE of the mean, PICP90 and mean width of
the central 90 % interval, fit seconds. The last line printed is one JSON object with
``nll_wins`` (tables where softzoo's NLL is at most every peer's), ``rmse_over_best_peer``
(per table, and the worst), ``fit_seconds`` (softzoo's, per table),
``fit_seconds_over_catboost`` (softzoo's fit seconds over those of the CatBoost fit a user
would keep, the better of y and log y; per table, and the worst) and the host.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import math
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from _results import host_info, write_results
from scipy import stats

CACHE = Path(__file__).parent / "data"
COMMIT = "1dcc2bf5f955cc1224a3e1307256e1fe86b68dae"
URL = f"https://raw.githubusercontent.com/vincentarelbundock/Rdatasets/{COMMIT}/csv/{{}}"
Z90 = stats.norm.ppf(0.95)


@dataclass(frozen=True)
class Table:
    path: str  # under Rdatasets' csv/
    sha256: str
    target: str
    family: str  # softzoo's
    ignore: tuple[str, ...] = ()
    discrete: bool = False
    #: columns softzoo refuses to guess about and a user then names (its error says so)
    categorical: tuple[str, ...] = ()
    notes: str = ""


TABLES = {
    "cps1988": Table(
        "AER/CPS1988.csv",
        "ef5ee9cbf3674f9cf242549517cf7801bffc5e98c1006055c9fdefebaf386251",
        "wage",
        "lognormal",
        ("rownames",),
        notes="CPS March 1988 weekly wages (AER); 4 text columns",
    ),
    "yrbss": Table(
        "openintro/yrbss.csv",
        "35a423b60beda0697f7c9f572676ef00bbdc2647c4a3fe93f39c9fcec5b3a8d2",
        "weight",
        "gamma",
        ("rownames",),
        categorical=(
            "grade",
            "text_while_driving_30d",
            "hours_tv_per_school_day",
            "school_night_hours_sleep",
        ),
        notes="Youth Risk Behavior Surveillance System (openintro): weight in kg; text "
        "columns and empty cells",
    ),
    "nycflights": Table(
        "openintro/nycflights.csv",
        "8113fb0ed79d21c77a8209f85105edaaeef0318c3f60e65e08922c4f88cc34da",
        "air_time",
        "lognormal",
        ("rownames", "year", "arr_time", "arr_delay", "tailnum", "flight"),
        notes="NYC flights 2013 (openintro sample): air time in minutes; arrival columns "
        "left out (they leak the target), tail and flight numbers too (identifiers)",
    ),
    "loans": Table(
        "openintro/loans_full_schema.csv",
        "50561436dd63f94233e341a418f00326421b65363cb3eb527b11e2e623a5dd41",
        "total_credit_lines",
        "negative_binomial",
        (
            "rownames",
            "emp_title",
            "open_credit_lines",
            "num_total_cc_accounts",
            "num_open_cc_accounts",
            "num_cc_carrying_balance",
            "num_mort_accounts",
            "num_active_debit_accounts",
            "num_satisfactory_accounts",
            "total_credit_utilized",
            "total_debit_limit",
            "current_accounts_delinq",
            "num_accounts_120d_past_due",
            "num_accounts_30d_past_due",
            "tax_liens",
            "public_record_bankrupt",
            "issue_month",
            "loan_status",
            "initial_listing_status",
            "disbursement_method",
            "balance",
            "paid_total",
            "paid_principal",
            "paid_interest",
            "paid_late_fees",
            "sub_grade",
            "installment",
        ),
        discrete=True,
        notes="Lending Club loans (openintro): the number of credit lines (a count) from the "
        "application; the other account counts left out (they nearly sum to it)",
    ),
}


def table_file(name: str) -> Path:
    """The table with a ``split`` column (train/val/test), fetched and checked once."""
    table = TABLES[name]
    raw = CACHE / Path(table.path).name
    if not raw.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(URL.format(table.path), timeout=60) as response:
            raw.write_bytes(response.read())
    digest = hashlib.sha256(raw.read_bytes()).hexdigest()
    if digest != table.sha256:
        raise ValueError(f"{raw} has sha256 {digest}, expected {table.sha256}: delete it")
    split = CACHE / f"{name}_split.csv"
    frame = pd.read_csv(raw)
    # the target's support: > 0, or >= 0 for counts; rows without a target are left out,
    # as softzoo leaves them out (the peers cannot train on them)
    y = frame[table.target]
    frame = frame[y.notna() & ((y >= 0) if table.discrete else (y > 0))].reset_index(drop=True)
    rng = np.random.default_rng(0)
    draw = rng.random(len(frame))
    frame["split"] = np.where(draw < 0.2, "test", np.where(draw < 0.28, "val", "train"))
    frame.to_csv(split, index=False)
    return split


def _features(frame: pd.DataFrame, table: Table) -> list[str]:
    return [c for c in frame.columns if c not in (*table.ignore, table.target, "split")]


def _gaussian_scores(y, mean, sd) -> dict:
    nll = -stats.norm.logpdf(y, mean, sd)
    return {
        "nll": float(np.mean(nll)),
        "rmse": float(np.sqrt(np.mean((y - mean) ** 2))),
        "picp90": float(np.mean(np.abs(y - mean) <= Z90 * sd)),
        "width90": float(np.mean(2 * Z90 * sd)),
    }


def _lognormal_scores(y, mu, sigma) -> dict:
    log_y = np.log(y)
    nll = -stats.norm.logpdf(log_y, mu, sigma) + log_y
    mean = np.exp(mu + sigma**2 / 2)
    return {
        "nll": float(np.mean(nll)),
        "rmse": float(np.sqrt(np.mean((y - mean) ** 2))),
        "picp90": float(np.mean(np.abs(log_y - mu) <= Z90 * sigma)),
        "width90": float(np.mean(np.exp(mu + Z90 * sigma) - np.exp(mu - Z90 * sigma))),
    }


def run_softzoo(name: str, path: Path) -> dict:
    from softzoo.cli import main
    from softzoo.data import TabularDataModule
    from softzoo.models import load_checkpoint
    from softzoo.runner import QUIET_RUN

    table = TABLES[name]
    folder = CACHE / f"softzoo-{name}"
    args = [
        "--data.path", str(path), "--data.target", table.target,
        "--data.split_column", "split", "--model.family", table.family,
        "--data.ignore", json.dumps(list(table.ignore)),
        "--data.categorical", json.dumps(list(table.categorical)),
        "--checkpoint.dirpath", str(folder), "--trainer.logger", "false",
        "--checkpoint.save_last", "false",
    ]  # fmt: skip
    for stale in folder.glob("*.ckpt"):
        stale.unlink()
    start = time.perf_counter()
    if main(["fit", *args, *QUIET_RUN]) != 0:
        raise RuntimeError(f"softzoo fit failed on {name}")
    seconds = time.perf_counter() - start
    model = load_checkpoint(folder / "best.ckpt")
    data = TabularDataModule(
        path=str(path), target=table.target, split_column="split",
        ignore=list(table.ignore), categorical=list(table.categorical),
        vocabularies=model.categories,
    )  # fmt: skip
    metrics = model.evaluate(*data.tensors("test"))
    hp = model.hparams
    return {
        "nll": metrics["nll"], "rmse": metrics["rmse"], "picp90": metrics["picp_90"],
        "width90": metrics["width_90"], "fit_s": seconds,
        "model": f"{hp.ensemble_type} x{hp.ensemble_size}, {list(hp.hidden)}, "
        f"{hp.numeric_embedding}",
    }  # fmt: skip


def _frames(path: Path, table: Table, categorical: str) -> tuple:
    """(train, val, test) features and targets; text columns as pandas categories
    ("native") or one-hot with medians for numeric gaps ("onehot")."""
    frame = pd.read_csv(path)
    features = _features(frame, table)
    x = frame[features].copy()
    # text: anything not a number (object, pandas 3's str, bool)
    numeric = pd.api.types.is_numeric_dtype
    text = [c for c in features if not numeric(x[c]) or pd.api.types.is_bool_dtype(x[c])]
    if categorical == "native":
        for c in text:
            x[c] = x[c].astype("category")
    else:
        train = frame["split"] == "train"
        numeric = [c for c in features if c not in text]
        x[numeric] = x[numeric].fillna(x.loc[train, numeric].median())
        x = pd.get_dummies(x, columns=text, dummy_na=True, dtype=float)
    y = frame[table.target].to_numpy(float)
    parts = [frame["split"] == s for s in ("train", "val", "test")]
    return tuple((x[p], y[p.to_numpy()]) for p in parts)


def run_lightgbm(path: Path, table: Table) -> dict:
    import lightgbm as lgb

    (xt, yt), (xv, yv), (xs, ys) = _frames(path, table, "native")
    start = time.perf_counter()
    models = {}
    for key, options in {
        "mean": {"objective": "poisson" if table.discrete else "regression"},
        "low": {"objective": "quantile", "alpha": 0.05},
        "high": {"objective": "quantile", "alpha": 0.95},
    }.items():
        model = lgb.LGBMRegressor(n_estimators=5000, learning_rate=0.05, verbose=-1, **options)
        model.fit(xt, yt, eval_set=[(xv, yv)], callbacks=[lgb.early_stopping(100, verbose=False)])
        models[key] = model.predict(xs)
    seconds = time.perf_counter() - start
    low, high = np.minimum(models["low"], models["high"]), np.maximum(models["low"], models["high"])
    return {
        "nll": None,
        "rmse": float(np.sqrt(np.mean((ys - models["mean"]) ** 2))),
        "picp90": float(np.mean((ys >= low) & (ys <= high))),
        "width90": float(np.mean(high - low)),
        "fit_s": seconds,
    }


def run_catboost(path: Path, table: Table, log: bool) -> dict:
    from catboost import CatBoostRegressor, Pool

    (xt, yt), (xv, yv), (xs, ys) = _frames(path, table, "native")
    text = [c for c in xt.columns if str(xt[c].dtype) == "category"]

    def pool(x, y):
        x = x.copy()
        for c in text:  # CatBoost takes strings; a missing cell is the category "nan"
            x[c] = x[c].astype(str).fillna("nan")
        return Pool(x, np.log(y) if log else y, cat_features=text)

    model = CatBoostRegressor(
        loss_function="RMSEWithUncertainty", iterations=5000, learning_rate=0.05,
        od_type="Iter", od_wait=100, verbose=False, thread_count=2, random_seed=0,
        allow_writing_files=False,
    )  # fmt: skip
    start = time.perf_counter()
    model.fit(pool(xt, yt), eval_set=pool(xv, yv), use_best_model=True)
    seconds = time.perf_counter() - start
    prediction = model.predict(pool(xs, ys), prediction_type="RMSEWithUncertainty")
    centre, sd = prediction[:, 0], np.sqrt(np.maximum(prediction[:, 1], 1e-12))
    scores = _lognormal_scores(ys, centre, sd) if log else _gaussian_scores(ys, centre, sd)
    if table.discrete:
        scores["nll"] = None  # a density, not a pmf: not comparable on counts
    return {**scores, "fit_s": seconds}


def run_ngboost(path: Path, table: Table) -> dict:
    from ngboost import NGBRegressor
    from ngboost.distns import LogNormal, Poisson

    (xt, yt), (xv, yv), (xs, ys) = _frames(path, table, "onehot")
    model = NGBRegressor(
        Dist=Poisson if table.discrete else LogNormal, n_estimators=2000, verbose=False,
        random_state=0,
    )  # fmt: skip
    start = time.perf_counter()
    model.fit(xt.to_numpy(), yt, X_val=xv.to_numpy(), Y_val=yv, early_stopping_rounds=50)
    seconds = time.perf_counter() - start
    dist = model.pred_dist(xs.to_numpy())
    if table.discrete:
        rate = dist.params["mu"]
        low, high = stats.poisson.ppf(0.05, rate), stats.poisson.ppf(0.95, rate)
        scores = {
            "nll": float(np.mean(-stats.poisson.logpmf(ys, rate))),
            "rmse": float(np.sqrt(np.mean((ys - rate) ** 2))),
            "picp90": float(np.mean((ys >= low) & (ys <= high))),
            "width90": float(np.mean(high - low)),
        }
    else:
        scores = _lognormal_scores(ys, np.log(dist.params["scale"]), dist.params["s"])
    return {**scores, "fit_s": seconds}


def _available(module: str) -> bool:
    if importlib.util.find_spec(module) is None:
        print(f"peers: {module} is not installed (pip install softzoo[bench]); skipped")
        return False
    return True


def compare(name: str) -> dict:
    table = TABLES[name]
    path = table_file(name)
    systems = {"softzoo": run_softzoo(name, path)}
    if _available("lightgbm"):
        systems["lightgbm"] = run_lightgbm(path, table)
    if _available("catboost"):
        systems["catboost_y"] = run_catboost(path, table, log=False)
        systems["catboost_log_y"] = run_catboost(path, table, log=True)
    if _available("ngboost"):
        systems["ngboost"] = run_ngboost(path, table)
    for system, scores in systems.items():
        shown = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in scores.items()}
        print(f"{name:11s} {system:15s} {shown}", flush=True)
    return systems


def kept_catboost(systems: dict) -> str | None:
    """The CatBoost fit a user would keep: of CatBoost on y and on log y, the better test
    NLL (the better RMSE where neither has an NLL: the discrete tables)."""
    fits = [k for k in ("catboost_y", "catboost_log_y") if k in systems]
    if not fits:
        return None
    scored = all(systems[k]["nll"] is not None for k in fits)
    return min(fits, key=lambda k: systems[k]["nll"] if scored else systems[k]["rmse"])


def summary(results: dict) -> dict:
    """``nll_wins``, ``rmse_over_best_peer``, ``fit_seconds`` (softzoo's) and
    ``fit_seconds_over_catboost`` (over the CatBoost fit a user would keep) of per-table
    results."""
    wins, ratios, seconds, over_catboost = 0, {}, {}, {}
    for name, systems in results.items():
        ours = systems["softzoo"]
        peers = {k: v for k, v in systems.items() if k != "softzoo"}
        peer_nll = [v["nll"] for v in peers.values() if v["nll"] is not None]
        wins += all(ours["nll"] <= n for n in peer_nll)
        best = min(v["rmse"] for v in peers.values()) if peers else math.nan
        ratios[name] = round(ours["rmse"] / best, 4)
        seconds[name] = round(ours["fit_s"], 1)
        catboost = kept_catboost(systems)
        if catboost is not None:
            over_catboost[name] = round(ours["fit_s"] / systems[catboost]["fit_s"], 2)
    worst = {"worst": max(over_catboost.values())} if over_catboost else {}
    return {
        "nll_wins": wins,
        "rmse_over_best_peer": {**ratios, "worst": max(ratios.values())},
        "fit_seconds": seconds,
        "fit_seconds_over_catboost": {**over_catboost, **worst},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", nargs="+", default=list(TABLES), choices=list(TABLES))
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    results = {name: compare(name) for name in args.tables}
    result = {"host": host_info(), "tables": results, **summary(results)}
    if args.out:
        write_results(args.out, "peers", result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
