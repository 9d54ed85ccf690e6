"""Kernels for layouts whose slices are made of contiguous rows (Numba only).

The canonical view is the flat C-ordered array of shape (N, P, C, Q): slice
``s = n * C + c`` is the P rows ``x[n, p, c, :]`` of Q contiguous elements.
NCHW is P = 1 (each slice one contiguous run).  A slice is cut into blocks of
at most ``BLOCK`` elements inside a row; consecutive blocks form parts of
about ``PART`` elements.  A slice of one part is processed by one task from
statistics to output while it sits in L2 (one read of x from memory); larger
slices are split into parts that run in parallel and merge in a fixed order.

Every kernel takes the ``stats`` table of :mod:`.table`, shape (6, N * C)
with rows ``(count, mean, invstd, sum_dy, sum_dy_xc, m2)``, and a ``given``
level: the rows below ``given`` are inputs, the others are computed and
written back (forward: ``given`` 0 or 3; backward: 0, 3 or 5; M2 is written
only when the statistics are computed).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .common import (
    BLOCK,
    ELEMENTWISE_FLAGS,
    KERNEL_OPTIONS,
    PART,
    backward_coefficients,
    backward_span,
    backward_value,
    block_grad_sums,
    block_moments,
    chan_merge,
    forward_coefficients,
    inverse_std,
    normalize_span,
    normalized,
)
from .table import COUNT, INVSTD, M2, MEAN, SUM_DY, SUM_DYXC


@njit(inline="always", **KERNEL_OPTIONS)
def rows_plan(P, Q):
    """(blocks per row, blocks per part, parts per slice): shape only."""
    per_row = (Q + BLOCK - 1) // BLOCK
    block = min(Q, BLOCK)
    per_part = max(1, PART // block)
    parts = (P * per_row + per_part - 1) // per_part
    return per_row, per_part, parts


@njit(inline="always", **KERNEL_OPTIONS)
def _first_block(j0, per_row, row_stride):
    """Row offset and column of block j0 of a slice (the one division per range)."""
    p = j0 // per_row
    return p * row_stride, (j0 - p * per_row) * BLOCK


@njit(inline="always", **KERNEL_OPTIONS)
def _next_block(off, q0, row_stride, Q):
    q0 += BLOCK
    if q0 >= Q:
        return off + row_stride, 0
    return off, q0


@njit(**KERNEL_OPTIONS)
def _range_moments(xf, base, row_stride, Q, per_row, j0, j1):
    """(count, mean, M2) of blocks [j0, j1) of the slice starting at base."""
    count = 0.0
    mean = 0.0
    m2 = 0.0
    off, q0 = _first_block(j0, per_row, row_stride)
    off += base
    for _ in range(j1 - j0):
        hi = min(Q, q0 + BLOCK)
        bmean, bm2 = block_moments(xf[off + q0 : off + hi])
        count, mean, m2 = chan_merge(count, mean, m2, float(hi - q0), bmean, bm2)
        off, q0 = _next_block(off, q0, row_stride, Q)
    return count, mean, m2


@njit(**KERNEL_OPTIONS)
def _range_grad_sums(dyf, xf, base, row_stride, Q, per_row, j0, j1, mean):
    sum_dy = 0.0
    sum_dyxc = 0.0
    off, q0 = _first_block(j0, per_row, row_stride)
    off += base
    for _ in range(j1 - j0):
        lo = off + q0
        hi = off + min(Q, q0 + BLOCK)
        a, b = block_grad_sums(dyf[lo:hi], xf[lo:hi], mean)
        sum_dy += a
        sum_dyxc += b
        off, q0 = _next_block(off, q0, row_stride, Q)
    return sum_dy, sum_dyxc


@njit(**KERNEL_OPTIONS)
def _range_normalize(xf, yf, base, row_stride, Q, per_row, j0, j1, coef, s):
    mean_hi, scale, shift = coef[s, 0], coef[s, 1], coef[s, 2]
    off, q0 = _first_block(j0, per_row, row_stride)
    off += base
    for _ in range(j1 - j0):
        lo = off + q0
        hi = off + min(Q, q0 + BLOCK)
        normalize_span(xf[lo:hi], yf[lo:hi], mean_hi, scale, shift)
        off, q0 = _next_block(off, q0, row_stride, Q)


@njit(**KERNEL_OPTIONS)
def _range_backward(dyf, xf, dxf, base, row_stride, Q, per_row, j0, j1, coef, s):
    mean_hi, a, k, mdy_hi, c = coef[s, 0], coef[s, 1], coef[s, 2], coef[s, 3], coef[s, 4]
    off, q0 = _first_block(j0, per_row, row_stride)
    off += base
    for _ in range(j1 - j0):
        lo = off + q0
        hi = off + min(Q, q0 + BLOCK)
        backward_span(dyf[lo:hi], xf[lo:hi], dxf[lo:hi], mean_hi, a, k, mdy_hi, c)
        off, q0 = _next_block(off, q0, row_stride, Q)


@njit(inline="always", **KERNEL_OPTIONS)
def _part_of_task(t, parts, per_part, nblocks, P, C, Q):
    """(slice, slice base, first block, end block) of parallel task t."""
    s = t // parts
    j0 = (t - s * parts) * per_part
    return s, _slice_base(s, P, C, Q), j0, min(nblocks, j0 + per_part)


@njit(inline="always", **KERNEL_OPTIONS)
def _slice_base(s, P, C, Q):
    n = s // C
    return (n * P * C + (s - n * C)) * Q


@njit(inline="always", **KERNEL_OPTIONS)
def _set_moments(stats, s, count, mean, m2, eps):
    stats[COUNT, s] = count
    stats[MEAN, s] = mean
    stats[INVSTD, s] = inverse_std(count, m2, eps)
    stats[M2, s] = m2


@njit(**KERNEL_OPTIONS)
def _forward_slice(s, xf, yf, P, C, Q, per_row, gamma, beta, eps, stats, given, coef):
    """Statistics (unless given) and output of one single-part slice."""
    n = s // C
    c = s - n * C
    base = (n * P * C + c) * Q
    nblocks = P * per_row
    if given == 0:
        count, mean, m2 = _range_moments(xf, base, C * Q, Q, per_row, 0, nblocks)
        _set_moments(stats, s, count, mean, m2, eps)
    forward_coefficients(stats[MEAN, s], stats[INVSTD, s], gamma[c], beta[c], coef, s)
    _range_normalize(xf, yf, base, C * Q, Q, per_row, 0, nblocks, coef, s)


@njit(**KERNEL_OPTIONS)
def _backward_slice(s, dyf, xf, dxf, P, C, Q, per_row, gamma, eps, stats, given, coef):
    """Statistics and sums (unless given) and dx of one single-part slice."""
    n = s // C
    c = s - n * C
    base = (n * P * C + c) * Q
    nblocks = P * per_row
    if given == 0:
        count, mean, m2 = _range_moments(xf, base, C * Q, Q, per_row, 0, nblocks)
        _set_moments(stats, s, count, mean, m2, eps)
    if given < 5:
        a, b = _range_grad_sums(dyf, xf, base, C * Q, Q, per_row, 0, nblocks, stats[MEAN, s])
        stats[SUM_DY, s] = a
        stats[SUM_DYXC, s] = b
    _backward_coefficients_of(stats, s, gamma[c], coef)
    _range_backward(dyf, xf, dxf, base, C * Q, Q, per_row, 0, nblocks, coef, s)


@njit(inline="always", **KERNEL_OPTIONS)
def _backward_coefficients_of(stats, s, gamma_c, coef):
    backward_coefficients(
        stats[COUNT, s],
        stats[MEAN, s],
        stats[INVSTD, s],
        gamma_c,
        stats[SUM_DY, s],
        stats[SUM_DYXC, s],
        coef,
        s,
    )


# --------------------------------------------------------------------------
# Short slices: P == 1 and Q <= BLOCK, so every slice is one block and one
# row of the (slices, Q) matrix.  Slices are handled in groups (at most PART
# elements and GROUP_SLICES slices), one task per group, each slice from
# statistics to output while its row sits in L1 (the second sweep never
# leaves the core).  2-D indexing from ranges lets Numba drop negative-index
# fix-ups.


@njit(inline="always", **KERNEL_OPTIONS)
def _short_slices(P, Q):
    return P == 1 and Q <= BLOCK


#: At most this many short slices per task: a slice's fixed cost (~30
#: cycles) does not shrink with Q, and 32768 slices of 4 elements made one
#: task of PART elements, leaving a core idle.
GROUP_SLICES = 1024


@njit(inline="always", **KERNEL_OPTIONS)
def _group_size(Q):
    return max(1, min(GROUP_SLICES, PART // Q))


@njit(**KERNEL_OPTIONS)
def _group_moments(x2, s0, s1, eps, stats):
    for s in range(s0, s1):
        mean, m2 = block_moments(x2[s])
        _set_moments(stats, s, float(x2.shape[1]), mean, m2, eps)


@njit(**KERNEL_OPTIONS)
def _group_grad_sums(dy2, x2, s0, s1, stats):
    for s in range(s0, s1):
        a, b = block_grad_sums(dy2[s], x2[s], stats[MEAN, s])
        stats[SUM_DY, s] = a
        stats[SUM_DYXC, s] = b


# The group loops write their rows inline: a call per 64-element row cost
# ~70 cycles (G backward 1.6x slower), so they take the element-wise flags.
# They call block_moments themselves: through an inline="always" helper the
# single-threaded twins ran 2.3x slower on 32768 slices of 4 elements.
@njit(fastmath=ELEMENTWISE_FLAGS, **KERNEL_OPTIONS)
def _group_forward(x2, y2, s0, s1, C, gamma, beta, eps, stats, given, coef):
    Q = x2.shape[1]
    c = s0 % C
    for s in range(s0, s1):
        if given == 0:
            mean, m2 = block_moments(x2[s])
            _set_moments(stats, s, float(Q), mean, m2, eps)
        forward_coefficients(stats[MEAN, s], stats[INVSTD, s], gamma[c], beta[c], coef, s)
        mean_hi, scale, shift = coef[s, 0], coef[s, 1], coef[s, 2]
        for i in range(Q):
            y2[s, i] = normalized(x2[s, i], mean_hi, scale, shift)
        c += 1
        if c == C:
            c = 0


@njit(fastmath=ELEMENTWISE_FLAGS, **KERNEL_OPTIONS)
def _group_backward(dy2, x2, dx2, s0, s1, C, gamma, eps, stats, given, coef):
    Q = x2.shape[1]
    c = s0 % C
    for s in range(s0, s1):
        if given == 0:
            mean, m2 = block_moments(x2[s])
            _set_moments(stats, s, float(Q), mean, m2, eps)
        if given < 5:
            a, b = block_grad_sums(dy2[s], x2[s], stats[MEAN, s])
            stats[SUM_DY, s] = a
            stats[SUM_DYXC, s] = b
        _backward_coefficients_of(stats, s, gamma[c], coef)
        mean_hi, a, k, mdy_hi, cc = coef[s, 0], coef[s, 1], coef[s, 2], coef[s, 3], coef[s, 4]
        for i in range(Q):
            dx2[s, i] = backward_value(dy2[s, i], x2[s, i], mean_hi, a, k, mdy_hi, cc)
        c += 1
        if c == C:
            c = 0


@njit(inline="always", **KERNEL_OPTIONS)
def _rows_moments_body(xf, N, P, C, Q, eps, stats):
    """Fill (count, mean, invstd, m2) of ``stats``: parallel parts merged in order."""
    S = stats.shape[1]
    if _short_slices(P, Q):
        x2 = xf.reshape(S, Q)
        size = _group_size(Q)
        for g in prange((S + size - 1) // size):
            _group_moments(x2, g * size, min(S, (g + 1) * size), eps, stats)
        return
    per_row, per_part, parts = rows_plan(P, Q)
    nblocks = P * per_row
    partial = np.empty((S * parts, 3))
    for t in prange(S * parts):
        _, base, j0, j1 = _part_of_task(t, parts, per_part, nblocks, P, C, Q)
        count, mean, m2 = _range_moments(xf, base, C * Q, Q, per_row, j0, j1)
        partial[t, 0] = count
        partial[t, 1] = mean
        partial[t, 2] = m2
    for s in prange(S):
        count = 0.0
        mean = 0.0
        m2 = 0.0
        for t in range(s * parts, (s + 1) * parts):
            count, mean, m2 = chan_merge(
                count, mean, m2, partial[t, 0], partial[t, 1], partial[t, 2]
            )
        _set_moments(stats, s, count, mean, m2, eps)


@njit(inline="always", **KERNEL_OPTIONS)
def _rows_forward_body(xf, yf, N, P, C, Q, gamma, beta, eps, stats, given):
    """y = (x - mean) * invstd * gamma + beta for every slice, in parallel."""
    S = stats.shape[1]
    coef = np.empty((S, 3), dtype=yf.dtype)
    if _short_slices(P, Q):
        x2 = xf.reshape(S, Q)
        y2 = yf.reshape(S, Q)
        size = _group_size(Q)
        for g in prange((S + size - 1) // size):
            _group_forward(
                x2, y2, g * size, min(S, (g + 1) * size), C, gamma, beta, eps, stats, given, coef
            )
        return
    per_row, per_part, parts = rows_plan(P, Q)
    if parts == 1:
        for s in prange(S):
            _forward_slice(s, xf, yf, P, C, Q, per_row, gamma, beta, eps, stats, given, coef)
        return
    if given == 0:
        _rows_moments_body(xf, N, P, C, Q, eps, stats)
    for s in range(S):
        c = s % C
        forward_coefficients(stats[MEAN, s], stats[INVSTD, s], gamma[c], beta[c], coef, s)
    nblocks = P * per_row
    for t in prange(S * parts):
        s, base, j0, j1 = _part_of_task(t, parts, per_part, nblocks, P, C, Q)
        _range_normalize(xf, yf, base, C * Q, Q, per_row, j0, j1, coef, s)


@njit(inline="always", **KERNEL_OPTIONS)
def _rows_backward_body(dyf, xf, dxf, N, P, C, Q, gamma, eps, stats, given):
    """dx for every slice and the per-slice sums, in parallel."""
    S = stats.shape[1]
    coef = np.empty((S, 5), dtype=dxf.dtype)
    if _short_slices(P, Q):
        dy2 = dyf.reshape(S, Q)
        x2 = xf.reshape(S, Q)
        dx2 = dxf.reshape(S, Q)
        size = _group_size(Q)
        for g in prange((S + size - 1) // size):
            _group_backward(
                dy2, x2, dx2, g * size, min(S, (g + 1) * size), C, gamma, eps, stats, given, coef
            )
        return
    per_row, per_part, parts = rows_plan(P, Q)
    if parts == 1:
        for s in prange(S):
            _backward_slice(s, dyf, xf, dxf, P, C, Q, per_row, gamma, eps, stats, given, coef)
        return
    if given == 0:
        _rows_moments_body(xf, N, P, C, Q, eps, stats)
    nblocks = P * per_row
    if given < 5:
        partial = np.empty((S * parts, 2))
        for t in prange(S * parts):
            s, base, j0, j1 = _part_of_task(t, parts, per_part, nblocks, P, C, Q)
            a, b = _range_grad_sums(dyf, xf, base, C * Q, Q, per_row, j0, j1, stats[MEAN, s])
            partial[t, 0] = a
            partial[t, 1] = b
        for s in range(S):
            a = 0.0
            b = 0.0
            for t in range(s * parts, (s + 1) * parts):
                a += partial[t, 0]
                b += partial[t, 1]
            stats[SUM_DY, s] = a
            stats[SUM_DYXC, s] = b
    for s in range(S):
        _backward_coefficients_of(stats, s, gamma[s % C], coef)
    for t in prange(S * parts):
        s, base, j0, j1 = _part_of_task(t, parts, per_part, nblocks, P, C, Q)
        _range_backward(dyf, xf, dxf, base, C * Q, Q, per_row, j0, j1, coef, s)


@njit(inline="always", **KERNEL_OPTIONS)
def _rows_grad_sums_body(dyf, xf, N, P, C, Q, stats):
    """Fill rows (sum_dy, sum_dy_xc) of ``stats`` from its mean row."""
    S = stats.shape[1]
    if _short_slices(P, Q):
        dy2 = dyf.reshape(S, Q)
        x2 = xf.reshape(S, Q)
        size = _group_size(Q)
        for g in prange((S + size - 1) // size):
            _group_grad_sums(dy2, x2, g * size, min(S, (g + 1) * size), stats)
        return
    per_row, _, _ = rows_plan(P, Q)
    for s in prange(S):
        a, b = _range_grad_sums(
            dyf, xf, _slice_base(s, P, C, Q), C * Q, Q, per_row, 0, P * per_row, stats[MEAN, s]
        )
        stats[SUM_DY, s] = a
        stats[SUM_DYXC, s] = b


# --------------------------------------------------------------------------
# The kernels: each body above compiled twice, with prange running in
# parallel and as a plain range.  They are spelled out as top-level functions
# because kernels made by a factory never hit Numba's on-disk cache.


@njit(parallel=True, **KERNEL_OPTIONS)
def rows_moments(xf, N, P, C, Q, eps, stats):
    """Fill (count, mean, invstd, m2) of ``stats`` for every slice, in parallel."""
    _rows_moments_body(xf, N, P, C, Q, eps, stats)


@njit(**KERNEL_OPTIONS)
def rows_moments_serial(xf, N, P, C, Q, eps, stats):
    """Single-threaded twin of :func:`rows_moments`: the same parts in the same
    order, so the same bits (used for small inputs, busy or forked callers)."""
    _rows_moments_body(xf, N, P, C, Q, eps, stats)


@njit(parallel=True, **KERNEL_OPTIONS)
def rows_forward(xf, yf, N, P, C, Q, gamma, beta, eps, stats, given):
    """y = (x - mean) * invstd * gamma + beta for every slice, in parallel."""
    _rows_forward_body(xf, yf, N, P, C, Q, gamma, beta, eps, stats, given)


@njit(**KERNEL_OPTIONS)
def rows_forward_serial(xf, yf, N, P, C, Q, gamma, beta, eps, stats, given):
    """Single-threaded twin of :func:`rows_forward`: the same parts in the same
    order, so the same bits (used for small inputs, busy or forked callers)."""
    _rows_forward_body(xf, yf, N, P, C, Q, gamma, beta, eps, stats, given)


@njit(parallel=True, **KERNEL_OPTIONS)
def rows_backward(dyf, xf, dxf, N, P, C, Q, gamma, eps, stats, given):
    """dx and the per-slice sums for every slice, in parallel."""
    _rows_backward_body(dyf, xf, dxf, N, P, C, Q, gamma, eps, stats, given)


@njit(**KERNEL_OPTIONS)
def rows_backward_serial(dyf, xf, dxf, N, P, C, Q, gamma, eps, stats, given):
    """Single-threaded twin of :func:`rows_backward`: the same parts in the same
    order, so the same bits (used for small inputs, busy or forked callers)."""
    _rows_backward_body(dyf, xf, dxf, N, P, C, Q, gamma, eps, stats, given)


@njit(parallel=True, **KERNEL_OPTIONS)
def rows_grad_sums(dyf, xf, N, P, C, Q, stats):
    """Fill (sum_dy, sum_dy_xc) of ``stats`` from its mean row, in parallel."""
    _rows_grad_sums_body(dyf, xf, N, P, C, Q, stats)


@njit(**KERNEL_OPTIONS)
def rows_grad_sums_serial(dyf, xf, N, P, C, Q, stats):
    """Single-threaded twin of :func:`rows_grad_sums`: the same parts in the same
    order, so the same bits (used for small inputs, busy or forked callers)."""
    _rows_grad_sums_body(dyf, xf, N, P, C, Q, stats)
