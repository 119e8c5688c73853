"""Output families: parameters, constraints, NLL, mean/variance/quantiles, CRPS, support.

Example:
    >>> from softzoo.families import get_family, list_families
    >>> list_families()[:5]
    ['gamma', 'gaussian', 'hurdle_gamma', 'hurdle_lognormal', 'lognormal']
    >>> len(list_families())
    12
    >>> get_family("gaussian").param_names
    ('loc', 'scale')
"""

from softzoo.families.base import Family, Params, ParamSpec
from softzoo.families.gamma import GammaFamily
from softzoo.families.gaussian import GaussianFamily
from softzoo.families.lognormal import LogNormalFamily
from softzoo.families.mixture import Mixture
from softzoo.families.negative_binomial import NegativeBinomialFamily
from softzoo.families.poisson import PoissonFamily
from softzoo.families.positive import PositiveFamily
from softzoo.families.predictive import PredictiveDistribution
from softzoo.families.registry import get_family, list_families, register_family
from softzoo.families.student_t import StudentTFamily
from softzoo.families.tweedie import TweedieFamily
from softzoo.families.zero_mass import (
    HurdleGammaFamily,
    HurdleLogNormalFamily,
    ZeroInflatedNegativeBinomialFamily,
    ZeroInflatedPoissonFamily,
)

__all__ = [
    "Family",
    "GammaFamily",
    "GaussianFamily",
    "HurdleGammaFamily",
    "HurdleLogNormalFamily",
    "LogNormalFamily",
    "Mixture",
    "NegativeBinomialFamily",
    "ParamSpec",
    "Params",
    "PoissonFamily",
    "PositiveFamily",
    "PredictiveDistribution",
    "StudentTFamily",
    "TweedieFamily",
    "ZeroInflatedNegativeBinomialFamily",
    "ZeroInflatedPoissonFamily",
    "get_family",
    "list_families",
    "register_family",
]
