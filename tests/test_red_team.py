"""The red team's defects of issue 26: raw files, checkpoints and levels. Each test failed
on the main branch before the fix it guards."""

from __future__ import annotations

import json
import os
import sys
import threading

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_quiet_trainer, predict_py

from softzoo.cli import main
from softzoo.data import TabularDataModule
from softzoo.models import SoftRegressor, load_checkpoint
from softzoo.onnx import check_parity, export, read_metadata, write_metadata
from softzoo.runner import QUIET_RUN


def _frame(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 2, n)
    return pd.DataFrame(
        {
            "size": x,
            "grade": np.array(["A13", "B7", "C2"])[np.arange(n) % 3],
            "price": np.exp(x + 0.1 * rng.standard_normal(n)),
        }
    )


def _fit(tmp_path, frame: pd.DataFrame, *extra: str, folder: str = "ck") -> int:
    frame.to_csv(tmp_path / "t.csv", index=False)
    args = [
        "fit",
        "--data.path",
        str(tmp_path / "t.csv"),
        "--data.target",
        "price",
        "--model.family",
        "gamma",
        "--model.hidden",
        "[8]",
        "--trainer.max_epochs",
        "1",
        "--trainer.logger",
        "false",
        "--checkpoint.dirpath",
        str(tmp_path / folder),
        *QUIET_RUN,
        *extra,
    ]
    return main(args)


def _on_table(tmp_path, command: str, checkpoint, *extra: str) -> list[str]:
    """``softzoo COMMAND`` with a checkpoint, on tmp_path/t.csv (target price)."""
    table = ["--data.path", str(tmp_path / "t.csv"), "--data.target", "price"]
    quiet = ["--trainer.logger", "false", *QUIET_RUN]
    return [command, "--ckpt_path", str(checkpoint), *table, *quiet, *extra]


def _predict(tmp_path, rows_file, *extra: str, output: str = "p.csv") -> tuple[int, str]:
    args = _on_table(
        tmp_path,
        "predict",
        tmp_path / "ck/last.ckpt",
        "--data.predict_path",
        str(rows_file),
        "--output",
        str(tmp_path / output),
        *extra,
    )
    return main(args), output


@pytest.fixture
def fitted(tmp_path):
    assert _fit(tmp_path, _frame()) == 0
    return tmp_path


# ---- silently wrong answers ------------------------------------------------------------
def test_predict_with_missing_error_predicts_a_clean_file_and_refuses_a_gap(fitted, capsys):
    rows = _frame(6, seed=1).drop(columns="price")
    rows.to_csv(fitted / "rows.csv", index=False)
    status, output = _predict(fitted, fitted / "rows.csv", "--data.missing", "error")
    assert status == 0 and len(pd.read_csv(fitted / output)) == 6
    rows.loc[3, "size"] = None
    rows.to_csv(fitted / "gap.csv", index=False)
    status, _ = _predict(fitted, fitted / "gap.csv", "--data.missing", "error")
    err = capsys.readouterr().err
    assert status == 2 and "gap.csv': feature 'size' has 1 missing value(s) (first at row 4)" in err


def test_a_trailing_comma_changes_no_prediction_and_row_names_are_refused(fitted, capsys):
    rows = _frame(5, seed=2).drop(columns="price")
    rows.to_csv(fitted / "rows.csv", index=False)
    text = (fitted / "rows.csv").read_text().splitlines()
    (fitted / "trailing.csv").write_text("\n".join([text[0], *(r + "," for r in text[1:])]) + "\n")
    assert _predict(fitted, fitted / "rows.csv", output="a.csv")[0] == 0
    assert _predict(fitted, fitted / "trailing.csv", output="b.csv")[0] == 0
    pd.testing.assert_frame_equal(pd.read_csv(fitted / "a.csv"), pd.read_csv(fitted / "b.csv"))
    named = [text[0], *(f"r{i}," + r for i, r in enumerate(text[1:]))]
    (fitted / "named.csv").write_text("\n".join(named) + "\n")
    status, _ = _predict(fitted, fitted / "named.csv", output="c.csv")
    assert status == 2 and "row names (as R's write.table" in capsys.readouterr().err
    assert not (fitted / "c.csv").exists()


