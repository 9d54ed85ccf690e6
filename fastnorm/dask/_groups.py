"""Instance and group normalization of Dask arrays: one implementation.

Instance norm is the case of one channel per group (``num_groups=None``):
both run the same graph builders, which differ only in ``cg``, the channels
per group, and in whether each block is told its number of groups.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import dask.array as da
import numpy as np

from .. import functional as F
from ._common import (
    ChunkMoments,
    block_gradients,
    blockwise_backward,
    check_known,
    dask_input,
    group_count,
    merged_moments,
    pack_moments,
    stand_in,
    to_result,
)


class Plan(NamedTuple):
    """How one call maps onto the blocks.

    ``cg`` channels per group (1 for instance norm); ``grouped`` whether the
    blocks run group norm (with ``c // cg`` groups for c channels) or
    instance norm; ``reduced`` the axes each slice spans besides channels.
    """

    axis: int
    cg: int
    grouped: bool
    reduced: tuple

    def block_groups(self, block: np.ndarray):
        """num_groups of the chunk-level functions for one block."""
        return block.shape[self.axis] // self.cg if self.grouped else None


def _plan(x, axis, num_groups):
    """(layout, plan) of x; num_groups None is instance norm."""
    lay = F.layout_of(x, axis, num_groups)
    reduced = tuple(i for i in range(1, x.ndim) if i != lay.axis)
    # max(.., 1): with C = 0 there are no channels to group (the input is empty).
    return lay, Plan(lay.axis, max(lay.Cg, 1), num_groups is not None, reduced)


def _whole_groups(x, plan: Plan):
    """x with every channel chunk a positive multiple of the group size.

    A group's statistics come from one block along the channel axis, so a
    chunk boundary inside a group moves to the nearest group boundary (a
    small rechunk; chunks that are already whole groups stay as they are).
    Instance norm keeps any channel chunking.
    """
    chunks = x.chunks[plan.axis]
    if not plan.grouped or not x.shape[plan.axis] or all(c and c % plan.cg == 0 for c in chunks):
        return x  # instance norm, no channels, or whole groups already
    cg = plan.cg
    snapped = sorted({(b + cg // 2) // cg * cg for b in (0, *itertools.accumulate(chunks))})
    return x.rechunk({plan.axis: tuple(b - a for a, b in itertools.pairwise(snapped))})


def _channel_blocks(name, value, x, lay: F.Layout, plan: Plan, compute, default):
    """gamma/beta as a per-channel (C,) dask array of the compute dtype,
    chunked like x's channel axis (a per-group (G,) one is repeated)."""
    chunks = (x.chunks[lay.axis],)
    groups = lay.G if plan.grouped else None
    if isinstance(value, da.Array):
        check_known(name, value)
        # Validate dtype and shape on a zero-strided stand-in: no compute.
        F.channel_param(name, stand_in(value), lay.C, compute, default, groups)
        value = value.astype(compute)
        if value.shape != (lay.C,):  # one value per group
            value = da.repeat(value, lay.Cg)
        return value.rechunk(chunks)
    return da.from_array(F.channel_param(name, value, lay.C, compute, default, groups), chunks)


class GroupMoments(ChunkMoments):
    """(n, c) moments of a block: its groups' partial moments, per channel.

    Statistics travel through the graph repeated per channel so they share
    x's channel chunks (Dask's blockwise aligns arrays by chunk sizes); each
    block reads them back one per group.
    """

    def __init__(self, plan: Plan):
        self.plan = plan

    def moments(self, block):
        plan = self.plan
        groups = plan.block_groups(block)
        out = pack_moments(*F.partial_moments(block, axis=plan.axis, num_groups=groups))
        return np.repeat(out, plan.cg, axis=1) if plan.cg > 1 else out


# --------------------------------------------------------------------------
# block functions (module level so they pickle by reference)


def _forward_block(xb, gb, bb, *, plan, eps):
    groups = plan.block_groups(xb)
    if groups is None:
        return F.instance_norm(xb, gb, bb, axis=plan.axis, eps=eps)
    return F.group_norm(xb, groups, gb, bb, axis=plan.axis, eps=eps)


def _normalize_block(xb, mb, sb, gb, bb, *, plan):
    g = slice(None, None, plan.cg)  # per-channel copies -> one per group
    return F.normalize_with_stats(
        xb, mb[:, g], sb[:, g], gb, bb, axis=plan.axis, num_groups=plan.block_groups(xb)
    )


def _grad_sums_block(dyb, xb, mb, *, plan):
    groups = plan.block_groups(xb)
    mean = mb[:, :: plan.cg]
    sum_dy, sum_dy_xc = F.partial_grad_sums(dyb, xb, mean, axis=plan.axis, num_groups=groups)
    return np.expand_dims(np.stack([sum_dy, sum_dy_xc], axis=-1), plan.reduced)


def _backward_block(dyb, xb, nb, mb, sb, sdyb, sdyxcb, gb, *, plan):
    g = slice(None, None, plan.cg)
    return F.backward_with_sums(
        dyb,
        xb,
        nb[:, g],
        mb[:, g],
        sb[:, g],
        sdyb,
        sdyxcb,
        gb,
        axis=plan.axis,
        num_groups=plan.block_groups(xb),
    )


def _whole_backward_block(dyb, xb, gb, *, plan, eps):
    groups = plan.block_groups(xb)
    if groups is None:
        backward, args = F.instance_norm_backward, ()
    else:
        backward, args = F.group_norm_backward, (groups,)
    return block_gradients(
        backward, dyb, xb, *args, gb, param_axes=(plan.axis,), axis=plan.axis, eps=eps
    )


def _group_sums(block, *, cg):
    return block.reshape(-1, cg).sum(axis=1)


# --------------------------------------------------------------------------
# graph builders


def norm(x, num_groups, gamma, beta, axis, eps):
    """The forward of instance norm (num_groups None) and group norm."""
    x, compute = dask_input("x", x)
    lay, plan = _plan(x, axis, num_groups)
    eps = F.check_eps(eps)
    x = _whole_groups(x, plan)
    g = _channel_blocks("gamma", gamma, x, lay, plan, compute, 1.0)
    b = _channel_blocks("beta", beta, x, lay, plan, compute, 0.0)
    if x.size == 0:
        return da.empty_like(x)
    ind = tuple(range(x.ndim))
    meta = np.empty((0,) * x.ndim, x.dtype)
    if all(len(x.chunks[i]) == 1 for i in plan.reduced):  # whole slices per block
        return da.blockwise(
            _forward_block,
            ind,
            x,
            ind,
            g,
            (lay.axis,),
            b,
            (lay.axis,),
            plan=plan,
            eps=eps,
            token="fastnorm-instance-norm" if num_groups is None else "fastnorm-group-norm",
            dtype=x.dtype,
            meta=meta,
        )
    _, mean, invstd = merged_moments(x, plan.reduced, GroupMoments(plan), eps)
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
        plan=plan,
        token="fastnorm-normalize",
        dtype=x.dtype,
        meta=meta,
    )


