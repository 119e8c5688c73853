"""LightningModules of softzoo.

Example:
    >>> from softzoo.models import SoftRegressor
    >>> SoftRegressor(in_features=4, family="poisson").param_names
    ('rate',)
"""

from softzoo.models.regressor import SoftRegressor, check_checkpoint, load_checkpoint

__all__ = ["SoftRegressor", "check_checkpoint", "load_checkpoint"]
