"""A user's own table end to end: column roles, categories, missing values, the split
column, both command-line forms, raw rows into ONNX and the torch-free predictor."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import ROOT, make_quiet_trainer, predict_py

from softzoo import datasets
from softzoo._codes import FIRST_CODE, MISSING_CODE, UNSEEN_CODE
from softzoo.cli import main
from softzoo.data import TabularDataModule, synthetic_table
from softzoo.data.synthetic import COLOUR_EFFECTS
from softzoo.models import SoftRegressor, load_checkpoint
from softzoo.onnx import check_parity, export, graph_feeds, parity_inputs, read_metadata
from softzoo.runner import QUIET_RUN

PENGUIN_FEATURES = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "year"]


def _table(tmp_path, frame: pd.DataFrame, name: str = "t.csv"):
    path = tmp_path / name
    frame.to_parquet(path) if name.endswith(".parquet") else frame.to_csv(path, index=False)
    return path


def _model_for(data: TabularDataModule, **options) -> SoftRegressor:
    return SoftRegressor(
        data.n_features,
        feature_names=data.feature_names,
        categories=data.categories,
        missing_indicators=data.missing_indicators,
        column_roles=data.column_roles,
        **{"hidden": [16], **options},
    )


# ---- 1. column roles -------------------------------------------------------------------
def test_roles_follow_predictable_rules(tmp_path) -> None:
    n = 40
    frame = pd.DataFrame(
        {
            "price": np.arange(1.0, n + 1),
            "size": np.linspace(1, 2, n),
            "rooms": np.arange(n) % 4,  # integers: numeric unless listed as categorical
            "grade": list("ABCD") * (n // 4),  # text
            "new": [True, False] * (n // 2),  # bool
            "note": [f"free text {i}" for i in range(n)],  # an identifier, ignored
        }
    )
    frame["kind"] = pd.Categorical(["x", "y"] * (n // 2))  # a pandas category
    path = _table(tmp_path, frame, "t.parquet")
    data = TabularDataModule(path=str(path), target="price", categorical=["rooms"], ignore=["note"])
    roles = {r["name"]: r["role"] for r in data.column_roles}
    assert roles == {
        "price": "target",
        "size": "numeric",
        "rooms": "categorical",
        "grade": "categorical",
        "new": "categorical",
        "note": "ignored",
        "kind": "categorical",
    }
    assert data.feature_names == ["size", "rooms", "grade", "new", "kind"]  # numbers first
    assert data.categories == {
        "rooms": ["0", "1", "2", "3"],
        "grade": ["A", "B", "C", "D"],
        "new": ["False", "True"],
        "kind": ["x", "y"],
    }


def test_an_identifier_is_an_error_unless_listed(tmp_path) -> None:
    frame = pd.DataFrame({"id": [f"u{i}" for i in range(30)], "y": np.arange(30.0)})
    path = _table(tmp_path, frame)
    with pytest.raises(ValueError, match=r"text column 'id' .* looks like an identifier"):
        _ = TabularDataModule(path=str(path), target="y").arrays
    listed = TabularDataModule(path=str(path), target="y", categorical=["id"], val_fraction=0)
    assert len(listed.categories["id"]) == 24  # the training rows' values only


def test_fit_prints_the_roles_and_stores_them(tmp_path, capsys) -> None:
    args = [
        "fit",
        "--data.dataset",
        "penguins",
        "--trainer.max_epochs",
        "1",
        "--trainer.logger",
        "false",
        "--checkpoint.dirpath",
        str(tmp_path),
        *QUIET_RUN,
    ]
    assert main(args) == 0
    printed = capsys.readouterr().err
    assert "softzoo: the columns of dataset 'penguins':" in printed
    assert "sex                categorical  text     2           9        missing code" in printed
    assert "body_mass_g        target       float64  -           2        rows left out" in printed
    model = load_checkpoint(tmp_path / "last.ckpt")
    assert {r["name"]: r["role"] for r in model.hparams.column_roles}["island"] == "categorical"
    assert model.categories["species"] == ["Adelie", "Chinstrap", "Gentoo"]


# ---- 2. categories: unseen and missing --------------------------------------------------
def test_unseen_and_missing_categories_get_their_reserved_codes(tmp_path) -> None:
    data = TabularDataModule(dataset="penguins", seed=0)
    new = pd.DataFrame(
        {
            **{c: [40.0, 41.0, np.nan] for c in PENGUIN_FEATURES},
            "species": ["Gentoo", "Emperor", None],
            "island": ["Dream", "Dream", "Dream"],
            "sex": ["male", "", np.nan],
            "extra": [1, 2, 3],
        }
    )[["extra", "sex", "species", "island", *PENGUIN_FEATURES]]  # another order
    _table(tmp_path, new, "new.csv")
    data.predict_path = str(tmp_path / "new.csv")
    (x,) = next(iter(data.predict_dataloader()))
    species = data.feature_names.index("species")
    sex = data.feature_names.index("sex")
    assert x[:, species].tolist() == [FIRST_CODE + 2, UNSEEN_CODE, MISSING_CODE]
    assert x[:, sex].tolist() == [FIRST_CODE + 1, MISSING_CODE, MISSING_CODE]
    assert torch.isnan(x[2, 0])  # a missing number stays NaN: the model imputes it
    model = _model_for(data)
    model.fit_scaling(*data.tensors("train"))
    assert torch.isfinite(torch.stack(model(x))).all()


def test_a_predict_file_without_a_feature_column_is_an_error(tmp_path) -> None:
    data = TabularDataModule(dataset="penguins")
    pd.DataFrame({"species": ["Adelie"]}).to_csv(tmp_path / "new.csv", index=False)
    data.predict_path = str(tmp_path / "new.csv")
    with pytest.raises(ValueError, match=r"feature column 'bill_length_mm' not found in"):
        data.predict_dataloader()


# ---- 3. missing values -----------------------------------------------------------------
def test_imputation_statistics_come_from_the_training_rows_only(tmp_path) -> None:
    frame, _ = synthetic_table(2000, seed=3)
    frame["split"] = np.where(np.arange(2000) < 1500, "train", "test")
    fits = []
    for changed in (False, True):
        table = frame.copy()
        if changed:  # other values, other categories and other gaps in the test rows
            test = table["split"] == "test"
            table.loc[test, "x1"] = 1e3
            table.loc[test, "income"] = np.nan
            table.loc[test, "colour"] = "purple"
        data = TabularDataModule(
            path=str(_table(tmp_path, table, f"t{changed}.parquet")),
            target="y",
            split_column="split",
            val_fraction=0.2,
        )
        model = _model_for(data, family="gamma")
        model.fit_scaling(*data.tensors("train"))
        fits.append(
            (
                data.categories,
                data.missing_indicators,
                model.inputs.fill.clone(),
                model.inputs.shift.clone(),
            )
        )
    assert fits[0][0] == fits[1][0] and fits[0][1] == fits[1][1] == ["x1", "income"]
    torch.testing.assert_close(fits[0][2], fits[1][2])
    torch.testing.assert_close(fits[0][3], fits[1][3])


def test_missing_error_refuses_gaps_and_missing_targets_are_counted(tmp_path) -> None:
    frame = pd.DataFrame(
        {"a": [1.0, np.nan, 3.0, 4.0], "c": ["x", "y", None, "x"], "y": [1.0, 2.0, 3.0, np.nan]}
    )
    path = _table(tmp_path, frame)
    data = TabularDataModule(path=str(path), target="y", val_fraction=0, test_fraction=0)
    assert len(data.arrays.target) == 3
    assert {r["name"]: r["n_missing"] for r in data.column_roles}["y"] == 1
    with pytest.raises(ValueError, match=r"target 'y' has 1 missing value\(s\) \(first at row 3"):
        _ = TabularDataModule(path=str(path), target="y", missing="error").arrays
    complete_target = _table(tmp_path, frame.iloc[:3], "t2.csv")
    with pytest.raises(ValueError, match=r"feature 'a' has 1 missing value\(s\)"):
        _ = TabularDataModule(path=str(complete_target), target="y", missing="error").arrays
    frame.loc[1, "a"] = 2.0
    complete_numbers = _table(tmp_path, frame.iloc[:3], "t3.csv")
    with pytest.raises(ValueError, match=r"feature 'c' has 1 missing value\(s\)"):
        _ = TabularDataModule(path=str(complete_numbers), target="y", missing="error").arrays


# ---- 4. splits and the command line ------------------------------------------------------
def test_split_column(tmp_path) -> None:
    n = 100
    frame = pd.DataFrame({"a": np.arange(n, dtype=float), "y": np.arange(n) + 1.0})
    frame["part"] = np.where(np.arange(n) < 80, "train", np.where(np.arange(n) < 90, "val", "test"))
    data = TabularDataModule(path=str(_table(tmp_path, frame)), target="y", split_column="part")
    assert [len(data.split_indices[s]) for s in ("train", "val", "test")] == [80, 10, 10]
    assert data.feature_names == ["a"]  # the split column is no feature
    frame["part"] = np.where(np.arange(n) < 90, " Train", "TEST")  # no val: carved from train
    data = TabularDataModule(
        path=str(_table(tmp_path, frame)), target="y", split_column="part", val_fraction=0.1
    )
    assert [len(data.split_indices[s]) for s in ("train", "val", "test")] == [81, 9, 10]
    assert set(data.split_indices["val"]) < set(range(90))
    frame.loc[3, "part"] = "holdout"
    with pytest.raises(
        ValueError,
        match=r"must hold train, val or test in every row; found 1 other value\(s\): "
        r"'holdout' \(first at row 3\)",
    ):
        _ = TabularDataModule(
            path=str(_table(tmp_path, frame)), target="y", split_column="part"
        ).arrays


@pytest.mark.parametrize("form", ["no config", "config with a bundled data set"])
def test_both_command_line_forms_train_on_a_users_file(tmp_path, form) -> None:
    datasets.load_frame("penguins").to_csv(tmp_path / "prices.csv", index=False)
    config = (
        [] if form == "no config" else ["--config", str(ROOT / "softzoo/configs/gaussian.yaml")]
    )
    args = [
        "fit",
        *config,
        "--data.path",
        str(tmp_path / "prices.csv"),
        "--data.target",
        "body_mass_g",
        "--model.family",
        "lognormal",
        "--trainer.max_epochs",
        "1",
        "--trainer.logger",
        "false",
        "--checkpoint.dirpath",
        str(tmp_path / "ck"),
        *QUIET_RUN,
    ]
    assert main(args) == 0
    model = load_checkpoint(tmp_path / "ck/last.ckpt")
    assert model.hparams.target_name == "body_mass_g" and "species" in model.categories


# ---- 5. raw rows into ONNX, and the torch-free predictor ---------------------------------
@pytest.fixture(scope="module")
def penguin_model(tmp_path_factory):
    data = TabularDataModule(dataset="penguins", batch_size=32)
    model = _model_for(data, family="gamma", hidden=[16, 16])
    make_quiet_trainer(max_epochs=5).fit(model, data)
    return model.eval(), tmp_path_factory.mktemp("penguins")


def test_onnx_takes_raw_columns_and_passes_parity_with_strings_and_nan(penguin_model) -> None:
    model, folder = penguin_model
    path = export(model, folder / "p.onnx")
    meta = read_metadata(path)
    schema = json.loads(meta["input_schema"])
    assert schema[0] == {"name": "features", "dtype": "float32", "shape": ["batch", 4]}
    assert [s["name"] for s in schema[1:]] == ["species", "island", "sex"]
    columns = json.loads(meta["input_columns"])
    assert {c["name"]: c.get("n_categories") for c in columns if c["role"] == "categorical"} == {
        "species": 3,
        "island": 3,
        "sex": 2,
    }
    rows = parity_inputs(model)
    feeds = graph_feeds(model, rows)
    assert {"", "Emperor"} - set(feeds["species"]) == {"Emperor"}  # "" (missing) is there
    assert any(len(t) and t not in model.categories["species"] for t in feeds["species"])
    assert np.isnan(feeds["features"]).any()
    report = check_parity(model, path)
    assert report.passed, report.summary()
    assert [o.name for o in report.providers[0].outputs] == ["concentration", "rate", "mean"]


def test_predict_py_reads_a_raw_csv_and_matches_the_module(penguin_model, tmp_path) -> None:
    model, folder = penguin_model
    path = export(model, folder / "raw.onnx")
    frame = datasets.load_frame("penguins").sample(60, random_state=1).reset_index(drop=True)
    frame.loc[0, "species"], frame.loc[1, "sex"], frame.loc[2, "bill_depth_mm"] = (
        "Emperor",
        None,
        None,
    )
    frame = frame.assign(notes="ignored")[["notes", *reversed(frame.columns)]]
    frame.to_csv(tmp_path / "raw.csv", index=False)
    result = predict_py(path, tmp_path / "raw.csv", "-o", tmp_path / "out.csv")
    assert result.returncode == 0, result.stderr
    got = pd.read_csv(tmp_path / "out.csv")
    data = TabularDataModule(dataset="penguins", vocabularies=model.categories)
    data.predict_path = str(tmp_path / "raw.csv")
    (x,) = next(iter(data.predict_dataloader()))
    with torch.no_grad():
        concentration, rate = model(x)
    np.testing.assert_allclose(got["concentration"], concentration.numpy(), rtol=1e-5)
    np.testing.assert_allclose(got["mean"], (concentration / rate).numpy(), rtol=1e-5)
    assert list(got.columns) == ["concentration", "rate", "mean", "lower_90", "upper_90"]
    lower, upper = model.family.interval((concentration, rate), 0.9)  # no closed form: numpy
    np.testing.assert_allclose(got["lower_90"], lower.numpy(), rtol=1e-5)
    np.testing.assert_allclose(got["upper_90"], upper.numpy(), rtol=1e-5)


# ---- 6. the synthetic table: effects recovered, imputation beats dropping rows ----------
def _fit_synthetic(path, epochs: int) -> SoftRegressor:
    data = TabularDataModule(path=str(path), target="y", batch_size=512, split_column="split")
    model = _model_for(data, family="gamma", hidden=[32, 32], lr=3e-3)
    make_quiet_trainer(max_epochs=epochs).fit(model, data)
    return model.eval()


@pytest.mark.slow
@pytest.mark.parametrize("rows", [20_000, 100_000])
def test_a_model_recovers_the_effects_and_imputation_beats_dropping(tmp_path, rows) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from tables import _encode, colour_effect_error
    finally:
        sys.path.pop(0)
    frame, truth = synthetic_table(rows, seed=0)
    frame["split"] = np.where(
        np.arange(rows) % 10 < 7, "train", np.where(np.arange(rows) % 10 < 8, "val", "test")
    )
    test = frame["split"] == "test"
    complete = frame[test | frame[["x1", "income", "colour"]].notna().all(axis=1)]
    imputed = _fit_synthetic(_table(tmp_path, frame, "full.parquet"), 4)
    dropped = _fit_synthetic(_table(tmp_path, complete, "complete.parquet"), 4)
    y = torch.as_tensor(frame.loc[test, "y"].to_numpy(), dtype=torch.float32)
    nll = {
        name: m.evaluate(_encode(m, frame[test]), y)["nll"]
        for name, m in (("imputed", imputed), ("dropped", dropped))
    }
    assert nll["imputed"] < nll["dropped"] - 0.05, nll
    error = colour_effect_error(imputed, frame[test], {"log_mean": truth["log_mean"][test]})
    assert error < (0.06 if rows >= 100_000 else 0.1), (error, COLOUR_EFFECTS)
