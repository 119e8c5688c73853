"""LightningModules of softzoo.

Example:
    >>> from softzoo.models import SoftRegressor
    >>> SoftRegressor(in_features=4, family="poisson").param_names
    ('rate',)
"""

from softzoo.models.architecture import (
    ARCHITECTURE_KEYS,
    architecture,
    architecture_mismatches,
    check_architecture,
)
from softzoo.models.loading import check_checkpoint, load_checkpoint
from softzoo.models.regressor import SoftRegressor

__all__ = [
    "ARCHITECTURE_KEYS",
    "SoftRegressor",
    "architecture",
    "architecture_mismatches",
    "check_architecture",
    "check_checkpoint",
    "load_checkpoint",
]
