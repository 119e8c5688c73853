"""The family registry: ``register_family`` (a class decorator), ``get_family``,
``list_families``."""

from __future__ import annotations

from typing import Any, TypeVar

from softzoo._names import unknown_name_error
from softzoo.families.base import Family

__all__ = ["get_family", "list_families", "register_family"]

_FAMILIES: dict[str, type[Family]] = {}
F = TypeVar("F", bound=type[Family])


def register_family(cls: F) -> F:
    """Class decorator adding a :class:`Family` subclass under ``cls.name``."""
    if cls.name in _FAMILIES and _FAMILIES[cls.name] is not cls:
        raise ValueError(f"family {cls.name!r} is already registered")
    _FAMILIES[cls.name] = cls
    return cls


def list_families() -> list[str]:
    """Sorted names of the registered families."""
    return sorted(_FAMILIES)


def get_family(name: str | Family, **options: Any) -> Family:
    """A family instance by name, with its options.

    Example:
        >>> get_family("positive", loss="tweedie", power=1.5)
        PositiveFamily(loss='tweedie', power=1.5)
    """
    if isinstance(name, Family):
        if options:
            raise ValueError("options go with a family name, not with a Family instance")
        return name
    key = str(name).lower()
    if key not in _FAMILIES:
        raise unknown_name_error("family", name, list_families())
    try:
        return _FAMILIES[key](**options)
    except TypeError as err:
        raise ValueError(f"family {key!r} got options it does not take: {err}") from None
