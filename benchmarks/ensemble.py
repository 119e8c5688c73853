"""What an ensemble costs and what it buys: time per epoch and test NLL of one model, an
independent ensemble of 5, and TabM-style ensembles of 32 (``batch``: BatchEnsemble,
``mini``: TabM-mini) at the same width, same data, epochs and batches; the TabM types
also with every member on the same batch instead of its own shuffle.

    python benchmarks/ensemble.py [--dataset kin8nm] [--epochs 30] [--rounds 2] [--out benchmarks/results]

Gaussian heads on Softplus 64×64 MLPs, a bundled table with its standard split (the
data module's), batch 256, one thread, the `softzoo fit` training path (in-memory
loader, 64 batches per Lightning step), fixed epochs with the cosine schedule. Seconds
per epoch are the best of ``--rounds`` interleaved repetitions; the NLL is the first
round's (the runs are seeded). The last line printed is one JSON object with
``ensemble5_over_single``, ``batch32_over_single``, ``mini32_over_single`` (time ratios)
and the host it ran on.
"""

from __future__ import annotations

import argparse
import json
import time

import lightning.pytorch as pl
import torch
from _results import host_info, quiet_trainer, write_results

from softzoo.data import TabularDataModule
from softzoo.models import SoftRegressor

#: (key, ensemble size, ensemble type, every member on its own shuffle of the rows)
SETTINGS = (
    ("single", 1, "independent", True),
    ("ensemble5", 5, "independent", True),
    ("batch32", 32, "batch", True),
    ("mini32", 32, "mini", True),
    ("batch32_same_batch", 32, "batch", False),
    ("mini32_same_batch", 32, "mini", False),
)


class _SameBatch(SoftRegressor):
    """Every member trains on the same batch (TabM's way) instead of its own shuffle."""

    def setup(self, stage: str) -> None:
        super().setup(stage)
        self.trainer.datamodule.member_shuffles = 1


def fit(dataset: str, epochs: int, members: int, kind: str, shuffles: bool) -> tuple[float, float]:
    """Seconds per epoch and test NLL of one run."""
    pl.seed_everything(0, verbose=False)
    data = TabularDataModule(dataset=dataset, batch_size=256)
    data.setup("fit")
    model_class = SoftRegressor if shuffles else _SameBatch
    model = model_class(
        data.n_features,
        feature_names=data.feature_names,
        hidden=[64, 64],
        ensemble_size=members,
        ensemble_type=kind,
    )
    trainer = quiet_trainer(max_epochs=epochs, num_sanity_val_steps=0, limit_val_batches=0)
    start = time.perf_counter()
    trainer.fit(model, data)
    seconds = (time.perf_counter() - start) / epochs
    return seconds, model.eval().evaluate(*data.tensors("test"))["nll"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="kin8nm")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    seconds: dict[str, list[float]] = {key: [] for key, *_ in SETTINGS}
    nll: dict[str, float] = {}
    for _ in range(args.rounds):
        for key, members, kind, shuffles in SETTINGS:
            s, n = fit(args.dataset, args.epochs, members, kind, shuffles)
            seconds[key].append(s)
            nll.setdefault(key, n)
    best = {key: min(values) for key, values in seconds.items()}
    result = {
        "host": host_info(),
        "dataset": args.dataset,
        "epochs": args.epochs,
        "seconds_per_epoch": {k: round(v, 4) for k, v in best.items()},
        "test_nll": {k: round(v, 4) for k, v in nll.items()},
        **{f"{k}_over_single": round(best[k] / best["single"], 3) for k in best if k != "single"},
    }
    if args.out:
        write_results(args.out, "ensemble", result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
