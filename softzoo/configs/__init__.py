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

import yaml

from softzoo._names import did_you_mean

__all__ = [
    "check_config_file",
    "config_main",
    "list_configs",
    "resolve_config",
    "with_config_files",
]

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


def with_config_files(args: list[str]) -> list[str]:
    """``args`` with every ``--config`` value made a file: a shipped config's name
    (``--config gaussian``) becomes its path in the package (softzoo.configs); a value
    that is neither is one error. Each file is checked (:func:`check_config_file`)."""
    resolved, follows_flag = [], False
    for arg in args:
        if follows_flag:
            arg = resolve_config(arg)
            check_config_file(arg)
        elif arg.startswith("--config="):
            arg = f"--config={resolve_config(arg.split('=', 1)[1])}"
            check_config_file(arg.split("=", 1)[1])
        resolved.append(arg)
        follows_flag = arg in ("--config", "-c")
    return resolved


def check_config_file(path: str) -> None:
    """One clear line for an empty or malformed YAML config, before jsonargparse (which
    says "Unexpected config: " or prints its whole usage)."""
    try:
        content = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ValueError(f"config file {path!r} is not valid YAML{where}: {problem}") from None
    if content is None:
        raise ValueError(
            f"config file {path!r} is empty: give at least one section (trainer:, model:, "
            "data:); softzoo config list names complete ones"
        )
    if not isinstance(content, dict):
        raise ValueError(
            f"config file {path!r} must map sections (trainer:, model:, data:) to their "
            f"options, not be a YAML {type(content).__name__}"
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
        width = max(len(name) for name in list_configs()) + 2
        for name in list_configs():
            first = (_FOLDER / f"{name}.yaml").read_text().splitlines()[0].lstrip("# ")
            print(f"{name:<{width}}{first}")
        return 0
    if args.name.removesuffix(".yaml") not in list_configs():
        raise ValueError(
            f"no shipped config is named {args.name!r}: one of {', '.join(list_configs())}"
        )
    print(Path(resolve_config(args.name)).read_text(), end="")
    return 0
