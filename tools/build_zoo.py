"""Train the zoo from its recipes and write weights, cards, ONNX files and the manifest
(maintainers only; run from the repository root):

    python tools/build_zoo.py [NAME ...]                  # default: every configs/zoo/*.yaml
    python tools/build_zoo.py --export-only [NAME ...]    # re-export the shipped weights

Each recipe is trained with the seeds SEEDS: the first one's weights are shipped, and the
card records every seed's held-out metrics (the spread ``softzoo reproduce`` judges by).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import lightning
import torch

from softzoo import __version__, datasets
from softzoo._io import atomic_write
from softzoo.models import SoftRegressor
from softzoo.onnx import export_certified
from softzoo.reproduce import held_out_metrics, train_recipe
from softzoo.zoo.cards import CARD_METRICS, ModelCard, card_markdown, zoo_table
from softzoo.zoo.weights import file_sha256, save_weights

ROOT = Path(__file__).resolve().parents[1]
ZOO = ROOT / "softzoo/zoo"
RECIPES = ROOT / "configs/zoo"
EXPORT = ROOT / "export"

#: The seeds every recipe is trained with; the first one's weights are shipped.
SEEDS = (0, 1, 2)


def _card(name: str, module: SoftRegressor, data, recipe: Path, weights: Path, seeds) -> ModelCard:
    hp = {k: v for k, v in module.hparams.items() if not k.startswith("_")}
    info = datasets.info(data.dataset)
    activation = (
        hp["activation"] if isinstance(hp["activation"], str) else "/".join(hp["activation"])
    )
    shares = (1 - data.val_fraction - data.test_fraction, data.val_fraction, data.test_fraction)
    shipped = seeds[SEEDS[0]]
    members = hp.get("ensemble_size", 1)
    kind = f"a deep ensemble of {members}: " if members > 1 else ""
    calibrated = ", conformally calibrated" if hp.get("calibration") == "conformal" else ""
    return ModelCard(
        name=name,
        summary=f"{kind}{hp['family']} heads on {activation} hidden layers{calibrated}, "
        f"trained on {data.dataset}.",
        dataset=data.dataset,
        dataset_description=info.description,
        dataset_source=info.source,
        target_name=data.target_name,
        target_unit=info.unit_of(data.target_name),
        split="/".join(f"{share:.0%}" for share in shares),
        family=hp["family"],
        activation=activation,
        param_names=module.param_names,
        model=hp,
        recipe=str(recipe.relative_to(ROOT)),
        recipe_yaml=recipe.read_text(),
        seed=SEEDS[0],
        seeds=SEEDS,
        metrics={k: round(v, 6) for k, v in shipped.items() if k in CARD_METRICS},
        seed_metrics={
            k: [round(seeds[s][k], 6) for s in SEEDS] for k in CARD_METRICS if k in shipped
        },
        num_params=sum(p.numel() for p in module.parameters()),
        weights_file=weights.name,
        sha256=file_sha256(weights),
        file_size=weights.stat().st_size,
        license="Apache-2.0 (weights); data: see dataset_source",
        trained_with={
            "softzoo": __version__,
            "torch": torch.__version__.split("+")[0],
            "lightning": lightning.__version__,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        },
    )


def _write(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def build(name: str) -> dict:
    """Train ``name``'s recipe with every seed; write its weights, card and ONNX file;
    return its manifest entry."""
    recipe = RECIPES / f"{name}.yaml"
    seeds, shipped = {}, None
    for seed in SEEDS:
        with tempfile.TemporaryDirectory() as tmp:
            module, datamodule = train_recipe(recipe, tmp, seed)
        seeds[seed] = held_out_metrics(module, datamodule)
        shipped = shipped or (module, datamodule)
    module, datamodule = shipped
    weights = save_weights(module, ZOO / "weights" / f"{name}.safetensors", {"softzoo_model": name})
    card = _card(name, module, datamodule, recipe, weights, seeds)
    _write(ZOO / "cards" / f"{name}.json", card.to_json())
    _write(ZOO / "cards" / f"{name}.md", card_markdown(card))
    print(f"{name}: {card.metrics} | seeds {dict(card.seed_metrics)}")
    return export_entry(name, module, card)


def export_entry(name: str, module: SoftRegressor, card: ModelCard) -> dict:
    """Export and certify a zoo model's ONNX file; its manifest entry."""
    report = export_certified(module, EXPORT / f"{name}.onnx", model_name=name)
    onnx_path = Path(report.onnx_file)
    print(f"{name}: {report.summary()}", flush=True)
    return {
        "file": onnx_path.name,
        "sha256": file_sha256(onnx_path),
        "bytes": onnx_path.stat().st_size,
        "family": card.family,
        "inputs": {"features": ["batch", module.in_features]},
        "feature_names": module.feature_names,
        "outputs": list(card.param_names),
        "weights_sha256": card.sha256,
        "parity": {
            p.provider: {
                "passed": p.passed,
                "rows": p.rows,
                "max_rel_error": {o.name: o.max_rel_error for o in p.outputs},
            }
            for p in report.providers
        },
    }


def _reexport(name: str) -> dict:
    from softzoo.zoo import get_model, get_model_weights

    return export_entry(name, get_model(name, weights="DEFAULT"), get_model_weights(name).card)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="zoo models to build (default: every recipe)")
    parser.add_argument(
        "--export-only", action="store_true", help="re-export the committed weights, no training"
    )
    args = parser.parse_args(argv)
    export_only = args.export_only
    names = args.names or sorted(p.stem for p in RECIPES.glob("*.yaml"))
    manifest_path = EXPORT / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"models": {}}
    for name in names:
        manifest["models"][name] = _reexport(name) if export_only else build(name)
        manifest["softzoo_version"] = __version__
        _write(manifest_path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    cards = [ModelCard.from_json(p) for p in sorted((ZOO / "cards").glob("*.json"))]
    _write(ROOT / "docs/zoo.md", _ZOO_DOC.format(table=zoo_table(cards)))


_ZOO_DOC = """# The model zoo

Generated by `python tools/build_zoo.py` from the cards in `softzoo/zoo/cards/`
(`softzoo zoo list --markdown` prints the same table). Metrics are on each model's
held-out test split (20 % of its bundled data set, seed 0), in the target's original
units. Every weights file is verified by its full sha256 on load.

{table}

```python
import torch
import softzoo
from softzoo import datasets

model = softzoo.get_model("concrete-gaussian-softplus", weights="DEFAULT")
features = torch.tensor(datasets.load("concrete").features[:8], dtype=torch.float32)
loc, scale = model(features)            # raw features in, original units out
```

`softzoo zoo info NAME` shows a card; `softzoo reproduce NAME` retrains a model from its
recipe (`configs/zoo/NAME.yaml`) and checks it against the card: each recipe was trained
with the seeds 0, 1 and 2, and a re-run passes within 3 standard deviations of their
spread (or 0.02, whichever is larger). A different CPU rounds differently (seen here:
`ATEN_CPU_CAPABILITY=default` against the native AVX-512 kernels), which moves a re-run
the way another seed does; the card's spread says how far that can go.
`softzoo fit --config configs/zoo/NAME.yaml --init_from NAME` fine-tunes it.
"""


if __name__ == "__main__":
    main(sys.argv[1:])
