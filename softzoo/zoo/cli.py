"""``softzoo zoo list|info``: the pretrained models and their cards."""

from __future__ import annotations

import argparse
import json

from softzoo.zoo.cards import ModelCard, card_markdown, zoo_table
from softzoo.zoo.registry import get_model_weights, list_models

__all__ = ["zoo_main"]


def _cards() -> list[ModelCard]:
    return [w.card for n in list_models() if (w := get_model_weights(n)) and w.card is not None]


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
        if weights is None or weights.card is None:
            print(f"{args.name}: registered without a model card")
            return 0
        print(weights.card.to_json() if args.json else card_markdown(weights.card))
        return 0
    names = list_models(args.pattern, family=args.family, dataset=args.dataset)
    cards = [c for c in _cards() if c.name in names]
    if args.json:
        print(json.dumps([c.to_dict() for c in cards], indent=2))
    elif args.markdown:
        print(zoo_table(cards))
    else:
        _print_table(names, {c.name: c for c in cards})
    return 0


def _print_table(names: list[str], cards: dict[str, ModelCard]) -> None:
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
        m = card.metrics
        cells = [f"{m[k]:.3f}" if k in m else "–" for k in ("nll", "rmse", "picp_90")]
        table.add_row(name, card.dataset, card.family, card.activation, *cells)
    Console(width=160).print(table)
