"""Layer normalization of Dask arrays.

Layer norm over axes ``first..last`` of x is, for its moments, instance
norm of x viewed as (A, L, B) with the channel axis 2: every (a, b) slice
runs over L.  So a chunk's partial moments come from the same kernels as
instance norm's, and the same Chan merge combines them.
"""

from __future__ import annotations

import math

import dask.array as da
import numpy as np

from .. import functional as F
from ._common import (
    ChunkMoments,
    block_gradients,
    blockwise_backward,
    check_known,
    dask_input,
    element_param,
    merged_moments,
    pack_moments,
    stand_in,
    to_result,
)


def _element_blocks(name, value, x, lay: F.AffineLayout, compute, default):
    """gamma/beta of the normalized axes' shape, in the compute dtype,
    chunked like x's normalized axes."""
    chunks = x.chunks[lay.first : lay.last + 1]
    if isinstance(value, da.Array):
        check_known(name, value)
        # Validate dtype and shape on a zero-strided stand-in: no compute.
        element_param(name, stand_in(value), lay, compute, default)
        return value.astype(compute).rechunk(chunks)
    vec = element_param(name, value, lay, compute, default)
    return da.from_array(vec.reshape(lay.param_shape), chunks=chunks)


class SliceMoments(ChunkMoments):
    """Moments of the parts of every slice a block holds, as a (a, b) instance
    norm of the block viewed as (a, l, b) (a view when the block is contiguous)."""

    def __init__(self, first: int, last: int):
        self.first, self.last = first, last

    def moments(self, block):
        outer = block.shape[: self.first] + block.shape[self.last + 1 :]
        a = math.prod(block.shape[: self.first])
        n = math.prod(block.shape[self.first : self.last + 1])
        b = math.prod(block.shape[self.last + 1 :])
        if b == 1:
            # Trailing normalized axes: (a, 1, n) with channel axis 1 runs the
            # contiguous-row kernels (2x faster here than per-column (a, n, 1)).
            moments = F.partial_moments(block.reshape(a, 1, n), axis=1)
        else:
            moments = F.partial_moments(block.reshape(a, n, b), axis=2)
        return pack_moments(*moments).reshape(outer)


def _slice_chunks(x, first: int, last: int):
    """Rechunk x so every block holds whole slices, keeping blocks about as
    large as x's largest block (other axes split more finely as needed)."""
    spec = {i: (-1 if first <= i <= last else "auto") for i in range(x.ndim)}
    largest = math.prod(max(c) for c in x.chunks) * x.dtype.itemsize
    return x.rechunk(spec, block_size_limit=max(largest, 1))


# --------------------------------------------------------------------------
# block functions (module level so they pickle by reference)


def _forward_block(xb, gb, bb, *, axis, eps):
    return F.layer_norm(xb, gb, bb, axis=axis, eps=eps)


def _normalize_block(xb, mb, sb, gb, bb, *, axis):
    return F.layer_norm_with_stats(xb, mb, sb, gb, bb, axis=axis)


def _backward_block(dyb, xb, gb, *stats, axis, eps):
    mean, invstd = stats if stats else (None, None)
    return block_gradients(
        F.layer_norm_backward,
        dyb,
        xb,
        gb,
        param_axes=axis,
        axis=axis,
        eps=eps,
        mean=mean,
        invstd=invstd,
    )


# --------------------------------------------------------------------------
# public API


