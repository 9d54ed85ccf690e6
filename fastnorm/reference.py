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
    "group_norm_backward_ref",
    "group_norm_ref",
    "group_norm_stats_ref",
    "instance_norm_backward_ref",
    "instance_norm_ref",
    "instance_norm_stats_ref",
    "layer_norm_backward_ref",
    "layer_norm_ref",
    "layer_norm_stats_ref",
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


# --------------------------------------------------------------------------
# group norm


def _group_view(x64: np.ndarray, num_groups: int, axis: int) -> np.ndarray:
    """x with the channel axis moved to 1, as (N, G, C // G, rest) (a copy)."""
    xm = np.moveaxis(x64, axis % x64.ndim, 1)
    n, c = xm.shape[0], xm.shape[1]
    rest = int(np.prod(xm.shape[2:], dtype=np.int64))  # explicit: -1 fails on empty inputs
    return xm.reshape(n, num_groups, c // num_groups, rest)


def _from_group_view(a: np.ndarray, shape: tuple[int, ...], axis: int) -> np.ndarray:
    """Inverse of :func:`_group_view` for an array of x's ``shape``."""
    axis = axis % len(shape)
    moved = [shape[0], shape[axis], *(s for i, s in enumerate(shape) if i not in (0, axis))]
    return np.moveaxis(a.reshape(moved), 1, axis)


def _per_channel(v, C: int, num_groups: int) -> np.ndarray:
    """gamma/beta as a float64 (C,) vector: (C,) as is, (num_groups,) repeated per channel."""
    v = np.asarray(v, dtype=np.float64).reshape(-1)
    if v.size == C:
        return v
    return np.repeat(v, C // num_groups)


def _group_stats(xg: np.ndarray, eps: float):
    """Two-pass mean and 1/sqrt(var + eps) of (N, G, Cg, M), keepdims."""
    mean = xg.mean(axis=(2, 3), keepdims=True)
    var = ((xg - mean) ** 2).mean(axis=(2, 3), keepdims=True)
    return mean, 1.0 / np.sqrt(var + eps)


def group_norm_stats_ref(x, num_groups: int, *, axis: int = 1, eps: float = 1e-5):
    """Per (sample, group) mean and 1/sqrt(var + eps), float64, shape (N, num_groups).

    A group is ``C // num_groups`` consecutive channels of ``axis``; the
    statistics run over those channels and every axis except 0 and ``axis``.
    """
    xg = _group_view(np.asarray(x, dtype=np.float64), num_groups, axis)
    mean, invstd = _group_stats(xg, eps)
    shape = (xg.shape[0], num_groups)
    return mean.reshape(shape), invstd.reshape(shape)


def group_norm_ref(x, num_groups: int, gamma=None, beta=None, *, axis: int = 1, eps: float = 1e-5):
    """Group norm in float64: ``(x - mean) / sqrt(var + eps) * gamma + beta``.

    mean and var are per (sample, group); gamma/beta are per channel, shape
    (C,), or per group, shape (num_groups,) (MXNet 1.x), and None means
    ones/zeros.  Returns a float64 array of x's shape.
    """
    x64 = np.asarray(x, dtype=np.float64)
    xg = _group_view(x64, num_groups, axis)
    g, cg = xg.shape[1:3]
    mean, invstd = _group_stats(xg, eps)
    y = (xg - mean) * invstd
    if gamma is not None:
        y = y * _per_channel(gamma, g * cg, g).reshape(1, g, cg, 1)
    if beta is not None:
        y = y + _per_channel(beta, g * cg, g).reshape(1, g, cg, 1)
    return _from_group_view(y, x64.shape, axis)


def group_norm_backward_ref(
    dy, x, num_groups: int, gamma=None, *, axis: int = 1, eps: float = 1e-5
):
    """Gradients (dx, dgamma, dbeta) of :func:`group_norm_ref`, in float64.

    With ``gdy = gamma[c] * dy`` and means over each (sample, group):
    ``dx = invstd * (gdy - mean(gdy) - xhat * mean(gdy * xhat))``.
    dgamma/dbeta have the shape of gamma: (C,) per channel (also when gamma
    is None), (num_groups,) per group.
    """
    x64 = np.asarray(x, dtype=np.float64)
    xg = _group_view(x64, num_groups, axis)
    dyg = _group_view(np.asarray(dy, dtype=np.float64), num_groups, axis)
    g, cg = xg.shape[1:3]
    C = g * cg
    mean, invstd = _group_stats(xg, eps)
    xhat = (xg - mean) * invstd
    gc = np.ones(C) if gamma is None else _per_channel(gamma, C, g)
    gdy = dyg * gc.reshape(1, g, cg, 1)
    mgdy = gdy.mean(axis=(2, 3), keepdims=True)
    mgdyx = (gdy * xhat).mean(axis=(2, 3), keepdims=True)
    dx = invstd * (gdy - mgdy - xhat * mgdyx)
    dgamma = (dyg * xhat).sum(axis=(0, 3)).reshape(C)  # per channel
    dbeta = dyg.sum(axis=(0, 3)).reshape(C)
    if gamma is not None and np.asarray(gamma).size != C:  # per group
        dgamma = dgamma.reshape(g, cg).sum(axis=1)
        dbeta = dbeta.reshape(g, cg).sum(axis=1)
    return _from_group_view(dx, x64.shape, axis), dgamma, dbeta


# --------------------------------------------------------------------------
# layer norm


def _norm_axes(ndim: int, axis) -> tuple[int, ...]:
    """The normalized axes as sorted non-negative ints (axis: int or tuple)."""
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    return tuple(sorted(int(a) % ndim for a in axes))


def _param_shape(shape: tuple[int, ...], axes: tuple[int, ...]) -> list[int]:
    """Shape that broadcasts a parameter of the normalized axes over x."""
    return [s if i in axes else 1 for i, s in enumerate(shape)]


def _layer_stats(x64: np.ndarray, axes: tuple[int, ...], eps: float):
    mean = x64.mean(axis=axes, keepdims=True)
    var = ((x64 - mean) ** 2).mean(axis=axes, keepdims=True)
    return mean, 1.0 / np.sqrt(var + eps)


def layer_norm_stats_ref(x, *, axis=-1, eps: float = 1e-5):
    """Mean and 1/sqrt(var + eps) over ``axis`` (int or tuple of axes), float64.

    The shape is x's shape without the normalized axes.
    """
    x64 = np.asarray(x, dtype=np.float64)
    axes = _norm_axes(x64.ndim, axis)
    mean, invstd = _layer_stats(x64, axes, eps)
    return mean.squeeze(axis=axes), invstd.squeeze(axis=axes)


def layer_norm_ref(x, gamma=None, beta=None, *, axis=-1, eps: float = 1e-5):
    """Layer norm in float64 over ``axis`` (int or tuple of axes).

    gamma/beta have the shape of the normalized axes (None means ones/zeros).
    Returns a float64 array of x's shape.
    """
    x64 = np.asarray(x, dtype=np.float64)
    axes = _norm_axes(x64.ndim, axis)
    pshape = _param_shape(x64.shape, axes)
    mean, invstd = _layer_stats(x64, axes, eps)
    y = (x64 - mean) * invstd
    if gamma is not None:
        y = y * np.asarray(gamma, dtype=np.float64).reshape(pshape)
    if beta is not None:
        y = y + np.asarray(beta, dtype=np.float64).reshape(pshape)
    return y


def layer_norm_backward_ref(dy, x, gamma=None, *, axis=-1, eps: float = 1e-5):
    """Gradients (dx, dgamma, dbeta) of :func:`layer_norm_ref`, in float64.

    With ``gdy = gamma * dy`` and means over the normalized axes:
    ``dx = invstd * (gdy - mean(gdy) - xhat * mean(gdy * xhat))``.
    dgamma/dbeta have the shape of the normalized axes.
    """
    x64 = np.asarray(x, dtype=np.float64)
    dy64 = np.asarray(dy, dtype=np.float64)
    axes = _norm_axes(x64.ndim, axis)
    pshape = _param_shape(x64.shape, axes)
    mean, invstd = _layer_stats(x64, axes, eps)
    xhat = (x64 - mean) * invstd
    gdy = dy64 if gamma is None else dy64 * np.asarray(gamma, dtype=np.float64).reshape(pshape)
    mgdy = gdy.mean(axis=axes, keepdims=True)
    mgdyx = (gdy * xhat).mean(axis=axes, keepdims=True)
    dx = invstd * (gdy - mgdy - xhat * mgdyx)
    other = tuple(i for i in range(x64.ndim) if i not in axes)
    nshape = tuple(x64.shape[i] for i in axes)
    dgamma = (dy64 * xhat).sum(axis=other).reshape(nshape)
    dbeta = dy64.sum(axis=other).reshape(nshape)
    return dx, dgamma, dbeta
