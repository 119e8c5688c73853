"""Real tables: what categorical columns cost, what imputation with indicators buys, and
the penguins model against a linear baseline.

    python benchmarks/tables.py [--rows 100000] [--epochs 6] [--out benchmarks/results]

1. embedding cost: seconds per training step (raw loop of SoftRegressor steps, batch 256,
   one thread, best of 3 rounds of 50 steps) with 8 numeric columns, and with the same 8
   plus 4 categorical ones (4, 12, 40 and 100 categories): `embedding_step_ratio`.
2. gaps: synthetic_table (rows, known truth, informative gaps), a gamma model trained
   with imputation + missing indicators, and the same model trained on the complete rows
   only (the rows with a gap dropped); both on all test rows: NLL, and how far each
   recovers the colour effects (max |estimated − true| effect).
3. penguins: the zoo recipe configs/zoo/penguins-gamma-softplus.yaml against a
   homoscedastic linear baseline (least squares on one-hot categories and median-imputed
   numbers with indicators, Gaussian σ from the training residuals), same split: test
   NLL, RMSE, PICP 90 %.
The last line printed is one JSON object (with the host it ran on).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from _results import host_info, quiet_trainer, write_results
from scipy import stats

from softzoo.data import TabularDataModule, synthetic_table
from softzoo.data.synthetic import COLOUR_EFFECTS
from softzoo.models import SoftRegressor

ROOT = Path(__file__).resolve().parents[1]


def _steps_per_second(model: SoftRegressor, x: torch.Tensor, y: torch.Tensor) -> float:
    """Best of 3 rounds: seconds per optimiser step of a raw loop."""
    model.fit_scaling(x, y)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for step in range(50):
            rows = slice((step * 256) % (len(y) - 256), (step * 256) % (len(y) - 256) + 256)
            loss = model.family.loss(
                model.scaled_params(x[rows]), (y[rows] - model.y_shift) / model.y_scale
            ).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        best = min(best, (time.perf_counter() - start) / 50)
    return best


def embedding_cost(rows: int) -> dict:
    rng = np.random.default_rng(0)
    numeric = rng.standard_normal((rows, 8))
    sizes = (4, 12, 40, 100)
    codes = np.stack([rng.integers(2, n + 2, size=rows) for n in sizes], axis=1)
    y = torch.as_tensor(np.exp(numeric[:, 0] * 0.3) + 1.0, dtype=torch.float32)
    names = [f"x{i}" for i in range(8)]
    plain = SoftRegressor(8, family="gamma", feature_names=names)
    categories = {f"c{j}": [f"k{i}" for i in range(n)] for j, n in enumerate(sizes)}
    coded = SoftRegressor(
        12, family="gamma", feature_names=names + list(categories), categories=categories
    )
    x_plain = torch.as_tensor(numeric, dtype=torch.float32)
    x_coded = torch.as_tensor(np.hstack([numeric, codes]), dtype=torch.float32)
    without = _steps_per_second(plain, x_plain, y)
    with_categories = _steps_per_second(coded, x_coded, y)
    return {
        "step_ms_numeric_only": round(without * 1e3, 4),
        "step_ms_with_4_categorical": round(with_categories * 1e3, 4),
        "embedding_step_ratio": round(with_categories / without, 3),
    }


def _fit(path: Path, epochs: int, **data_options) -> tuple[SoftRegressor, TabularDataModule]:
    import lightning.pytorch as pl

    pl.seed_everything(0, verbose=False)
    data = TabularDataModule(path=str(path), target="y", batch_size=512, **data_options)
    model = SoftRegressor(
        data.n_features,
        family="gamma",
        hidden=[64, 64],
        lr=3e-3,
        feature_names=data.feature_names,
        categories=data.categories,
        missing_indicators=data.missing_indicators,
    )
    quiet_trainer(max_epochs=epochs).fit(model, data)
    return model.eval(), data


def colour_effect_error(model: SoftRegressor, frame: pd.DataFrame, truth: dict) -> float:
    """max over colours of |estimated − true| effect, both relative to their mean over the
    colours, where the estimate is the mean log of the predicted mean at each colour."""
    with torch.no_grad():
        log_mean = torch.log(model.family.mean(model(_encode(model, frame)))).numpy()
    error = log_mean - truth["log_mean"]
    est = np.array([np.mean(error[frame["colour"] == c]) + e for c, e in COLOUR_EFFECTS.items()])
    true = np.array(list(COLOUR_EFFECTS.values()))
    return float(np.max(np.abs((est - est.mean()) - (true - true.mean()))))


def _encode(model: SoftRegressor, frame: pd.DataFrame) -> torch.Tensor:
    from softzoo.data.roles import encode_categories

    numeric = [frame[c].to_numpy(np.float64) for c in model.numeric_names]
    codes = [encode_categories(frame[c], v) for c, v in model.categories.items()]
    return torch.as_tensor(np.stack(numeric + codes, axis=1), dtype=torch.float32)


def gaps(rows: int, epochs: int, workdir: Path) -> dict:
    frame, truth = synthetic_table(rows, seed=0)
    order = np.random.default_rng(1).permutation(rows)
    labels = np.full(rows, "train", dtype=object)
    labels[order[: rows // 5]] = "test"
    labels[order[rows // 5 : rows // 5 + rows // 10]] = "val"
    frame = frame.assign(split=labels)
    frame.to_parquet(workdir / "full.parquet")
    complete = frame[(labels == "test") | frame[["x1", "income", "colour"]].notna().all(axis=1)]
    complete.to_parquet(workdir / "complete.parquet")
    test = frame[labels == "test"]
    test_truth = {"log_mean": truth["log_mean"][labels == "test"]}
    y = torch.as_tensor(test["y"].to_numpy(), dtype=torch.float32)
    results = {}
    for name, file in (("impute_with_indicators", "full"), ("drop_rows_with_gaps", "complete")):
        model, _ = _fit(workdir / f"{file}.parquet", epochs, split_column="split")
        metrics = model.evaluate(_encode(model, test), y)
        kept = pd.read_parquet(workdir / f"{file}.parquet")["split"]
        results[name] = {
            "training_rows": int((kept == "train").sum()),
            "test_nll": round(metrics["nll"], 4),
            "test_rmse": round(metrics["rmse"], 4),
            "colour_effect_max_error": round(colour_effect_error(model, test, test_truth), 4),
        }
    results["imputation_beats_dropping"] = (
        results["impute_with_indicators"]["test_nll"] < results["drop_rows_with_gaps"]["test_nll"]
    )
    return results


def penguins(workdir: Path) -> dict:
    from softzoo.reproduce import held_out_metrics, train_recipe

    model, data = train_recipe(ROOT / "configs/zoo/penguins-gamma-softplus.yaml", workdir)
    ours = held_out_metrics(model, data)
    return {
        "softzoo": {k: round(ours[k], 4) for k in ("nll", "rmse", "picp_90")},
        "linear_baseline": _linear_baseline(data),
        "roles": data.column_roles,
    }


def _design(data: TabularDataModule, split: str, fill: np.ndarray | None) -> tuple:
    x, y = data.tensors(split)
    x = x.double().numpy()
    n_numeric = len(data.feature_names) - len(data.categories)
    numeric = x[:, :n_numeric]
    fill = np.nanmedian(numeric, axis=0) if fill is None else fill
    missing = np.isnan(numeric)
    parts = [np.where(missing, fill, numeric), missing.astype(float), np.ones((len(x), 1))]
    for j, vocabulary in enumerate(data.categories.values()):
        codes = x[:, n_numeric + j].astype(int)
        parts.append(np.eye(len(vocabulary) + 2)[codes][:, 1:])  # missing code as baseline
    return np.hstack(parts), y.double().numpy(), fill


def _linear_baseline(data: TabularDataModule) -> dict:
    x_train, y_train, fill = _design(data, "train", None)
    x_test, y_test, _ = _design(data, "test", fill)
    coef, *_ = np.linalg.lstsq(x_train, y_train, rcond=None)
    residual = y_train - x_train @ coef
    sigma = float(np.sqrt(residual @ residual / (len(y_train) - np.linalg.matrix_rank(x_train))))
    mean = x_test @ coef
    z = stats.norm.ppf(0.95)
    return {
        "nll": round(float(-stats.norm.logpdf(y_test, mean, sigma).mean()), 4),
        "rmse": round(float(np.sqrt(np.mean((y_test - mean) ** 2))), 4),
        "picp_90": round(float(np.mean(np.abs(y_test - mean) <= z * sigma)), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        result = {
            "host": host_info(),
            "rows": args.rows,
            "embedding_cost": embedding_cost(min(args.rows, 20_000)),
            "gaps": gaps(args.rows, args.epochs, Path(tmp)),
            "penguins": penguins(Path(tmp) / "penguins"),
        }
    if args.out:
        write_results(args.out, "tables", result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
