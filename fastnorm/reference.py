"""Slow float64 NumPy twins of the public functions.

They follow the textbook formulas with two passes over float64 data and no
tricks, so tests and benchmarks can compare the fast kernels against
something simple enough to check by eye (the way bottleneck keeps a slow
reference for every function).  They do no validation beyond what NumPy
itself does; call them with inputs the public API would accept.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "instance_norm_backward_ref",
    "instance_norm_ref",
    "instance_norm_stats_ref",
]


def _reduced_axes(ndim: int, axis: int) -> tuple[int, ...]:
    axis = axis % ndim
    return tuple(i for i in range(1, ndim) if i != axis)


def _channel_shape(ndim: int, axis: int) -> list[int]:
    """Shape that broadcasts a length-C vector along ``axis``."""
    shape = [1] * ndim
    shape[axis % ndim] = -1
    return shape


def _stats_keepdims(x64: np.ndarray, axis: int, eps: float):
    red = _reduced_axes(x64.ndim, axis)
    mean = x64.mean(axis=red, keepdims=True)
    var = ((x64 - mean) ** 2).mean(axis=red, keepdims=True)
    return mean, 1.0 / np.sqrt(var + eps)


def _squeeze_stats(a: np.ndarray, axis: int) -> np.ndarray:
    """(N, 1, .., C, .., 1) -> (N, C)."""
    ndim = a.ndim
    axis = axis % ndim
    return a.reshape(a.shape[0], a.shape[axis])


def instance_norm_stats_ref(x, *, axis: int = 1, eps: float = 1e-5):
    """Per (sample, channel) mean and 1/sqrt(var + eps), float64, shape (N, C)."""
    x64 = np.asarray(x, dtype=np.float64)
    mean, invstd = _stats_keepdims(x64, axis, eps)
    return _squeeze_stats(mean, axis), _squeeze_stats(invstd, axis)


def instance_norm_ref(x, gamma=None, beta=None, *, axis: int = 1, eps: float = 1e-5):
    """Instance norm in float64: ``(x - mean) / sqrt(var + eps) * gamma + beta``.

    Returns a float64 array; gamma/beta of None mean ones/zeros.
    """
    x64 = np.asarray(x, dtype=np.float64)
    cshape = _channel_shape(x64.ndim, axis)
    mean, invstd = _stats_keepdims(x64, axis, eps)
    y = (x64 - mean) * invstd
    if gamma is not None:
        y = y * np.asarray(gamma, dtype=np.float64).reshape(cshape)
    if beta is not None:
        y = y + np.asarray(beta, dtype=np.float64).reshape(cshape)
    return y


def instance_norm_backward_ref(dy, x, gamma=None, *, axis: int = 1, eps: float = 1e-5):
    """Gradients (dx, dgamma, dbeta) of :func:`instance_norm_ref`, in float64.

    ``dx = gamma * invstd * (dy - mean(dy) - xhat * mean(dy * xhat))`` with the
    means taken over each (sample, channel) slice.
    """
    x64 = np.asarray(x, dtype=np.float64)
    dy64 = np.asarray(dy, dtype=np.float64)
    ndim = x64.ndim
    red = _reduced_axes(ndim, axis)
    cshape = _channel_shape(ndim, axis)
    mean, invstd = _stats_keepdims(x64, axis, eps)
    xhat = (x64 - mean) * invstd
    g = np.ones(x64.shape[axis % ndim]) if gamma is None else np.asarray(gamma, dtype=np.float64)
    mdy = dy64.mean(axis=red, keepdims=True)
    mdyx = (dy64 * xhat).mean(axis=red, keepdims=True)
    dx = g.reshape(cshape) * invstd * (dy64 - mdy - xhat * mdyx)
    sum_axes = (0, *red)
    dgamma = (dy64 * xhat).sum(axis=sum_axes)
    dbeta = dy64.sum(axis=sum_axes)
    return dx, dgamma, dbeta
