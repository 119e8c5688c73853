"""Synthetic heteroscedastic data with a known ground truth (for tests and examples)."""

from __future__ import annotations

import numpy as np

from softzoo.data.base import ArrayDataModule, TabularArrays

__all__ = ["SyntheticDataModule", "true_mean", "true_scale"]


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
        batches_per_step: int = 16,
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
