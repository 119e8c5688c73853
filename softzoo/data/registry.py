"""The data modules a recorded class path may name: softzoo's own, and those that installed
packages declare in the entry-point group ``softzoo.data_modules``. A checkpoint or recipe
is untrusted input, so its class path is looked up here and nothing else is imported."""

from __future__ import annotations

from importlib import metadata as importlib_metadata

from softzoo.data.base import ArrayDataModule
from softzoo.data.synthetic import SyntheticDataModule
from softzoo.data.tabular import TabularDataModule
from softzoo.data.uci import UCISplitDataModule

__all__ = ["DATA_MODULE_ENTRY_POINT_GROUP", "data_module_class"]

DATA_MODULE_ENTRY_POINT_GROUP = "softzoo.data_modules"

_BUILT_IN = (TabularDataModule, UCISplitDataModule, SyntheticDataModule)


def _names(module: str, name: str) -> set[str]:
    return {name, f"{module}.{name}"}


def _allowed() -> dict[str, object]:
    """Class path → the class (built in) or its entry point (a plugin, loaded on use)."""
    allowed: dict[str, object] = {}
    for cls in _BUILT_IN:
        for path in _names(cls.__module__, cls.__name__) | {f"softzoo.data.{cls.__name__}"}:
            allowed[path] = cls
    for point in importlib_metadata.entry_points(group=DATA_MODULE_ENTRY_POINT_GROUP):
        module, _, attr = point.value.partition(":")
        allowed[f"{module}.{attr}"] = point
    return allowed


def data_module_class(class_path: str) -> type[ArrayDataModule]:
    """The data module class a recorded ``class_path`` names, if it is on the allow-list
    (softzoo's data modules and the ``softzoo.data_modules`` entry points); anything else
    is refused before any module is imported.

    Example:
        >>> data_module_class("softzoo.data.TabularDataModule").__name__
        'TabularDataModule'
    """
    allowed = _allowed()
    found = allowed.get(str(class_path))
    if found is not None and not isinstance(found, type):
        found = found.load()
    if not (isinstance(found, type) and issubclass(found, ArrayDataModule)):
        raise ValueError(
            f"the recorded data module {class_path!r} is not one softzoo may rebuild (its own "
            f"data modules, or a plugin's in the entry-point group "
            f"{DATA_MODULE_ENTRY_POINT_GROUP!r}); nothing was imported. Pass --data FILE (a "
            "CSV/Parquet file with the model's columns)"
        )
    return found
