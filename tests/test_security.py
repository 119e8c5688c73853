"""The security model of docs/reliability.md: untrusted files never run code, a certificate
certifies what it says, outputs never destroy inputs, runs never destroy each other, and
inputs mean the same thing at fit and at predict."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from conftest import ROOT, predict_py

import softzoo
from softzoo._io import WriteError, atomic_write
from softzoo.cli import INTERRUPTED_STATUS, main
from softzoo.models import SoftRegressor
from softzoo.onnx import check_parity, export, export_certified, read_metadata
from softzoo.runner import SIGTERM_STATUS
from softzoo.zoo import file_sha256, load_weights, save_weights
from softzoo.zoo.weights import fetch

PREDICT = ROOT / "export/predict.py"
TABLE = "a,b,y\n" + "".join(f"{i},{i % 3},{i + 1}\n" for i in range(40))


class _Payload:
    """Unpickling this creates ``marker``: proof that a load ran code from the file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _plant(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": _Payload(marker), "hyper_parameters": {}}, path)
    return path


def _fit_args(folder: Path, *extra: str) -> list[str]:
    (folder / "d.csv").write_text(TABLE)
    return [
        "--data",
        "TabularDataModule",
        "--data.path",
        str(folder / "d.csv"),
        "--data.target",
        "y",
        "--data.batch_size",
        "8",
        "--trainer.max_epochs",
        "1",
        "--trainer.logger",
        "false",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.enable_model_summary",
        "false",
        *extra,
    ]


def _run(args: list[str], capsys) -> tuple[int, str]:
    try:
        status = main(args)
    except SystemExit as exit_:
        status = exit_.code
    return status, capsys.readouterr().err


# ---- 1. untrusted files never run code ----------------------------------------------
@pytest.mark.parametrize("command", ["fit", "test"])
@pytest.mark.parametrize("weights_only", [["--weights_only", "false"], []])
def test_a_planted_last_checkpoint_never_runs(tmp_path, capsys, command, weights_only) -> None:
    marker = tmp_path / "payload-ran"
    _plant(tmp_path / "dir/last.ckpt", marker)
    args = _fit_args(tmp_path, "--ckpt_path", "last", "--checkpoint.dirpath", str(tmp_path / "dir"))
    status, err = _run([command, *args, *weights_only], capsys)
    assert status == 2 and "Traceback" not in err
    assert "weights_only false is refused" in err or "is not a PyTorch Lightning checkpoint" in err
    assert not marker.exists()


@pytest.mark.parametrize("weights_only", [["--weights_only", "false"], []])
def test_a_planted_hpc_checkpoint_never_runs(tmp_path, capsys, weights_only) -> None:
    marker = tmp_path / "payload-ran"
    _plant(tmp_path / "root/hpc_ckpt_1.ckpt", marker)
    args = _fit_args(tmp_path, "--ckpt_path", "hpc", "--trainer.default_root_dir")
    status, _ = _run(["fit", *args, str(tmp_path / "root"), *weights_only], capsys)
    assert status == 2 and not marker.exists()


def test_the_hpc_checkpoint_slurm_picks_by_itself_is_checked_too(tmp_path, capsys, monkeypatch):
    # Under SLURM, Lightning resumes from default_root_dir/hpc_ckpt_*.ckpt without being asked
    monkeypatch.setenv("SLURM_NTASKS", "1")
    monkeypatch.setenv("SLURM_JOB_NAME", "train")
    marker = tmp_path / "payload-ran"
    _plant(tmp_path / "root/hpc_ckpt_1.ckpt", marker)
    args = _fit_args(tmp_path, "--trainer.default_root_dir", str(tmp_path / "root"))
    status, err = _run(["fit", *args], capsys)
    assert status == 2 and "hpc_ckpt_1.ckpt' is not a PyTorch Lightning checkpoint" in err
    assert not marker.exists()


def test_softzoo_loaders_never_unpickle(tmp_path) -> None:
    from softzoo.models import load_checkpoint

    marker = tmp_path / "payload-ran"
    path = _plant(tmp_path / "m.ckpt", marker)
    with pytest.raises(ValueError, match="is not a PyTorch Lightning checkpoint file"):
        load_checkpoint(path)
    status = main(["export", "--ckpt_path", str(path), "--output", str(tmp_path / "m.onnx")])
    assert status == 2 and not marker.exists()


@pytest.fixture
def trained(tmp_path: Path) -> Path:
    """A checkpoint of a quick fit on a 2-feature table (tmp_path/ck/last.ckpt)."""
    args = _fit_args(tmp_path, "--checkpoint.dirpath", str(tmp_path / "ck"))
    assert main(["fit", *args]) == 0
    return tmp_path / "ck/last.ckpt"


@pytest.mark.parametrize("command", ["fit", "validate", "test", "predict"])
def test_a_bad_checkpoint_is_one_error_in_every_command(tmp_path, capsys, trained, command):
    wide = SoftRegressor(3, hidden=[64, 64])
    other = tmp_path / "other"
    other.mkdir()
    torch.save(
        {"state_dict": wide.state_dict(), "hyper_parameters": dict(wide.hparams)},
        other / "last.ckpt",
    )
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(trained.read_bytes()[:5000])
    not_a_checkpoint = tmp_path / "archive.ckpt"
    shutil.make_archive(str(tmp_path / "archive"), "zip", str(other))
    (tmp_path / "archive.zip").rename(not_a_checkpoint)
    cases = {
        "is not a PyTorch Lightning checkpoint file": ["--ckpt_path", str(cut)],
        "is not a PyTorch Lightning checkpoint": ["--ckpt_path", str(not_a_checkpoint)],
        "was trained for a different model (in_features: trained 3, requested 2": [
            "--ckpt_path",
            "last",
            "--checkpoint.dirpath",
            str(other),
        ],
    }
    for message, extra in cases.items():
        status, err = _run([command, *_fit_args(tmp_path, *extra)], capsys)
        assert status == 2 and message in err and "Traceback" not in err, err


# ---- 2. a certificate certifies what it says ----------------------------------------
def _tamper(path: Path, **changes: str | None) -> Path:
    model = onnx.load(str(path))
    meta = {p.key: p.value for p in model.metadata_props}
    for key, value in changes.items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    del model.metadata_props[:]
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save_model(model, str(path))
    return path


TAMPERINGS = {
    "swapped feature_names": {"feature_names": json.dumps(["b", "a"])},
    "family changed to gamma": {"family": "gamma"},
    "broken JSON": {"feature_names": '["a", "b"'},
    "floor changed": {"floor": "0.001"},
    "lowering misstated": {"softplus_lowering": "plain"},
}


@pytest.mark.parametrize(
    "tampering",
    [
        t if t == "family changed to gamma" else pytest.param(t, marks=pytest.mark.slow)
        for t in sorted(TAMPERINGS)
    ],
)
def test_parity_fails_on_tampered_metadata(tmp_path, capsys, tampering) -> None:
    model = SoftRegressor(2, hidden=[8], feature_names=["a", "b"])
    path = _tamper(export(model, tmp_path / "m.onnx"), **TAMPERINGS[tampering])
    report = check_parity(model, path)
    assert not report.passed and report.metadata_mismatches
    assert report.providers[0].passed  # the numbers agree: only the metadata lies
    torch.save(
        {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)},
        tmp_path / "m.ckpt",
    )
    status = main(["parity", str(path), "--ckpt_path", str(tmp_path / "m.ckpt"), "--write"])
    assert status == 1 and "parity metadata: FAIL" in capsys.readouterr().out
    assert json.loads(read_metadata(path)["parity"])["passed"] is False


