"""``softzoo demo`` (and ``make demo``): train the model of a config (default: the shipped
``gaussian``: Gaussian heads on Softplus hidden layers, bundled concrete data) through the
``softzoo`` CLI, test it on the held-out split, print a short table (in the target's unit
where the data set has one), then export it to ONNX and certify it under onnxruntime
(CPU). Runs wherever softzoo is installed: the config and the data ship in the package.

    softzoo demo [--config gaussian] [--root runs/demo]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

__all__ = ["demo_main", "main"]


def _rows(unit: str | None) -> tuple[tuple[str, str], ...]:
    """(metric, label) of the printed table; the target's unit where the data set has one."""
    in_unit = f" ({unit})" if unit else ""
    return (
        ("test_nll", "NLL (nats)"),
        ("test_rmse", f"RMSE{in_unit}"),
        ("test_picp_90", "PICP 90 %"),
        ("test_width_90", f"width 90 %{in_unit}"),
    )


def _run_name(config: str) -> str:
    """``<data>-<family>`` from a config file, e.g. ``concrete-gaussian``."""
    import yaml

    content = yaml.safe_load(Path(config).read_text()) or {}
    data = (content.get("data") or {}).get("init_args") or {}
    source = data.get("dataset") or Path(str(data.get("path") or "data")).stem
    return f"{source}-{(content.get('model') or {}).get('family', 'gaussian')}"


def _title(model: Any, datamodule: Any) -> str:
    hp = model.hparams
    layers = hp.activation if isinstance(hp.activation, str) else "/".join(hp.activation)
    hidden = "x".join(str(h) for h in hp.hidden)
    dataset = getattr(datamodule, "dataset", None)
    data = f"bundled {dataset} data" if dataset else f"data file {datamodule.path}"
    return f"{hp.family} heads, {layers} hidden layers {hidden}, {data}"


def demo_main(argv: list[str]) -> int:
    """``softzoo demo``."""
    return main(argv, prog="softzoo demo")


def main(argv: list[str] | None = None, prog: str = "python -m softzoo.demo") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--config", default="gaussian", help="a config file, or a shipped config's name"
    )
    parser.add_argument("--root", default="runs/demo", help="folder for logs and checkpoints")
    args = parser.parse_args(argv)
    from softzoo import datasets
    from softzoo.configs import resolve_config
    from softzoo.onnx import export_certified
    from softzoo.runner import QUIET_RUN, fit_in_process, run_cli

    try:
        args.config = resolve_config(args.config)
    except ValueError as err:
        parser.error(str(err))

    name = _run_name(args.config)
    logger = [
        "--trainer.logger",
        "lightning.pytorch.loggers.CSVLogger",
        "--trainer.logger.save_dir",
        args.root,
        "--trainer.logger.name",
        name,
    ]
    start = time.perf_counter()
    fit = fit_in_process(args.config, args=logger, quiet=False)
    best = str(fit.checkpoint)
    tested = run_cli(["test", "--config", args.config, "--ckpt_path", best, *logger, *QUIET_RUN])
    metrics = {k: float(v) for k, v in tested.trainer.callback_metrics.items()}
    onnx_path = Path(args.root) / f"{name}.onnx"
    report = export_certified(fit.model, onnx_path, model_name=f"demo-{name}")
    elapsed = time.perf_counter() - start
    dataset = getattr(fit.datamodule, "dataset", None)
    unit = datasets.info(dataset).unit_of(fit.datamodule.target_name) if dataset else None
    print(f"\nsoftzoo demo: {_title(fit.model, fit.datamodule)}")
    print(f"checkpoint: {Path(best)}")
    print(f"{'held-out test split':<22}{'value':>10}")
    for key, label in _rows(unit):
        if key in metrics:
            print(f"{label:<22}{metrics[key]:>10.3f}")
    print(f"\nONNX: {onnx_path}\n{report.summary()}")
    print(f"(trained, tested, exported and certified in {elapsed:.0f} s)")
    return 0 if report.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