def _merged_backward(dy, x, g, lay: F.Layout, plan: Plan, eps: float):
    """dx and float64 dgamma/dbeta (per channel) when slices span blocks:
    merged moments, then per-chunk gradient sums against the whole-slice
    mean (they simply add), then dx from both."""
    ind = tuple(range(x.ndim))
    stats_ind = (0, lay.axis)
    count, mean, invstd = merged_moments(x, plan.reduced, GroupMoments(plan), eps)

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
        adjust_chunks=dict.fromkeys(plan.reduced, 1),
        plan=plan,
        token="fastnorm-grad-sums",
        dtype=np.float64,
        meta=np.empty((0,) * (x.ndim + 1), np.float64),
    )
    sums = partial.sum(axis=plan.reduced)
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
        plan=plan,
        token="fastnorm-norm-backward",
        dtype=x.dtype,
        meta=np.empty((0,) * x.ndim, x.dtype),
    )
    # Empty slices contribute nothing (their invstd is NaN), as in the core.
    dgamma = da.where(count > 0, sum_dy_xc * invstd, 0.0).sum(axis=0)
    dbeta = sum_dy.sum(axis=0)
    return dx, dgamma, dbeta


def norm_backward(dy, x, num_groups, gamma, axis, eps):
    """The backward of instance norm (num_groups None) and group norm."""
    x, compute = dask_input("x", x)
    dy, _ = dask_input("dy", dy)
    lay, plan = _plan(x, axis, num_groups)
    if dy.shape != x.shape:
        raise ValueError(f"dy must have the shape of x {x.shape}, got shape {dy.shape}")
    eps = F.check_eps(eps)
    x = _whole_groups(x, plan)
    g = _channel_blocks("gamma", gamma, x, lay, plan, compute, 1.0)
    # MXNet 1.x: one gamma per group gets the sum of its channels' gradients.
    per_group = lay.G != lay.C and gamma is not None and np.shape(gamma) == (lay.G,)
    if x.size == 0:
        zeros = da.zeros(lay.G if per_group else lay.C, dtype=x.dtype, chunks=-1)
        return da.empty_like(x), zeros, zeros.copy()
    dy = dy.rechunk(x.chunks)
    if all(len(x.chunks[i]) == 1 for i in plan.reduced):  # whole slices per block
        dx, dgamma, dbeta = blockwise_backward(
            _whole_backward_block,
            dy,
            x,
            g,
            (lay.axis,),
            compute,
            token="fastnorm-norm-backward",
            plan=plan,
            eps=eps,
        )
    else:
        dx, dgamma, dbeta = _merged_backward(dy, x, g, lay, plan, eps)
    if per_group:
        chunks = (tuple(c // lay.Cg for c in x.chunks[lay.axis]),)
        dgamma = dgamma.map_blocks(_group_sums, cg=lay.Cg, chunks=chunks, dtype=np.float64)
        dbeta = dbeta.map_blocks(_group_sums, cg=lay.Cg, chunks=chunks, dtype=np.float64)
    return dx, to_result(dgamma, compute, x.dtype), to_result(dbeta, compute, x.dtype)


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
    return norm(x, None, gamma, beta, axis, eps)


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
    When the reduced axes are unchunked, each block runs the in-memory
    backward in one task, and dgamma/dbeta are the blocks' gradients (in
    the compute dtype) summed in float64.  Otherwise three passes over the
    chunks: a moments reduction (statistics), a reduction of ``sum(dy)``
    and ``sum(dy * (x - mean))`` per slice (sums against the whole-slice
    mean, so chunk sums simply add), and a blockwise pass computing dx from
    both.
    """
    return norm_backward(dy, x, None, gamma, axis, eps)


def group_norm(x, num_groups, gamma=None, beta=None, *, axis=1, eps=1e-5):
    """Lazy group normalization of a Dask array.

    Same semantics and validation as :func:`fastnorm.group_norm`, with the
    chunking rules of :func:`instance_norm`: blocks holding whole
    (sample, group) slices run the in-memory kernel in one task each, other
    chunkings merge per-chunk moments.

    Parameters
    ----------
    x : dask.array.Array or array_like
        Input of at least 2 dimensions, any chunking; axis 0 holds the
        samples.  float16, float32 or float64.
    num_groups : int
        Number of groups of ``C // num_groups`` consecutive channels; must
        divide C.
    gamma, beta : array_like or dask.array.Array of shape (C,) or (num_groups,), optional
        Scale and shift per channel (PyTorch, ONNX, MXNet 2) or per group
        (MXNet 1.x); None means ones and zeros.
    axis : int, default 1
        The channel axis; any axis but 0 (``-1`` for channels-last).
    eps : float, default 1e-5
        Added to the variance; finite and ``>= 0``.

    Returns
    -------
    dask.array.Array
        Lazy result of x's shape and dtype.  Its chunks are x's, except
        that channel chunks splitting a group are first rechunked to whole
        groups (each boundary moves to the nearest group boundary): a
        group's statistics come from one block along the channel axis.
    """
    return norm(x, group_count(num_groups), gamma, beta, axis, eps)


def group_norm_backward(dy, x, num_groups, gamma=None, *, axis=1, eps=1e-5):
    """Lazy gradients of :func:`group_norm` for Dask arrays.

    Same semantics and validation as :func:`fastnorm.group_norm_backward`;
    the three passes of :func:`instance_norm_backward`.

    Parameters
    ----------
    dy : dask.array.Array or array_like
        Upstream gradient of x's shape; rechunked to the chunks of dx.
    x : dask.array.Array or array_like
        The forward's input, any chunking.
    num_groups : int
        As for the forward.
    gamma : array_like or dask.array.Array of shape (C,) or (num_groups,), optional
        The forward's scale; None means ones.
    axis, eps
        As for :func:`group_norm`.

    Returns
    -------
    dx : dask.array.Array
        x's shape and dtype, chunked like :func:`group_norm`'s result.
    dgamma, dbeta : dask.array.Array
        x's dtype, in the shape of the gamma given: (C,) per channel (also
        when gamma is None) or (num_groups,) per group.
    """
    return norm_backward(dy, x, group_count(num_groups), gamma, axis, eps)
