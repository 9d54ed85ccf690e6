"""fastnorm: fast, exact instance normalization on NumPy arrays (Numba kernels)."""

from .functional import instance_norm, instance_norm_backward, instance_norm_stats
from .layer import InstanceNorm, Parameter

__all__ = [
    "InstanceNorm",
    "Parameter",
    "instance_norm",
    "instance_norm_backward",
    "instance_norm_stats",
]
__version__ = "0.1.0"