def test_predict_py_refuses_row_names_and_accepts_a_trailing_comma(tmp_path) -> None:
    model = SoftRegressor(2, hidden=[4], feature_names=["a", "b"])
    path = export(model, tmp_path / "m.onnx")
    (tmp_path / "trailing.csv").write_text("a,b\n1,2,\n3,4,\n")
    result = predict_py(path, tmp_path / "trailing.csv", "-o", tmp_path / "o.csv")
    assert result.returncode == 0, result.stderr
    (tmp_path / "named.csv").write_text("a,b\nr1,1,2\nr2,3,4\n")
    result = predict_py(path, tmp_path / "named.csv", "-o", tmp_path / "o2.csv")
    assert result.returncode == 2 and "line 2: 3 cells for 2 columns" in result.stderr
    assert "row names" in result.stderr and not (tmp_path / "o2.csv").exists()


def test_a_negative_binomial_ensemble_keeps_its_members_mean_columns(tmp_path) -> None:
    frame = _frame()
    frame["price"] = np.round(frame["price"] * 3)
    frame.to_csv(tmp_path / "t.csv", index=False)
    model = SoftRegressor(2, family="negative_binomial", hidden=[4], ensemble_size=3)
    batch = (torch.randn(5, 2),)
    with torch.no_grad():
        out = model.predict_step(batch, 0)
    assert out["member_mean"].shape == (5, 3) and out["mean"].shape == (5,)
    from softzoo.callbacks import PredictionCSVWriter

    writer = PredictionCSVWriter(tmp_path / "p.csv")
    trainer = make_quiet_trainer()
    writer.write_on_epoch_end(trainer, model, [out], [])
    columns = list(pd.read_csv(tmp_path / "p.csv").columns)
    assert columns[:7] == [
        "mean_0",
        "mean_1",
        "mean_2",
        "concentration_0",
        "concentration_1",
        "concentration_2",
        "mean",
    ]


# ---- untrusted files choosing what runs or what is read ---------------------------------
def test_a_recorded_class_path_is_refused_before_anything_is_imported(fitted, capsys) -> None:
    planted = fitted / "planted"
    planted.mkdir()
    marker = fitted / "imported"
    (planted / "evil_module.py").write_text(f"open({str(marker)!r}, 'w').close()\nclass X: pass\n")
    sys.path.insert(0, str(planted))
    try:
        checkpoint = torch.load(fitted / "ck/last.ckpt", weights_only=True)
        checkpoint["hyper_parameters"]["column_roles"] = [{"class_path": "evil_module.X"}]
        torch.save(checkpoint, fitted / "evil.ckpt")
        for command in ("test", "predict"):
            status = main(_on_table(fitted, command, fitted / "evil.ckpt"))
            assert status == 2
        with pytest.raises(ValueError, match="holds 'class_path': a checkpoint may not name code"):
            load_checkpoint(fitted / "evil.ckpt")
    finally:
        sys.path.remove(str(planted))
    assert "holds 'class_path'" in capsys.readouterr().err
    assert not marker.exists() and "evil_module" not in sys.modules


def test_a_recorded_hyper_parameter_of_the_wrong_type_is_refused(fitted) -> None:
    checkpoint = torch.load(fitted / "ck/last.ckpt", weights_only=True)
    checkpoint["hyper_parameters"]["hidden"] = "8"
    torch.save(checkpoint, fitted / "bad.ckpt")
    with pytest.raises(ValueError, match="'hidden' is '8', not of its declared type"):
        load_checkpoint(fitted / "bad.ckpt")


