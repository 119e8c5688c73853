"""Messages for a name that is not one of the valid ones, with the closest match: one
wording for activations, families, data sets, zoo models, columns and commands."""

from __future__ import annotations

import difflib
from collections.abc import Sequence

__all__ = ["did_you_mean", "unknown_name_error"]


def did_you_mean(name: object, valid: Sequence[str]) -> str:
    """``" Did you mean 'x'?"`` for the closest valid name, or ``""`` when none is close.

    Example:
        >>> did_you_mean("sofplus", ["relu", "softplus"])
        " Did you mean 'softplus'?"
    """
    close = difflib.get_close_matches(str(name), list(valid), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def unknown_name_error(kind: str, name: object, valid: Sequence[str]) -> ValueError:
    """A ValueError for an unknown ``name``, listing the valid ones and the closest match.

    Example:
        >>> str(unknown_name_error("family", "gausian", ["gamma", "gaussian"]))
        "unknown family 'gausian'. Did you mean 'gaussian'? Choose one of: gamma, gaussian"
    """
    return ValueError(
        f"unknown {kind} {name!r}.{did_you_mean(name, valid)} Choose one of: {', '.join(valid)}"
    )
