"""Kernels for an affine that varies inside a slice: layer norm (Numba only).

Layer norm views x as (A, L, B) and normalizes every (a, b) over the L
normalized elements, with gamma and beta of length L:

* ``B == 1`` (the normalized axes are the trailing ones: transformer rows):
  slices are contiguous rows of L.  Statistics and output of a row run back
  to back while the row sits in L1/L2 (blocked moments of :mod:`.rows`);
  rows longer than ``PART`` are split into parts merged in a fixed order.
* ``B > 1`` (a middle axis, e.g. axis 1 of NCHW in ConvNeXt): slices are the
  columns of each sample's (L, B) matrix.  Tasks take a chunk of columns
  over all L rows: its statistics (the per-column machinery of
  :mod:`.columns`, one slice per column), then its output, row by row with
  gamma[p] and beta[p] scalars for row p, while the chunk is in L2.

``stats`` is the table of :mod:`.table` with one column per slice (A * B
columns, one channel per slice).  Per-slice sums for dx are taken of
``u = gamma * dy`` (rounded to the data dtype as the element pass computes
it); dgamma and dbeta are sums over slices, accumulated per task and added
in a fixed order, so results are the same for any thread count.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .columns import column_slice_moments
from .common import (
    BLOCK,
    ELEMENTWISE_FLAGS,
    KERNEL_OPTIONS,
    PART,
    REDUCE_FLAGS,
    affine_backward_coefficients,
    affine_backward_value,
    as_index,
    standardize_coefficients,
    standardized_affine,
)
from .rows import GROUP_SLICES, _channel_moments, _range_moments, rows_moments, rows_moments_serial
from .table import COUNT, INVSTD, MEAN, set_moments

# --------------------------------------------------------------------------
# element pieces

#: dx passes round ``u = gamma * dy`` to the data dtype before subtracting
#: its mean, as the sums that made the mean did; FMA contraction would skip
#: that rounding (a one-element slice got dx 5e-6 instead of 0).
UNFUSED_FLAGS = {"nsz"}


@njit(fastmath=ELEMENTWISE_FLAGS, **KERNEL_OPTIONS)
def _affine_span(w, o, gamma, beta, mean_hi, invstd, r):
    for i in range(w.shape[0]):
        o[i] = standardized_affine(w[i], mean_hi, invstd, r, gamma[i], beta[i])


@njit(fastmath=REDUCE_FLAGS, **KERNEL_OPTIONS)
def _affine_sums(g, w, gamma, mean, invstd, dgamma, dbeta):
    """sum(u) and sum(u * (w - mean)) with u = gamma * g in the data dtype;
    adds the span's dgamma/dbeta terms on the way.

    One sweep for the sums and the parameter gradients: as the dx pass's
    sixth array dgamma/dbeta kept it scalar (LLVM adds runtime overlap
    checks for at most eight pairs), and a sweep of their own read dy and x
    a third time (in cache, 2.0-2.6 against 1.6-2.2 cycles per element).
    """
    a = 0.0
    b = 0.0
    for i in range(w.shape[0]):
        gi = g[i]
        u = gamma[i] * gi
        c = w[i] - mean
        a += u
        b += u * c
        dgamma[i] += gi * (c * invstd)
        dbeta[i] += gi
    return a, b


@njit(fastmath=UNFUSED_FLAGS, **KERNEL_OPTIONS)
def _affine_backward_span(g, w, o, gamma, coef, s):
    """dx of a span from the coefficients of slice s."""
    mean_hi, inv, k, mu_hi, e = coef[s, 0], coef[s, 1], coef[s, 2], coef[s, 3], coef[s, 4]
    for i in range(w.shape[0]):
        o[i] = affine_backward_value(gamma[i] * g[i], w[i], mean_hi, inv, k, mu_hi, e)


@njit(**KERNEL_OPTIONS)
def _add_partials(partial, total):
    """total[j] = sum over t of partial[t, j], t in order (explicit loops)."""
    for j in range(total.shape[0]):
        total[j] = 0.0
    for t in range(partial.shape[0]):
        for j in range(total.shape[0]):
            total[j] += partial[t, j]


#: At most this many tasks in the row backward: each adds a (L,) partial of
#: dgamma and of dbeta (zeroed, then summed in order); 32 partials of
#: (1024, 4096) made its backward about 1.15x slower than 8 (25 partials of
#: (4096, 768) about 1.04x).  A fixed count keeps the bits independent of
#: the thread count; beyond 8 cores this kernel leaves cores idle.
GRADIENT_TASKS = 8


@njit(inline="always", **KERNEL_OPTIONS)
def _rows_per_task(S, L):
    """Rows per backward task: at least PART elements (up to GROUP_SLICES
    rows), at most GRADIENT_TASKS tasks."""
    return max(1, min(GROUP_SLICES, PART // L), (S + GRADIENT_TASKS - 1) // GRADIENT_TASKS)


# --------------------------------------------------------------------------
# B == 1: contiguous rows of L


#: Elements per group of rows (at most PART elements each): the statistics
#: of all its rows, then their coefficients, then their outputs, with the
#: rows still in L2 (128 KiB of float32).  Each row waiting on its own
#: square root before its output made (4096, 768) 1.2-1.4x slower.
ROW_GROUP = 32768


@njit(**KERNEL_OPTIONS)
def _rows_moments(x2, s0, s1, eps, stats):
    """Statistics of the rows [s0, s1) of x2: across the rows when each is one
    Welford block (block_moments gives _range_moments' bits), else by blocks
    merged in order, row by row."""
    L = x2.shape[1]
    if L <= BLOCK:
        _channel_moments(x2, s0, s1, eps, stats)
        return
    per_row = (L + BLOCK - 1) // BLOCK
    xf = x2.ravel()
    for s in range(s0, s1):
        count, mean, m2 = _range_moments(xf, s * L, L, L, per_row, as_index(0), per_row)
        set_moments(stats, s, 1, count, mean, m2, eps)


@njit(**KERNEL_OPTIONS)
def _rows_group_forward(x2, y2, s0, s1, gamma, beta, eps, stats, given, coef):
    """Forward of the rows [s0, s1) of x2, each step in one loop across them."""
    if given == 0:
        _rows_moments(x2, s0, s1, eps, stats)
    for s in range(s0, s1):
        standardize_coefficients(stats[MEAN, s], stats[INVSTD, s], coef, s)
    for s in range(s0, s1):
        _affine_span(x2[s], y2[s], gamma, beta, coef[s, 0], coef[s, 1], coef[s, 2])


@njit(inline="always", **KERNEL_OPTIONS)
def _row_part(t, parts, L):
    """(row, row start, first and end column) of task t over parts of long rows."""
    s = t // parts
    q0 = (t - s * parts) * PART
    return s, s * L, q0, min(L, q0 + PART)


@njit(inline="always", **KERNEL_OPTIONS)
def _affine_rows_forward_body(xf, yf, S, L, gamma, beta, eps, stats, given, moments):
    coef = np.empty((S, 3), dtype=yf.dtype)
    if L <= PART:
        R = max(1, ROW_GROUP // L)
        x2 = xf.reshape(S, L)
        y2 = yf.reshape(S, L)
        for t in prange((S + R - 1) // R):
            _rows_group_forward(
                x2, y2, t * R, min(S, (t + 1) * R), gamma, beta, eps, stats, given, coef
            )
        return
    if given == 0:
        one = as_index(1)  # not the literal 1: see as_index
        moments(xf, S, one, one, one, L, eps, stats)
    for s in range(S):
        standardize_coefficients(stats[MEAN, s], stats[INVSTD, s], coef, s)
    parts = (L + PART - 1) // PART
    for t in prange(S * parts):
        s, lo, q0, q1 = _row_part(t, parts, L)
        _affine_span(
            xf[lo + q0 : lo + q1],
            yf[lo + q0 : lo + q1],
            gamma[q0:q1],
            beta[q0:q1],
            coef[s, 0],
            coef[s, 1],
            coef[s, 2],
        )


@njit(**KERNEL_OPTIONS)
def _rows_group_backward(dy2, x2, dx2, s0, s1, gamma, eps, stats, given, coef, dgamma, dbeta):
    """dx of the rows [s0, s1) of x2 and their dgamma/dbeta terms, each step
    in one loop across the rows (as _rows_group_forward)."""
    if given == 0:
        _rows_moments(x2, s0, s1, eps, stats)
    for s in range(s0, s1):
        mean = stats[MEAN, s]
        invstd = stats[INVSTD, s]
        a, b = _affine_sums(dy2[s], x2[s], gamma, mean, invstd, dgamma, dbeta)
        affine_backward_coefficients(stats[COUNT, s], mean, invstd, a, b, coef, s)
    for s in range(s0, s1):
        _affine_backward_span(dy2[s], x2[s], dx2[s], gamma, coef, s)


@njit(inline="always", **KERNEL_OPTIONS)
def _affine_rows_backward_body(
    dyf, xf, dxf, S, L, gamma, eps, stats, given, dgamma, dbeta, moments
):
    coef = np.empty((S, 5), dtype=dxf.dtype)
    if L <= PART:
        # Tasks of _rows_per_task rows (dgamma/dbeta add one partial per
        # task, a fixed order), each in groups of rows that stay in L2.
        R = _rows_per_task(S, L)
        T = (S + R - 1) // R
        dg = np.zeros((T, L))
        db = np.zeros((T, L))
        per_group = max(1, ROW_GROUP // L)
        dy2 = dyf.reshape(S, L)
        x2 = xf.reshape(S, L)
        dx2 = dxf.reshape(S, L)
        for t in prange(T):
            end = min(S, (t + 1) * R)
            for s0 in range(t * R, end, per_group):
                s1 = min(end, s0 + per_group)
                _rows_group_backward(
                    dy2, x2, dx2, s0, s1, gamma, eps, stats, given, coef, dg[t], db[t]
                )
        _add_partials(dg, dgamma)
        _add_partials(db, dbeta)
        return
    # Long rows: statistics by parts merged in order; then the sums and
    # dgamma/dbeta by column ranges, each task owning its range of
    # dgamma/dbeta over all rows; then dx by (row, part).
    if given == 0:
        one = as_index(1)  # not the literal 1: see as_index
        moments(xf, S, one, one, one, L, eps, stats)
    parts = (L + PART - 1) // PART
    partial = np.empty((S * parts, 2))
    for j in range(L):
        dgamma[j] = 0.0
        dbeta[j] = 0.0
    for t in prange(parts):
        q0 = t * PART
        q1 = min(L, q0 + PART)
        for s in range(S):
            lo = s * L
            a, b = _affine_sums(
                dyf[lo + q0 : lo + q1],
                xf[lo + q0 : lo + q1],
                gamma[q0:q1],
                stats[MEAN, s],
                stats[INVSTD, s],
                dgamma[q0:q1],
                dbeta[q0:q1],
            )
            partial[s * parts + t, 0] = a
            partial[s * parts + t, 1] = b
    for s in range(S):
        a = 0.0
        b = 0.0
        for t in range(s * parts, (s + 1) * parts):
            a += partial[t, 0]
            b += partial[t, 1]
        affine_backward_coefficients(
            stats[COUNT, s], stats[MEAN, s], stats[INVSTD, s], a, b, coef, s
        )
    for t in prange(S * parts):
        s, lo, q0, q1 = _row_part(t, parts, L)
        _affine_backward_span(
            dyf[lo + q0 : lo + q1],
            xf[lo + q0 : lo + q1],
            dxf[lo + q0 : lo + q1],
            gamma[q0:q1],
            coef,
            s,
        )


# --------------------------------------------------------------------------
# B > 1: columns of each sample's (L, B) matrix; row p has gamma[p], beta[p]

#: Columns per task: a chunk's coefficients (5 per column in the data dtype
#: and float64 mean/invstd, 18 KiB for float32) stay in L1, its L rows of dy
#: and x in L2 between the sums and the dx pass.
COLUMN_CHUNK = 512
#: Chunks narrow (down to MIN_CHUNK columns) until there are MIN_TASKS
#: (sample, chunk) tasks: one sample of at most 512 columns was one task,
#: serial.  (A pass of its own for the statistics, parallel over parts of
#: rows, cost a third more compile time in both kernels.)
MIN_CHUNK = 128
MIN_TASKS = 2
#: Rows per step of the dx pass: their dgamma/dbeta sums, then their dx, while
#: those rows of dy and x are in L1 (two calls per row of the chunk before;
#: one step over all its rows would read them from memory twice once the
#: chunk outgrows L2).
BACKWARD_ROWS = 16


@njit(fastmath=ELEMENTWISE_FLAGS, **KERNEL_OPTIONS)
def _affine_column_rows(xf, yf, base, L, B, k0, k1, cols, gamma, beta):
    """Output of columns [k0, k1) of the L rows of the (L, B) matrix at base,
    from per-column coefficients ``cols`` (3, k1 - k0); one call for all
    rows (a call per row of a 128-column chunk cost as much as the row)."""
    mean_hi, invstd, r = cols[0], cols[1], cols[2]
    for p in range(L):
        off = base + p * B
        w = xf[off + k0 : off + k1]
        o = yf[off + k0 : off + k1]
        g = gamma[p]
        b = beta[p]
        for k in range(k1 - k0):
            o[k] = standardized_affine(w[k], mean_hi[k], invstd[k], r[k], g, b)


@njit(**KERNEL_OPTIONS)
def _column_sums(dyf, xf, base, L, B, k0, k1, gamma, mean, su, suxc):
    """Sums of u = gamma[p] * dy[p, k] and u * (x[p, k] - mean[k]) over the
    rows p of columns [k0, k1) of the (L, B) matrix at ``base``, row by row
    (rows sliced from the flat arrays, so the loops see contiguous data)."""
    for k in range(su.shape[0]):
        su[k] = 0.0
        suxc[k] = 0.0
    for p in range(L):
        lo = base + p * B
        gp = gamma[p]
        gr = dyf[lo + k0 : lo + k1]
        xr = xf[lo + k0 : lo + k1]
        for k in range(su.shape[0]):
            u = gp * gr[k]
            su[k] += u
            suxc[k] += u * (xr[k] - mean[k])


@njit(fastmath=UNFUSED_FLAGS, **KERNEL_OPTIONS)
def _affine_column_backward_rows(dyf, xf, dxf, base, p0, p1, B, k0, k1, cols, gamma):
    """dx of columns [k0, k1) of rows [p0, p1) of the (L, B) matrices at base,
    from per-column coefficients ``cols`` (5, k1 - k0)."""
    mean_hi, inv, k2, mu_hi, e = cols[0], cols[1], cols[2], cols[3], cols[4]
    for p in range(p0, p1):
        off = base + p * B
        g = dyf[off + k0 : off + k1]
        w = xf[off + k0 : off + k1]
        o = dxf[off + k0 : off + k1]
        gp = gamma[p]
        for k in range(k1 - k0):
            o[k] = affine_backward_value(gp * g[k], w[k], mean_hi[k], inv[k], k2[k], mu_hi[k], e[k])


@njit(fastmath=REDUCE_FLAGS, **KERNEL_OPTIONS)
def _row_gradient_sums(g, w, mean, invstd):
    """sum(g * (w - mean) * invstd) and sum(g) of one row (dgamma[p], dbeta[p] terms).

    One row per call, on purpose: a loop over rows around this reduction
    was vectorized differently when the kernel was compiled in the process
    and when it was loaded from Numba's cache (dgamma differed by 1e-13).
    """
    a = 0.0
    b = 0.0
    for k in range(w.shape[0]):
        gk = g[k]
        a += gk * ((w[k] - mean[k]) * invstd[k])
        b += gk
    return a, b


@njit(inline="always", **KERNEL_OPTIONS)
def _column_chunking(A, B):
    """(columns per chunk, chunks per sample): COLUMN_CHUNK, halved (down to
    MIN_CHUNK) while there are fewer than MIN_TASKS tasks.  Shape only, so
    dgamma and dbeta add the same partials for any thread count."""
    width = COLUMN_CHUNK
    while width > MIN_CHUNK and A * ((B + width - 1) // width) < MIN_TASKS:
        width //= 2
    return width, (B + width - 1) // width


@njit(inline="always", **KERNEL_OPTIONS)
def _column_chunk(t, chunks, width, B):
    """(sample, first column, end column) of task t over (sample, column chunk)."""
    a = t // chunks
    k0 = (t - a * chunks) * width
    return a, k0, min(B, k0 + width)


# Both directions run tasks of (sample, chunk of columns) over all L rows:
# the chunk's statistics, then its output, while its rows are in L2 (x is
# read from memory once), with the chunk's per-column coefficients in L1
# (whole rows of 3136 columns re-read 110 KB of coefficients per 12 KB row).


@njit(**KERNEL_OPTIONS)
def _chunk_forward(xf, yf, a, k0, k1, L, B, gamma, beta, eps, stats, given):
    """Output of columns [k0, k1) of sample a, after their statistics unless given."""
    c0 = a * B + k0
    n = k1 - k0
    if given == 0:
        column_slice_moments(xf, a * L * B, L, B, k0, k1, eps, stats, c0)
    cols = np.empty((3, n), dtype=yf.dtype)
    coef = cols.T  # coefficient rows by column: this loop and the row pass vectorize
    for j in range(n):
        standardize_coefficients(stats[MEAN, c0 + j], stats[INVSTD, c0 + j], coef, j)
    _affine_column_rows(xf, yf, a * L * B, L, B, k0, k1, cols, gamma, beta)


@njit(inline="always", **KERNEL_OPTIONS)
def _affine_columns_forward_body(xf, yf, A, L, B, gamma, beta, eps, stats, given):
    width, chunks = _column_chunking(A, B)
    for t in prange(A * chunks):
        a, k0, k1 = _column_chunk(t, chunks, width, B)
        _chunk_forward(xf, yf, a, k0, k1, L, B, gamma, beta, eps, stats, given)


@njit(**KERNEL_OPTIONS)
def _chunk_backward(dyf, xf, dxf, a, k0, k1, L, B, gamma, eps, stats, given, row_sums):
    """dx of columns [k0, k1) of sample a, fused: statistics unless given,
    column sums, coefficients, each row's dgamma/dbeta terms (into
    row_sums), then dx."""
    n = k1 - k0
    c0 = a * B + k0
    if given == 0:
        column_slice_moments(xf, a * L * B, L, B, k0, k1, eps, stats, c0)
    mean = stats[MEAN, c0 : c0 + n]
    invstd = stats[INVSTD, c0 : c0 + n]
    su = np.empty(n)
    suxc = np.empty(n)
    _column_sums(dyf, xf, a * L * B, L, B, k0, k1, gamma, mean, su, suxc)
    cols = np.empty((5, n), dtype=dxf.dtype)
    coef = cols.T  # as in the forward
    for j in range(n):
        affine_backward_coefficients(
            stats[COUNT, c0 + j], mean[j], invstd[j], su[j], suxc[j], coef, j
        )
    base = a * L * B
    for p0 in range(0, L, BACKWARD_ROWS):
        p1 = min(L, p0 + BACKWARD_ROWS)
        # the rows' sums before their dx: dx may overwrite dy or x (in place)
        for p in range(p0, p1):
            off = base + p * B
            ga, gb = _row_gradient_sums(
                dyf[off + k0 : off + k1], xf[off + k0 : off + k1], mean, invstd
            )
            row_sums[0, p] = ga
            row_sums[1, p] = gb
        _affine_column_backward_rows(dyf, xf, dxf, base, p0, p1, B, k0, k1, cols, gamma)


@njit(inline="always", **KERNEL_OPTIONS)
def _affine_columns_backward_body(dyf, xf, dxf, A, L, B, gamma, eps, stats, given, dgamma, dbeta):
    width, chunks = _column_chunking(A, B)
    T = A * chunks
    row_sums = np.empty((T, 2, L))
    for t in prange(T):
        a, k0, k1 = _column_chunk(t, chunks, width, B)
        _chunk_backward(dyf, xf, dxf, a, k0, k1, L, B, gamma, eps, stats, given, row_sums[t])
    for p in range(L):
        dgamma[p] = 0.0
        dbeta[p] = 0.0
    for t in range(T):
        for p in range(L):
            dgamma[p] += row_sums[t, 0, p]
            dbeta[p] += row_sums[t, 1, p]


# --------------------------------------------------------------------------
# The kernels: each body compiled twice, parallel and serial (see rows.py).


@njit(parallel=True, **KERNEL_OPTIONS)
def affine_rows_forward(xf, yf, S, L, gamma, beta, eps, stats, given):
    """Layer norm of S contiguous rows of L, in parallel."""
    _affine_rows_forward_body(xf, yf, S, L, gamma, beta, eps, stats, given, rows_moments)


@njit(**KERNEL_OPTIONS)
def affine_rows_forward_serial(xf, yf, S, L, gamma, beta, eps, stats, given):
    """Single-threaded twin of :func:`affine_rows_forward` (same bits)."""
    _affine_rows_forward_body(xf, yf, S, L, gamma, beta, eps, stats, given, rows_moments_serial)


@njit(parallel=True, **KERNEL_OPTIONS)
def affine_rows_backward(dyf, xf, dxf, S, L, gamma, eps, stats, given, dgamma, dbeta):
    """dx, dgamma and dbeta of layer norm over contiguous rows, in parallel."""
    _affine_rows_backward_body(
        dyf, xf, dxf, S, L, gamma, eps, stats, given, dgamma, dbeta, rows_moments
    )


@njit(**KERNEL_OPTIONS)
def affine_rows_backward_serial(dyf, xf, dxf, S, L, gamma, eps, stats, given, dgamma, dbeta):
    """Single-threaded twin of :func:`affine_rows_backward` (same bits)."""
    _affine_rows_backward_body(
        dyf, xf, dxf, S, L, gamma, eps, stats, given, dgamma, dbeta, rows_moments_serial
    )


@njit(parallel=True, **KERNEL_OPTIONS)
def affine_columns_forward(xf, yf, A, L, B, gamma, beta, eps, stats, given):
    """Layer norm over the middle axis of (A, L, B), in parallel."""
    _affine_columns_forward_body(xf, yf, A, L, B, gamma, beta, eps, stats, given)


@njit(**KERNEL_OPTIONS)
def affine_columns_forward_serial(xf, yf, A, L, B, gamma, beta, eps, stats, given):
    """Single-threaded twin of :func:`affine_columns_forward` (same bits)."""
    _affine_columns_forward_body(xf, yf, A, L, B, gamma, beta, eps, stats, given)


@njit(parallel=True, **KERNEL_OPTIONS)
def affine_columns_backward(dyf, xf, dxf, A, L, B, gamma, eps, stats, given, dgamma, dbeta):
    """dx, dgamma and dbeta of layer norm over the middle axis, in parallel."""
    _affine_columns_backward_body(dyf, xf, dxf, A, L, B, gamma, eps, stats, given, dgamma, dbeta)


@njit(**KERNEL_OPTIONS)
def affine_columns_backward_serial(dyf, xf, dxf, A, L, B, gamma, eps, stats, given, dgamma, dbeta):
    """Single-threaded twin of :func:`affine_columns_backward` (same bits)."""
    _affine_columns_backward_body(dyf, xf, dxf, A, L, B, gamma, eps, stats, given, dgamma, dbeta)
