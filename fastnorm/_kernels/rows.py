"""Kernels for layouts whose slices are made of contiguous rows (Numba only).

The canonical view is the flat C-ordered array of shape (N, P, C, Q): slice
``s = n * C + c`` is the P rows ``x[n, p, c, :]`` of Q contiguous elements.
NCHW is P = 1 (each slice one contiguous run).  A slice is cut into blocks of
at most ``BLOCK`` elements inside a row; consecutive blocks form parts of
about ``PART`` elements.  A slice of one part is processed by one task from
statistics to output while it sits in L2 (one read of x from memory); larger
slices are split into parts that run in parallel and merge in a fixed order.

Every kernel takes a ``stats`` array of shape (N * C, 6) with columns
``(count, mean, invstd, sum_dy, sum_dy_xc, m2)`` and a ``given`` level: the
columns below ``given`` are inputs, the others are computed and written back
(forward: ``given`` 0 or 3; backward: 0, 3 or 5; M2 is written only when
the statistics are computed).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .common import (
    BLOCK,
    KERNEL_OPTIONS,
    PART,
    backward_coefficients,
    backward_span,
    block_grad_sums,
    block_moments,
    chan_merge,
    forward_coefficients,
    inverse_std,
    normalize_span,
)

COUNT, MEAN, INVSTD, SUM_DY, SUM_DYXC, M2 = 0, 1, 2, 3, 4, 5
#: Columns of the per-slice ``stats`` array.
STATS_COLUMNS = 6


@njit(**KERNEL_OPTIONS)
def rows_plan(P, Q):
    """(blocks per row, blocks per part, parts per slice): shape only."""
    per_row = (Q + BLOCK - 1) // BLOCK
    block = min(Q, BLOCK)
    per_part = max(1, PART // block)
    parts = (P * per_row + per_part - 1) // per_part
    return per_row, per_part, parts


@njit(**KERNEL_OPTIONS)
def _block_bounds(j, per_row, row_stride, Q):
    """Flat offsets [lo, hi) of block j of a slice, relative to its base."""
    p = j // per_row
    q0 = (j - p * per_row) * BLOCK
    lo = p * row_stride + q0
    return lo, lo + min(Q - q0, BLOCK)


@njit(**KERNEL_OPTIONS)
def _range_moments(xf, base, row_stride, Q, per_row, j0, j1):
    count = 0.0
    mean = 0.0
    m2 = 0.0
    for j in range(j0, j1):
        lo, hi = _block_bounds(j, per_row, row_stride, Q)
        bmean, bm2 = block_moments(xf[base + lo : base + hi])
        count, mean, m2 = chan_merge(count, mean, m2, float(hi - lo), bmean, bm2)
    return count, mean, m2


@njit(**KERNEL_OPTIONS)
def _range_grad_sums(dyf, xf, base, row_stride, Q, per_row, j0, j1, mean):
    sum_dy = 0.0
    sum_dyxc = 0.0
    for j in range(j0, j1):
        lo, hi = _block_bounds(j, per_row, row_stride, Q)
        a, b = block_grad_sums(dyf[base + lo : base + hi], xf[base + lo : base + hi], mean)
        sum_dy += a
        sum_dyxc += b
    return sum_dy, sum_dyxc


@njit(**KERNEL_OPTIONS)
def _range_normalize(xf, yf, base, row_stride, Q, per_row, j0, j1, coef, s):
    for j in range(j0, j1):
        lo, hi = _block_bounds(j, per_row, row_stride, Q)
        normalize_span(
            xf[base + lo : base + hi], yf[base + lo : base + hi], coef[s, 0], coef[s, 1], coef[s, 2]
        )


@njit(**KERNEL_OPTIONS)
def _range_backward(dyf, xf, dxf, base, row_stride, Q, per_row, j0, j1, coef, s):
    for j in range(j0, j1):
        lo, hi = _block_bounds(j, per_row, row_stride, Q)
        backward_span(
            dyf[base + lo : base + hi],
            xf[base + lo : base + hi],
            dxf[base + lo : base + hi],
            coef[s, 0],
            coef[s, 1],
            coef[s, 2],
            coef[s, 3],
        )


@njit(**KERNEL_OPTIONS)
def _slice_base(s, P, C, Q):
    n = s // C
    return (n * P * C + (s - n * C)) * Q


@njit(**KERNEL_OPTIONS)
def _set_moments(stats, s, count, mean, m2, eps):
    stats[s, COUNT] = count
    stats[s, MEAN] = mean
    stats[s, INVSTD] = inverse_std(count, m2, eps)
    stats[s, M2] = m2


@njit(**KERNEL_OPTIONS)
def _forward_slice(s, xf, yf, P, C, Q, gamma, beta, eps, stats, given, coef):
    """Statistics (unless given) and output of one single-part slice."""
    per_row, _, _ = rows_plan(P, Q)
    base = _slice_base(s, P, C, Q)
    nblocks = P * per_row
    if given == 0:
        count, mean, m2 = _range_moments(xf, base, C * Q, Q, per_row, 0, nblocks)
        _set_moments(stats, s, count, mean, m2, eps)
    c = s % C
    forward_coefficients(stats[s, MEAN], stats[s, INVSTD], gamma[c], beta[c], coef, s)
    _range_normalize(xf, yf, base, C * Q, Q, per_row, 0, nblocks, coef, s)


@njit(**KERNEL_OPTIONS)
def _backward_slice(s, dyf, xf, dxf, P, C, Q, gamma, eps, stats, given, coef):
    """Statistics and sums (unless given) and dx of one single-part slice."""
    per_row, _, _ = rows_plan(P, Q)
    base = _slice_base(s, P, C, Q)
    nblocks = P * per_row
    if given == 0:
        count, mean, m2 = _range_moments(xf, base, C * Q, Q, per_row, 0, nblocks)
        _set_moments(stats, s, count, mean, m2, eps)
    if given < 5:
        a, b = _range_grad_sums(dyf, xf, base, C * Q, Q, per_row, 0, nblocks, stats[s, MEAN])
        stats[s, SUM_DY] = a
        stats[s, SUM_DYXC] = b
    _backward_coefficients_of(stats, s, gamma[s % C], coef)
    _range_backward(dyf, xf, dxf, base, C * Q, Q, per_row, 0, nblocks, coef, s)


@njit(**KERNEL_OPTIONS)
def _backward_coefficients_of(stats, s, gamma_c, coef):
    backward_coefficients(
        stats[s, COUNT],
        stats[s, MEAN],
        stats[s, INVSTD],
        gamma_c,
        stats[s, SUM_DY],
        stats[s, SUM_DYXC],
        coef,
        s,
    )


@njit(parallel=True, **KERNEL_OPTIONS)
def rows_moments(xf, N, P, C, Q, eps, stats):
    """Fill (count, mean, invstd, m2) of ``stats``: parallel parts merged in order."""
    S = stats.shape[0]
    per_row, per_part, parts = rows_plan(P, Q)
    nblocks = P * per_row
    partial = np.empty((S * parts, 3))
    for t in prange(S * parts):
        s = t // parts
        j0 = (t - s * parts) * per_part
        count, mean, m2 = _range_moments(
            xf, _slice_base(s, P, C, Q), C * Q, Q, per_row, j0, min(nblocks, j0 + per_part)
        )
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


@njit(parallel=True, **KERNEL_OPTIONS)
def rows_forward(xf, yf, N, P, C, Q, gamma, beta, eps, stats, given):
    """y = (x - mean) * invstd * gamma + beta for every slice, in parallel."""
    S = stats.shape[0]
    coef = np.empty((S, 3), dtype=yf.dtype)
    per_row, per_part, parts = rows_plan(P, Q)
    if parts == 1:
        for s in prange(S):
            _forward_slice(s, xf, yf, P, C, Q, gamma, beta, eps, stats, given, coef)
        return
    if given == 0:
        rows_moments(xf, N, P, C, Q, eps, stats)
    for s in range(S):
        c = s % C
        forward_coefficients(stats[s, MEAN], stats[s, INVSTD], gamma[c], beta[c], coef, s)
    nblocks = P * per_row
    for t in prange(S * parts):
        s = t // parts
        j0 = (t - s * parts) * per_part
        _range_normalize(
            xf,
            yf,
            _slice_base(s, P, C, Q),
            C * Q,
            Q,
            per_row,
            j0,
            min(nblocks, j0 + per_part),
            coef,
            s,
        )


@njit(**KERNEL_OPTIONS)
def rows_forward_serial(xf, yf, N, P, C, Q, gamma, beta, eps, stats, given):
    """Single-threaded twin of :func:`rows_forward` for inputs of one part
    per slice (a parallel launch costs more than a small input's work)."""
    coef = np.empty((stats.shape[0], 3), dtype=yf.dtype)
    for s in range(stats.shape[0]):
        _forward_slice(s, xf, yf, P, C, Q, gamma, beta, eps, stats, given, coef)


@njit(parallel=True, **KERNEL_OPTIONS)
def rows_backward(dyf, xf, dxf, N, P, C, Q, gamma, eps, stats, given):
    """dx for every slice and the per-slice sums, in parallel."""
    S = stats.shape[0]
    coef = np.empty((S, 4), dtype=dxf.dtype)
    per_row, per_part, parts = rows_plan(P, Q)
    if parts == 1:
        for s in prange(S):
            _backward_slice(s, dyf, xf, dxf, P, C, Q, gamma, eps, stats, given, coef)
        return
    if given == 0:
        rows_moments(xf, N, P, C, Q, eps, stats)
    nblocks = P * per_row
    if given < 5:
        partial = np.empty((S * parts, 2))
        for t in prange(S * parts):
            s = t // parts
            j0 = (t - s * parts) * per_part
            a, b = _range_grad_sums(
                dyf,
                xf,
                _slice_base(s, P, C, Q),
                C * Q,
                Q,
                per_row,
                j0,
                min(nblocks, j0 + per_part),
                stats[s, MEAN],
            )
            partial[t, 0] = a
            partial[t, 1] = b
        for s in range(S):
            a = 0.0
            b = 0.0
            for t in range(s * parts, (s + 1) * parts):
                a += partial[t, 0]
                b += partial[t, 1]
            stats[s, SUM_DY] = a
            stats[s, SUM_DYXC] = b
    for s in range(S):
        _backward_coefficients_of(stats, s, gamma[s % C], coef)
    for t in prange(S * parts):
        s = t // parts
        j0 = (t - s * parts) * per_part
        _range_backward(
            dyf,
            xf,
            dxf,
            _slice_base(s, P, C, Q),
            C * Q,
            Q,
            per_row,
            j0,
            min(nblocks, j0 + per_part),
            coef,
            s,
        )


@njit(**KERNEL_OPTIONS)
def rows_backward_serial(dyf, xf, dxf, N, P, C, Q, gamma, eps, stats, given):
    """Single-threaded twin of :func:`rows_backward` for small inputs."""
    coef = np.empty((stats.shape[0], 4), dtype=dxf.dtype)
    for s in range(stats.shape[0]):
        _backward_slice(s, dyf, xf, dxf, P, C, Q, gamma, eps, stats, given, coef)


@njit(parallel=True, **KERNEL_OPTIONS)
def rows_grad_sums(dyf, xf, N, P, C, Q, stats):
    """Fill columns (sum_dy, sum_dy_xc) of ``stats`` from its mean column."""
    S = stats.shape[0]
    per_row, _, _ = rows_plan(P, Q)
    for s in prange(S):
        a, b = _range_grad_sums(
            dyf, xf, _slice_base(s, P, C, Q), C * Q, Q, per_row, 0, P * per_row, stats[s, MEAN]
        )
        stats[s, SUM_DY] = a
        stats[s, SUM_DYXC] = b
