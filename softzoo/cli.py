"""The ``softzoo`` console script (the Lightning subcommands arrive with softzoo.models)."""

from __future__ import annotations

import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``softzoo`` command."""
    print("usage: softzoo {fit,validate,test,predict,export,parity,zoo,reproduce,bench} ...")
    return 0 if not (argv if argv is not None else sys.argv[1:]) else 2


if __name__ == "__main__":
    raise SystemExit(main())