def test_parity_fails_on_a_file_without_metadata(tmp_path) -> None:
    model = SoftRegressor(2, hidden=[8])
    path = export(model, tmp_path / "m.onnx")
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    onnx.save_model(proto, str(path))
    report = check_parity(model, path)
    assert not report.passed and "family: missing" in report.metadata_mismatches


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"feature_names": '["a", "b"'}, "unreadable metadata 'feature_names'"),
        ({"family": "gamma"}, "family 'gamma' has parameters ['concentration', 'rate']"),
        ({"feature_names": '["a"]'}, "input_columns ['a', 'b'] do not match feature_names"),
        ({"param_names": '["loc"]'}, "param_names ['loc'] but family 'gaussian' has"),
        ({"input_columns": "[]"}, "the input columns make inputs {} but the graph takes"),
        ({"feature_names": None}, "has no softzoo metadata 'feature_names'"),
    ],
)
def test_predict_py_refuses_metadata_that_contradicts_the_graph(tmp_path, changes, message):
    path = _tamper(
        export(SoftRegressor(2, hidden=[8], feature_names=["a", "b"]), tmp_path / "m.onnx"),
        **changes,
    )
    (tmp_path / "in.csv").write_text("a,b\n1,2\n")
    result = predict_py(path, tmp_path / "in.csv", "-o", tmp_path / "out.csv")
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out.csv").exists()


