"""Shared fixtures: deterministic seeds, quick CLI and Trainer set-ups, and the UCI
benchmark location (optional)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from softzoo.runner import QUIET_RUN

#: The repository root (tests import it from here).
ROOT = Path(__file__).resolve().parents[1]

#: Zero families whose code path another one runs in the fast suite (zero_mass.py serves
#: four; the hurdle log-normal and the zero-inflated NB stand for them): their rows of the
#: every-family integration tests run under ``make test-all``.
SHARED_PATH_FAMILIES = ("hurdle_gamma", "zero_inflated_poisson")


def every_family(names: list[str] | None = None) -> list:
    """The families (default: all) as pytest parameters, SHARED_PATH_FAMILIES marked slow."""
    from softzoo.families import list_families

    names = list_families() if names is None else names
    slow = pytest.mark.slow
    return [pytest.param(n, marks=slow) if n in SHARED_PATH_FAMILIES else n for n in names]


UCI_ROOT = Path(
    os.environ.get("SOFTZOO_UCI_ROOT", Path(__file__).resolve().parents[2] / "shared/data/uci")
)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def yacht_fit(tmp_path: Path) -> Callable[..., list[str]]:
    """Arguments of a quick ``softzoo fit``/``test``/``predict`` (without the command): the
    Gaussian example config on yacht, 2 epochs, no logger, checkpoints in tmp_path/ckpt."""

    def args(*extra: str) -> list[str]:
        return [
            "--config",
            str(ROOT / "softzoo/configs/gaussian.yaml"),
            "--data.init_args.dataset",
            "yacht",
            "--trainer.max_epochs",
            "2",
            "--trainer.default_root_dir",
            str(tmp_path),
            "--trainer.logger",
            "false",
            *QUIET_RUN[2:],
            "--checkpoint.dirpath",
            str(tmp_path / "ckpt"),
            *extra,
        ]

    return args


def make_quiet_trainer(**options) -> pl.Trainer:
    """A ``Trainer`` with no logger, checkpoints, progress bar or model summary; keyword
    arguments are passed on (and override those)."""
    quiet = {
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
    }
    return pl.Trainer(**{**quiet, **options})


def predict_py(*args: object, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``export/predict.py`` (numpy + onnxruntime only) with ``args``."""
    command = [sys.executable, str(ROOT / "export/predict.py"), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def quiet_trainer() -> Callable[..., pl.Trainer]:
    """:func:`make_quiet_trainer` as a fixture."""
    return make_quiet_trainer


@pytest.fixture
def uci_root() -> Path:
    if not (UCI_ROOT / "concrete" / "data.txt").exists():
        pytest.skip(f"UCI benchmark data not found at {UCI_ROOT} (set SOFTZOO_UCI_ROOT)")
    return UCI_ROOT


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
