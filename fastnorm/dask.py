"""Instance normalization of Dask arrays with fastnorm's kernels.

Import it as ``fastnorm.dask`` (``pip install "fastnorm[dask]"``); plain
``import fastnorm`` never imports Dask.

Every (sample, channel) slice is normalized over all other axes, exactly as
:func:`fastnorm.instance_norm` does, whatever the chunking:

* when the reduced axes (all but axis 0 and the channel axis) hold one chunk
  each, every block contains whole slices and the forward is one
  ``map_blocks`` of the in-memory kernel;
* otherwise each chunk yields its partial moments (count, mean, M2) from
  fastnorm's blocked-Welford kernels, Dask's tree reduction merges them with
  Chan's formula in float64 (as ``dask.array.var`` does), and a second
  ``map_blocks`` pass applies the merged statistics.

Chunked samples and channels are fine either way: statistics stay per block
along those axes, and gamma/beta are rechunked to the channel chunks of x.
"""

from __future__ import annotations

import math

# Absolute imports: this module is fastnorm.dask, the package below is Dask.
import dask.array as da
import numpy as np

from . import functional as F

__all__ = ["instance_norm", "instance_norm_backward"]

#: Partial moments travel through the tree reduction as one structured array,
#: so dask's own concatenation of intermediates works unchanged.
MOMENTS = np.dtype([("count", "f8"), ("mean", "f8"), ("m2", "f8")])


# --------------------------------------------------------------------------
# validation (same messages as the in-memory API)


def _dask_input(name: str, value):
    """A dask array and its compute dtype; other array-likes are wrapped."""
    if not isinstance(value, da.Array):
        value = da.asarray(F.as_array(name, value))
    compute = F.compute_dtype(name, value.dtype)
    if any(math.isnan(s) for s in value.shape):
        raise ValueError(
            f"{name} has unknown chunk sizes (shape {value.shape}); "
            f"call {name}.compute_chunk_sizes() first"
        )
    return value, compute


def _channel_blocks(name: str, value, x, lay: F.Layout, compute: np.dtype, default: float):
    """gamma/beta as a (C,) dask array of the compute dtype, chunked like x's channel axis."""
    chunks = (x.chunks[lay.axis],)
    if isinstance(value, da.Array):
        if any(math.isnan(s) for s in value.shape):
            raise ValueError(f"{name} has unknown chunk sizes (shape {value.shape})")
        # Validate dtype and shape on a zero-strided stand-in: no compute.
        F.channel_param(
            name, np.broadcast_to(np.zeros((), value.dtype), value.shape), lay.C, compute, default
        )
        return value.astype(compute).rechunk(chunks)
    return da.from_array(F.channel_param(name, value, lay.C, compute, default), chunks=chunks)


def _reduced_axes(lay: F.Layout, ndim: int) -> tuple:
    return tuple(i for i in range(1, ndim) if i != lay.axis)


def _whole_slices(x, reduced: tuple) -> bool:
    return all(len(x.chunks[i]) == 1 for i in reduced)


# --------------------------------------------------------------------------
# the moments reduction