def _run_into(done: list[int], argv: list[str]) -> None:
    done.append(main(argv))


def test_report_reads_no_fifo_and_prints_no_file_content(fitted, capsys) -> None:
    secret = fitted / "secret.txt"
    secret.write_text("password=hunter2\n")
    fifo = fitted / "fifo"
    os.mkfifo(fifo)
    for target, message in (
        (fifo, "is not a regular file"),
        (secret, "is not a list of row numbers"),
    ):
        checkpoint = torch.load(fitted / "ck/last.ckpt", weights_only=True)
        checkpoint["datamodule_hyper_parameters"]["index_files"] = {"test": str(target)}
        torch.save(checkpoint, fitted / "r.ckpt")
        done: list[int] = []
        argv = ["report", "--ckpt_path", str(fitted / "r.ckpt"), "--output", str(fitted / "rep")]
        thread = threading.Thread(target=_run_into, args=(done, argv), daemon=True)
        thread.start()
        thread.join(60)
        assert done == [2], "softzoo report blocked on a FIFO"
        err = capsys.readouterr().err
        assert message in err and "hunter2" not in err
        assert f"reading the files checkpoint {str(fitted / 'r.ckpt')!r} records" in err


def test_report_encodes_with_the_models_vocabularies(fitted) -> None:
    import argparse

    from softzoo._codes import UNSEEN_CODE
    from softzoo.report.cli import _recorded_data

    frame = _frame()
    frame.loc[frame["grade"] == "A13", "grade"] = "A01"  # a category renamed since
    frame.to_csv(fitted / "t.csv", index=False)
    model = load_checkpoint(fitted / "ck/last.ckpt")
    args = argparse.Namespace(ckpt_path=str(fitted / "ck/last.ckpt"), model=None)
    data, _ = _recorded_data(args, model)
    assert data.categories == model.categories == {"grade": ["A13", "B7", "C2"]}
    codes = data.features_tensor[:, model.feature_names.index("grade")]
    renamed = torch.as_tensor((frame["grade"] == "A01").to_numpy())
    assert (codes[renamed] == UNSEEN_CODE).all() and (codes[~renamed] != UNSEEN_CODE).all()
    status = main(
        ["report", "--ckpt_path", str(fitted / "ck/last.ckpt"), "--output", str(fitted / "rep")]
    )
    assert status == 0


# ---- data loss and tracebacks -----------------------------------------------------------
def test_a_second_fit_into_one_checkpoint_folder_is_refused(fitted, capsys) -> None:
    before = (fitted / "ck/last.ckpt").read_bytes()
    assert _fit(fitted, _frame(seed=3)) == 2
    err = capsys.readouterr().err
    assert "holds an earlier run's checkpoints (best.ckpt, last.ckpt)" in err
    assert (fitted / "ck/last.ckpt").read_bytes() == before
    assert _fit(fitted, _frame(), "--ckpt_path", "last", "--trainer.max_epochs", "2") == 0


def test_a_checkpoint_folder_that_is_a_file_or_holds_a_config_folder(tmp_path, capsys) -> None:
    (tmp_path / "file").write_text("keep")
    assert _fit(tmp_path, _frame(), folder="file") == 2
    assert "is a file: give --checkpoint.dirpath a folder" in capsys.readouterr().err
    assert (tmp_path / "file").read_text() == "keep"
    (tmp_path / "ck2/config.yaml").mkdir(parents=True)
    assert _fit(tmp_path, _frame(), folder="ck2") == 2
    assert "config.yaml' is a folder" in capsys.readouterr().err


