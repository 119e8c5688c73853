"""Model cards: the JSON record of a zoo model, rendered as Markdown for people."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["CARD_METRICS", "REPRODUCE_TOLERANCE", "card_markdown", "zoo_table"]

#: Held-out metrics on every card (absent ones are left blank: point models have no NLL).
CARD_METRICS = ("nll", "rmse", "mae", "crps", "picp_90", "width_90")

#: How close `softzoo reproduce` must come to the card: absolute for nll and picp_90,
#: relative for rmse.
REPRODUCE_TOLERANCE = {"nll": 0.02, "rmse": 0.02, "picp_90": 0.02}


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else ("" if value is None else str(value))


def zoo_table(cards: list[Mapping[str, Any]]) -> str:
    """One Markdown table row per model: data, family, activation, held-out metrics."""
    head = (
        "| model | data set | family | hidden | test NLL | test RMSE | PICP 90 % "
        "| width 90 % | params |"
    )
    rows = [head, "|---|---|---|---|---:|---:|---:|---:|---:|"]
    for c in sorted(cards, key=lambda c: c["name"]):
        m = c["metrics"]
        rows.append(
            f"| `{c['name']}` | {c['dataset']} | {c['family']} | {c['activation']} | "
            f"{_fmt(m.get('nll'))} | {_fmt(m.get('rmse'))} | {_fmt(m.get('picp_90'))} | "
            f"{_fmt(m.get('width_90'))} | {c['num_params']:,} |"
        )
    return "\n".join(rows)


def card_markdown(card: Mapping[str, Any]) -> str:
    """A human-readable model card (data, intended use, metrics, limits, license)."""
    metrics = "\n".join(
        f"| {k} | {_fmt(card['metrics'][k])} |" for k in CARD_METRICS if k in card["metrics"]
    )
    return f"""# {card["name"]}

{card["summary"]}

## Data
{card["dataset_description"]}
Source and license: {card["dataset_source"]}. Split: a seeded random
{card["split"]} (train/val/test) of the bundled `{card["dataset"]}` data; metrics are on the
held-out test rows, in the target's original units (`{card["target_name"]}`).

## Model
`SoftRegressor`, family `{card["family"]}` (outputs: {", ".join(card["param_names"])}),
hidden layers {card["model"]["hidden"]} with {card["activation"]} activations,
{card["num_params"]:,} parameters. Recipe: `{card["recipe"]}` (seed {card["seed"]}).

## Held-out test metrics
| metric | value |
|---|---:|
{metrics}

## Intended use and limits
A pretrained starting point and a reference for the {card["family"]} family on this data
set: fine-tune it (`softzoo fit --config {card["recipe"]} --init_from {card["name"]}`) or
export it to ONNX. It was fitted on one random split of a small public data set; it is
not a benchmark result (see benchmarks/ for the UCI protocol), and its predictions outside
the range of the training features are extrapolations.

## Files
- weights: `{card["weights_file"]}` (safetensors, {card["file_size"]:,} bytes),
  sha256 `{card["sha256"]}`, verified on every load
- ONNX: `export/{card["name"]}.onnx` (see export/manifest.json)
- license: weights Apache-2.0 (as softzoo); data as stated above
"""
