"""The built wheel, installed into a fresh environment outside any checkout: the demo, a
README command line and the estimator run there (the configs and data ship inside)."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT


def _run(command: list[str], cwd: Path, timeout: float = 900) -> str:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def _readme_line(prefix: str) -> list[str]:
    lines = (ROOT / "README.md").read_text().splitlines()
    return shlex.split(next(line for line in lines if line.startswith(prefix)))


@pytest.mark.slow
def test_the_wheel_runs_outside_the_repository(tmp_path: Path) -> None:
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", "dist", str(ROOT)], tmp_path
    )
    wheel = next((tmp_path / "dist").glob("softzoo-*.whl"))
    _run([sys.executable, "-m", "venv", "env"], tmp_path)
    pip = [str(tmp_path / "env/bin/python"), "-m", "pip", "install", "-q"]
    _run([*pip, "torch==2.13.0"], tmp_path)
    _run([*pip, "-c", str(ROOT / "constraints.txt"), str(wheel)], tmp_path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    softzoo = str(tmp_path / "env/bin/softzoo")

    demo = _run([softzoo, "demo", "--root", "runs/demo"], outside)
    assert "parity cpu: PASS" in demo and "held-out test split" in demo
    assert "gaussian" in _run([softzoo, "config", "list"], outside)
    line = _readme_line("softzoo fit --config gamma ")
    _run([softzoo, *line[1:], "--trainer.enable_progress_bar", "false"], outside)
    estimator = (
        "from softzoo.datasets import load_frame\n"
        "from softzoo.sklearn import SoftzooRegressor\n"
        "f = load_frame('penguins').dropna(subset=['body_mass_g'])\n"
        "m = SoftzooRegressor(family='gamma', max_epochs=3)\n"
        "m.fit(f.drop(columns='body_mass_g'), f['body_mass_g'])\n"
        "print(m.predict_interval(f).shape)\n"
    )
    assert "(342, 2)" in _run([str(tmp_path / "env/bin/python"), "-c", estimator], outside)