@pytest.mark.parametrize(
    "columns",
    [["rate", "mean", "cat"], ["front_axis", "coded_features", "front_code_1", "features"]],
)
def test_export_takes_any_column_name(tmp_path, columns) -> None:
    names = ["x", *columns]
    model = SoftRegressor(
        len(names),
        family="poisson",
        hidden=[4],
        feature_names=names,
        categories={c: ["a", "b"] for c in columns},
    )
    path = export(model, tmp_path / "m.onnx")
    report = check_parity(model, path)
    assert report.passed, report.summary()
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], **{c: ["a", "", "b"] for c in columns}})
    frame.to_csv(tmp_path / "in.csv", index=False)
    result = predict_py(path, tmp_path / "in.csv", "-o", tmp_path / "o.csv")
    assert result.returncode == 0 and not result.stderr, result.stderr
    rows = torch.tensor(
        [[1.0, *[2.0] * len(columns)], [2.0, *[0.0] * len(columns)], [3.0, *[3.0] * len(columns)]]
    )
    with torch.no_grad():
        (rate,) = model(rows)
    np.testing.assert_allclose(pd.read_csv(tmp_path / "o.csv")["rate"], rate.numpy(), rtol=1e-5)


@pytest.mark.parametrize(("key", "value"), [("missing_policy", "error"), ("column_roles", "[]")])
def test_parity_fails_on_tampered_missing_policy_or_roles(tmp_path, key, value) -> None:
    roles = [
        {
            "name": "a",
            "role": "numeric",
            "dtype": "float64",
            "n_categories": None,
            "n_missing": 0,
            "missing": "-",
        }
    ]
    model = SoftRegressor(1, hidden=[4], feature_names=["a"], column_roles=roles)
    path = export(model, tmp_path / "m.onnx")
    assert check_parity(model, path).passed
    write_metadata(path, {key: value})
    report = check_parity(model, path)
    assert not report.passed and key in report.summary()


def test_a_parquet_folder_skips_hidden_and_underscore_files_and_names_a_bad_file(tmp_path) -> None:
    folder = tmp_path / "table"
    folder.mkdir()
    frame = _frame()
    frame.to_parquet(folder / "part-0.parquet")
    frame.to_parquet(folder / ".part-0.parquet")
    frame.to_parquet(folder / "_part-0.parquet")
    data = TabularDataModule(path=str(folder), target="price")
    assert len(data.arrays.target) == len(frame)
    (folder / "part-1.parquet").write_text("not parquet")
    with pytest.raises(ValueError, match=r"data file 'part-1.parquet' in .* could not be parsed"):
        _ = TabularDataModule(path=str(folder), target="price").arrays


def test_predict_py_header_only_latin1_and_bad_batch(tmp_path) -> None:
    model = SoftRegressor(2, hidden=[4], feature_names=["a", "b"])
    path = export(model, tmp_path / "m.onnx")
    (tmp_path / "header.csv").write_text("a,b\n")
    result = predict_py(path, tmp_path / "header.csv", "-o", tmp_path / "o.csv")
    assert result.returncode == 2 and "has a header but no data rows" in result.stderr
    (tmp_path / "latin.csv").write_bytes(b"a,b\n1,2\n" + "é,3\n".encode("latin-1"))
    result = predict_py(path, tmp_path / "latin.csv", "-o", tmp_path / "o.csv")
    assert result.returncode == 2 and "is not UTF-8 text" in result.stderr
    (tmp_path / "ok.csv").write_text("a,b\n1,2\n")
    for batch in ("0", "-1"):
        result = predict_py(path, tmp_path / "ok.csv", "-o", tmp_path / "o.csv", "--batch", batch)
        assert result.returncode == 2 and "must be a whole number >= 1" in result.stderr
        assert "Traceback" not in result.stderr and not (tmp_path / "o.csv").exists()


def test_export_metadata_of_a_column_named_like_an_output(tmp_path) -> None:
    model = SoftRegressor(
        2, family="poisson", hidden=[4], feature_names=["x", "rate"], categories={"rate": ["a"]}
    )
    meta = read_metadata(export(model, tmp_path / "m.onnx"))
    column = next(c for c in json.loads(meta["input_columns"]) if c["name"] == "rate")
    assert column["input"] == "column:rate"


