"""Work is never lost: kill -9 and resume, atomic files, DDP against one process."""

import csv
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from conftest import ROOT

from softzoo.cli import main
from softzoo.data import TabularDataModule
from softzoo.models import load_checkpoint
from softzoo.runner import QUIET_RUN

CONFIG = ["--config", str(ROOT / "softzoo/configs/gaussian.yaml")]


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "softzoo.cli", *args]


def _test_metrics(checkpoint: Path, dataset: str) -> dict[str, float]:
    x, y = TabularDataModule(dataset=dataset).tensors("test")
    return load_checkpoint(checkpoint).evaluate(x, y)


def test_ckpt_path_last_with_nothing_to_resume_is_an_error(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    code = main(["fit", *CONFIG, "--trainer.max_epochs", "1", *QUIET_RUN, "--ckpt_path", "last"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--ckpt_path last: no last.ckpt under runs/csv/version_*/checkpoints" in err
    assert not list(tmp_path.glob("runs/csv/*/checkpoints/*.ckpt"))


@pytest.mark.slow
def test_kill_9_mid_epoch_then_resume_matches_an_uninterrupted_run(tmp_path) -> None:
    args = [
        "fit",
        *CONFIG,
        "--data.init_args.dataset",
        "power-plant",
        "--data.init_args.batch_size",
        "16",
        "--trainer.max_epochs",
        "5",
        *QUIET_RUN,
    ]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    whole.mkdir(), killed.mkdir()
    subprocess.run(_command(*args), cwd=whole, check=True, capture_output=True, timeout=600)

    process = subprocess.Popen(_command(*args), cwd=killed, stderr=subprocess.DEVNULL)
    metrics = killed / "runs/csv/version_0/metrics.csv"
    deadline = time.monotonic() + 300
    while not (metrics.is_file() and "val_loss" in metrics.read_text()):
        assert process.poll() is None and time.monotonic() < deadline, "fit ended before the kill"
        time.sleep(0.05)
    time.sleep(random.uniform(0.1, 0.5))  # somewhere inside epoch 2
    assert process.poll() is None
    process.send_signal(signal.SIGKILL)
    process.wait()
    interrupted = torch.load(killed / "runs/csv/version_0/checkpoints/last.ckpt", weights_only=True)
    assert interrupted["epoch"] < 4, "the kill came too late to test a resume"

    subprocess.run(
        _command(*args, "--ckpt_path", "last"), cwd=killed, check=True, capture_output=True
    )
    expected = _test_metrics(whole / "runs/csv/version_0/checkpoints/last.ckpt", "power-plant")
    resumed = _test_metrics(killed / "runs/csv/version_1/checkpoints/last.ckpt", "power-plant")
    for name, value in expected.items():
        assert resumed[name] == pytest.approx(value, rel=1e-4, abs=1e-6), name


_WRITER = textwrap.dedent(
    """
    import sys, torch
    from pathlib import Path
    from softzoo._io import atomic_write
    from softzoo.callbacks import AtomicCheckpointIO

    folder = Path(sys.argv[1])
    io = AtomicCheckpointIO()
    generation = 0
    while True:
        generation += 1
        io.save_checkpoint({"gen": generation, "blob": torch.full((1_000_000,), generation)},
                           folder / "last.ckpt")
        atomic_write(folder / "table.csv",
                     lambda tmp: tmp.write_text(f"{generation}\\n" * 200_000 + "end\\n"))
        print(generation, flush=True)
    """
)


# kills a fit many times over (~60 s on 2 cores)
@pytest.mark.slow
def test_kill_9_during_writes_leaves_the_old_or_the_new_file(tmp_path) -> None:
    rng = random.Random(0)
    for _ in range(6):
        process = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(tmp_path)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        process.stdout.readline()  # one complete generation of both files exists
        time.sleep(rng.uniform(0.0, 0.3))
        process.send_signal(signal.SIGKILL)
        process.wait()
        checkpoint = torch.load(tmp_path / "last.ckpt", weights_only=True)
        assert (checkpoint["blob"] == checkpoint["gen"]).all()
        lines = (tmp_path / "table.csv").read_text().splitlines()
        assert len(lines) == 200_001 and lines[-1] == "end" and len(set(lines[:-1])) == 1


def _csv_test_row(folder: Path) -> dict[str, float]:
    rows = [
        row
        for path in sorted(folder.glob("**/metrics.csv"))
        for row in csv.DictReader(path.open())
        if row.get("test_nll")
    ]
    return {k: float(v) for k, v in rows[-1].items() if k.startswith("test_") and v}


@pytest.mark.slow
def test_two_process_ddp_matches_one_process_with_the_same_global_batch(tmp_path) -> None:
    def run(name: str, *extra: str) -> tuple[Path, dict[str, float]]:
        folder = tmp_path / name
        base = [
            *CONFIG,
            "--data.init_args.dataset",
            "yacht",
            "--trainer.max_epochs",
            "20",
            "--trainer.accelerator",
            "cpu",
            "--trainer.logger",
            "lightning.pytorch.loggers.CSVLogger",
            "--trainer.logger.save_dir",
            str(folder / "logs"),
            "--checkpoint.dirpath",
            str(folder / "ckpt"),
            *QUIET_RUN,
            *extra,
        ]
        for command in (["fit"], ["test", "--ckpt_path", str(folder / "ckpt/last.ckpt")]):
            result = subprocess.run(
                _command(command[0], *base, *command[1:]), capture_output=True, text=True
            )
            assert result.returncode == 0, result.stderr[-3000:]
        return folder / "ckpt/last.ckpt", _csv_test_row(folder / "logs")

    _, one = run("one", "--data.init_args.batch_size", "64")
    ddp_ckpt, ddp = run(
        "ddp",
        "--data.init_args.batch_size",
        "32",
        "--trainer.strategy",
        "ddp",
        "--trainer.devices",
        "2",
    )
    # Metrics synced over the two ranks' test shards equal one process on all the rows.
    ddp_alone = _test_metrics(ddp_ckpt, "yacht")
    for name, value in ddp.items():
        assert value == pytest.approx(ddp_alone[name.removeprefix("test_")], rel=1e-5), name
    # Same global batches (rank r takes rows r, r+2, … of one shared permutation); only
    # the last training row of each epoch is dropped under DDP (215 rows, odd).
    assert ddp["test_nll"] == pytest.approx(one["test_nll"], abs=0.05)
    assert ddp["test_rmse"] == pytest.approx(one["test_rmse"], rel=0.05)
    print(f"DDP - one process: { ({k: ddp[k] - one[k] for k in one}) }")
