"""softzoo: a PyTorch Lightning model zoo for positive outputs.

Layers (lower never imports higher): ``softzoo.nn`` (pure PyTorch) →
``softzoo.families`` → ``softzoo.metrics`` → ``softzoo.models`` → ``softzoo.onnx``.

Example:
    >>> import softzoo.nn, softzoo.families
    >>> softzoo.families.list_families()[:2]
    ['gamma', 'gaussian']
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
