"""The model zoo: pretrained SoftRegressors with verified weights, and a registry for yours.

Example:
    >>> import softzoo
    >>> "concrete-gaussian-softplus" in softzoo.list_models()
    True
"""

from softzoo.zoo.registry import (
    ENTRY_POINT_GROUP,
    ModelEntry,
    WeightsEntry,
    get_model,
    get_model_weights,
    list_models,
    load_pretrained,
    register_model,
)
from softzoo.zoo.weights import file_sha256, load_weights, save_weights, verify_sha256

__all__ = [
    "ENTRY_POINT_GROUP",
    "ModelEntry",
    "WeightsEntry",
    "file_sha256",
    "get_model",
    "get_model_weights",
    "list_models",
    "load_pretrained",
    "load_weights",
    "register_model",
    "save_weights",
    "verify_sha256",
]
