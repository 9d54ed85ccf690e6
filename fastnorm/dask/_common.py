"""Machinery shared by the Dask functions.

Input checks with the in-memory API's messages, the moments reduction
(per-chunk count, mean and M2 merged with Chan's formula in float64), and
blockwise tasks that return several arrays at once.
"""

from __future__ import annotations

import math
import operator

# Absolute imports: this package is fastnorm.dask, the one below is Dask.
import dask.array as da
import numpy as np

from .. import functional as F

#: Partial moments travel through the tree reduction as one structured array,
#: so dask's own concatenation of intermediates works unchanged.
MOMENTS = np.dtype([("count", "f8"), ("mean", "f8"), ("m2", "f8")])

# The in-memory API's validation helpers: every error message is the core's.
group_count = F.group_count
element_param = F.element_param


# --------------------------------------------------------------------------
# validation


def dask_input(name: str, value):
    """A dask array and its compute dtype; other array-likes are wrapped."""
    if not isinstance(value, da.Array):
        value = da.asarray(F.as_array(name, value))
    compute = F.compute_dtype(name, value.dtype)
    check_known(name, value)
    return value, compute


def check_known(name: str, value) -> None:
    """Reject arrays of unknown chunk sizes (their shape has NaN)."""
    if any(math.isnan(s) for s in value.shape):
        raise ValueError(
            f"{name} has unknown chunk sizes (shape {value.shape}); "
            f"call {name}.compute_chunk_sizes() first"
        )


def stand_in(value: da.Array) -> np.ndarray:
    """A zero-strided NumPy array of value's shape and dtype, for validating
    a dask gamma/beta with the in-memory checks without computing it."""
    return np.broadcast_to(np.zeros((), value.dtype), value.shape)


def to_result(arr, compute: np.dtype, dtype: np.dtype):
    """A float64 gradient in x's dtype through the compute dtype, as the
    in-memory API rounds it (float16 inputs round via float32)."""
    return arr.astype(compute).astype(dtype)


# --------------------------------------------------------------------------
# the moments reduction


def pack_moments(count, mean, m2) -> np.ndarray:
    out = np.empty(np.shape(count), MOMENTS)
    out["count"], out["mean"], out["m2"] = count, mean, m2
    return out


class ChunkMoments:
    """The chunk step of the moments reduction: structured moments of every
    slice a block touches, with the reduced axes kept as length 1.

    Subclasses define :meth:`moments` (block -> structured array of the kept
    axes' block shape).  A class rather than a closure: it pickles by
    reference and tokenizes deterministically, and dask can still inspect
    ``computing_meta`` in the signature of ``__call__``.
    """

    def moments(self, block: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, block, axis=None, keepdims=True, computing_meta=False):
        if computing_meta:
            return np.empty((0,) * block.ndim, MOMENTS)
        return np.expand_dims(self.moments(block), axis)

    def __dask_tokenize__(self):
        return type(self).__name__, tuple(sorted(vars(self).items()))


