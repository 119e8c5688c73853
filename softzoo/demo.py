"""``make demo``: train a Gaussian model with Softplus hidden layers on the bundled concrete
data through the ``softzoo`` CLI, test it on the held-out split, print a short table, then
export it to ONNX and certify it under onnxruntime (CPU).

    python -m softzoo.demo [--config configs/examples/gaussian.yaml] [--root runs/demo]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from softzoo.onnx import ParityReport

__all__ = ["main"]

_ROWS = (
    ("test_nll", "NLL (nats)"),
    ("test_rmse", "RMSE (MPa)"),
    ("test_picp_90", "PICP 90 %"),
    ("test_width_90", "width 90 % (MPa)"),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m softzoo.demo", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--config", default="configs/examples/gaussian.yaml")
    parser.add_argument("--root", default="runs/demo", help="folder for logs and checkpoints")
    args = parser.parse_args(argv)
    quiet = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
    logger = [
        "--trainer.logger",
        "lightning.pytorch.loggers.CSVLogger",
        "--trainer.logger.save_dir",
        args.root,
        "--trainer.logger.name",
        "concrete-gaussian",
    ]
    start = time.perf_counter()
    from softzoo.cli import run_cli

    fit = run_cli(["fit", "--config", args.config, *logger, *quiet])
    best = fit.trainer.checkpoint_callback.best_model_path
    tested = run_cli(["test", "--config", args.config, "--ckpt_path", best, *logger, *quiet])
    metrics = {k: float(v) for k, v in tested.trainer.callback_metrics.items()}
    onnx_path = Path(args.root) / "concrete-gaussian.onnx"
    report = _export_and_certify(best, onnx_path)
    elapsed = time.perf_counter() - start
    print("\nsoftzoo demo: Gaussian heads, Softplus hidden layers 64x64, bundled concrete data")
    print(f"checkpoint: {Path(best)}")
    print(f"{'held-out test split':<22}{'value':>10}")
    for key, label in _ROWS:
        print(f"{label:<22}{metrics[key]:>10.3f}")
    print(f"\nONNX: {onnx_path}\n{report.summary()}")
    print(f"(trained, tested, exported and certified in {elapsed:.0f} s)")
    return 0 if report.passed else 1


def _export_and_certify(checkpoint: str, path: Path) -> ParityReport:
    from softzoo.models import load_checkpoint
    from softzoo.onnx import export_certified

    return export_certified(load_checkpoint(checkpoint), path, model_name="demo-concrete-gaussian")


if __name__ == "__main__":
    raise SystemExit(main())
