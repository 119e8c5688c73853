"""Pure PyTorch building blocks (no Lightning): activations, MLPs, positive heads, and the
tabular input layer (imputation, missing indicators, scaling, category embeddings).

Example:
    >>> import torch
    >>> from softzoo.nn import MLP, PositiveHead
    >>> body = MLP(3, hidden=(8,), activation="softplus")
    >>> PositiveHead(body.out_features)(body(torch.zeros(2, 3))).shape
    torch.Size([2, 1])
"""

from softzoo.nn.activations import (
    inverse_softplus,
    list_activations,
    make_activation,
    validate_softplus_args,
)
from softzoo.nn.heads import HeadSpec, ParameterHeads, PositiveHead, positive_transform
from softzoo.nn.members import MemberEmbedding, MemberLinear
from softzoo.nn.mlp import MLP
from softzoo.nn.tabular import (
    FIRST_CODE,
    MISSING_CODE,
    UNSEEN_CODE,
    TabularInput,
    embedding_dim,
)

__all__ = [
    "FIRST_CODE",
    "MISSING_CODE",
    "MLP",
    "UNSEEN_CODE",
    "HeadSpec",
    "MemberEmbedding",
    "MemberLinear",
    "ParameterHeads",
    "PositiveHead",
    "TabularInput",
    "embedding_dim",
    "inverse_softplus",
    "list_activations",
    "make_activation",
    "positive_transform",
    "validate_softplus_args",
]
