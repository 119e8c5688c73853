"""Heavy tails and extreme scales: Pareto(α = 1.5) targets (infinite variance), scaled by
1e-8, 1 and 1e8, train every family where the target is valid without a NaN or inf."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from softzoo.data import TabularDataModule
from softzoo.families import get_family, list_families
from softzoo.models import SoftRegressor

SCALES = [1e-8, 1.0, 1e8]


def _pareto_csv(tmp_path, family: str, scale: float) -> str:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2000, 3))
    y = (1.0 + rng.pareto(1.5, 2000)) * np.exp(0.5 * x[:, 0]) * scale
    if get_family(family).support == "count":
        y = np.floor(y)
    if get_family(family).support == "nonnegative":  # a point mass at 0 too
        y = np.where(x[:, 1] < -0.7, 0.0, y)
    path = tmp_path / "pareto.csv"
    pd.DataFrame(x, columns=["a", "b", "c"]).assign(y=y).to_csv(path, index=False)
    return str(path)


def _settings() -> list:
    """Every family at every scale; under ``slow``: the zero families but the Tweedie at
    scale 1 (their CRPS and intervals cost seconds at 1e8), and the count families at 1e8
    (their CRPS sums a grid of up to a million counts)."""
    settings = []
    for family in list_families():
        kind = get_family(family)
        for scale, name in zip(SCALES, ["1e-8", "1", "1e8"], strict=True):
            slow = kind.zero_mass and (scale != 1.0 or family != "tweedie")
            slow = slow or (kind.discrete and scale > 1.0)
            marks = (pytest.mark.slow,) if slow else ()
            settings.append(pytest.param(family, scale, marks=marks, id=f"{family}-{name}"))
    return settings


@pytest.mark.parametrize(("family", "scale"), _settings())
def test_pareto_targets_train_without_nan_or_inf(tmp_path, quiet_trainer, family, scale) -> None:
    if get_family(family).support == "count" and scale < 1:
        pytest.skip("counts are integers: a 1e-8 scale is no valid count target")
    data = TabularDataModule(path=_pareto_csv(tmp_path, family, scale), target="y", batch_size=64)
    model = SoftRegressor(3, family=family, hidden=[16, 16], lr=3e-3)
    trainer = quiet_trainer(max_epochs=3)
    trainer.fit(model, data)
    assert math.isfinite(float(trainer.callback_metrics["train_loss"]))
    assert all(torch.isfinite(p).all() for p in model.parameters())
    metrics = trainer.validate(model, data, verbose=False)[0]
    assert all(math.isfinite(v) for v in metrics.values()), metrics
    positive = [
        value
        for value, spec in zip(model(data.tensors("val")[0]), model.family.params, strict=True)
        if spec.positive
    ]
    assert all(torch.isfinite(v).all() and (v > 0).all() for v in positive)
