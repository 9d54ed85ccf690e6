"""fastnorm's layers: MXNet Gluon's normalization blocks on NumPy arrays.

Every layer derives from :class:`~fastnorm.layers.base.NormBlock`, which owns
the parameters and their bookkeeping; each layer module only fits the
parameters to the input and calls :mod:`fastnorm.functional`.
"""

from .base import HookHandle, NormBlock, Parameter, ParameterDict
from .group_norm import GroupNorm
from .instance_norm import InstanceNorm
from .layer_norm import LayerNorm

__all__ = [
    "GroupNorm",
    "HookHandle",
    "InstanceNorm",
    "LayerNorm",
    "NormBlock",
    "Parameter",
    "ParameterDict",
]