def test_predict_py_verifies_the_file_before_use(tmp_path) -> None:
    manifest = ROOT / "export/manifest.json"
    entry = json.loads(manifest.read_text())["models"]["yacht-lognormal-relu"]
    shipped = ROOT / "export" / entry["file"]
    assert file_sha256(shipped) == entry["sha256"]
    from softzoo import datasets

    datasets.load_frame("yacht").head(5).to_csv(tmp_path / "in.csv", index=False)
    ok = predict_py(
        shipped, tmp_path / "in.csv", "-o", tmp_path / "out.csv", "--manifest", manifest
    )
    assert ok.returncode == 0, ok.stderr
    copy = tmp_path / entry["file"]
    copy.write_bytes(shipped.read_bytes() + b"\0")
    for check in (["--manifest", manifest], ["--sha256", entry["sha256"]]):
        bad = predict_py(copy, tmp_path / "in.csv", "-o", tmp_path / "bad.csv", *check)
        assert bad.returncode == 2 and "failed verification" in bad.stderr
        assert not (tmp_path / "bad.csv").exists()


def test_weights_of_another_model_are_refused_despite_a_correct_sha256(tmp_path) -> None:
    other = softzoo.get_model_weights("yacht-lognormal-relu")
    with pytest.raises(ValueError, match=r"was trained for a different model \(activation"):
        softzoo.get_model("yacht-lognormal-softplus", weights=str(other.file), sha256=other.sha256)
    path = save_weights(SoftRegressor(6, hidden=[16]), tmp_path / "w.safetensors", {})
    with pytest.raises(ValueError, match=r"family: trained 'gaussian', requested 'lognormal'"):
        load_weights(SoftRegressor(6, hidden=[16], family="lognormal"), path, file_sha256(path))


