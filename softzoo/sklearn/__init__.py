"""softzoo as a scikit-learn estimator: :class:`SoftzooRegressor` takes a DataFrame (text,
bool, category columns and gaps, in any order) or an array, and trains exactly what
``softzoo fit`` trains on the same rows: the same roles table, errors, leak-free
statistics and default recipe, because it *is* ``softzoo fit``, run in this process on a
temporary copy of the rows. It works with ``clone``, ``Pipeline``, ``cross_val_score``,
``GridSearchCV``, MAPIE and crepes, and adds what a probabilistic model has: medians,
quantiles, calibrated intervals, the predictive distribution, NLL and CRPS.

Example:
    >>> from softzoo.datasets import load_frame
    >>> frame = load_frame("penguins").dropna(subset=["body_mass_g"])
    >>> X, y = frame.drop(columns="body_mass_g"), frame["body_mass_g"]
    >>> model = SoftzooRegressor(family="gamma", max_epochs=3).fit(X, y)
    >>> model.predict_interval(X.head(2)).shape
    (2, 2)
"""

from softzoo.families import PredictiveDistribution
from softzoo.sklearn._estimator import SoftzooRegressor

__all__ = ["PredictiveDistribution", "SoftzooRegressor"]