def layer_norm(x, gamma=None, beta=None, *, axis=-1, eps=1e-5):
    """Lazy layer normalization of a Dask array.

    Same semantics and validation as :func:`fastnorm.layer_norm`.

    Parameters
    ----------
    x : dask.array.Array or array_like
        Input of at least 1 dimension, any chunking; float16, float32 or
        float64.  Other array-likes are wrapped with
        :func:`dask.array.asarray`.
    gamma, beta : array_like or dask.array.Array of the normalized axes' shape, optional
        Scale and shift per normalized element; None means ones and zeros.
        Rechunked to x's chunks along the normalized axes.
    axis : int or tuple of int, default -1
        The normalized axis, or a tuple of consecutive axes (``(-2, -1)``).
    eps : float, default 1e-5
        Added to the variance; finite and ``>= 0``.

    Returns
    -------
    dask.array.Array
        Lazy result with x's shape, dtype and chunks.

    Notes
    -----
    When the normalized axes are unchunked, each block runs
    :func:`fastnorm.layer_norm` in one task.  Otherwise each chunk yields
    the partial moments (count, mean, M2) of the slices it touches, a tree
    reduction merges them with Chan's formula in float64, and a second pass
    applies the merged statistics (:func:`fastnorm.layer_norm_with_stats`).
    """
    x, compute = dask_input("x", x)
    lay = F.affine_layout_of(x, axis)
    eps = F.check_eps(eps)
    g = _element_blocks("gamma", gamma, x, lay, compute, 1.0)
    b = _element_blocks("beta", beta, x, lay, compute, 0.0)
    if x.size == 0:
        return da.empty_like(x)
    normalized = tuple(range(lay.first, lay.last + 1))
    ind = tuple(range(x.ndim))
    meta = np.empty((0,) * x.ndim, x.dtype)
    if all(len(x.chunks[i]) == 1 for i in normalized):
        return da.blockwise(
            _forward_block,
            ind,
            x,
            ind,
            g,
            normalized,
            b,
            normalized,
            axis=normalized,
            eps=eps,
            token="fastnorm-layer-norm",
            dtype=x.dtype,
            meta=meta,
        )
    _, mean, invstd = merged_moments(x, normalized, SliceMoments(lay.first, lay.last), eps)
    stats_ind = tuple(i for i in ind if i not in normalized)
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
        normalized,
        b,
        normalized,
        axis=normalized,
        token="fastnorm-layer-normalize",
        dtype=x.dtype,
        meta=meta,
    )


def layer_norm_backward(dy, x, gamma=None, *, axis=-1, eps=1e-5):
    """Lazy gradients of :func:`layer_norm` for Dask arrays.

    Same semantics and validation as :func:`fastnorm.layer_norm_backward`.

    Parameters
    ----------
    dy : dask.array.Array or array_like
        Upstream gradient of x's shape; rechunked to the chunks of dx.
    x : dask.array.Array or array_like
        The forward's input, any chunking.
    gamma : array_like or dask.array.Array of the normalized axes' shape, optional
        The forward's scale; None means ones.
    axis, eps
        As for :func:`layer_norm`.

    Returns
    -------
    dx : dask.array.Array
        x's shape and dtype; x's chunks when the normalized axes are
        unchunked, else see the notes.
    dgamma, dbeta : dask.array.Array
        The normalized axes' shape, x's dtype: each block's gradients (in
        the compute dtype, float32 for float16 x) summed over blocks in
        float64.

    Notes
    -----
    dx of an element needs ``sum(gamma * dy)`` and ``sum(gamma * dy * xhat)``
    over its whole slice, and those sums must be complete before any dx of
    the slice can be written.  So when the normalized axes are chunked, x
    and dy are rechunked to hold whole slices (the other axes split more
    finely so blocks stay about as large as x's), and every block runs
    :func:`fastnorm.layer_norm_backward` in one task with the statistics
    merged from x's original chunks -- the statistics :func:`layer_norm`
    used, and the same graph keys, so a forward and backward computed
    together share that reduction.
    """
    x, compute = dask_input("x", x)
    dy, _ = dask_input("dy", dy)
    lay = F.affine_layout_of(x, axis)
    if dy.shape != x.shape:
        raise ValueError(f"dy must have the shape of x {x.shape}, got shape {dy.shape}")
    eps = F.check_eps(eps)
    # Validated against x's chunks; rechunked below to the blocks' chunks.
    g = _element_blocks("gamma", gamma, x, lay, compute, 1.0)
    if x.size == 0:
        zeros = da.zeros(lay.param_shape, dtype=x.dtype, chunks=-1)
        return da.empty_like(x), zeros, zeros.copy()
    normalized = tuple(range(lay.first, lay.last + 1))
    ind = tuple(range(x.ndim))
    stats_ind = tuple(i for i in ind if i not in normalized)
    stats = ()
    if not all(len(x.chunks[i]) == 1 for i in normalized):
        _, mean, invstd = merged_moments(x, normalized, SliceMoments(lay.first, lay.last), eps)
        x = _slice_chunks(x, lay.first, lay.last)
        kept = tuple(x.chunks[i] for i in stats_ind)
        stats = (mean.rechunk(kept), stats_ind, invstd.rechunk(kept), stats_ind)
        g = g.rechunk(x.chunks[lay.first : lay.last + 1])
    dy = dy.rechunk(x.chunks)
    dx, dgamma, dbeta = blockwise_backward(
        _backward_block,
        dy,
        x,
        g,
        normalized,
        compute,
        *stats,
        token="fastnorm-layer-norm-backward",
        axis=normalized,
        eps=eps,
    )
    return dx, to_result(dgamma, compute, x.dtype), to_result(dbeta, compute, x.dtype)