def _chan_merge(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Merge structured (count, mean, m2) arrays elementwise (Chan et al.)."""
    na, ma, m2a = a["count"], a["mean"], a["m2"]
    nb, mb, m2b = b["count"], b["mean"], b["m2"]
    n = na + nb
    f = np.divide(nb, n, out=np.zeros_like(n), where=n > 0)
    d = mb - ma
    out = np.empty(n.shape, MOMENTS)
    out["count"] = n
    # Merging into an empty part returns the other part bit for bit.
    out["mean"] = np.where(na == 0, mb, ma + d * f)
    out["m2"] = np.where(na == 0, m2b, m2a + m2b + d * d * (na * f))
    return out


def _moments_chunk(block, axis=None, keepdims=True, computing_meta=False, *, channel):
    if computing_meta:
        return np.empty((0,) * block.ndim, MOMENTS)
    count, mean, m2 = F.partial_moments(block, axis=channel)
    out = np.empty(count.shape, MOMENTS)
    out["count"], out["mean"], out["m2"] = count, mean, m2
    # (n, c) -> keepdims shape: the kept axes keep their order.
    return np.expand_dims(out, axis)


def _moments_merge(parts, axis=None, keepdims=True, computing_meta=False):
    if computing_meta:
        return parts
    ndim = parts.ndim
    kept = [i for i in range(ndim) if i not in axis]
    # Kept axes first, then every part of the reduced axes in one flat axis.
    flat = parts.transpose(*kept, *axis).reshape(*(parts.shape[i] for i in kept), -1)
    acc = flat[..., 0]
    for k in range(1, flat.shape[-1]):
        acc = _chan_merge(acc, flat[..., k])
    return np.expand_dims(acc, axis) if keepdims else acc


def _statistics(x, lay: F.Layout, reduced: tuple, eps: float):
    """Lazy float64 (N, C) count, mean and invstd of every slice."""
    moments = da.reduction(
        x,
        _chunk_with_channel(lay.axis),
        _moments_merge,
        combine=_moments_merge,
        axis=reduced,
        keepdims=False,
        dtype=MOMENTS,
        name="fastnorm-moments",
        meta=np.empty((0, 0), MOMENTS),
    )
    count, mean, m2 = moments["count"], moments["mean"], moments["m2"]
    invstd = da.map_blocks(_inverse_std, count, m2, eps=eps, dtype=np.float64)
    return count, mean, invstd


def _chunk_with_channel(channel: int):
    # A named function (not a partial of a kwarg-only function) keeps dask's
    # signature inspection for ``computing_meta`` working.
    def moments_chunk(block, axis=None, keepdims=True, computing_meta=False):
        return _moments_chunk(block, axis, keepdims, computing_meta, channel=channel)

    return moments_chunk


def _inverse_std(count, m2, eps):
    # An empty slice gives NaN like instance_norm_stats, without a warning.
    with np.errstate(invalid="ignore", divide="ignore"):
        return 1.0 / np.sqrt(m2 / count + eps)


# --------------------------------------------------------------------------
# block functions (module level so they pickle by reference)


def _forward_block(xb, gb, bb, *, axis, eps):
    return F.instance_norm(xb, gb, bb, axis=axis, eps=eps)


def _normalize_block(xb, mb, sb, gb, bb, *, axis):
    return F.normalize_with_stats(xb, mb, sb, gb, bb, axis=axis)


def _grad_sums_block(dyb, xb, mb, *, axis, reduced):
    sum_dy, sum_dy_xc = F.partial_grad_sums(dyb, xb, mb, axis=axis)
    return np.expand_dims(np.stack([sum_dy, sum_dy_xc], axis=-1), reduced)


def _backward_block(dyb, xb, nb, mb, sb, sdyb, sdyxcb, gb, *, axis):
    return F.backward_with_sums(dyb, xb, nb, mb, sb, sdyb, sdyxcb, gb, axis=axis)


# --------------------------------------------------------------------------
# public API


def instance_norm(x, gamma=None, beta=None, *, axis=1, eps=1e-5):
    """Lazy instance normalization of a Dask array.

    Same semantics and validation as :func:`fastnorm.instance_norm`; the
    result equals it on the computed array up to float rounding of the
    merged statistics (float64 merges, so within 1e-6 for float32 even
    with large offsets).

    Parameters
    ----------
    x : dask.array.Array or array_like
        Input of at least 3 dimensions, any chunking; axis 0 holds the
        samples.  float16, float32 or float64.  Other array-likes are
        wrapped with :func:`dask.array.asarray`.
    gamma, beta : array_like or dask.array.Array of shape (C,), optional
        Per-channel scale and shift; None means ones and zeros.  Rechunked
        to x's channel chunks.
    axis : int, default 1
        The channel axis; any axis but 0 (``-1`` for channels-last).
    eps : float, default 1e-5
        Added to the variance; finite and ``>= 0``.

    Returns
    -------
    dask.array.Array
        Lazy result with x's shape, dtype and chunks.

    Notes
    -----
    When the reduced axes are unchunked, each block is normalized by the
    in-memory kernel in one task.  Otherwise x is read twice: once for the
    partial moments of every chunk (merged by a tree reduction with Chan's
    formula) and once to normalize with the merged statistics.
    """
    x, compute = _dask_input("x", x)
    lay = F.layout_of(x, axis)
    eps = F.check_eps(eps)
    g = _channel_blocks("gamma", gamma, x, lay, compute, 1.0)
    b = _channel_blocks("beta", beta, x, lay, compute, 0.0)
    ind = tuple(range(x.ndim))
    reduced = _reduced_axes(lay, x.ndim)
    meta = np.empty((0,) * x.ndim, x.dtype)
    if _whole_slices(x, reduced):
        return da.blockwise(
            _forward_block,
            ind,
            x,
            ind,
            g,
            (lay.axis,),
            b,
            (lay.axis,),
            axis=lay.axis,
            eps=eps,
            token="fastnorm-instance-norm",
            dtype=x.dtype,
            meta=meta,
        )
    _, mean, invstd = _statistics(x, lay, reduced, eps)
    stats_ind = (0, lay.axis)
    return da.blockwise(
        _normalize_block,
        ind,
        x,
        ind,
        mean,
        stats_ind,
        invstd,
        stats_ind,
        g,
        (lay.axis,),
        b,
        (lay.axis,),
        axis=lay.axis,
        token="fastnorm-normalize",
        dtype=x.dtype,
        meta=meta,
    )


def instance_norm_backward(dy, x, gamma=None, *, axis=1, eps=1e-5):
    """Lazy gradients of :func:`instance_norm` for Dask arrays.

    Same semantics and validation as :func:`fastnorm.instance_norm_backward`.

    Parameters
    ----------
    dy : dask.array.Array or array_like
        Upstream gradient of x's shape; rechunked to x's chunks.
    x : dask.array.Array or array_like
        The forward's input, any chunking.
    gamma : array_like or dask.array.Array of shape (C,), optional
        The forward's scale; None means ones.
    axis, eps
        As for :func:`instance_norm`.

    Returns
    -------
    dx : dask.array.Array
        x's shape, dtype and chunks.
    dgamma, dbeta : dask.array.Array
        Shape (C,), x's dtype, chunked like x's channel axis.

    Notes
    -----
    Three passes over the chunks: a moments reduction (statistics), a
    reduction of ``sum(dy)`` and ``sum(dy * (x - mean))`` per slice (sums
    against the whole-slice mean, so chunk sums simply add), and a
    ``map_blocks`` computing dx from both.
    """
    x, compute = _dask_input("x", x)
    dy, _ = _dask_input("dy", dy)
    lay = F.layout_of(x, axis)
    if dy.shape != x.shape:
        raise ValueError(f"dy must have the shape of x {x.shape}, got shape {dy.shape}")
    eps = F.check_eps(eps)
    g = _channel_blocks("gamma", gamma, x, lay, compute, 1.0)
    dy = dy.rechunk(x.chunks)
    ind = tuple(range(x.ndim))
    reduced = _reduced_axes(lay, x.ndim)
    stats_ind = (0, lay.axis)
    count, mean, invstd = _statistics(x, lay, reduced, eps)

    # Per-chunk sums, shape 1 along the reduced axes plus a trailing pair axis.
    partial = da.blockwise(
        _grad_sums_block,
        (*ind, x.ndim),
        dy,
        ind,
        x,
        ind,
        mean,
        stats_ind,
        new_axes={x.ndim: 2},
        adjust_chunks=dict.fromkeys(reduced, 1),
        axis=lay.axis,
        reduced=reduced,
        token="fastnorm-grad-sums",
        dtype=np.float64,
        meta=np.empty((0,) * (x.ndim + 1), np.float64),
    )
    sums = partial.sum(axis=reduced)
    sum_dy, sum_dy_xc = sums[..., 0], sums[..., 1]

    dx = da.blockwise(
        _backward_block,
        ind,
        dy,
        ind,
        x,
        ind,
        count,
        stats_ind,
        mean,
        stats_ind,
        invstd,
        stats_ind,
        sum_dy,
        stats_ind,
        sum_dy_xc,
        stats_ind,
        g,
        (lay.axis,),
        axis=lay.axis,
        token="fastnorm-instance-norm-backward",
        dtype=x.dtype,
        meta=np.empty((0,) * x.ndim, x.dtype),
    )
    # Empty slices contribute nothing (their invstd is NaN), as in the core.
    dgamma = da.where(count > 0, sum_dy_xc * invstd, 0.0).sum(axis=0).astype(x.dtype)
    dbeta = sum_dy.sum(axis=0).astype(x.dtype)
    return dx, dgamma, dbeta
