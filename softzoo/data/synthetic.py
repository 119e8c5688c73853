"""Synthetic heteroscedastic data with a known ground truth (for tests and examples)."""

from __future__ import annotations

import numpy as np

from softzoo.data.base import BATCHES_PER_STEP, ArrayDataModule, TabularArrays

__all__ = [
    "COLOUR_EFFECTS",
    "MISSING_INCOME_EFFECT",
    "SyntheticDataModule",
    "synthetic_table",
    "true_mean",
    "true_scale",
]


def true_mean(x: np.ndarray) -> np.ndarray:
    """E[y | x] = sin(2·x₀) + 0.5·x₀ (other features are noise)."""
    return np.sin(2.0 * x[:, 0]) + 0.5 * x[:, 0]


def true_scale(x: np.ndarray) -> np.ndarray:
    """sd[y | x] = 0.1 + 0.3·|x₀|: ranges from 0.1 to 1.0 over x₀ in [-3, 3]."""
    return 0.1 + 0.3 * np.abs(x[:, 0])


class SyntheticDataModule(ArrayDataModule):
    """y = true_mean(x) + true_scale(x)·ε, ε ~ N(0, 1), x ~ U(-3, 3)^d.

    Example:
        >>> dm = SyntheticDataModule(n=100, n_features=2)
        >>> dm.arrays.features.shape
        (100, 2)
    """

    def __init__(
        self,
        n: int = 4000,
        n_features: int = 1,
        batch_size: int = 128,
        eval_batch_size: int = 4096,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        seed: int = 0,
        batches_per_step: int = BATCHES_PER_STEP,
    ) -> None:
        super().__init__(
            batch_size, eval_batch_size, val_fraction, test_fraction, seed, batches_per_step
        )
        if n < 10 or n_features < 1:
            raise ValueError(
                f"need n >= 10 and n_features >= 1, got n={n}, n_features={n_features}"
            )
        self.save_hyperparameters()  # lets `softzoo report` rebuild the data
        self.n, self.dims = int(n), int(n_features)

    def load_arrays(self) -> TabularArrays:
        rng = np.random.default_rng(self.seed)
        x = rng.uniform(-3.0, 3.0, size=(self.n, self.dims))
        y = true_mean(x) + true_scale(x) * rng.standard_normal(self.n)
        return TabularArrays(x, y, tuple(f"x{i}" for i in range(self.dims)), "y")


#: The effects on log E[y] of synthetic_table's categorical columns, per category.
COLOUR_EFFECTS = {"red": -0.5, "green": 0.0, "blue": 0.3, "black": 0.8}
#: How much higher log E[y] is where "income" is missing: a gap that carries information.
MISSING_INCOME_EFFECT = 0.4


def synthetic_table(n: int = 100_000, seed: int = 0, gaps: float = 0.1) -> tuple:
    """A table with text categories, empty cells and a known truth, for tests and examples.

    y ~ Gamma(shape 10) with log E[y] = 1 + 0.5·x1 − 0.3·income + colour effect (four
    text categories, :data:`COLOUR_EFFECTS`) + shop effect (40 categories "s00".."s39",
    N(0, 0.3²) each) + :data:`MISSING_INCOME_EFFECT` where income is missing. Gaps: x1
    missing completely at random (``gaps`` of the rows); income missing in ``gaps`` of the
    rows, three times as often for black; colour missing in ``gaps``/2 of the rows.

    Returns (frame, truth): the table (columns x1, income, colour, shop, y) and
    ``{"log_mean": …, "shop_effects": {…}}``.

    Example:
        >>> frame, truth = synthetic_table(1000)
        >>> frame.shape, sorted(frame["colour"].dropna().unique())
        ((1000, 5), ['black', 'blue', 'green', 'red'])
    """
    import pandas as pd

    rng = np.random.default_rng(seed)
    colours = np.array(list(COLOUR_EFFECTS))
    colour = colours[rng.integers(len(colours), size=n)]
    shops = np.array([f"s{i:02d}" for i in range(40)])
    shop_effects = dict(zip(shops, rng.normal(0.0, 0.3, size=len(shops)), strict=True))
    shop = shops[rng.integers(len(shops), size=n)]
    x1, income = rng.standard_normal(n), rng.standard_normal(n)
    no_income = rng.random(n) < np.where(colour == "black", 3 * gaps, gaps)
    log_mean = (
        1.0
        + 0.5 * x1
        - 0.3 * np.where(no_income, 0.0, income)
        + np.vectorize(COLOUR_EFFECTS.get)(colour)
        + np.vectorize(shop_effects.get)(shop)
        + MISSING_INCOME_EFFECT * no_income
    )
    y = rng.gamma(10.0, np.exp(log_mean) / 10.0)
    frame = pd.DataFrame(
        {
            "x1": np.where(rng.random(n) < gaps, np.nan, x1),
            "income": np.where(no_income, np.nan, income),
            "colour": np.where(rng.random(n) < gaps / 2, None, colour),
            "shop": shop,
            "y": y,
        }
    )
    return frame, {"log_mean": log_mean, "shop_effects": shop_effects}