def chan_merge(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Merge structured (count, mean, m2) arrays elementwise (Chan et al.)."""
    na, ma, m2a = a["count"], a["mean"], a["m2"]
    nb, mb, m2b = b["count"], b["mean"], b["m2"]
    n = na + nb
    f = np.divide(nb, n, out=np.zeros_like(n), where=n > 0)
    d = mb - ma
    out = np.empty(n.shape, MOMENTS)
    out["count"] = n
    # Squares of float64 data may overflow to inf (the variance is then inf,
    # as in the kernels); inf * 0 from an empty part must not make it NaN.
    with np.errstate(over="ignore", invalid="ignore"):
        mean = ma + d * f
        m2 = m2a + m2b + d * d * (na * f)
    # Merging with an empty part returns the other part bit for bit.
    out["mean"] = np.where(na == 0, mb, np.where(nb == 0, ma, mean))
    out["m2"] = np.where(na == 0, m2b, np.where(nb == 0, m2a, m2))
    return out


def moments_merge(parts, axis=None, keepdims=True, computing_meta=False):
    """The combine and aggregate steps: merge along the reduced axes, in order."""
    if computing_meta:
        return parts
    kept = [i for i in range(parts.ndim) if i not in axis]
    # Kept axes first, then every part of the reduced axes in one flat axis.
    flat = parts.transpose(*kept, *axis).reshape(*(parts.shape[i] for i in kept), -1)
    acc = flat[..., 0]
    for k in range(1, flat.shape[-1]):
        acc = chan_merge(acc, flat[..., k])
    return np.expand_dims(acc, axis) if keepdims else acc


def merged_moments(x, reduced: tuple, chunk: ChunkMoments, eps: float):
    """Lazy float64 count, mean and invstd of every slice, over ``reduced``.

    The results have x's shape and chunks without the reduced axes.
    """
    kept = x.ndim - len(reduced)
    moments = da.reduction(
        x,
        chunk,
        moments_merge,
        combine=moments_merge,
        axis=reduced,
        keepdims=False,
        dtype=MOMENTS,
        name="fastnorm-moments",
        meta=np.empty((0,) * kept, MOMENTS),
    )
    count, mean, m2 = moments["count"], moments["mean"], moments["m2"]
    invstd = da.map_blocks(
        inverse_std, count, m2, eps=eps, dtype=np.float64, meta=np.empty((0,) * kept)
    )
    return count, mean, invstd


def inverse_std(count, m2, eps):
    # An empty slice gives NaN like the *_stats functions, without a warning.
    with np.errstate(invalid="ignore", divide="ignore"):
        return 1.0 / np.sqrt(m2 / count + eps)


# --------------------------------------------------------------------------
# one-task-per-block backward (blocks holding whole slices)


def block_gradients(backward, dyb, xb, *args, param_axes: tuple, **kwargs):
    """(dx, dgamma, dbeta) of one block by an in-memory backward, the
    parameter gradients with length-1 axes where x has its other axes.

    float16 blocks run upcast to float32 (exact, and what the kernels
    compute in anyway): dx rounds to float16 as the in-memory API rounds
    it, while dgamma/dbeta stay float32 until all blocks are summed.
    """
    half = xb.dtype == np.float16
    if half:
        xb = xb.astype(np.float32)
        dyb = dyb.astype(np.float32) if dyb.dtype == np.float16 else dyb
    dx, dg, db = backward(dyb, xb, *args, **kwargs)
    outer = tuple(i for i in range(xb.ndim) if i not in param_axes)
    if half:
        dx = dx.astype(np.float16)
    return dx, np.expand_dims(dg, outer), np.expand_dims(db, outer)


def blockwise_backward(block, dy, x, g, param_axes: tuple, compute, *stats, token, **kwargs):
    """dx (x's chunks) and float64 dgamma/dbeta of the ``param_axes`` shape
    from ``block(dyb, xb, gb, *stats, **kwargs)``, a function returning
    :func:`block_gradients`'s triple: one task per block, the parameter
    gradients summed over blocks in float64.
    """
    ind = tuple(range(x.ndim))
    parts = da.blockwise(
        block,
        ind,
        dy,
        ind,
        x,
        ind,
        g,
        param_axes,
        *stats,
        token=token,
        dtype=object,
        meta=np.empty((0,) * x.ndim, object),
        **kwargs,
    )
    outer = tuple(i for i in ind if i not in param_axes)
    part_dtype = np.float64 if compute == np.float64 else np.float32
    part_chunks = tuple((1,) * len(c) if i in outer else c for i, c in enumerate(x.chunks))
    dx = _output(parts, 0, x.chunks, x.dtype)
    dgamma = _output(parts, 1, part_chunks, part_dtype).sum(axis=outer, dtype=np.float64)
    dbeta = _output(parts, 2, part_chunks, part_dtype).sum(axis=outer, dtype=np.float64)
    return dx, dgamma, dbeta


def _output(parts: da.Array, k: int, chunks: tuple, dtype) -> da.Array:
    """Output ``k`` of a blockwise array whose blocks are tuples of arrays.

    Each tuple is computed once (the getitem layers depend on it, so dask
    does not fuse it into them), as :func:`dask.array.apply_gufunc` does.
    """
    return parts.map_blocks(
        operator.getitem,
        k,
        chunks=chunks,
        dtype=dtype,
        meta=np.empty((0,) * parts.ndim, dtype),
        token=f"fastnorm-output-{k}",
    )
