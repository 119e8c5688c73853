"""The default recipe: settings from the number of training rows only, the one-line form
trained with early stopping, and no absurd prediction for a row far from the training
rows (a feature at an impossible value, a feature 100x its training maximum)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from softzoo.cli import main
from softzoo.data import TabularDataModule
from softzoo.models import SoftRegressor, load_checkpoint
from softzoo.recipe import default_recipe, resolve_model_options
from softzoo.runner import QUIET_RUN

#: The predicted mean of a far row stays within [min / FACTOR, max * FACTOR] of the
#: training targets (docs/training.md).
FACTOR = 10.0


def test_the_recipe_scales_with_the_training_rows() -> None:
    small, middle, large = (default_recipe(n) for n in (500, 15_000, 200_000))
    assert (small.hidden, middle.hidden, large.hidden) == ([64, 64], [128, 128], [128, 128])
    assert (small.batch_size, middle.batch_size, large.batch_size) == (64, 256, 512)
    assert (small.numeric_bins, middle.numeric_bins, large.numeric_bins) == (12, 48, 48)
    assert (small.max_epochs, middle.max_epochs, large.max_epochs) == (200, 40, 40)
    huge = [default_recipe(n).max_epochs for n in (1_000_000, 100_000_000)]
    assert huge == [8, 5]  # 8 million rows visited, and at least 5 epochs
    assert (small.patience, middle.patience) == (50, 10)  # a quarter of the epochs
    assert (small.lr, middle.lr) == (3e-3, 6e-3)
    assert {r.first_scaling for r in (small, middle, large)} == {"random_signs"}
    with_text = [default_recipe(n, categorical=True).first_scaling for n in (500, 15_000)]
    assert with_text == ["ones", "ones"]  # text columns, at any size
    tiny = default_recipe(319)
    assert (tiny.first_scaling, tiny.max_epochs, tiny.patience) == ("ones", 400, 100)
    assert {r.numeric_embedding for r in (small, middle, large)} == {"piecewise_linear"}
    assert default_recipe(319).numeric_embedding == "none"  # 8 bins of 40 rows need 320
    assert default_recipe(320).numeric_embedding == "piecewise_linear"


def test_what_the_user_gives_is_kept_and_the_rest_follows_it() -> None:
    auto = dict.fromkeys(
        ("hidden", "numeric_embedding", "numeric_bins", "ensemble_type", "warmup_fraction"),
        "auto",
    )
    given = resolve_model_options({**auto, "ensemble_size": 5, "warmup_epochs": 3}, 1000)
    assert given["ensemble_size"] == 5 and given["ensemble_type"] == "independent"
    assert given["warmup_fraction"] == 0.0  # warmup_epochs was given
    tabm = resolve_model_options({**auto, "ensemble_size": "auto", "ensemble_type": "batch"}, 1000)
    assert tabm["ensemble_size"] == default_recipe(1000).ensemble_size
    scaling = {"first_scaling": "auto"}
    assert resolve_model_options(scaling, 1000)["first_scaling"] == "random_signs"
    plain = resolve_model_options({**scaling, "numeric_embedding": "none"}, 1000)
    assert plain["first_scaling"] == "ones"  # follows the user's encoding
    with pytest.raises(ValueError, match="give train_rows"):
        SoftRegressor(3, hidden="auto")


def test_a_model_records_what_auto_became() -> None:
    model = SoftRegressor(2, hidden="auto", ensemble_size="auto", lr="auto", train_rows=30_000)
    assert model.hparams.hidden == [128, 128] and model.hparams.ensemble_size == 5
    assert model.hparams.ensemble_type == "independent" and model.hparams.lr == 6e-3
    assert SoftRegressor(2, lr="auto", train_rows=1_999).hparams.lr == 3e-3


def _far_rows_table(tmp_path) -> tuple[str, pd.DataFrame]:
    """A price-like table: ``size`` between 3 and 11 for all but 0.05 % of the rows, which
    hold an impossible 0 (and a normal price)."""
    rng = np.random.default_rng(0)
    n = 6000
    size = rng.uniform(3, 11, n)
    size[rng.choice(n, 3, replace=False)] = 0.0
    quality = rng.choice(["poor", "good", "best"], n)
    depth = rng.normal(60, 2, n)
    log_price = 0.35 * np.clip(size, 3, 11) + 0.2 * (quality == "best") + rng.normal(0, 0.3, n)
    frame = pd.DataFrame({"size": size, "quality": quality, "depth": depth})
    frame["price"] = np.exp(log_price).round(2)
    path = tmp_path / "prices.csv"
    frame.to_csv(path, index=False)
    return str(path), frame


@pytest.mark.parametrize(
    "family",
    [
        pytest.param("lognormal", marks=pytest.mark.slow),
        pytest.param("gamma", marks=pytest.mark.slow),
        pytest.param("gaussian", marks=pytest.mark.slow),
        pytest.param("student_t", marks=pytest.mark.slow),
        pytest.param("positive", marks=pytest.mark.slow),
    ],
)
def test_a_row_far_from_the_training_rows_gets_no_absurd_mean(tmp_path, family) -> None:
    path, frame = _far_rows_table(tmp_path)
    args = ["--data.path", path, "--data.target", "price", "--model.family", family]
    # the one-line form, with fewer epochs to keep the test short
    root = ["--trainer.default_root_dir", str(tmp_path), "--trainer.max_epochs", "25"]
    assert main(["fit", *args, *root, *QUIET_RUN]) == 0
    model = load_checkpoint(next(tmp_path.glob("runs/csv/version_0/checkpoints/best.ckpt")))
    assert model.hparams.numeric_embedding == "piecewise_linear"
    data = TabularDataModule(path=path, target="price", vocabularies=model.categories)
    x = data.features_tensor[:4].clone()
    size, depth = data.feature_names.index("size"), data.feature_names.index("depth")
    x[0, size] = 0.0  # the impossible value a few training rows hold
    x[1, size] = 100 * float(frame["size"].max())
    x[2, depth] = 100 * float(frame["depth"].max())
    x[3, size] = -100 * float(frame["size"].max())
    with torch.no_grad():
        mean = model.family.mean(model(x))
    low, high = frame["price"].min() / FACTOR, frame["price"].max() * FACTOR
    assert bool(((mean > low) & (mean < high)).all()), (mean, low, high)


@pytest.mark.slow
def test_the_one_line_form_stops_early_and_restores_the_best_epoch(tmp_path) -> None:
    path, _ = _far_rows_table(tmp_path)
    args = ["--data.path", path, "--data.target", "price", "--model.family", "gamma"]
    root = ["--trainer.default_root_dir", str(tmp_path), "--early_stopping_patience", "1"]
    assert main(["fit", *args, *root, "--trainer.max_epochs", "60", *QUIET_RUN]) == 0
    metrics = pd.read_csv(tmp_path / "runs/csv/version_0/metrics.csv")
    epochs = metrics["epoch"].max() + 1
    assert epochs < 60  # stopped on val_loss (patience 1)


def test_the_report_lists_rows_whose_mean_is_far_above_their_median() -> None:
    from softzoo.families import get_family
    from softzoo.report.plots import HEAVY_TAIL_FACTOR, ReportData, _heavy_tail_section

    # log-normal: mean / median = exp(sigma^2 / 2); sigma 2.8 gives ~50, sigma 0.5 ~1.13
    sigma = torch.tensor([0.5, 2.8, 0.5, 2.2], dtype=torch.float64)
    data = ReportData(get_family("lognormal"), (torch.zeros(4).double(), sigma), torch.ones(4))
    ratio = torch.exp(sigma**2 / 2)
    assert (
        data.heavy_tail_rows().tolist()
        == torch.nonzero(ratio > HEAVY_TAIL_FACTOR).flatten().tolist()
    )
    assert data.heavy_tail_rows().tolist() == [1, 3]
    section = "\n".join(_heavy_tail_section(data))
    assert "2 of the 4 rows have a predicted mean more than 10 times their median" in section
    counts = ReportData(get_family("poisson"), (torch.ones(4).double(),), torch.ones(4))
    assert counts.heavy_tail_rows().tolist() == []
