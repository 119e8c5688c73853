import subprocess
import sys
import warnings
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import ROOT

from softzoo.cli import COMMANDS, main
from softzoo.models import SoftRegressor
from softzoo.runner import CHECKPOINT_DEFAULTS, QUIET_RUN, default_loggers


def _softzoo(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "softzoo.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_help_lists_every_command() -> None:
    result = _softzoo("--help")
    assert result.returncode == 0
    for name in (
        "fit",
        "validate",
        "test",
        "predict",
        "export",
        "parity",
        "zoo",
        "reproduce",
        "report",
        "bench",
    ):
        assert f"  {name} " in result.stdout
    assert set(COMMANDS) >= {"fit", "export", "zoo", "reproduce", "report", "bench"}


def test_unknown_command_suggests(capsys) -> None:
    assert main(["tset"]) == 2
    assert "unknown command 'tset'. Did you mean 'test'?" in capsys.readouterr().err


def test_fit_test_predict_round_trip(tmp_path, monkeypatch, yacht_fit) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["fit", *yacht_fit(*QUIET_RUN)]) == 0
    last = tmp_path / "ckpt" / "last.ckpt"
    assert last.is_file() and (tmp_path / "ckpt" / "best.ckpt").is_file()
    assert main(["test", *yacht_fit(*QUIET_RUN), "--ckpt_path", str(last)]) == 0
    out = tmp_path / "pred.csv"
    assert (
        main(["predict", *yacht_fit(*QUIET_RUN), "--ckpt_path", str(last), "--output", str(out)])
        == 0
    )
    frame = pd.read_csv(out)
    # the default recipe: a TabM-mini ensemble of 8 (member parameters, the mixture's
    # mean, median and variance)
    members = [f"{p}_{i}" for p in ("loc", "scale") for i in range(8)]
    stats = ["mean", "median", "variance", "lower_90", "upper_90", "target"]
    assert list(frame.columns) == members + stats
    assert len(frame) == round(308 * 0.2) and (frame[members[8:]] > 0).all().all()
    model = SoftRegressor.load_from_checkpoint(last, weights_only=True).eval()
    assert (
        model.feature_names[0] == "buoyancy_position"
        and model.hparams.target_name == "residuary_resistance"
    )


def test_predict_on_a_new_file(tmp_path, monkeypatch, yacht_fit) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["fit", *yacht_fit(*QUIET_RUN)]) == 0
    from softzoo import datasets

    frame = datasets.load_frame("yacht").drop(columns=["residuary_resistance"]).head(7)
    frame.to_csv(tmp_path / "new.csv", index=False)
    args = [
        *yacht_fit(*QUIET_RUN),
        "--ckpt_path",
        str(tmp_path / "ckpt/last.ckpt"),
        "--data.init_args.predict_path",
        str(tmp_path / "new.csv"),
        "--output",
        str(tmp_path / "p.csv"),
    ]
    with warnings.catch_warnings(record=True) as caught:
        assert main(["predict", *args]) == 0
    assert not [w for w in caught if "batch indices" in str(w.message)]
    assert len(pd.read_csv(tmp_path / "p.csv")) == 7
    frame.drop(columns=["froude_number"]).to_csv(tmp_path / "new.csv", index=False)
    assert main(["predict", *args]) == 2


