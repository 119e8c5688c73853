"""The example configs shipped inside the package: ``--config gaussian`` works wherever
softzoo is installed, a checkout or not. ``softzoo config list`` names them and
``softzoo config show NAME > my.yaml`` writes one out to edit.

Example:
    >>> "gaussian" in list_configs()
    True
    >>> resolve_config("gaussian").endswith("gaussian.yaml")
    True
"""

from __future__ import annotations

import argparse
from pathlib import Path

from softzoo._names import did_you_mean

__all__ = ["config_main", "list_configs", "resolve_config"]

_FOLDER = Path(__file__).resolve().parent


def list_configs() -> list[str]:
    """The names of the shipped configs (each a ``<name>.yaml`` of this package)."""
    return sorted(p.stem for p in _FOLDER.glob("*.yaml"))


def resolve_config(value: str) -> str:
    """The file a ``--config`` value names: an existing file as given, else the shipped
    config of that name (``gaussian`` or ``gaussian.yaml``); anything else is one error."""
    if Path(value).is_file():
        return value
    name = value.removesuffix(".yaml").removesuffix(".yml")
    if name in list_configs():
        return str(_FOLDER / f"{name}.yaml")
    raise ValueError(
        f"config {value!r} is not a file, and no shipped config has that name."
        f"{did_you_mean(name, list_configs())} Give a path, or one of "
        f"{', '.join(list_configs())} (softzoo config list)"
    )


def config_main(argv: list[str]) -> int:
    """``softzoo config list`` and ``softzoo config show NAME``."""
    parser = argparse.ArgumentParser(
        prog="softzoo config",
        description="The example configs shipped with softzoo (--config NAME takes them).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="name the shipped configs and their first line")
    show = commands.add_parser("show", help="print a shipped config (redirect it to edit it)")
    show.add_argument("name")
    args = parser.parse_args(argv)
    if args.command == "list":
        for name in list_configs():
            first = (_FOLDER / f"{name}.yaml").read_text().splitlines()[0].lstrip("# ")
            print(f"{name:<18} {first}")
        return 0
    if args.name.removesuffix(".yaml") not in list_configs():
        raise ValueError(
            f"no shipped config is named {args.name!r}: one of {', '.join(list_configs())}"
        )
    print(Path(resolve_config(args.name)).read_text(), end="")
    return 0
