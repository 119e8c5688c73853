"""The bad-input table of docs/errors.md: every row is run here, and the exact one-line
message it produces must appear verbatim in the document."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import ROOT

import softzoo
from softzoo.cli import main
from softzoo.models import SoftRegressor

DOC = (ROOT / "docs/errors.md").read_text()
FIT = [
    "fit",
    "--config",
    str(ROOT / "softzoo/configs/gaussian.yaml"),
    "--trainer.logger",
    "false",
    "--trainer.max_epochs",
    "1",
    "--trainer.enable_progress_bar",
    "false",
    "--checkpoint.dirpath",
    "ckpt",
    "--data.init_args.dataset",
    "null",
]


def _csv(path: str, target: str = "y", *extra: str) -> list[str]:
    return [
        *FIT,
        "--data.init_args.path",
        path,
        "--data.init_args.target",
        target,
        "--data.init_args.batch_size",
        "4",
        *extra,
    ]


FILES = {
    "d.csv": "a,b,y\n" + "".join(f"{i},{i % 3},{i + 1}\n" for i in range(40)),
    "empty.csv": "",
    "half.csv": "a,y\n" + "".join(f"{i},{0.5 + i % 3}\n" for i in range(30)),
    "parts.csv": "a,part,y\n"
    + "".join(f"{i},{'train' if i != 5 else 'holdout'},{i}\n" for i in range(20)),
    "ids.csv": "a,b,y\n" + "".join(f"{i},user{i},{i % 7}\n" for i in range(30)),
    "nan.csv": "a,b,y\n1,2,3\n1,nan,4\n",
    "inf.csv": "a,b,y\n1,2,3\n1,inf,4\n",
    "nan_y.csv": "a,b,y\n1,2,3\n1,2,\n",
    "neg.csv": "a,y\n" + "".join(f"{i},{i - 20}\n" for i in range(40)),
    "frac.csv": "a,y\n" + "".join(f"{i},{i / 2}\n" for i in range(40)),
    "new.csv": "a\n1\n",
    "dup.csv": "a,a,y\n1,2,3\n2,3,4\n",
    "semi.csv": "a;b;y\n1;2;3\n2;3;4\n",
    "thousands.csv": 'a,y\n1,"1,200"\n2,"2,400"\n3,950\n',
    "typo.csv": "a,b,y\n" + "".join(f"{i},{i if i != 7 else '3..5'},{i + 1}\n" for i in range(20)),
    "big.csv": "a,b,y\n1,2,3\n2,1e300,4\n",
    "flat.csv": "a,y\n" + "".join(f"{i},{1000 + 1e-5 * (i % 5)}\n" for i in range(40)),
    "const.csv": "a,y\n" + "".join(f"{i},5\n" for i in range(40)),
    "empty.yaml": "",
    "bad.yaml": "model:\n  family: [gaussian\n",
    "unknown.yaml": "model:\n  famly: gaussian\n",
    "in_use/.softzoo-fit.lock": "",
    "gap.csv": "a,b\n1,2\n,3\n",
    "rownames.csv": "a,b,y\n" + "".join(f"r{i},{i},{i % 3},{i + 1}\n" for i in range(20)),
    "blank.csv": "a,z,y\n" + "".join(f"{i},,{i + 1}\n" for i in range(20)),
    "neg_row.csv": "a,y\n1,\n" + "".join(f"{i},{i - 3}\n" for i in range(1, 40)),
    "foreign/config.yaml": "# my own notes\nmodel:\n  lr: 0.1\n",
    "claims.csv": "a,months,w,y\n"
    + "".join(
        f"{i},{0 if i == 6 else 1 + i % 4},{-1 if i == 9 else 1},{i % 3}\n" for i in range(30)
    ),
    "zero_w.csv": "a,w,y\n" + "".join(f"{i},0,{i % 3}\n" for i in range(30)),
    "months.csv": "a,months,y\n" + "".join(f"{i},{1 + i % 4},{i - 9}\n" for i in range(30)),
    "text_rows.csv": "a,months,w,y\n"
    + "".join(
        f"{i},{'two' if i == 3 else 1 + i % 4},{'heavy' if i % 2 else 'light'},{i % 3}\n"
        for i in range(30)
    ),
    "huge_w.csv": "a,w,y\n" + "".join(f"{i},{1e39 if i == 2 else 1},{i % 3}\n" for i in range(30)),
}

CLI_ROWS = {
    "missing file": _csv("missing.csv"),
    "empty CSV": _csv("empty.csv"),
    "missing target column": _csv("d.csv", "price"),
    "unknown feature column": _csv("d.csv", "y", "--data.init_args.features", "[a, c]"),
    "text column that looks like an identifier": _csv("ids.csv"),
    "unknown value in the split column": _csv(
        "parts.csv", "y", "--data.init_args.split_column", "part"
    ),
    "unknown missing-value policy": _csv("d.csv", "y", "--data.init_args.missing", "drop"),
    "ensemble_size below 1": _csv("d.csv", "y", "--model.ensemble_size", "0"),
    "negative warm-up": _csv("d.csv", "y", "--model.warmup_epochs", "-1"),
    "a TabM ensemble of one model": _csv(
        "d.csv", "y", "--model.ensemble_type", "batch", "--model.ensemble_size", "1"
    ),
    "unknown numeric embedding": _csv("d.csv", "y", "--model.numeric_embedding", "quantile"),
    "warm-up in epochs and as a fraction": _csv(
        "d.csv", "y", "--model.warmup_epochs", "3", "--model.warmup_fraction", "0.1"
    ),
    "warm-up as long as the run": _csv(
        "d.csv", "y", "--model.warmup_fraction", "0", "--model.warmup_epochs", "1"
    ),
    "beta_nll outside [0, 1]": _csv("d.csv", "y", "--model.family_options", "{beta_nll: 2}"),
    "64-bit precision": _csv("d.csv", "y", "--trainer.precision", "64-true"),
    "unknown dequantize setting": _csv("d.csv", "y", "--model.dequantize", "sometimes"),
    "dequantizing a count family": _csv(
        "ids.csv", "y", "--model.family", "poisson", "--model.dequantize", "always"
    ),
    "dequantizing a family with a point mass at 0": _csv(
        "d.csv", "y", "--model.family", "hurdle_gamma", "--model.dequantize", "always"
    ),
    "a training loss that is not finite": _csv("d.csv", "y", "--model.lr", "1e12"),
    "dequantizing across 0": _csv(
        "half.csv", "y", "--model.family", "gamma", "--model.dequantize", "always"
    ),
    "layer norm in an ensemble": _csv(
        "d.csv", "y", "--model.ensemble_size", "3", "--model.norm", "layer"
    ),
    "calibration without a validation split": _csv(
        "d.csv", "y", "--model.calibration", "conformal", "--data.init_args.val_fraction", "0"
    ),
    "early stopping without a validation split": _csv(
        "d.csv", "y", "--data.init_args.val_fraction", "0", "--early_stopping_patience", "10"
    ),
    "calibration of a point predictor": _csv(
        "d.csv", "y", "--model.family", "positive", "--model.calibration", "conformal"
    ),
    "a column both categorical and ignored": _csv(
        "d.csv", "y", "--data.init_args.categorical", "[b]", "--data.init_args.ignore", "[b]"
    ),
    "NaN in features": _csv("nan.csv", "y", "--data.init_args.missing", "error"),
    "inf in features": _csv("inf.csv"),
    "NaN in target": _csv("nan_y.csv", "y", "--data.init_args.missing", "error"),
    "y <= 0 for gamma": _csv("neg.csv", "y", "--model.family", "gamma"),
    "non-integer counts for poisson": _csv("frac.csv", "y", "--model.family", "poisson"),
    "unknown family": _csv("d.csv", "y", "--model.family", "gausian"),
    "unknown activation": _csv("d.csv", "y", "--model.activation", "sofplus"),
    "beta <= 0": _csv("d.csv", "y", "--model.softplus_beta", "0"),
    "threshold out of range": _csv("d.csv", "y", "--model.softplus_threshold", "100"),
    "floor <= 0": _csv("d.csv", "y", "--model.floor", "0"),
    "Trainer gradient clipping": _csv("d.csv", "y", "--trainer.gradient_clip_val", "1"),
    "gradient accumulation": _csv("d.csv", "y", "--trainer.accumulate_grad_batches", "2"),
    "unknown model name": ["zoo", "info", "concrete-gausian-softplus"],
    "unknown command": ["tset"],
    "checkpoint of a different model": [
        "export",
        "--ckpt_path",
        "other.ckpt",
        "--output",
        "m.onnx",
    ],
    "file that is no checkpoint": ["export", "--ckpt_path", "d.csv", "--output", "m.onnx"],
    "output in a missing directory": [
        "export",
        "--ckpt_path",
        "good.ckpt",
        "--output",
        "no/dir/m.onnx",
    ],
    "truncated ONNX file": ["parity", "cut.onnx", "--ckpt_path", "good.ckpt"],
    "unknown config name": ["fit", "--config", "gausian"],
    "predict file lacks a feature": [
        "predict",
        *_csv("d.csv")[1:],
        "--ckpt_path",
        "good.ckpt",
        "--data.init_args.predict_path",
        "new.csv",
    ],
    "report on a checkpoint without its data": [
        "report",
        "--ckpt_path",
        "good.ckpt",
        "--output",
        "rep",
    ],
    "report output is a file": ["report", "--ckpt_path", "good.ckpt", "--output", "d.csv"],
    "empty checkpoint path": ["report", "--ckpt_path", "", "--output", "rep"],
    "test with another model's checkpoint": [
        "test",
        *_csv("d.csv")[1:],
        "--ckpt_path",
        "other.ckpt",
    ],
    "repeated column name": _csv("dup.csv"),
    "semicolon-separated file": _csv("semi.csv"),
    "thousands separators in the target": _csv("thousands.csv"),
    "a numeric column with a typo": _csv("typo.csv"),
    "value too large for float32": _csv("big.csv"),
    "target too flat for the family": _csv("flat.csv", "y", "--model.family", "lognormal"),
    "constant target": _csv("const.csv"),
    "empty config file": ["fit", "--config", "empty.yaml"],
    "malformed config file": ["fit", "--config", "bad.yaml"],
    "unknown config key": ["fit", "--config", "unknown.yaml"],
    "negative max_epochs": _csv("d.csv", "y", "--trainer.max_epochs", "-5"),
    "checkpoint loaded with pickle": [
        "test",
        *_csv("d.csv")[1:],
        "--ckpt_path",
        "good.ckpt",
        "--weights_only",
        "false",
    ],
    "truncated checkpoint": ["test", *_csv("d.csv")[1:], "--ckpt_path", "cut.ckpt"],
    "zip that is not a checkpoint": ["validate", *_csv("d.csv")[1:], "--ckpt_path", "other.zip"],
    "another model's checkpoint under --ckpt_path last": [
        *_csv("d.csv"),
        "--ckpt_path",
        "last",
        "--checkpoint.dirpath",
        "wide",
    ],
    "option that changes the checkpoint's model": [
        "test",
        *_csv("d.csv")[1:],
        "--ckpt_path",
        "good.ckpt",
        "--model.family",
        "lognormal",
    ],
    "checkpoint directory in use": _csv("d.csv", "y", "--checkpoint.dirpath", "in_use"),
    "a config.yaml softzoo did not write": _csv("d.csv", "y", "--checkpoint.dirpath", "foreign"),
    "zoo weights of another model": _csv("d.csv", "y", "--init_from", "concrete-gaussian-relu"),
    "export over its checkpoint": ["export", "--ckpt_path", "good.ckpt", "--output", "good.ckpt"],
    "predict over its input": [
        "predict",
        *_csv("d.csv")[1:],
        "--ckpt_path",
        "good.ckpt",
        "--data.init_args.predict_path",
        "d.csv",
        "--output",
        "d.csv",
    ],
    "negative parity rows": ["parity", "full.onnx", "--ckpt_path", "good.ckpt", "--rows", "-5"],
    "parity against a file of another width": ["parity", "wide.onnx", "--ckpt_path", "good.ckpt"],
    "row-group shards of a CSV": _csv("d.csv", "y", "--data.init_args.shard_row_groups", "true"),
    "conformal calibration with row-group shards": _csv(
        "parts.parquet",
        "y",
        "--data.init_args.shard_row_groups",
        "true",
        "--model.calibration",
        "conformal",
    ),
    "piecewise-linear bins with row-group shards": _csv(
        "parts.parquet",
        "y",
        "--data.init_args.shard_row_groups",
        "true",
        "--model.numeric_embedding",
        "piecewise_linear",
    ),
    "a directory without Parquet files": _csv("no_parquet"),
    "Parquet files with different columns": _csv("two_layouts"),
    "row groups that disagree on a column's role": _csv(
        "roles", "y", "--data.init_args.shard_row_groups", "true"
    ),
    "a gap in a predict file under missing='error'": [
        "predict",
        *_csv("d.csv", "y", "--data.init_args.missing", "error")[1:],
        "--ckpt_path",
        "good.ckpt",
        "--data.init_args.predict_path",
        "gap.csv",
    ],
    "rows with row names (R's write.table)": _csv("rownames.csv"),
    "a numeric column with no value": _csv("blank.csv"),
    "a bad target named by its row": _csv("neg_row.csv", "y", "--model.family", "gamma"),
    "a feature listed twice": _csv("d.csv", "y", "--data.init_args.features", "[a, a]"),
    "a checkpoint folder of an earlier run": _csv("d.csv", "y", "--checkpoint.dirpath", "earlier"),
    "a checkpoint folder that is a file": _csv("d.csv", "y", "--checkpoint.dirpath", "d.csv"),
    "a config.yaml that is a folder": _csv("d.csv", "y", "--checkpoint.dirpath", "cfgdir"),
    "a checkpoint that names code to import": [
        "test",
        *_csv("d.csv")[1:],
        "--ckpt_path",
        "evil.ckpt",
    ],
    "a checkpoint hyper-parameter of another type": [
        "test",
        *_csv("d.csv")[1:],
        "--ckpt_path",
        "typed.ckpt",
    ],
    "a calibrated model asked for another level": [
        "test",
        *_csv("d.csv")[1:],
        "--ckpt_path",
        "calibrated.ckpt",
        "--model.interval_level",
        "0.5",
    ],
    "max_steps ending the run in the warm-up": _csv(
        "d.csv",
        "y",
        "--model.warmup_fraction",
        "0",
        "--model.warmup_epochs",
        "1",
        "--trainer.max_steps",
        "1",
    ),
    "an index file that is no regular file": _csv(
        "d.csv", "y", "--data.init_args.index_files", "{train: no_parquet}"
    ),
    "a damaged file in a Parquet directory": _csv("damaged"),
    "an exposure that is not > 0": _csv(
        "claims.csv", "y", "--model.family", "poisson", "--data.init_args.exposure_column", "months"
    ),
    "a negative weight": _csv(
        "claims.csv", "y", "--model.family", "poisson", "--data.init_args.weight_column", "w"
    ),
    "every training weight 0": _csv("zero_w.csv", "y", "--data.init_args.weight_column", "w"),
    "an exposure for a family without a multiplicative mean": _csv(
        "months.csv", "y", "--data.init_args.exposure_column", "months"
    ),
    "the exposure column is the target": _csv(
        "d.csv", "y", "--data.init_args.exposure_column", "y"
    ),
    "y < 0 for tweedie": _csv("neg.csv", "y", "--model.family", "tweedie"),
    "one column as exposure and weight": _csv(
        "months.csv",
        "y",
        "--data.init_args.exposure_column",
        "months",
        "--data.init_args.weight_column",
        "months",
    ),
    "an exposure with shard_row_groups": _csv(
        "parts.parquet",
        "y",
        "--data.init_args.exposure_column",
        "a",
        "--data.init_args.shard_row_groups",
        "true",
    ),
    "a text cell in the exposure column": _csv(
        "text_rows.csv", "y", "--model.family", "poisson", "--data.exposure_column", "months"
    ),
    "a weight column of text": _csv(
        "text_rows.csv", "y", "--data.weight_column", "w", "--data.ignore", "[months]"
    ),
    "a weight too large for float32": _csv("huge_w.csv", "y", "--data.weight_column", "w"),
    "the weight column listed as a feature": _csv(
        "huge_w.csv", "y", "--data.weight_column", "w", "--data.features", "[a, w]"
    ),
    "tweedie power outside (1, 2)": _csv(
        "d.csv", "y", "--model.family", "tweedie", "--model.family_options", "{power: 2.5}"
    ),
}


def make_files(folder: Path) -> None:
    """The inputs the rows refer to, written into ``folder``."""
    import lightning

    for name, text in FILES.items():
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).write_text(text)
    table = pd.read_csv(folder / "d.csv")
    table.to_parquet(folder / "parts.parquet", row_group_size=10, index=False)
    (folder / "no_parquet").mkdir()
    (folder / "no_parquet/d.csv").write_text(FILES["d.csv"])
    for directory, second in (("two_layouts", {"b": "c"}), ("roles", {})):
        (folder / directory).mkdir()
        table.to_parquet(folder / directory / "1.parquet", index=False)
        other = (
            table.rename(columns=second) if second else table.assign(b=table["b"].map("b{}".format))
        )
        other.to_parquet(folder / directory / "2.parquet", index=False)
    # a lock held by a live process of this host: the parent of this test process
    lock = {"host": socket.gethostname(), "pid": os.getppid()}
    (folder / "in_use/.softzoo-fit.lock").write_text(json.dumps(lock))
    torch.save({"state_dict": {}, "hyper_parameters": {"lr": 0.1}}, folder / "other.ckpt")
    with zipfile.ZipFile(folder / "other.zip", "w") as archive:
        archive.writestr("notes.txt", "not a checkpoint")
    hparams = {
        "in_features": 2,
        "family": "gaussian",
        "hidden": [64, 64],
        "feature_names": ["a", "b"],
    }
    model = SoftRegressor(**hparams)
    torch.save(
        {
            "state_dict": model.state_dict(),
            "hyper_parameters": hparams,
            "pytorch-lightning_version": lightning.__version__,
        },
        folder / "good.ckpt",
    )
    (folder / "cut.ckpt").write_bytes((folder / "good.ckpt").read_bytes()[:3000])
    _save_variant(
        folder / "evil.ckpt", model, {**hparams, "column_roles": [{"class_path": "os.X"}]}
    )
    _save_variant(folder / "typed.ckpt", model, {**hparams, "hidden": "64"})
    calibrated = SoftRegressor(**hparams, calibration="conformal")
    _save_variant(folder / "calibrated.ckpt", calibrated, dict(calibrated.hparams))
    (folder / "cfgdir/config.yaml").mkdir(parents=True)
    (folder / "damaged").mkdir()
    table.to_parquet(folder / "damaged/1.parquet", index=False)
    (folder / "damaged/2.parquet").write_text("not parquet")
    (folder / "earlier").mkdir()
    shutil.copy(folder / "good.ckpt", folder / "earlier/best.ckpt")
    wide = SoftRegressor(in_features=3, hidden=[64, 64])
    (folder / "wide").mkdir()
    torch.save(
        {
            "state_dict": wide.state_dict(),
            "hyper_parameters": dict(wide.hparams),
            "pytorch-lightning_version": lightning.__version__,
        },
        folder / "wide/last.ckpt",
    )
    from softzoo.onnx import export

    (folder / "cut.onnx").write_bytes(export(model, folder / "full.onnx").read_bytes()[:2000])
    export(wide, folder / "wide.onnx")


def _save_variant(path: Path, model: SoftRegressor, hparams: dict) -> None:
    import lightning

    checkpoint = {
        "state_dict": model.state_dict(),
        "hyper_parameters": hparams,
        "pytorch-lightning_version": lightning.__version__,
    }
    torch.save(checkpoint, path)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("errors")
    make_files(folder)
    return folder


def _message(err: str, folder: Path) -> str:
    lines = [line for line in err.strip().splitlines() if "error:" in line]
    message = lines[-1] if lines else err.strip()
    # Lightning makes checkpoint folders absolute; one message names a process
    message = message.replace(f"{folder.resolve()}/", "")
    return re.sub(r"\(pid \d+ on [^,]+,", "(pid <pid> on <host>,", message)


@pytest.mark.parametrize("row", sorted(CLI_ROWS))
def test_cli_row(row: str, workdir: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(workdir)
    try:
        status = main(CLI_ROWS[row])
    except SystemExit as exit_:  # argparse's own errors exit directly, with status 2
        status = exit_.code
    assert status == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    message = _message(err, workdir)
    assert message in DOC, f"row {row!r}: docs/errors.md lacks the message\n{message}"


def _tampered(tmp_path: Path) -> str:
    entry = softzoo.get_model_weights("yacht-lognormal-softplus")
    copy = tmp_path / "tampered.safetensors"
    shutil.copy(entry.file, copy)
    data = bytearray(copy.read_bytes())
    data[-3] ^= 1
    copy.write_bytes(bytes(data))
    with pytest.raises(ValueError) as err:
        softzoo.get_model("yacht-lognormal-softplus", weights=str(copy), sha256=entry.sha256)
    message = re.sub(r"sha256 is [0-9a-f]{64}", "sha256 is <actual>", str(err.value))
    return message.replace(entry.sha256, "<expected>").replace(str(copy), "tampered.safetensors")


def test_python_rows(tmp_path) -> None:
    model = SoftRegressor(3, hidden=[4], feature_names=["a", "b", "c"])
    with pytest.raises(ValueError) as wrong_width:
        model(torch.zeros(5, 2))
    rows = {
        "wrong feature count in Python": str(wrong_width.value),
        "tampered weights": _tampered(tmp_path),
        **_zero_and_exposure_rows(),
    }
    for row, message in rows.items():
        assert message in DOC, f"row {row!r}: docs/errors.md lacks the message\n{message}"


def _zero_and_exposure_rows() -> dict[str, str]:
    import numpy as np

    from softzoo.data import encode_features
    from softzoo.families import get_family
    from softzoo.sklearn import SoftzooRegressor

    calls = {
        "sample_weight all 0": lambda: SoftzooRegressor().fit(
            np.ones((4, 1)), np.ones(4), sample_weight=np.zeros(4)
        ),
        "rows to predict on without the exposure": lambda: encode_features(
            pd.DataFrame({"a": [1.0]}), ["a"], {}, None, "impute", "'new.csv'", "months"
        ),
        "a hurdle target with no value > 0": lambda: get_family("hurdle_gamma").initial_values(
            torch.zeros(4)
        ),
    }
    messages = {}
    for row, call in calls.items():
        with pytest.raises(ValueError) as err:
            call()
        messages[row] = str(err.value)
    return messages


def test_the_table_has_at_least_twenty_rows() -> None:
    rows = [
        line
        for line in DOC.splitlines()
        if line.startswith("| ") and not line.startswith("| bad input")
    ]
    assert len(rows) >= 20 and len(CLI_ROWS) + 2 >= 20
