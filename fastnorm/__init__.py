"""fastnorm: fast, exact instance, group and layer normalization on NumPy arrays (Numba kernels)."""

# io needs NumPy only; runtime comes before the rest: it imports the kernels so
# that an unwritable cache is never an error
from . import io as io
from . import runtime as runtime
from .functional import (
    group_norm,
    group_norm_backward,
    group_norm_stats,
    instance_norm,
    instance_norm_backward,
    instance_norm_stats,
    layer_norm,
    layer_norm_backward,
    layer_norm_stats,
)
from .layers import GroupNorm, InstanceNorm, LayerNorm, Parameter
from .precompile import warmup
from .prepared import PreparedNorm, prepare
from .runtime import get_num_threads, set_num_threads, threading_layer

__all__ = [
    "GroupNorm",
    "InstanceNorm",
    "LayerNorm",
    "Parameter",
    "PreparedNorm",
    "get_num_threads",
    "group_norm",
    "group_norm_backward",
    "group_norm_stats",
    "instance_norm",
    "instance_norm_backward",
    "instance_norm_stats",
    "layer_norm",
    "layer_norm_backward",
    "layer_norm_stats",
    "prepare",
    "set_num_threads",
    "threading_layer",
    "warmup",
]
__version__ = "0.1.0"
