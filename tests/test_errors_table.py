"""The bad-input table of docs/errors.md: every row is run here, and the exact one-line
message it produces must appear verbatim in the document."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import torch

import softzoo
from softzoo.cli import main
from softzoo.models import SoftRegressor

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs/errors.md").read_text()
FIT = [
    "fit",
    "--config",
    str(ROOT / "configs/examples/gaussian.yaml"),
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
    "text.csv": "a,b,y\n1,x,3\n2,y,4\n",
    "nan.csv": "a,b,y\n1,2,3\n1,nan,4\n",
    "inf.csv": "a,b,y\n1,2,3\n1,inf,4\n",
    "nan_y.csv": "a,b,y\n1,2,3\n1,2,\n",
    "neg.csv": "a,y\n" + "".join(f"{i},{i - 20}\n" for i in range(40)),
    "frac.csv": "a,y\n" + "".join(f"{i},{i / 2}\n" for i in range(40)),
    "small.csv": "a,y\n1,2\n2,3\n3,4\n",
    "new.csv": "a\n1\n",
}

CLI_ROWS = {
    "missing file": _csv("missing.csv"),
    "empty CSV": _csv("empty.csv"),
    "missing target column": _csv("d.csv", "price"),
    "unknown feature column": _csv("d.csv", "y", "--data.init_args.features", "[a, c]"),
    "non-numeric column": _csv("text.csv", "y", "--data.init_args.features", "[a, b]"),
    "NaN in features": _csv("nan.csv"),
    "inf in features": _csv("inf.csv"),
    "NaN in target": _csv("nan_y.csv"),
    "y <= 0 for gamma": _csv("neg.csv", "y", "--model.family", "gamma"),
    "non-integer counts for poisson": _csv("frac.csv", "y", "--model.family", "poisson"),
    "unknown family": _csv("d.csv", "y", "--model.family", "gausian"),
    "unknown activation": _csv("d.csv", "y", "--model.activation", "sofplus"),
    "beta <= 0": _csv("d.csv", "y", "--model.softplus_beta", "0"),
    "threshold out of range": _csv("d.csv", "y", "--model.softplus_threshold", "100"),
    "floor <= 0": _csv("d.csv", "y", "--model.floor", "0"),
    "batch size larger than the data": _csv("small.csv", "y", "--data.init_args.batch_size", "64"),
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
    "test with another model's checkpoint": [
        "test",
        *_csv("d.csv")[1:],
        "--ckpt_path",
        "other.ckpt",
    ],
}


def make_files(folder: Path) -> None:
    """The inputs the rows refer to, written into ``folder``."""
    import lightning

    for name, text in FILES.items():
        (folder / name).write_text(text)
    torch.save({"state_dict": {}, "hyper_parameters": {"lr": 0.1}}, folder / "other.ckpt")
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
    from softzoo.onnx import export

    (folder / "cut.onnx").write_bytes(export(model, folder / "full.onnx").read_bytes()[:2000])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("errors")
    make_files(folder)
    return folder


def _message(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if "error:" in line]
    return lines[-1] if lines else err.strip()


@pytest.mark.parametrize("row", sorted(CLI_ROWS))
def test_cli_row(row: str, workdir: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(workdir)
    assert main(CLI_ROWS[row]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    message = _message(err)
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
    }
    for row, message in rows.items():
        assert message in DOC, f"row {row!r}: docs/errors.md lacks the message\n{message}"


def test_the_table_has_at_least_twenty_rows() -> None:
    rows = [
        line
        for line in DOC.splitlines()
        if line.startswith("| ") and not line.startswith("| bad input")
    ]
    assert len(rows) >= 20 and len(CLI_ROWS) + 2 >= 20
