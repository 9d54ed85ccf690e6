"""Kernels for channels-last layouts (Numba only).

The canonical view is the flat C-ordered array of shape (N, P, K): each of
the P rows of a sample holds K = M * C * Q columns, and column ``k`` belongs
to channel ``(k // Q) % C``.  NHWC is Q = 1.  M > 1 folds M consecutive
original rows into one (an RGB image, C = 3, has rows too short to
vectorize; as 64 rows of 3 it has 192 columns).  Every column of a sample
has the same count, so statistics are kept per column and updated a row at a
time, which vectorizes across columns; the M * Q columns of a channel are
merged at the end.  Rows are grouped into blocks of about ``BLOCK`` elements
(blocked Welford, as in the row kernels) and blocks into parts of about
``PART`` elements that run in parallel and merge in a fixed order.

Group norm: the G groups of Cg = C // G consecutive channels each share one
mean and variance, so the columns of a group's channels merge into one
slice; gamma, beta and the gradient sums stay per channel.

``stats`` is the per-channel table of :mod:`.table`, shape (6, N * C) with
rows ``(count, mean, invstd, sum_dy, sum_dy_xc, m2)``; ``given`` says how
many leading rows are inputs (see :mod:`fastnorm._kernels.rows`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .common import (
    BLOCK,
    ELEMENTWISE_FLAGS,
    KERNEL_OPTIONS,
    PART,
    REDUCE_FLAGS,
    WAVE,
    as_index,
    backward_value,
    normalized,
)
from .table import (
    COUNT,
    INVSTD,
    M2,
    MEAN,
    SUM_DY,
    SUM_DYXC,
    set_moments,
    slice_backward_coefficients,
    slice_forward_coefficients,
    store_moments,
)

#: At least this many rows per Welford block: each block ends with a merge
#: over all K columns, which for wide rows (K of 640 to 3136: group norm on
#: NHWC, layer norm over axis 1) cost as much as a short block itself.
MIN_BLOCK_ROWS = 64


@njit(inline="always", **KERNEL_OPTIONS)
def columns_plan(P, K):
    """(rows per block, rows per part, parts per sample): shape only.

    Parts are as even as whole blocks allow (a last part of a few rows beside
    full ones left a thread idle for a third of every wave).
    """
    block_rows = max(MIN_BLOCK_ROWS, BLOCK // K)
    most_rows = max(block_rows, PART // K)
    parts = (P + most_rows - 1) // most_rows
    blocks = (P + block_rows - 1) // block_rows
    part_rows = (blocks + parts - 1) // parts * block_rows
    parts = (P + part_rows - 1) // part_rows
    return block_rows, part_rows, parts


@njit(**KERNEL_OPTIONS)
def _range_moments(xf, base, stride, K, r0, r1, block_rows, mean, m2):
    """Per-column (mean, M2) of rows [r0, r1) into ``mean``/``m2``; returns count.

    Row r is ``xf[base + r * stride : base + r * stride + K]``: whole rows
    (stride K) or a chunk of columns of wider rows.
    """
    count = 0.0
    for k in range(K):
        mean[k] = 0.0
        m2[k] = 0.0
    bmean = np.empty(K)
    bm2 = np.empty(K)
    for b0 in range(r0, r1, block_rows):
        b1 = min(r1, b0 + block_rows)
        nb = float(b1 - b0)
        _block_column_moments(xf, base + b0 * stride, stride, b1 - b0, K, bmean, bm2)
        total = count + nb
        f = nb / total
        w = count * f
        for k in range(K):
            d = bmean[k] - mean[k]
            mean[k] += d * f
            m2[k] += bm2[k] + d * (d * w)  # w = 0 first: no inf * 0 on overflow
        count = total
    return count


@njit(fastmath=REDUCE_FLAGS, **KERNEL_OPTIONS)
def _block_column_moments(xf, start, stride, R, K, bmean, bm2):
    """Per-column mean and M2 of a block of rows, in one sweep, four rows at a time.

    As :func:`fastnorm._kernels.common.block_moments` does along a slice:
    sums of ``d = x - x[0]`` and ``d * d`` about the block's first row (exact
    means for constant columns, offsets cancelled before summing, M2 keeps
    all but log2(rows + 1) bits), then ``M2 = sum(d * d) - sum(d) ** 2 /
    rows``.  One sweep instead of a mean sweep and an M2 sweep: the
    accumulator loads and stores bound this loop, and four rows per
    iteration quarter them.  Row r of the block is ``xf[start + r * stride :
    start + r * stride + K]`` (sliced as contiguous rows, so the loops
    vectorize).
    """
    for k in range(K):
        bmean[k] = 0.0
        bm2[k] = 0.0
    first = xf[start : start + K]
    r = 1
    while r + 4 <= R:
        o = start + r * stride
        x0 = xf[o : o + K]
        x1 = xf[o + stride : o + stride + K]
        x2 = xf[o + 2 * stride : o + 2 * stride + K]
        x3 = xf[o + 3 * stride : o + 3 * stride + K]
        for k in range(K):
            f = np.float64(first[k])
            d0 = x0[k] - f
            d1 = x1[k] - f
            d2 = x2[k] - f
            d3 = x3[k] - f
            bmean[k] += (d0 + d1) + (d2 + d3)
            bm2[k] += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3)
        r += 4
    for tail in range(r, R):
        row = xf[start + tail * stride : start + tail * stride + K]
        for k in range(K):
            d = row[k] - np.float64(first[k])
            bmean[k] += d
            bm2[k] += d * d
    for k in range(K):
        s = bmean[k]
        shift = s / R
        m2 = bm2[k] - s * shift
        if m2 < 0.0:  # rounding; a NaN passes through
            m2 = 0.0
        elif m2 != m2 and abs(s) < math.inf:
            m2 = math.inf  # finite data whose squares overflow (see block_moments)
        bmean[k] = first[k] + shift
        bm2[k] = m2


@njit(**KERNEL_OPTIONS)
def _range_grad_sums(dyf, xf, base, K, r0, r1, colmean, sdy, sdyxc):
    g2 = dyf[base + r0 * K : base + r1 * K].reshape(r1 - r0, K)
    x2 = xf[base + r0 * K : base + r1 * K].reshape(r1 - r0, K)
    # Task-local accumulators: rows of a shared matrix ran 3x slower here.
    a = np.zeros(K)
    b = np.zeros(K)
    _accumulate_grad_sums(g2, x2, colmean.copy(), a, b)
    for k in range(K):  # not sdy[:] = a: see rows._tiny_grad_sums
        sdy[k] = a[k]
        sdyxc[k] = b[k]


@njit(**KERNEL_OPTIONS)
def _accumulate_grad_sums(g2, x2, colmean, sdy, sdyxc):
    """Column sums of g2 and of g2 * (x2 - colmean), two rows per sweep.

    One accumulator per loop (LLVM vectorizes a loop with a single store
    target; with two it gave up) and two rows per sweep halve the
    accumulator traffic that bounds this loop.
    """
    R = g2.shape[0]
    K = g2.shape[1]
    for r in range(0, R - 1, 2):
        for k in range(K):
            sdy[k] += g2[r, k] + np.float64(g2[r + 1, k])
        for k in range(K):
            m = colmean[k]
            sdyxc[k] += g2[r, k] * (x2[r, k] - m) + g2[r + 1, k] * (x2[r + 1, k] - m)
    if R % 2:
        for k in range(K):
            sdy[k] += g2[R - 1, k]
        for k in range(K):
            sdyxc[k] += g2[R - 1, k] * (x2[R - 1, k] - colmean[k])


@njit(fastmath=ELEMENTWISE_FLAGS, **KERNEL_OPTIONS)
def _range_normalize(xf, yf, base, K, r0, r1, mean_hi, scale, shift):
    for r in range(r0, r1):
        row = xf[base + r * K : base + (r + 1) * K]
        out = yf[base + r * K : base + (r + 1) * K]
        for k in range(K):
            out[k] = normalized(row[k], mean_hi[k], scale[k], shift[k])


@njit(fastmath=ELEMENTWISE_FLAGS, **KERNEL_OPTIONS)
def _range_backward(dyf, xf, dxf, base, K, r0, r1, cols):
    """dx rows from per-column coefficients ``cols`` (5, K) (backward_value)."""
    mean_hi, a, k2, mdy_hi, c = cols[0], cols[1], cols[2], cols[3], cols[4]
    for r in range(r0, r1):
        g = dyf[base + r * K : base + (r + 1) * K]
        row = xf[base + r * K : base + (r + 1) * K]
        out = dxf[base + r * K : base + (r + 1) * K]
        for k in range(K):
            out[k] = backward_value(g[k], row[k], mean_hi[k], a[k], k2[k], mdy_hi[k], c[k])


@njit(**KERNEL_OPTIONS)
def _merge_channel_moments(n, C, Q, M, Cg, count, means, m2s, eps, stats):
    """Statistics of each group of Cg channels of sample n from its columns'
    (mean, M2), each over ``count`` rows (parts already merged).

    Every column has the same count, so a group of L columns has mean
    ``first + sum(means - first) / L`` (sums about its first column's mean:
    a constant group gets its value exactly) and M2 ``sum(m2s) + count *
    sum((means - mean) ** 2)``, the pairwise merge of equal counts, in a
    fixed column order.  Merging the columns one after the other (Chan)
    waited for a division per column: 10 us of a 1280-channel sample.  A
    one-column group is its column's (mean, M2), stored in one loop across
    the channels (store_moments: the square roots and divisions vectorize).
    """
    G = C // Cg
    L = Cg * M * Q
    if L == 1:
        store_moments(stats, n * C, count, means, m2s, eps)
        return
    W = Cg * Q  # a group's columns in each of the M phases: k0, ..., k0 + W - 1
    for g in range(G):
        first = means[g * Cg * Q]  # sums about it: a constant group's mean exactly
        total = 0.0
        for ph in range(M):
            k0 = (ph * C + g * Cg) * Q
            for k in range(k0, k0 + W):
                total += means[k] - first
        mean = first + total / L
        spread = 0.0
        m2 = 0.0
        for ph in range(M):
            k0 = (ph * C + g * Cg) * Q
            for k in range(k0, k0 + W):
                d = means[k] - mean
                spread += d * d
                m2 += m2s[k]
        set_moments(stats, n * C + g * Cg, Cg, L * count, mean, m2 + count * spread, eps)


@njit(inline="always", **KERNEL_OPTIONS)
def _columns_moments_body(xf, N, P, C, Q, M, G, eps, stats):
    """Statistics of every sample: parallel parts merged in order."""
    K = M * C * Q
    block_rows, part_rows, parts = columns_plan(P, K)
    T = N * parts
    counts = np.empty(T)
    means = np.empty((T, K))
    m2s = np.empty((T, K))
    for t in prange(T):
        i = t // parts
        r0 = (t - i * parts) * part_rows
        counts[t] = _range_moments(
            xf, i * P * K, K, K, r0, min(P, r0 + part_rows), block_rows, means[t], m2s[t]
        )
    for i in prange(N):
        mean = np.empty(K)
        m2 = np.empty(K)
        rows = slice(i * parts, (i + 1) * parts)
        count = _merge_parts(counts[rows], means[rows], m2s[rows], mean, m2)
        _merge_channel_moments(as_index(i), C, Q, M, C // G, count, mean, m2, eps, stats)


@njit(**KERNEL_OPTIONS)
def _merge_parts(counts, means, m2s, mean, m2):
    """Per-column (mean, M2) of parts (rows of ``means``/``m2s``) merged in
    order into ``mean``/``m2``; returns the count."""
    K = mean.shape[0]
    for k in range(K):
        mean[k] = means[0, k]
        m2[k] = m2s[0, k]
    count = counts[0]
    for t in range(1, counts.shape[0]):
        total = count + counts[t]
        f = counts[t] / total
        w = count * f
        for k in range(K):
            d = means[t, k] - mean[k]
            mean[k] += d * f
            m2[k] += m2s[t, k] + d * (d * w)
        count = total
    return count


@njit(**KERNEL_OPTIONS)
def column_slice_moments(xf, base, P, K, k0, k1, eps, stats, s0):
    """Statistics of columns [k0, k1) of the (P, K) matrix at ``base``, each
    column a slice, into table columns from s0.

    The parts, blocks and merges of whole rows (``columns_plan(P, K)``), so
    the bits of :func:`columns_moments`; a caller can fuse a chunk's
    statistics with its output while the chunk is in cache.
    """
    block_rows, part_rows, parts = columns_plan(P, K)
    n = k1 - k0
    counts = np.empty(parts)
    means = np.empty((parts, n))
    m2s = np.empty((parts, n))
    for t in range(parts):
        r0 = t * part_rows
        counts[t] = _range_moments(
            xf, base + k0, K, n, r0, min(P, r0 + part_rows), block_rows, means[t], m2s[t]
        )
    mean = np.empty(n)
    m2 = np.empty(n)
    count = _merge_parts(counts, means, m2s, mean, m2)
    # Each column a one-column slice, stored as _merge_channel_moments stores
    # them (the same bits), in one loop across the columns: their divisions
    # and square roots vectorize (one after the other they cost layer norm
    # over 96 channels 0.5 cycles per element).
    store_moments(stats, s0, count, mean, m2, eps)


@njit(inline="always", **KERNEL_OPTIONS)
def _wave_size(P, K):
    """Samples per wave: statistics then output of a wave of about WAVE
    elements, so the second pass reads x from cache, not memory."""
    return max(1, WAVE // (P * K))


@njit(inline="always", **KERNEL_OPTIONS)
def _wave_moments(moments, xf, n0, n1, P, C, Q, M, G, eps, stats):
    """Statistics of samples [n0, n1) by the ``moments`` kernel.

    The kernel is called, not inlined: inlined, its two ``prange`` loops were
    compiled again into the forward and backward kernels, each loop through
    Numba's three layers of parallel wrappers.  It fills columns from 0, so
    a wave that is not every sample goes through a table of its own whose
    moment rows are copied into place (the same bits).
    """
    K = M * C * Q
    wave_x = xf[n0 * P * K : n1 * P * K]
    if n0 == 0 and n1 * C == stats.shape[1]:
        moments(wave_x, n1 - n0, P, C, Q, M, G, eps, stats)
    else:
        table = np.empty((stats.shape[0], (n1 - n0) * C))
        moments(wave_x, n1 - n0, P, C, Q, M, G, eps, table)
        for row in (COUNT, MEAN, INVSTD, M2):
            stats[row, n0 * C : n1 * C] = table[row]


@njit(**KERNEL_OPTIONS)
def _expand_forward(n, C, Q, M, Cg, gamma, beta, stats, coef, mean_hi, scale, shift):
    """Per-column (mean_hi, scale, shift) of sample n in the data dtype."""
    for c0 in range(0, C, Cg):
        slice_forward_coefficients(stats, n * C + c0, Cg, gamma, beta, c0, coef)
    for c in range(C):
        s = n * C + c
        for ph in range(M):
            for k in range((ph * C + c) * Q, (ph * C + c + 1) * Q):
                mean_hi[k] = coef[s, 0]
                scale[k] = coef[s, 1]
                shift[k] = coef[s, 2]


@njit(**KERNEL_OPTIONS)
def _expand_backward(n, C, Q, M, Cg, gamma, stats, coef, cols):
    """Per-column backward coefficients (5, K) of sample n in the data dtype."""
    for c0 in range(0, C, Cg):
        slice_backward_coefficients(stats, n * C + c0, Cg, gamma, c0, coef)
    for c in range(C):
        s = n * C + c
        for ph in range(M):
            for k in range((ph * C + c) * Q, (ph * C + c + 1) * Q):
                for j in range(5):
                    cols[j, k] = coef[s, j]


@njit(**KERNEL_OPTIONS)
def _column_means(n, C, Q, M, stats, colmean):
    # Explicit loops, here and in every helper a parallel kernel calls: if
    # one is ever inlined there, an array expression outside prange becomes a
    # parallel region of its own (dozens of tiny launches cost milliseconds).
    for c in range(C):
        for ph in range(M):
            for k in range((ph * C + c) * Q, (ph * C + c + 1) * Q):
                colmean[k] = stats[MEAN, n * C + c]


@njit(**KERNEL_OPTIONS)
def _merge_channel_sums(n, C, Q, M, sdy, sdyxc, stats):
    """Per-channel sums of sample n from per-part column sums (parts, K)."""
    for c in range(C):
        a = 0.0
        b = 0.0
        for ph in range(M):
            for k in range((ph * C + c) * Q, (ph * C + c + 1) * Q):
                col_dy = sdy[0, k]
                col_dyxc = sdyxc[0, k]
                for t in range(1, sdy.shape[0]):
                    col_dy += sdy[t, k]
                    col_dyxc += sdyxc[t, k]
                a += col_dy
                b += col_dyxc
        s = n * C + c
        stats[SUM_DY, s] = a
        stats[SUM_DYXC, s] = b


@njit(**KERNEL_OPTIONS)
def _forward_sample(n, xf, yf, P, C, Q, M, G, gamma, beta, eps, stats, given, coef):
    """Statistics (unless given) and output of a single-part sample."""
    K = M * C * Q
    block_rows, _, _ = columns_plan(P, K)
    base = n * P * K
    if given == 0:
        mean = np.empty(K)
        m2 = np.empty(K)
        count = _range_moments(xf, base, K, K, as_index(0), P, block_rows, mean, m2)
        _merge_channel_moments(n, C, Q, M, C // G, count, mean, m2, eps, stats)
    mean_hi = np.empty(K, dtype=yf.dtype)
    scale = np.empty(K, dtype=yf.dtype)
    shift = np.empty(K, dtype=yf.dtype)
    _expand_forward(n, C, Q, M, C // G, gamma, beta, stats, coef, mean_hi, scale, shift)
    _range_normalize(xf, yf, base, K, as_index(0), P, mean_hi, scale, shift)


@njit(**KERNEL_OPTIONS)
def _backward_sample(n, dyf, xf, dxf, P, C, Q, M, G, gamma, eps, stats, given, coef):
    """Statistics and sums (unless given) and dx of a single-part sample."""
    K = M * C * Q
    block_rows, _, _ = columns_plan(P, K)
    base = n * P * K
    if given == 0:
        mean = np.empty(K)
        m2 = np.empty(K)
        count = _range_moments(xf, base, K, K, as_index(0), P, block_rows, mean, m2)
        _merge_channel_moments(n, C, Q, M, C // G, count, mean, m2, eps, stats)
    if given < 5:
        colmean = np.empty(K)
        _column_means(n, C, Q, M, stats, colmean)
        sdy = np.empty((1, K))
        sdyxc = np.empty((1, K))
        _range_grad_sums(dyf, xf, base, K, as_index(0), P, colmean, sdy[0], sdyxc[0])
        _merge_channel_sums(n, C, Q, M, sdy, sdyxc, stats)
    cols = np.empty((5, K), dtype=dxf.dtype)
    _expand_backward(n, C, Q, M, C // G, gamma, stats, coef, cols)
    _range_backward(dyf, xf, dxf, base, K, as_index(0), P, cols)


@njit(inline="always", **KERNEL_OPTIONS)
def _columns_forward_body(xf, yf, N, P, C, Q, M, G, gamma, beta, eps, stats, given, moments):
    """Forward for every sample, in parallel over samples or parts."""
    K = M * C * Q
    coef = np.empty((N * C, 3), dtype=yf.dtype)
    _, part_rows, parts = columns_plan(P, K)
    if parts == 1:
        for n in prange(N):
            _forward_sample(
                as_index(n), xf, yf, P, C, Q, M, G, gamma, beta, eps, stats, given, coef
            )
        return
    wave = _wave_size(P, K)
    cols = np.empty((wave, 3, K), dtype=yf.dtype)
    for n0 in range(0, N, wave):
        n1 = min(N, n0 + wave)
        if given == 0:
            _wave_moments(moments, xf, n0, n1, P, C, Q, M, G, eps, stats)
        for i in range(n1 - n0):
            _expand_forward(
                n0 + i,
                C,
                Q,
                M,
                C // G,
                gamma,
                beta,
                stats,
                coef,
                cols[i, 0],
                cols[i, 1],
                cols[i, 2],
            )
        for t in prange((n1 - n0) * parts):
            i = t // parts
            r0 = (t - i * parts) * part_rows
            _range_normalize(
                xf,
                yf,
                (n0 + i) * P * K,
                K,
                r0,
                min(P, r0 + part_rows),
                cols[i, 0],
                cols[i, 1],
                cols[i, 2],
            )


@njit(inline="always", **KERNEL_OPTIONS)
def _wave_grad_sums(dyf, xf, n0, n1, P, C, Q, M, stats, colmean, sdy, sdyxc):
    """Fill the sums of samples [n0, n1) from parallel parts added in order.

    Inlined: its ``prange`` runs in parallel inside the parallel kernel and
    serially inside the serial twin.
    """
    K = M * C * Q
    _, part_rows, parts = columns_plan(P, K)
    for i in range(n1 - n0):
        _column_means(n0 + i, C, Q, M, stats, colmean[i])
    for t in prange((n1 - n0) * parts):
        i = t // parts
        r0 = (t - i * parts) * part_rows
        _range_grad_sums(
            dyf, xf, (n0 + i) * P * K, K, r0, min(P, r0 + part_rows), colmean[i], sdy[t], sdyxc[t]
        )
    for i in range(n1 - n0):
        rows = slice(i * parts, (i + 1) * parts)
        _merge_channel_sums(n0 + i, C, Q, M, sdy[rows], sdyxc[rows], stats)


@njit(inline="always", **KERNEL_OPTIONS)
def _columns_backward_body(dyf, xf, dxf, N, P, C, Q, M, G, gamma, eps, stats, given, moments):
    """dx and per-slice sums for every sample, in parallel."""
    K = M * C * Q
    coef = np.empty((N * C, 5), dtype=dxf.dtype)
    _, part_rows, parts = columns_plan(P, K)
    if parts == 1:
        for n in prange(N):
            _backward_sample(
                as_index(n), dyf, xf, dxf, P, C, Q, M, G, gamma, eps, stats, given, coef
            )
        return
    wave = _wave_size(P, K)
    cols = np.empty((wave, 5, K), dtype=dxf.dtype)
    colmean = np.empty((wave, K))
    sdy = np.empty((wave * parts, K))
    sdyxc = np.empty((wave * parts, K))
    for n0 in range(0, N, wave):
        n1 = min(N, n0 + wave)
        if given == 0:
            _wave_moments(moments, xf, n0, n1, P, C, Q, M, G, eps, stats)
        if given < 5:
            _wave_grad_sums(dyf, xf, n0, n1, P, C, Q, M, stats, colmean, sdy, sdyxc)
        for i in range(n1 - n0):
            _expand_backward(n0 + i, C, Q, M, C // G, gamma, stats, coef, cols[i])
        for t in prange((n1 - n0) * parts):
            i = t // parts
            r0 = (t - i * parts) * part_rows
            _range_backward(dyf, xf, dxf, (n0 + i) * P * K, K, r0, min(P, r0 + part_rows), cols[i])


@njit(inline="always", **KERNEL_OPTIONS)
def _columns_grad_sums_body(dyf, xf, N, P, C, Q, M, G, stats):
    """Fill columns (sum_dy, sum_dy_xc) of ``stats`` from its mean column."""
    K = M * C * Q
    for t in prange(N):
        n = as_index(t)
        colmean = np.empty(K)
        _column_means(n, C, Q, M, stats, colmean)
        sdy = np.empty((1, K))
        sdyxc = np.empty((1, K))
        _range_grad_sums(dyf, xf, n * P * K, K, as_index(0), P, colmean, sdy[0], sdyxc[0])
        _merge_channel_sums(n, C, Q, M, sdy, sdyxc, stats)


# --------------------------------------------------------------------------
# The kernels: each body above compiled twice, with prange running in
# parallel and as a plain range.  They are spelled out as top-level functions
# because kernels made by a factory never hit Numba's on-disk cache.


@njit(parallel=True, **KERNEL_OPTIONS)
def columns_moments(xf, N, P, C, Q, M, G, eps, stats):
    """Fill (count, mean, invstd, m2) of ``stats``: parallel parts merged in order."""
    _columns_moments_body(xf, N, P, C, Q, M, G, eps, stats)


@njit(**KERNEL_OPTIONS)
def columns_moments_serial(xf, N, P, C, Q, M, G, eps, stats):
    """Single-threaded twin of :func:`columns_moments`: the same parts in the same
    order, so the same bits (used for small inputs, busy or forked callers)."""
    _columns_moments_body(xf, N, P, C, Q, M, G, eps, stats)


@njit(parallel=True, **KERNEL_OPTIONS)
def columns_forward(xf, yf, N, P, C, Q, M, G, gamma, beta, eps, stats, given):
    """Forward for every sample, in parallel over samples or parts."""
    _columns_forward_body(xf, yf, N, P, C, Q, M, G, gamma, beta, eps, stats, given, columns_moments)


@njit(**KERNEL_OPTIONS)
def columns_forward_serial(xf, yf, N, P, C, Q, M, G, gamma, beta, eps, stats, given):
    """Single-threaded twin of :func:`columns_forward`: the same parts in the same
    order, so the same bits (used for small inputs, busy or forked callers)."""
    _columns_forward_body(
        xf, yf, N, P, C, Q, M, G, gamma, beta, eps, stats, given, columns_moments_serial
    )


@njit(parallel=True, **KERNEL_OPTIONS)
def columns_backward(dyf, xf, dxf, N, P, C, Q, M, G, gamma, eps, stats, given):
    """dx and per-slice sums for every sample, in parallel."""
    _columns_backward_body(
        dyf, xf, dxf, N, P, C, Q, M, G, gamma, eps, stats, given, columns_moments
    )


@njit(**KERNEL_OPTIONS)
def columns_backward_serial(dyf, xf, dxf, N, P, C, Q, M, G, gamma, eps, stats, given):
    """Single-threaded twin of :func:`columns_backward`: the same parts in the same
    order, so the same bits (used for small inputs, busy or forked callers)."""
    _columns_backward_body(
        dyf, xf, dxf, N, P, C, Q, M, G, gamma, eps, stats, given, columns_moments_serial
    )


@njit(parallel=True, **KERNEL_OPTIONS)
def columns_grad_sums(dyf, xf, N, P, C, Q, M, G, stats):
    """Fill (sum_dy, sum_dy_xc) of ``stats`` from its mean column, in parallel."""
    _columns_grad_sums_body(dyf, xf, N, P, C, Q, M, G, stats)


@njit(**KERNEL_OPTIONS)
def columns_grad_sums_serial(dyf, xf, N, P, C, Q, M, G, stats):
    """Single-threaded twin of :func:`columns_grad_sums`: the same parts in the same
    order, so the same bits (used for small inputs, busy or forked callers)."""
    _columns_grad_sums_body(dyf, xf, N, P, C, Q, M, G, stats)