@pytest.mark.parametrize(
    ("csv", "extra", "message"),
    [
        (None, [], "data file '.*missing.csv' does not exist"),
        ("a,b,y\n1,2,3\n", ["--data.init_args.target", "z"], "target column 'z' not found"),
        (
            "a,b,y\n1,2,3\n2,3..,4\n3,4,5\n",
            ["--data.init_args.features", "[a, b]"],
            "feature column 'b' .* is numeric except for 1 cell",
        ),
        ("a,b,y\n1,2,3\n1,inf,3\n", [], "feature 'b' has 1 infinite value"),
        (
            "a,y\n" + "".join(f"{i},{i - 5}\n" for i in range(40)),
            ["--model.family", "gamma"],
            "family 'gamma' needs y > 0, but the train target has",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path, monkeypatch, capsys, yacht_fit, csv, extra, message
) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / ("missing.csv" if csv is None else "d.csv")
    if csv is not None:
        path.write_text(csv)
    args = [
        *yacht_fit(*QUIET_RUN),
        "--data.init_args.dataset",
        "null",
        "--data.init_args.path",
        str(path),
        "--data.init_args.target",
        "y",
        "--data.init_args.batch_size",
        "4",
        *extra,
    ]
    assert main(["fit", *args]) == 2
    err = capsys.readouterr().err
    import re

    assert re.search(f"softzoo fit: error: {message}", err), err
    assert "Traceback" not in err


def test_bad_input_through_the_console_script_has_no_traceback(tmp_path) -> None:
    result = _softzoo(
        "fit",
        "--config",
        str(ROOT / "softzoo/configs/gaussian.yaml"),
        "--data.init_args.dataset",
        "null",
        "--data.init_args.path",
        str(tmp_path / "x.csv"),
        "--data.init_args.target",
        "y",
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("softzoo fit: error: data file")
    assert "Traceback" not in result.stderr


def test_trainer_yaml_writes_out_the_code_defaults() -> None:
    config = yaml.safe_load((ROOT / "softzoo/configs/trainer.yaml").read_text())
    loggers = [
        (lg["class_path"].rsplit(".", 1)[1], lg["init_args"]) for lg in config["trainer"]["logger"]
    ]
    expected = [
        (type(lg).__name__, {"save_dir": lg.save_dir, "name": lg.name}) for lg in default_loggers()
    ]
    assert loggers == expected
    assert config["checkpoint"] == CHECKPOINT_DEFAULTS


@pytest.mark.parametrize(
    "config",
    sorted(p for p in (ROOT / "softzoo/configs").glob("*.yaml") if p.stem != "trainer"),
    ids=lambda p: p.stem,
)
def test_example_configs_parse(config: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(config), "--print_config"])
    assert exit_info.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    # one config per family is named after it; categorical.yaml is the real-table example
    expected = "gamma" if config.stem == "categorical" else config.stem
    assert printed["model"]["family"] == expected


def test_every_family_has_a_shipped_config() -> None:
    from softzoo.configs import list_configs
    from softzoo.families import list_families

    assert set(list_families()) <= set(list_configs())


@pytest.mark.slow
def test_two_process_ddp_fit_and_test(tmp_path) -> None:
    args = [
        "--config",
        str(ROOT / "softzoo/configs/gaussian.yaml"),
        "--data.init_args.dataset",
        "yacht",
        "--trainer.max_epochs",
        "3",
        "--trainer.strategy",
        "ddp",
        "--trainer.devices",
        "2",
        "--trainer.accelerator",
        "cpu",
        "--trainer.logger",
        "false",
        "--checkpoint.dirpath",
        str(tmp_path / "ckpt"),
        *QUIET_RUN,
    ]
    fit = _softzoo("fit", *args, cwd=tmp_path)
    assert fit.returncode == 0, fit.stderr[-3000:]
    test = _softzoo("test", *args, "--ckpt_path", str(tmp_path / "ckpt/last.ckpt"), cwd=tmp_path)
    assert test.returncode == 0, test.stderr[-3000:]
    assert "test_nll" in test.stdout and "test_picp_90" in test.stdout


def test_default_root_dir_holds_the_whole_run(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d.csv").write_text("a,y\n" + "".join(f"{i},{i + 1}\n" for i in range(30)))
    args = [
        "fit",
        "--data",
        "TabularDataModule",
        "--data.path",
        "d.csv",
        "--data.target",
        "y",
        "--trainer.max_epochs",
        "1",
        "--trainer.default_root_dir",
        "out",
        *QUIET_RUN,
    ]
    assert main(args) == 0
    assert (tmp_path / "out/runs/csv/version_0/checkpoints/last.ckpt").is_file()
    assert (tmp_path / "out/runs/csv/version_0/config.yaml").is_file()
    assert (tmp_path / "out/runs/tensorboard").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.csv", "out"]


@pytest.fixture
def read_only_folder(tmp_path: Path):
    """A real read-only file system (a tmpfs mounted ro); skipped where mounting is not
    allowed (no root)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip("mounting a read-only tmpfs needs root")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


@pytest.mark.parametrize(
    "args", [["demo"], ["fit", "--config", "gaussian", "--trainer.max_epochs", "1"]]
)
def test_a_read_only_working_folder_is_one_line_before_any_data_is_read(
    args: list[str], read_only_folder: Path
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "softzoo.cli", *args],
        cwd=read_only_folder, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "softzoo: the columns of" not in result.stderr
    message = result.stderr.strip().splitlines()[-1].replace(str(read_only_folder), "ro")
    assert message in (ROOT / "docs/errors.md").read_text(), message


def test_a_ctrl_c_that_a_finaliser_swallowed_still_stops_the_fit(tmp_path, yacht_fit) -> None:
    """Python "ignores" a KeyboardInterrupt raised while it runs a finaliser; the fit must
    stop at the next batch all the same (it once ran on after Ctrl-C)."""
    import os
    import signal
    import time

    import lightning.pytorch as pl

    from softzoo.runner import run_cli

    class SwallowedCtrlC(pl.Callback):
        def on_train_epoch_end(self, trainer: pl.Trainer, *_: object) -> None:
            if trainer.current_epoch == 1:
                try:  # what a finaliser does with an interrupt raised inside it
                    os.kill(os.getpid(), signal.SIGINT)
                    time.sleep(5)
                except KeyboardInterrupt:
                    pass

    # Python's own Ctrl-C, whatever an earlier test in this worker left behind
    handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    try:
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            fit = yacht_fit("--trainer.max_epochs", "50")
            run_cli(["fit", *fit], callbacks=[SwallowedCtrlC()])
        assert time.monotonic() - started < 30
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        signal.signal(signal.SIGINT, handler)