# ---- calibrated levels -----------------------------------------------------------------
@pytest.mark.parametrize(("family", "method"), [("gaussian", "scale"), ("gamma", "level")])
def test_a_calibrated_model_covers_every_level_it_is_calibrated_at(family, method) -> None:
    from softzoo.data import SyntheticDataModule

    data = SyntheticDataModule(n=6000, val_fraction=0.3, test_fraction=0.3, seed=3)
    if family == "gamma":
        data.arrays.target[:] = np.exp(data.arrays.target / 2)
    base = SoftRegressor(1, family=family, hidden=[16], calibration="conformal")
    make_quiet_trainer(max_epochs=3).fit(base, data)
    (x_val, y_val), (x_test, y_test) = data.tensors("val"), data.tensors("test")
    for level in (0.5, 0.8, 0.9, 0.95):
        model = SoftRegressor(
            1, family=family, hidden=[16], calibration="conformal", interval_level=level
        )
        model.load_state_dict(base.state_dict())
        assert model.calibration_method == method
        model.fit_calibration(x_val, y_val)
        picp = model.evaluate(x_test, y_test)[f"picp_{round(level * 100)}"]
        standard_error = (level * (1 - level) / len(y_test)) ** 0.5
        assert picp >= level - 3 * standard_error, (level, picp)
        assert picp <= level + 4 * standard_error + 1.5 / len(y_val), (level, picp)


def test_a_calibrated_model_refuses_another_level(fitted, capsys) -> None:
    assert _fit(fitted, _frame(200), "--model.calibration", "conformal", folder="cal") == 0
    args = _on_table(fitted, "test", fitted / "cal/last.ckpt")
    assert main([*args, "--model.interval_level", "0.5"]) == 2
    assert "interval_level: calibrated at 0.9, requested 0.5" in capsys.readouterr().err
    assert main(args) == 0


@pytest.mark.parametrize("name", ["gamma", "poisson"])
def test_a_large_ensembles_crps_is_computed_in_chunks_with_the_same_values(
    name, monkeypatch
) -> None:
    from softzoo.families import Mixture, get_family
    from softzoo.families import mixture as mixture_module

    family = Mixture(get_family(name), 7)
    torch.manual_seed(0)
    params = tuple(torch.rand(50, 7) * 3 + 0.5 for _ in family.param_names)
    y = torch.poisson(torch.full((50,), 3.0)) + (0.0 if name == "poisson" else 0.5)
    whole = family.crps(params, y)
    calls = []
    original = mixture_module._in_row_chunks

    def counting(score, p, target, per_row):
        calls.append(per_row)
        return original(score, p, target, per_row)

    monkeypatch.setattr(mixture_module, "_CRPS_BUDGET", 1)  # one row per chunk
    monkeypatch.setattr(mixture_module, "_in_row_chunks", counting)
    chunked = family.crps(params, y)
    assert calls and min(calls) > 1 and torch.equal(chunked, whole)


# ---- categorical cells: read as text, every reader, whatever the other rows hold --------
def _coded_frame(n: int = 90) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    codes = np.array(["007", "012", "A13", "B22", "C31"])[np.arange(n) % 5]
    flag = np.array(["true", "", "false", "True"], dtype=object)[np.arange(n) % 4]
    size = rng.uniform(0, 2, n)
    effect = np.select([codes == "007", codes == "012"], [0.0, 1.0], 0.5)
    return pd.DataFrame({"size": size, "code": codes, "flag": flag, "price": np.exp(size + effect)})