def test_a_download_that_fails_verification_is_not_kept(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SOFTZOO_CACHE", str(tmp_path / "cache"))
    source = softzoo.get_model_weights("yacht-lognormal-relu")
    wrong = "0" * 64
    with pytest.raises(ValueError, match=r"failed verification: sha256 is .* nothing was kept"):
        fetch(source.file.as_uri(), wrong)
    assert not any((tmp_path / "cache").glob("*"))
    assert fetch(source.file.as_uri(), source.sha256).is_file()  # the right checksum still works


# ---- 3. outputs never destroy inputs, runs never destroy each other ------------------
def test_predict_py_never_writes_over_its_inputs(tmp_path) -> None:
    path = export(SoftRegressor(2, hidden=[8], feature_names=["a", "b"]), tmp_path / "m.onnx")
    (tmp_path / "in.csv").write_text("a,b\n1,2\n")
    (tmp_path / "link.csv").symlink_to(tmp_path / "in.csv")
    before = {p: p.read_bytes() for p in (path, tmp_path / "in.csv")}
    for output, message in (
        (tmp_path / "in.csv", "is the input file"),
        (tmp_path / "link.csv", "is the input file"),
        (path, "is the model file"),
        (tmp_path, "it is a directory"),
    ):
        result = predict_py(path, tmp_path / "in.csv", "-o", output)
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert all(p.read_bytes() == content for p, content in before.items())


def test_predict_never_writes_over_its_checkpoint(tmp_path, capsys, trained) -> None:
    before = trained.read_bytes()
    args = _fit_args(tmp_path, "--ckpt_path", str(trained), "--output", str(trained))
    status, err = _run(["predict", *args], capsys)
    assert status == 2 and "is the checkpoint" in err and trained.read_bytes() == before


def test_a_users_config_yaml_is_never_overwritten(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    mine = "# my settings, with comments\nmodel:\n  lr: 0.1\n"
    (tmp_path / "config.yaml").write_text(mine)
    assert main(["fit", *_fit_args(tmp_path)]) == 0  # no logger, no --checkpoint.dirpath
    assert (tmp_path / "config.yaml").read_text() == mine
    saved = (tmp_path / "checkpoints/config.yaml").read_text()
    assert saved.startswith("# softzoo") and "target: y" in saved


def test_a_stale_lock_is_taken_over_and_a_finished_run_leaves_none(tmp_path, capsys) -> None:
    folder = tmp_path / "ck"
    folder.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = {"host": __import__("socket").gethostname(), "pid": dead.pid}
    (folder / ".softzoo-fit.lock").write_text(json.dumps(lock))
    assert main(["fit", *_fit_args(tmp_path, "--checkpoint.dirpath", str(folder))]) == 0
    assert f"taking over the lock {str(folder / '.softzoo-fit.lock')!r}" in capsys.readouterr().out
    assert not (folder / ".softzoo-fit.lock").exists() and (folder / "last.ckpt").is_file()


@pytest.mark.slow
def test_two_runs_in_one_directory_the_second_stops_before_it_starts(tmp_path) -> None:
    folder = tmp_path / "ck"
    args = _fit_args(tmp_path, "--checkpoint.dirpath", str(folder), "--trainer.max_epochs", "400")
    first = _start_fit(args)
    try:
        _wait_for(folder / ".softzoo-fit.lock", first)
        second = subprocess.run(
            [sys.executable, "-m", "softzoo.cli", "fit", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 2 and "is in use by another softzoo fit" in second.stderr
    finally:
        first.kill()
        first.wait()


def _start_fit(args: list[str]) -> subprocess.Popen:
    command = [sys.executable, "-m", "softzoo.cli", "fit", *args]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signal_number", "status", "says"),
    [
        (signal.SIGTERM, SIGTERM_STATUS, "stopped by SIGTERM"),
        (signal.SIGINT, INTERRUPTED_STATUS, "softzoo fit: interrupted (Ctrl-C)"),
    ],
)
def test_sigterm_exits_143_and_ctrl_c_130_with_one_line(
    tmp_path, signal_number: int, status: int, says: str
) -> None:
    folder = tmp_path / "ck"
    args = _fit_args(tmp_path, "--checkpoint.dirpath", str(folder), "--trainer.max_epochs", "400")
    run = _start_fit(args)
    try:
        _wait_for(folder / "last.ckpt", run)
        run.send_signal(signal_number)
        _, err = run.communicate(timeout=120)
    finally:
        run.kill()  # a fit that ignored the signal must not outlive the test
    assert run.returncode == status, err
    assert says in err and "Traceback" not in err


# ---- a full disk: one clear error, the old file kept ----------------------------------
@pytest.mark.parametrize(
    "failure",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 128 vs 0"),
    ],
)
def test_atomic_write_reports_a_full_disk_and_keeps_the_old_file(tmp_path, failure) -> None:
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")

    def fail(tmp: Path) -> None:
        tmp.write_bytes(b"partial")
        raise failure

    with pytest.raises(WriteError, match=r"could not write .*is the disk full\?"):
        atomic_write(target, fail)
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["f.bin"]


@contextlib.contextmanager
def _small_disk(folder: Path, free_bytes: int) -> Iterator[Path]:
    """A tmpfs with about ``free_bytes`` free (needs root; the test skips otherwise)."""
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        free = shutil.disk_usage(folder).free
        (folder / "filler").write_bytes(b"\0" * max(0, free - free_bytes))
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@pytest.mark.slow
def test_every_writer_reports_a_real_full_disk(tmp_path, capsys, trained) -> None:
    with _small_disk(tmp_path / "disk", 8192) as disk:
        (disk / "m.onnx").write_text("old")
        status, err = _run(
            ["export", "--ckpt_path", str(trained), "--output", str(disk / "m.onnx")], capsys
        )
        assert status == 2 and "No space left on device (is the disk full?)" in err
        assert (disk / "m.onnx").read_text() == "old"
        status, err = _run(
            ["fit", *_fit_args(tmp_path, "--checkpoint.dirpath", str(disk / "ck"))], capsys
        )
        assert status == 2 and "is the disk full?" in err and "Traceback" not in err
        export(softzoo.models.load_checkpoint(trained), tmp_path / "m.onnx")
        rows = "a,b\n" + "1,2\n" * 5000
        (tmp_path / "in.csv").write_text(rows)
        result = predict_py(tmp_path / "m.onnx", tmp_path / "in.csv", "-o", disk / "out.csv")
        assert result.returncode == 2 and "is the disk full?" in result.stderr
        args = _fit_args(tmp_path, "--ckpt_path", str(trained), "--output", str(disk / "p.csv"))
        args += ["--data.predict_path", str(tmp_path / "in.csv")]
        status, err = _run(["predict", *args], capsys)
        assert status == 2 and "is the disk full?" in err


# ---- 4. inputs mean the same thing at fit and at predict ------------------------------
@pytest.mark.slow
def test_a_value_beyond_float32_is_refused_at_predict_time(tmp_path, capsys, trained) -> None:
    (tmp_path / "new.csv").write_text("a,b\n1,2\n3,1e300\n")
    args = _fit_args(
        tmp_path,
        "--ckpt_path",
        str(trained),
        "--data.predict_path",
        str(tmp_path / "new.csv"),
        "--output",
        str(tmp_path / "p.csv"),
    )
    status, err = _run(["predict", *args], capsys)
    assert status == 2 and "feature 'b' has 1 value(s) too large for float32" in err
    assert not (tmp_path / "p.csv").exists()
    export(softzoo.models.load_checkpoint(trained), tmp_path / "m.onnx")
    result = predict_py(tmp_path / "m.onnx", tmp_path / "new.csv", "-o", tmp_path / "o.csv")
    assert (
        result.returncode == 2
        and "line 3: column 'b' holds '1e300': inf or beyond" in result.stderr
    )


def test_a_model_predicts_on_its_own_training_file_whatever_its_header(tmp_path) -> None:
    table = "\ufeffa, b ,y\n" + "".join(f"{i},{i % 3},{i + 1}\n" for i in range(40))
    (tmp_path / "d.csv").write_bytes(table.encode())
    args = _fit_args(tmp_path, "--checkpoint.dirpath", str(tmp_path / "ck"))
    (tmp_path / "d.csv").write_bytes(table.encode())  # _fit_args writes its own table
    assert main(["fit", *args]) == 0
    module = softzoo.models.load_checkpoint(tmp_path / "ck/last.ckpt")
    assert module.feature_names == ["a", "b"]
    export(module, tmp_path / "m.onnx")
    result = predict_py(tmp_path / "m.onnx", tmp_path / "d.csv", "-o", tmp_path / "o.csv")
    assert result.returncode == 0, result.stderr
    got = np.genfromtxt(tmp_path / "o.csv", delimiter=",", names=True)
    features = torch.tensor([[i, i % 3] for i in range(40)], dtype=torch.float32)
    with torch.no_grad():
        mean = module.family.mean(module(features))
    np.testing.assert_allclose(got["mean"], mean.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("header", "message"),
    [("a,a,y", "names 'a' twice (columns 1 and 2)"), (",a,y", "column 1 of the header")],
)
def test_training_and_predict_py_refuse_the_same_headers(tmp_path, header, message) -> None:
    from softzoo.data.tabular import read_table

    (tmp_path / "bad.csv").write_text(f"{header}\n1,2,3\n")
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_table(tmp_path / "bad.csv")
    path = export(SoftRegressor(1, hidden=[4], feature_names=["a"]), tmp_path / "m.onnx")
    result = predict_py(path, tmp_path / "bad.csv", "-o", tmp_path / "o.csv")
    assert result.returncode == 2 and message in result.stderr


def test_export_certified_stores_the_report(tmp_path) -> None:
    report = export_certified(SoftRegressor(2, hidden=[4]), tmp_path / "m.onnx")
    assert report.passed and json.loads(read_metadata(tmp_path / "m.onnx")["parity"]) == (
        report.to_dict()
    )
    assert os.path.getsize(tmp_path / "m.onnx") > 0
