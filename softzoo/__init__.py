"""softzoo: a PyTorch Lightning model zoo for positive outputs.

Layers (lower never imports higher): ``softzoo.nn`` (pure PyTorch) →
``softzoo.families`` → ``softzoo.metrics`` → ``softzoo.models`` → ``softzoo.onnx``.

Example:
    >>> import softzoo.nn, softzoo.families
    >>> softzoo.families.list_families()[:2]
    ['gamma', 'gaussian']
"""

__version__ = "0.1.0"

__all__ = ["__version__", "get_model", "get_model_weights", "list_models", "register_model"]

_ZOO = {"get_model", "get_model_weights", "list_models", "register_model"}


def __getattr__(name: str):
    # The zoo imports torch and Lightning; `import softzoo` (and `softzoo --help`) stays light.
    if name in _ZOO:
        from softzoo import zoo

        return getattr(zoo, name)
    raise AttributeError(f"module 'softzoo' has no attribute {name!r}")