@pytest.mark.slow
def test_a_rows_category_never_depends_on_the_other_rows_of_its_file(tmp_path) -> None:
    assert _fit(tmp_path, _coded_frame()) == 0
    model = load_checkpoint(tmp_path / "ck/last.ckpt")
    assert model.categories["code"] == ["007", "012", "A13", "B22", "C31"]
    assert model.categories["flag"] == ["False", "True"]  # booleans with gaps: categories
    roles = {r["name"]: r for r in model.hparams.column_roles}
    assert roles["flag"]["role"] == "categorical" and roles["flag"]["dtype"] == "bool"
    rows = _coded_frame(12).drop(columns="price")
    rows.to_csv(tmp_path / "mixed.csv", index=False)
    digit = rows["code"].isin(["007", "012"])
    digits = rows[digit].reset_index(drop=True)
    digits.to_csv(tmp_path / "digits.csv", index=False)  # only '007' and '012': no text
    assert _predict(tmp_path, tmp_path / "mixed.csv", output="m.csv")[0] == 0
    assert _predict(tmp_path, tmp_path / "digits.csv", output="d.csv")[0] == 0
    mixed = pd.read_csv(tmp_path / "m.csv")[digit].reset_index(drop=True)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "d.csv"), mixed)
    path = export(model, tmp_path / "m.onnx")
    for name in ("digits", "mixed"):
        result = predict_py(path, tmp_path / f"{name}.csv", "-o", tmp_path / f"{name}_py.csv")
        assert result.returncode == 0, result.stderr
    got = pd.read_csv(tmp_path / "digits_py.csv")
    np.testing.assert_allclose(got["mean"], pd.read_csv(tmp_path / "d.csv")["mean"], rtol=1e-5)
    result = predict_py(path, tmp_path / "t.csv", "-o", tmp_path / "train_py.csv")
    assert result.returncode == 0, result.stderr  # the training file itself is accepted


def test_a_declared_categorical_column_of_digit_codes_keeps_its_text(tmp_path) -> None:
    frame = _coded_frame()
    frame = frame[frame["code"].isin(["007", "012"])].reset_index(drop=True)
    assert _fit(tmp_path, frame, "--data.categorical", "[code]") == 0
    assert load_checkpoint(tmp_path / "ck/last.ckpt").categories["code"] == ["007", "012"]


@pytest.mark.parametrize("shards", [False, True])
def test_blank_text_cells_are_missing_under_shards_too(tmp_path, shards) -> None:
    frame = _frame()
    frame.loc[7, "grade"] = "  "
    frame.to_parquet(tmp_path / "t.parquet", row_group_size=20, index=False)
    options = {"path": str(tmp_path / "t.parquet"), "target": "price", "shard_row_groups": shards}
    data = TabularDataModule(**options)
    roles = {r["name"]: r for r in data.column_roles}
    assert roles["grade"]["n_missing"] == 1
    with pytest.raises(
        ValueError, match=r"feature 'grade' has 1 missing value\(s\) \(first at row 7\)"
    ):
        _ = TabularDataModule(**options, missing="error").arrays


def test_a_bad_target_is_named_by_its_row_in_the_file(tmp_path, capsys) -> None:
    frame = _frame(40)
    frame["split"] = ["val" if i % 5 == 0 else "train" for i in range(40)]
    frame.loc[1, "price"] = None  # no target: left out, so indices no longer match rows
    frame.loc[12, "price"] = -2.0
    assert _fit(tmp_path, frame, "--data.split_column", "split") == 2
    err = capsys.readouterr().err
    assert "(first: -2.0 at row 13 after the header) [gamma]" in err


def test_an_empty_numeric_column_is_named(tmp_path, capsys) -> None:
    frame = _frame().assign(blank=np.nan)
    assert _fit(tmp_path, frame) == 2
    assert "numeric column(s) 'blank' have no value in the training rows" in capsys.readouterr().err


def test_a_repeated_feature_is_refused_at_fit(tmp_path, capsys) -> None:
    assert _fit(tmp_path, _frame(), "--data.features", "[size, grade, size]") == 2
    assert "features lists 'size' more than once" in capsys.readouterr().err
