"""The model registry: ``register_model``, ``list_models``, ``get_model``, ``get_model_weights``.

Built-in models are described by JSON cards in ``softzoo/zoo/cards`` with their safetensors
weights in ``softzoo/zoo/weights``; third-party packages add models through the entry-point
group ``softzoo.models`` (an entry point names a module or callable whose import registers
models with :func:`register_model`).
"""

from __future__ import annotations

import fnmatch
import inspect
import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from softzoo._names import unknown_name_error
from softzoo.models import SoftRegressor, check_architecture
from softzoo.zoo.cards import ModelCard
from softzoo.zoo.weights import fetch, load_weights

__all__ = [
    "ENTRY_POINT_GROUP",
    "ModelEntry",
    "WeightsEntry",
    "get_model",
    "get_model_weights",
    "list_models",
    "load_pretrained",
    "register_model",
]

ENTRY_POINT_GROUP = "softzoo.models"
Builder = Callable[..., SoftRegressor]


@dataclass(frozen=True)
class WeightsEntry:
    """Pretrained weights: a safetensors file, its full sha256, and the model's
    :class:`~softzoo.zoo.cards.ModelCard` (data set, family, hyper-parameters, held-out
    metrics and their seed spread, recipe, license), which third-party weights may omit."""

    file: Path
    sha256: str
    card: ModelCard | None = None


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Builder
    weights: WeightsEntry | None
    family: str | None = None
    dataset: str | None = None


_MODELS: dict[str, ModelEntry] = {}
_loaded = {"cards": False, "entry_points": False}


def register_model(
    name: str | None = None,
    *,
    weights: WeightsEntry | None = None,
    family: str | None = None,
    dataset: str | None = None,
) -> Callable[[Builder], Builder]:
    """Register a builder function (``**overrides -> SoftRegressor``) under ``name``
    (default: the function's name with ``_`` as ``-``).

    Example:
        >>> @register_model("my-tiny-gaussian", family="gaussian")
        ... def my_tiny_gaussian(**overrides):
        ...     return SoftRegressor(**{"in_features": 3, "hidden": [8], **overrides})
        >>> "my-tiny-gaussian" in list_models("my-*")
        True
    """

    def decorator(builder: Builder) -> Builder:
        key = name or builder.__name__.replace("_", "-")
        if key in _MODELS and _MODELS[key].builder is not builder:
            raise ValueError(f"a model named {key!r} is already registered")
        _MODELS[key] = ModelEntry(key, builder, weights, family, dataset)
        return builder

    return decorator


def _card_builder(hparams: dict[str, Any]) -> Builder:
    def build(**overrides: Any) -> SoftRegressor:
        return SoftRegressor(**{**hparams, **overrides})

    return build


def _register_cards() -> None:
    zoo = resources.files("softzoo.zoo")
    for card_file in sorted(zoo.joinpath("cards").iterdir(), key=lambda p: p.name):
        if not card_file.name.endswith(".json"):
            continue
        card = ModelCard.from_dict(json.loads(card_file.read_text()))
        weights_file = Path(
            str(resources.files("softzoo.zoo").joinpath("weights", card.weights_file))
        )
        entry = WeightsEntry(weights_file, card.sha256, card)
        register_model(card.name, weights=entry, family=card.family, dataset=card.dataset)(
            _card_builder(dict(card.model))
        )


def _load_entry_points() -> None:
    for point in importlib_metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = point.load()
            if callable(loaded) and not inspect.ismodule(loaded):
                loaded()
        except Exception as err:  # a broken plugin must not break softzoo
            warnings.warn(
                f"softzoo: entry point {point.name!r} ({point.value}) failed: {err}", stacklevel=2
            )


def _ensure_loaded() -> None:
    if not _loaded["cards"]:
        _loaded["cards"] = True
        _register_cards()
    if not _loaded["entry_points"]:
        _loaded["entry_points"] = True
        _load_entry_points()


def list_models(
    pattern: str | Sequence[str] | None = None,
    exclude: str | Sequence[str] | None = None,
    family: str | None = None,
    dataset: str | None = None,
) -> list[str]:
    """Sorted model names, filtered by wildcard patterns (``fnmatch``), family and data set.

    Example:
        >>> list_models("concrete-*", family="gaussian", exclude="*-x5")
        ['concrete-gaussian-relu', 'concrete-gaussian-softplus']
    """
    _ensure_loaded()
    include = [pattern] if isinstance(pattern, str) else list(pattern or ["*"])
    excluded = [exclude] if isinstance(exclude, str) else list(exclude or [])
    names = [
        n
        for n, e in _MODELS.items()
        if any(fnmatch.fnmatch(n, p) for p in include)
        and not any(fnmatch.fnmatch(n, p) for p in excluded)
        and (family is None or e.family == family)
        and (dataset is None or e.dataset == dataset)
    ]
    return sorted(names)


def _entry(name: str) -> ModelEntry:
    _ensure_loaded()
    if name not in _MODELS:
        raise unknown_name_error("model", name, sorted(_MODELS))
    return _MODELS[name]


def get_model_weights(name: str) -> WeightsEntry | None:
    """The pretrained weights entry of a model (None if it ships none)."""
    return _entry(name).weights


def load_pretrained(module: SoftRegressor, name: str) -> SoftRegressor:
    """Load the shipped weights of zoo model ``name`` into ``module`` (e.g. to fine-tune
    it), after checking that ``module`` is the model they were trained for: same
    architecture (:data:`softzoo.models.ARCHITECTURE_KEYS`); training settings may differ.

    Example:
        >>> base = get_model("concrete-gaussian-softplus")
        >>> tuned = load_pretrained(SoftRegressor(**{**base.hparams, "lr": 1e-4}),
        ...                         "concrete-gaussian-softplus")
        >>> tuned.hparams.lr
        0.0001
    """
    weights = get_model_weights(name)
    if weights is None:
        raise ValueError(f"zoo model {name!r} ships no pretrained weights")
    if weights.card is not None:
        check_architecture(weights.card.model, module.hparams, f"zoo model {name!r}")
    load_weights(module, weights.file, weights.sha256)
    return module


def get_model(
    name: str,
    weights: str | None = None,
    sha256: str | None = None,
    **overrides: Any,
) -> SoftRegressor:
    """Build a registered model, optionally with weights: ``"DEFAULT"`` (the shipped file,
    verified against the sha256 in its card), or a path/URL verified against ``sha256``.
    The module is in eval mode. ``overrides`` change constructor arguments; with weights,
    only those that keep the trained function (``lr``, ``optimizer``, ``dropout``,
    ``interval_level``, … — everything outside :data:`softzoo.models.ARCHITECTURE_KEYS`)
    are accepted, the others are one error naming each difference.

    Example:
        >>> m = get_model("concrete-gaussian-softplus", weights="DEFAULT")
        >>> m.family.name, m.training
        ('gaussian', False)
    """
    entry = _entry(name)
    if weights is None:  # a freshly initialised model: drawn from the caller's generator
        return entry.builder(**overrides)
    with torch.random.fork_rng(devices=[]):  # initial weights that the loaded ones replace
        module = entry.builder(**overrides)
    if weights == "DEFAULT":
        load_pretrained(module, name)
    else:
        load_weights(module, fetch(weights, sha256 or ""), sha256 or "")
    return module.eval()
