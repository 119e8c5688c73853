"""``softzoo zoo list|info`` and ``softzoo reproduce``; :func:`train_recipe` trains a zoo
recipe exactly as the zoo's weights were trained."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from softzoo.models import SoftRegressor, load_checkpoint
from softzoo.zoo.cards import REPRODUCE_TOLERANCE, card_markdown, zoo_table
from softzoo.zoo.registry import get_model_weights, list_models

__all__ = ["reproduce_main", "test_metrics", "train_recipe", "zoo_main"]


def train_recipe(recipe: str | Path, workdir: str | Path) -> tuple[SoftRegressor, Any]:
    """Train a recipe with ``softzoo fit`` (no logger, checkpoints in ``workdir``); returns
    the best checkpoint's module and the data module."""
    from softzoo.cli import run_cli

    workdir = Path(workdir)
    cli = run_cli(
        [
            "fit",
            "--config",
            str(recipe),
            "--trainer.logger",
            "false",
            "--trainer.default_root_dir",
            str(workdir),
            "--checkpoint.dirpath",
            str(workdir / "checkpoints"),
            "--trainer.enable_progress_bar",
            "false",
            "--trainer.enable_model_summary",
            "false",
        ]
    )
    return load_checkpoint(cli.trainer.checkpoint_callback.best_model_path), cli.datamodule


def test_metrics(module: SoftRegressor, datamodule: Any) -> dict[str, float]:
    """The card's metrics: ``module.evaluate`` on the data module's test split."""
    return module.evaluate(*datamodule.tensors("test"))


def _cards() -> list[dict[str, Any]]:
    return [dict(w.meta) for n in list_models() if (w := get_model_weights(n)) is not None]


def zoo_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="softzoo zoo", description="The pretrained models.")
    sub = parser.add_subparsers(dest="action", required=True)
    listing = sub.add_parser("list", help="list the models")
    listing.add_argument("pattern", nargs="?", default=None, help="wildcard, e.g. 'concrete-*'")
    listing.add_argument("--family", default=None)
    listing.add_argument("--dataset", default=None)
    style = listing.add_mutually_exclusive_group()
    style.add_argument("--json", action="store_true")
    style.add_argument("--markdown", action="store_true")
    info = sub.add_parser("info", help="show a model card")
    info.add_argument("name")
    info.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.action == "info":
        weights = get_model_weights(args.name)
        if weights is None:
            print(f"{args.name}: registered without pretrained weights")
            return 0
        print(
            json.dumps(dict(weights.meta), indent=2) if args.json else card_markdown(weights.meta)
        )
        return 0
    names = list_models(args.pattern, family=args.family, dataset=args.dataset)
    cards = [c for c in _cards() if c["name"] in names]
    if args.json:
        print(json.dumps(cards, indent=2))
    elif args.markdown:
        print(zoo_table(cards))
    else:
        _print_table(names, {c["name"]: c for c in cards})
    return 0


def _print_table(names: list[str], cards: dict[str, dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"softzoo models ({len(names)})")
    for column in ("model", "data set", "family", "hidden", "test NLL", "test RMSE", "PICP 90 %"):
        right = column.startswith(("test", "PICP"))
        table.add_column(column, justify="right" if right else "left", no_wrap=True)
    for name in names:
        card = cards.get(name)
        if card is None:
            table.add_row(name, "", "", "", "", "", "")
            continue
        m = card["metrics"]
        cells = [f"{m[k]:.3f}" if k in m else "–" for k in ("nll", "rmse", "picp_90")]
        table.add_row(name, card["dataset"], card["family"], card["activation"], *cells)
    Console(width=160).print(table)


def reproduce_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="softzoo reproduce",
        description="Retrain a zoo model from its recipe and seed, and compare with its card. "
        f"Tolerances: {REPRODUCE_TOLERANCE} (nll and picp_90 absolute, rmse relative).",
    )
    parser.add_argument("name")
    parser.add_argument(
        "--workdir", default=None, help="keep checkpoints here (default: temporary)"
    )
    args = parser.parse_args(argv)
    weights = get_model_weights(args.name)
    if weights is None:
        raise ValueError(f"zoo model {args.name!r} has no card to reproduce")
    card = weights.meta
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        recipe = workdir / "recipe.yaml"
        recipe.write_text(card["recipe_yaml"])
        module, datamodule = train_recipe(recipe, workdir)
        got = test_metrics(module, datamodule)
    ok = True
    print(f"{'metric':<10}{'card':>12}{'reproduced':>12}{'tolerance':>12}  verdict")
    for key, tol in REPRODUCE_TOLERANCE.items():
        if key not in card["metrics"]:
            continue
        want, have = card["metrics"][key], got[key]
        allowed = tol * abs(want) if key == "rmse" else tol
        passed = abs(have - want) <= allowed
        ok &= passed
        print(
            f"{key:<10}{want:>12.4f}{have:>12.4f}{allowed:>12.4f}  {'ok' if passed else 'MISMATCH'}"
        )
    print(f"{args.name}: {'reproduced' if ok else 'NOT reproduced'}")
    return 0 if ok else 1
