"""Model cards: :class:`ModelCard`, the typed record of a zoo model (written by
``tools/build_zoo.py``, read by the registry, ``softzoo zoo``, ``softzoo reproduce`` and
``softzoo report``), rendered as Markdown for people."""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

__all__ = [
    "CARD_METRICS",
    "REPRODUCE_SPREAD",
    "REPRODUCE_TOLERANCE",
    "ModelCard",
    "card_markdown",
    "zoo_table",
]

#: Held-out metrics on every card (absent ones are left blank: point models have no NLL).
CARD_METRICS = ("nll", "rmse", "mae", "crps", "picp_90", "width_90")

#: The smallest tolerance of `softzoo reproduce`: absolute for nll and picp_90, relative for
#: rmse. The tolerance is this or REPRODUCE_SPREAD standard deviations of the card's
#: seed-to-seed spread, whichever is larger.
REPRODUCE_TOLERANCE = {"nll": 0.02, "rmse": 0.02, "picp_90": 0.02}
REPRODUCE_SPREAD = 3.0


def _frozen(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class ModelCard:
    """What a zoo model is, how it was made and how well it does: its data set, family
    and hyper-parameters, the recipe (and its YAML), the held-out ``metrics`` of the
    shipped weights (trained with ``seed``), the same metrics for every seed of
    ``seed_metrics`` (the spread ``softzoo reproduce`` judges against), and its weights
    file with sha256 and size.

    Example:
        >>> from softzoo.zoo import get_model_weights
        >>> card = get_model_weights("yacht-lognormal-softplus").card
        >>> card.family, card.seeds[:1], card.recipe_config["model"]["family"]
        ('lognormal', (0,), 'lognormal')
    """

    name: str
    summary: str
    dataset: str
    dataset_description: str
    dataset_source: str
    target_name: str
    split: str
    family: str
    activation: str
    param_names: tuple[str, ...]
    model: Mapping[str, Any]
    recipe: str
    recipe_yaml: str
    seed: int
    metrics: Mapping[str, float]
    num_params: int
    weights_file: str
    sha256: str
    file_size: int
    license: str
    trained_with: Mapping[str, str]
    seed_metrics: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    seeds: tuple[int, ...] = ()
    target_unit: str | None = None

    def __post_init__(self) -> None:
        for name in ("model", "metrics", "trained_with"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        spread = {k: tuple(float(x) for x in v) for k, v in dict(self.seed_metrics).items()}
        object.__setattr__(self, "seed_metrics", _frozen(spread))
        object.__setattr__(self, "param_names", tuple(self.param_names))
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))

    # ---- files ------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelCard:
        """A card from its JSON form; an unknown or missing key is one clear error."""
        names = {f.name for f in dataclasses.fields(cls)}
        required = {f.name for f in dataclasses.fields(cls) if _required(f)}
        unknown, missing = set(data) - names, required - set(data)
        if unknown or missing:
            raise ValueError(
                f"model card {data.get('name', '?')!r}: unknown keys {sorted(unknown)}, "
                f"missing keys {sorted(missing)}"
            )
        return cls(**data)

    @classmethod
    def from_json(cls, path: str | Path) -> ModelCard:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: plain dicts and lists."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return json.loads(json.dumps(fields, default=dict))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    # ---- what readers need --------------------------------------------------------------
    @property
    def recipe_config(self) -> dict[str, Any]:
        """The recipe YAML as a dict (``trainer``, ``model``, ``data`` sections)."""
        return yaml.safe_load(self.recipe_yaml) or {}

    def spread(self, metric: str) -> tuple[float, float] | None:
        """(mean, standard deviation) of ``metric`` over the card's seeds, or None."""
        values = self.seed_metrics.get(metric, ())
        if len(values) < 2:
            return None
        return statistics.fmean(values), statistics.stdev(values)

    def reproduce_tolerance(self, metric: str) -> tuple[float, float]:
        """(centre, allowed deviation) a re-run of the recipe is judged by: the seeds' mean
        and the larger of REPRODUCE_SPREAD standard deviations and the fixed tolerance
        (relative for rmse); without a spread, the card's value and the fixed tolerance."""
        fixed = REPRODUCE_TOLERANCE[metric]
        spread = self.spread(metric)
        centre = spread[0] if spread else self.metrics[metric]
        floor = fixed * abs(centre) if metric == "rmse" else fixed
        return centre, max(floor, REPRODUCE_SPREAD * spread[1]) if spread else floor


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def _spread_text(card: ModelCard, metric: str) -> str:
    spread = card.spread(metric)
    if spread is None:
        return ""
    return f"{spread[0]:.4g} ± {spread[1]:.2g}"


def zoo_table(cards: list[ModelCard]) -> str:
    """One Markdown table row per model: data, family, activation, held-out metrics."""
    head = (
        "| model | data set | family | hidden | test NLL | test RMSE | PICP 90 % "
        "| width 90 % | params |"
    )
    rows = [head, "|---|---|---|---|---:|---:|---:|---:|---:|"]
    for c in sorted(cards, key=lambda c: c.name):
        m = c.metrics
        rows.append(
            f"| `{c.name}` | {c.dataset} | {c.family} | {c.activation} | "
            f"{_fmt(m.get('nll'))} | {_fmt(m.get('rmse'))} | {_fmt(m.get('picp_90'))} | "
            f"{_fmt(m.get('width_90'))} | {c.num_params:,} |"
        )
    return "\n".join(rows)


def card_markdown(card: ModelCard) -> str:
    """A human-readable model card (data, intended use, metrics, limits, license)."""
    seeds = ", ".join(map(str, card.seeds)) or str(card.seed)
    metrics = "\n".join(
        f"| {k} | {_fmt(card.metrics[k])} | {_spread_text(card, k)} |"
        for k in CARD_METRICS
        if k in card.metrics and not math.isnan(card.metrics[k])
    )
    unit = f", in {card.target_unit}" if card.target_unit else ""
    return f"""# {card.name}

{card.summary}

## Data
{card.dataset_description}
Source and license: {card.dataset_source}. Split: a seeded random
{card.split} (train/val/test) of the bundled `{card.dataset}` data; metrics are on the
held-out test rows, in the target's original units (`{card.target_name}`{unit}).

## Model
`SoftRegressor`, family `{card.family}` (outputs: {", ".join(card.param_names)}),
hidden layers {list(card.model["hidden"])} with {card.activation} activations,
{card.num_params:,} parameters. Recipe: `{card.recipe}` (seed {card.seed}).

## Held-out test metrics
The shipped weights (seed {card.seed}), and the mean ± standard deviation over the seeds
{seeds} of the same recipe: the spread `softzoo reproduce` judges a re-run against (a
re-run on another CPU rounds differently and lands somewhere in it).

| metric | value | seeds: mean ± sd |
|---|---:|---:|
{metrics}

## Intended use and limits
A pretrained starting point and a reference for the {card.family} family on this data
set: fine-tune it (`softzoo fit --config {card.recipe} --init_from {card.name}`) or
export it to ONNX. It was fitted on one random split of a small public data set; it is
not a benchmark result (see benchmarks/ for the UCI protocol), and its predictions outside
the range of the training features are extrapolations.

## Files
- weights: `{card.weights_file}` (safetensors, {card.file_size:,} bytes),
  sha256 `{card.sha256}`, verified on every load
- ONNX: `export/{card.name}.onnx` (see export/manifest.json)
- license: weights Apache-2.0 (as softzoo); data as stated above
"""
