"""``softzoo reproduce``: retrain a zoo model from its recipe and judge the result against
its card; :func:`train_recipe` trains a recipe exactly as the zoo's weights were trained.

A re-run on another CPU rounds differently, and over hundreds of optimiser steps that
acts like another seed. So a card records its metrics for several seeds, and a re-run
passes when it lies within ``REPRODUCE_SPREAD`` standard deviations of their mean (or the
fixed ``REPRODUCE_TOLERANCE``, whichever is larger): see
:meth:`softzoo.zoo.cards.ModelCard.reproduce_tolerance`.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from softzoo.models import SoftRegressor
from softzoo.runner import fit_in_process
from softzoo.zoo import get_model_weights
from softzoo.zoo.cards import REPRODUCE_SPREAD, REPRODUCE_TOLERANCE

__all__ = ["held_out_metrics", "reproduce_main", "train_recipe"]


def train_recipe(
    recipe: str | Path, workdir: str | Path, seed: int | None = None
) -> tuple[SoftRegressor, Any]:
    """Train a recipe with ``softzoo fit`` (no logger, checkpoints in ``workdir``); returns
    the best checkpoint's module and the data module. ``seed`` replaces the recipe's
    ``seed_everything`` (the initial weights; the data split keeps the recipe's seed)."""
    seeding = [] if seed is None else ["--seed_everything", str(seed)]
    result = fit_in_process(recipe, workdir, args=seeding, quiet=False)
    return result.model, result.datamodule


def held_out_metrics(module: SoftRegressor, datamodule: Any) -> dict[str, float]:
    """The card's metrics: ``module.evaluate`` on the data module's test split."""
    return module.evaluate(*datamodule.tensors("test"))


def reproduce_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="softzoo reproduce",
        description="Retrain a zoo model from its recipe and seed, and compare with its card: "
        f"a metric passes within {REPRODUCE_SPREAD:g} standard deviations of the card's "
        f"seed-to-seed spread, or at least {REPRODUCE_TOLERANCE} (nll and picp_90 absolute, "
        "rmse relative).",
    )
    parser.add_argument("name")
    parser.add_argument(
        "--workdir", default=None, help="keep checkpoints here (default: temporary)"
    )
    args = parser.parse_args(argv)
    weights = get_model_weights(args.name)
    if weights is None or weights.card is None:
        raise ValueError(f"zoo model {args.name!r} has no card to reproduce")
    card = weights.card
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        recipe = workdir / "recipe.yaml"
        recipe.write_text(card.recipe_yaml)
        module, datamodule = train_recipe(recipe, workdir, card.seed)
        got = held_out_metrics(module, datamodule)
    ok = True
    print(f"{'metric':<10}{'card':>10}{'seeds mean':>12}{'reproduced':>12}{'allowed':>10}  verdict")
    for key in REPRODUCE_TOLERANCE:
        if key not in card.metrics:
            continue
        centre, allowed = card.reproduce_tolerance(key)
        passed = abs(got[key] - centre) <= allowed
        ok &= passed
        print(
            f"{key:<10}{card.metrics[key]:>10.4f}{centre:>12.4f}{got[key]:>12.4f}"
            f"{allowed:>10.4f}  {'ok' if passed else 'MISMATCH'}"
        )
    print(f"{args.name}: {'reproduced' if ok else 'NOT reproduced'}")
    return 0 if ok else 1
