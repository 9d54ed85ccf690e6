"""Kernels for layouts whose slices are made of contiguous rows (Numba only).

The canonical view is the flat C-ordered array of shape (N, P, G, L) with
``L = Cg * Q``: slice ``s = n * G + g`` (sample n, group g of Cg channels) is
the P rows ``x[n, p, g, :]`` of L contiguous elements, and the element at
``q`` of a row belongs to channel ``g * Cg + q // Q``.  Instance norm on NCHW
is P = 1, Cg = 1 (each slice one contiguous run); group norm on NCHW is P =
1 with Cg channels of Q elements per row.  A slice is cut into blocks of at
most ``BLOCK`` elements inside a row; consecutive blocks form parts of about
``PART`` elements.  A slice of one part is processed by one task from
statistics to output while it sits in L2 (one read of x from memory); larger
slices are split into parts that run in parallel and merge in a fixed order.
Within a block, element-wise passes and gradient sums run over the spans of
one channel each, so every span has one set of coefficients.

Every kernel takes the per-channel ``stats`` table of :mod:`.table` and a
``given`` level: the rows below ``given`` are inputs, the others are computed
and written back (forward: ``given`` 0 or 3; backward: 0, 3 or 5; M2 is
written only when the statistics are computed).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .common import (
    BLOCK,
    ELEMENTWISE_FLAGS,
    KERNEL_OPTIONS,
    PART,
    as_index,
    backward_value,
    block_grad_sums,
    block_moments,
    chan_merge,
    forward_coefficients,
    normalized,
    shifted_moments,
)
from .table import (
    INVSTD,
    MEAN,
    SUM_DY,
    SUM_DYXC,
    channel_backward_coefficients,
    channel_forward_coefficients,
    set_moments,
    slice_backward_coefficients,
    slice_forward_coefficients,
    store_moments,
)


@njit(inline="always", **KERNEL_OPTIONS)
def rows_plan(P, L):
    """(blocks per row, blocks per part, parts per slice): shape only."""
    per_row = (L + BLOCK - 1) // BLOCK
    block = min(L, BLOCK)
    per_part = max(1, PART // block)
    parts = (P * per_row + per_part - 1) // per_part
    return per_row, per_part, parts


@njit(inline="always", **KERNEL_OPTIONS)
def _first_block(j0, per_row, row_stride):
    """Row offset and column of block j0 of a slice (the one division per range)."""
    p = j0 // per_row
    return p * row_stride, (j0 - p * per_row) * BLOCK


@njit(inline="always", **KERNEL_OPTIONS)
def _next_block(off, q0, row_stride, L):
    q0 += BLOCK
    if q0 >= L:
        return off + row_stride, 0
    return off, q0


@njit(inline="always", **KERNEL_OPTIONS)
def _span_end(q, hi, Q):
    """(channel within the slice, end) of the one-channel span starting at q."""
    j = q // Q
    return j, min(hi, (j + 1) * Q)


@njit(**KERNEL_OPTIONS)
def _range_moments(xf, base, row_stride, L, per_row, j0, j1):
    """(count, mean, M2) of blocks [j0, j1) of the slice starting at base."""
    count = 0.0
    mean = 0.0
    m2 = 0.0
    off, q0 = _first_block(j0, per_row, row_stride)
    off += base
    for _ in range(j1 - j0):
        hi = min(L, q0 + BLOCK)
        bmean, bm2 = block_moments(xf[off + q0 : off + hi])
        count, mean, m2 = chan_merge(count, mean, m2, float(hi - q0), bmean, bm2)
        off, q0 = _next_block(off, q0, row_stride, L)
    return count, mean, m2


@njit(**KERNEL_OPTIONS)
def _range_grad_sums(dyf, xf, base, row_stride, L, Q, per_row, j0, j1, mean, sdy, sdyxc):
    """Add each channel's sum(dy) and sum(dy * (x - mean)) over blocks [j0, j1)
    into ``sdy[j]`` and ``sdyxc[j]`` (j: channel within the slice)."""
    off, q0 = _first_block(j0, per_row, row_stride)
    off += base
    for _ in range(j1 - j0):
        hi = min(L, q0 + BLOCK)
        q = q0
        while q < hi:
            j, e = _span_end(q, hi, Q)
            a, b = block_grad_sums(dyf[off + q : off + e], xf[off + q : off + e], mean)
            sdy[j] += a
            sdyxc[j] += b
            q = e
        off, q0 = _next_block(off, q0, row_stride, L)


# The element loops below sit in the span loops rather than in helpers of
# their own: a call per one-channel span cost group norm with spans of 256
# elements (U1280) about a sixth of its forward.  ELEMENTWISE_FLAGS on the
# whole function give the loops the flags a helper had: the same bits.


@njit(fastmath=ELEMENTWISE_FLAGS, **KERNEL_OPTIONS)
def _range_normalize(xf, yf, base, row_stride, L, Q, per_row, j0, j1, coef, c0):
    off, q0 = _first_block(j0, per_row, row_stride)
    off += base
    for _ in range(j1 - j0):
        hi = min(L, q0 + BLOCK)
        q = q0
        while q < hi:
            j, e = _span_end(q, hi, Q)
            c = c0 + j
            mean_hi, scale, shift = coef[c, 0], coef[c, 1], coef[c, 2]
            w = xf[off + q : off + e]
            o = yf[off + q : off + e]
            for i in range(e - q):
                o[i] = normalized(w[i], mean_hi, scale, shift)
            q = e
        off, q0 = _next_block(off, q0, row_stride, L)


@njit(fastmath=ELEMENTWISE_FLAGS, **KERNEL_OPTIONS)
def _range_backward(dyf, xf, dxf, base, row_stride, L, Q, per_row, j0, j1, coef, c0):
    off, q0 = _first_block(j0, per_row, row_stride)
    off += base
    for _ in range(j1 - j0):
        hi = min(L, q0 + BLOCK)
        q = q0
        while q < hi:
            j, e = _span_end(q, hi, Q)
            c = c0 + j
            mean_hi, a, k, mdy_hi, r = coef[c, 0], coef[c, 1], coef[c, 2], coef[c, 3], coef[c, 4]
            g = dyf[off + q : off + e]
            w = xf[off + q : off + e]
            o = dxf[off + q : off + e]
            for i in range(e - q):
                o[i] = backward_value(g[i], w[i], mean_hi, a, k, mdy_hi, r)
            q = e
        off, q0 = _next_block(off, q0, row_stride, L)


@njit(inline="always", **KERNEL_OPTIONS)
def _slice_base(s, P, G, L):
    n = s // G
    return (n * P * G + (s - n * G)) * L


@njit(inline="always", **KERNEL_OPTIONS)
def _part_of_task(t, parts, per_part, nblocks, P, G, L):
    """(slice, slice base, first block, end block) of parallel task t."""
    s = t // parts
    j0 = (t - s * parts) * per_part
    return s, _slice_base(s, P, G, L), j0, min(nblocks, j0 + per_part)


@njit(**KERNEL_OPTIONS)
def _slice_grad_sums(dyf, xf, s, P, G, Cg, Q, per_row, stats):
    """Per-channel sums of a whole slice into the table (from its mean)."""
    L = Cg * Q
    c0 = s * Cg
    sdy = stats[SUM_DY, c0 : c0 + Cg]
    sdyxc = stats[SUM_DYXC, c0 : c0 + Cg]
    sdy[:] = 0.0
    sdyxc[:] = 0.0
    mean = stats[MEAN, c0]
    _range_grad_sums(
        dyf,
        xf,
        _slice_base(s, P, G, L),
        G * L,
        L,
        Q,
        per_row,
        as_index(0),
        P * per_row,
        mean,
        sdy,
        sdyxc,
    )


@njit(**KERNEL_OPTIONS)
def _forward_slice(s, xf, yf, P, G, Cg, Q, per_row, gamma, beta, eps, stats, given, coef):
    """Statistics (unless given) and output of one single-part slice."""
    L = Cg * Q
    base = _slice_base(s, P, G, L)
    nblocks = P * per_row
    c0 = s * Cg
    if given == 0:
        count, mean, m2 = _range_moments(xf, base, G * L, L, per_row, as_index(0), nblocks)
        set_moments(stats, c0, Cg, count, mean, m2, eps)
    slice_forward_coefficients(stats, c0, Cg, gamma, beta, c0 - (s // G) * G * Cg, coef)
    _range_normalize(xf, yf, base, G * L, L, Q, per_row, as_index(0), nblocks, coef, c0)


@njit(**KERNEL_OPTIONS)
def _backward_slice(s, dyf, xf, dxf, P, G, Cg, Q, per_row, gamma, eps, stats, given, coef):
    """Statistics and sums (unless given) and dx of one single-part slice."""
    L = Cg * Q
    base = _slice_base(s, P, G, L)
    nblocks = P * per_row
    c0 = s * Cg
    if given == 0:
        count, mean, m2 = _range_moments(xf, base, G * L, L, per_row, as_index(0), nblocks)
        set_moments(stats, c0, Cg, count, mean, m2, eps)
    if given < 5:
        _slice_grad_sums(dyf, xf, s, P, G, Cg, Q, per_row, stats)
    slice_backward_coefficients(stats, c0, Cg, gamma, c0 - (s // G) * G * Cg, coef)
    _range_backward(dyf, xf, dxf, base, G * L, L, Q, per_row, as_index(0), nblocks, coef, c0)


# --------------------------------------------------------------------------
# Short slices: P == 1 and L <= BLOCK, so every slice is one block and one
# row of the (slices, L) matrix.  Slices are handled in groups (at most PART
# elements and GROUP_SLICES slices), one task per group, each slice from
# statistics to output while its row sits in L1 (the second sweep never
# leaves the core).  Row views (sliced first, indexed from 0) let Numba drop
# negative-index fix-ups.


@njit(inline="always", **KERNEL_OPTIONS)
def _short_slices(P, L):
    return P == 1 and L <= BLOCK


#: At most this many short slices per task: a slice's fixed cost (~30
#: cycles) does not shrink with L, and 32768 slices of 4 elements made one
#: task of PART elements, leaving a core idle.
GROUP_SLICES = 1024


@njit(inline="always", **KERNEL_OPTIONS)
def _group_size(L):
    return max(1, min(GROUP_SLICES, PART // L))


@njit(**KERNEL_OPTIONS)
def _group_moments(x2, s0, s1, Cg, eps, stats):
    if _tiny(Cg, x2.shape[1]):
        _tiny_moments(x2[s0:s1], s0, eps, stats)
        return
    if Cg == 1:
        _channel_moments(x2, s0, s1, eps, stats)
        return
    for s in range(s0, s1):
        mean, m2 = block_moments(x2[s])
        set_moments(stats, s * Cg, Cg, float(x2.shape[1]), mean, m2, eps)


@njit(**KERNEL_OPTIONS)
def _group_grad_sums(dy2, x2, s0, s1, Cg, Q, stats):
    if _tiny(Cg, x2.shape[1]):
        _tiny_grad_sums(dy2[s0:s1], x2[s0:s1], s0, stats)
        return
    if Cg == 1:
        _channel_grad_sums(dy2, x2, s0, s1, stats)
        return
    dy3 = dy2.reshape(x2.shape[0], Cg, Q)
    x3 = x2.reshape(x2.shape[0], Cg, Q)
    for s in range(s0, s1):
        mean = stats[MEAN, s * Cg]
        for j in range(Cg):
            a, b = block_grad_sums(dy3[s, j], x3[s, j], mean)
            stats[SUM_DY, s * Cg + j] = a
            stats[SUM_DYXC, s * Cg + j] = b


#: One-channel slices of at most this many elements are processed across
#: slices (their own loops cost about 30 cycles of fixed work for 1-4 of
#: data): forward 2.6-4.4x faster, backward 1.3-1.8x, on (64, 512, 2, 2),
#: (4096, 64, 4) and rows of 2 and 3.  Up to 16 the forward still gained
#: (3x3: 1.7x) but the backward lost (4x4: 2.4x slower), so 4.
TINY_SLICE = 4


@njit(inline="always", **KERNEL_OPTIONS)
def _tiny(Cg, L):
    return Cg == 1 and L <= TINY_SLICE


@njit(**KERNEL_OPTIONS)
def _tiny_moments(xs, s0, eps, stats):
    """Statistics of the one-channel slices (rows of xs) from table column s0.

    The sums of block_moments (float64, about each slice's first element)
    and set_moments' table entries, a column at a time so that every loop
    runs across slices (vectorized).
    """
    n, L = xs.shape
    first = np.empty(n)
    s = np.zeros(n)
    s2 = np.zeros(n)
    if L == 4:
        # 2x2 maps and rows of 4: constant offsets make interleaved vector
        # loads, 3x faster than the strided columns below.
        xv = xs.ravel()
        for i in range(n):
            f = np.float64(xv[4 * i])
            d0 = xv[4 * i] - f
            d1 = xv[4 * i + 1] - f
            d2 = xv[4 * i + 2] - f
            d3 = xv[4 * i + 3] - f
            first[i] = f
            s[i] = ((d0 + d1) + d2) + d3
            s2[i] = ((d0 * d0 + d1 * d1) + d2 * d2) + d3 * d3
    else:
        for i in range(n):
            first[i] = xs[i, 0]
        for j in range(L):
            col = xs[:, j]
            for i in range(n):
                d = col[i] - first[i]
                s[i] += d
                s2[i] += d * d
    mean = np.empty(n)
    m2 = np.empty(n)
    for i in range(n):
        mean[i], m2[i] = shifted_moments(first[i], s[i], s2[i], L)
    store_moments(stats, s0, float(L), mean, m2, eps)


@njit(**KERNEL_OPTIONS)
def _channel_moments(x2, s0, s1, eps, stats):
    """Statistics of the one-channel slices in rows [s0, s1) of x2, stored in
    one loop across them (see store_moments)."""
    n = s1 - s0
    mean = np.empty(n)
    m2 = np.empty(n)
    for i in range(n):
        mean[i], m2[i] = block_moments(x2[s0 + i])
    store_moments(stats, s0, float(x2.shape[1]), mean, m2, eps)


@njit(**KERNEL_OPTIONS)
def _channel_grad_sums(dy2, x2, s0, s1, stats):
    """Each one-channel slice's sum(dy) and sum(dy * (x - mean)) for rows
    [s0, s1), one block_grad_sums call per slice.

    Not one loop across the slices around the sums: reassociated, that loop
    was vectorized differently when the kernel was compiled in the process
    and when it was loaded from Numba's cache (dx differed by 3e-17).
    """
    for c in range(s0, s1):
        a, b = block_grad_sums(dy2[c], x2[c], stats[MEAN, c])
        stats[SUM_DY, c] = a
        stats[SUM_DYXC, c] = b


@njit(**KERNEL_OPTIONS)
def _channel_backward_run(stats, s0, n, G, gamma, coef):
    """Backward coefficients of one-channel slices [s0, s0 + n), in runs of
    consecutive channels."""
    i = 0
    p = s0 % G
    while i < n:
        run = min(n - i, G - p)
        for t in range(run):
            channel_backward_coefficients(stats, s0 + i + t, gamma[p + t], coef)
        i += run
        p = 0


@njit(**KERNEL_OPTIONS)
def _channel_forward_run(stats, s0, n, G, gamma, beta, coef):
    """Forward coefficients of one-channel slices [s0, s0 + n), in runs of
    consecutive channels so that gamma and beta are read in order."""
    means = stats[MEAN, s0 : s0 + n]
    invstds = stats[INVSTD, s0 : s0 + n]
    cs = coef[s0 : s0 + n]
    i = 0
    p = s0 % G
    while i < n:
        run = min(n - i, G - p)
        g = gamma[p : p + run]
        b = beta[p : p + run]
        for t in range(run):
            forward_coefficients(means[i + t], invstds[i + t], g[t], b[t], cs, i + t)
        i += run
        p = 0


# Inlined into its only caller, which has the same flags: as a function of
# its own it was compiled, and linked into every layer of the parallel
# kernels, once more (5% of the row family's cold compile).
@njit(inline="always", **KERNEL_OPTIONS)
def _tiny_forward(xs, ys, s0, G, gamma, beta, eps, stats, given, coef):
    """Forward of one-channel slices (rows of xs), a column at a time."""
    n, L = xs.shape
    if given == 0:
        _tiny_moments(xs, s0, eps, stats)
    _channel_forward_run(stats, s0, n, G, gamma, beta, coef)
    cs = coef[s0 : s0 + n]
    mean_hi, scale, shift = cs[:, 0].copy(), cs[:, 1].copy(), cs[:, 2].copy()
    if L == 4:
        xv = xs.ravel()
        yv = ys.ravel()
        for i in range(n):
            m, a, b = mean_hi[i], scale[i], shift[i]
            yv[4 * i] = normalized(xv[4 * i], m, a, b)
            yv[4 * i + 1] = normalized(xv[4 * i + 1], m, a, b)
            yv[4 * i + 2] = normalized(xv[4 * i + 2], m, a, b)
            yv[4 * i + 3] = normalized(xv[4 * i + 3], m, a, b)
        return
    for j in range(L):
        col = xs[:, j]
        out = ys[:, j]
        for i in range(n):
            out[i] = normalized(col[i], mean_hi[i], scale[i], shift[i])


# Inlined into its only caller, which has the same flags: as a function of
# its own it was compiled, and linked into every layer of the parallel
# kernels, once more (5% of the row family's cold compile).
@njit(inline="always", **KERNEL_OPTIONS)
def _tiny_backward(dys, xs, dxs, s0, G, gamma, eps, stats, given, coef):
    """Backward of one-channel slices (rows of xs), a column at a time."""
    n, L = xs.shape
    if given == 0:
        _tiny_moments(xs, s0, eps, stats)
    if given < 5:
        _tiny_grad_sums(dys, xs, s0, stats)
    _channel_backward_run(stats, s0, n, G, gamma, coef)
    cs = coef[s0 : s0 + n]
    mean_hi, a, k = cs[:, 0].copy(), cs[:, 1].copy(), cs[:, 2].copy()
    mdy_hi, e = cs[:, 3].copy(), cs[:, 4].copy()
    if L == 4:
        gv = dys.ravel()
        xv = xs.ravel()
        dv = dxs.ravel()
        for i in range(n):
            m, ai, ki, mdy, ei = mean_hi[i], a[i], k[i], mdy_hi[i], e[i]
            for j in range(4 * i, 4 * i + 4):
                dv[j] = backward_value(gv[j], xv[j], m, ai, ki, mdy, ei)
        return
    for j in range(L):
        gcol = dys[:, j]
        col = xs[:, j]
        out = dxs[:, j]
        for i in range(n):
            out[i] = backward_value(gcol[i], col[i], mean_hi[i], a[i], k[i], mdy_hi[i], e[i])


@njit(**KERNEL_OPTIONS)
def _tiny_grad_sums(dys, xs, s0, stats):
    """Per-slice sum(dy) and sum(dy * (x - mean)) in float64, as block_grad_sums."""
    n, L = xs.shape
    mean = stats[MEAN, s0 : s0 + n].copy()
    a = np.zeros(n)
    b = np.zeros(n)
    if L == 4:
        gv = dys.ravel()
        xv = xs.ravel()
        for i in range(n):
            m = mean[i]
            g0, g1, g2, g3 = gv[4 * i], gv[4 * i + 1], gv[4 * i + 2], gv[4 * i + 3]
            a[i] = ((np.float64(g0) + g1) + g2) + g3
            b[i] = (
                (g0 * (xv[4 * i] - m) + g1 * (xv[4 * i + 1] - m)) + g2 * (xv[4 * i + 2] - m)
            ) + g3 * (xv[4 * i + 3] - m)
    else:
        for j in range(L):
            gcol = dys[:, j]
            col = xs[:, j]
            for i in range(n):
                g = gcol[i]
                a[i] += g
                b[i] += g * (col[i] - mean[i])
    # Element loops, not slice assignment: an array-to-array assignment
    # compiles NumPy's shape-mismatch error message (string formatting),
    # which added 3 s to the cold compile of every kernel linking this one.
    for i in range(n):
        stats[SUM_DY, s0 + i] = a[i]
        stats[SUM_DYXC, s0 + i] = b[i]


# The group loops write their rows inline: a call per 64-element row cost
# ~70 cycles (G backward 1.6x slower), so they take the element-wise flags.
# They call block_moments themselves: through an inline="always" helper the
# single-threaded twins ran 2.3x slower on 32768 slices of 4 elements.
@njit(fastmath=ELEMENTWISE_FLAGS, **KERNEL_OPTIONS)
def _group_forward(x2, y2, s0, s1, G, Cg, Q, gamma, beta, eps, stats, given, coef):
    L = x2.shape[1]
    if _tiny(Cg, L):
        _tiny_forward(x2[s0:s1], y2[s0:s1], s0, G, gamma, beta, eps, stats, given, coef)
        return
    if Cg == 1:
        # Statistics, coefficients and output each in one loop across the
        # slices: the scalar work of a slice no longer waits on its own sqrt.
        n = s1 - s0
        if given == 0:
            _channel_moments(x2, s0, s1, eps, stats)
        _channel_forward_run(stats, s0, n, G, gamma, beta, coef)
        for c in range(s0, s1):
            mean_hi, scale, shift = coef[c, 0], coef[c, 1], coef[c, 2]
            xr = x2[c]
            yr = y2[c]
            for q in range(L):
                yr[q] = normalized(xr[q], mean_hi, scale, shift)
        return
    x3 = x2.reshape(x2.shape[0], Cg, Q)  # channel rows by integer index: no slice clamping
    y3 = y2.reshape(x2.shape[0], Cg, Q)
    p0 = (s0 % G) * Cg
    for s in range(s0, s1):
        c0 = s * Cg
        if given == 0:
            mean, m2 = block_moments(x2[s])
            set_moments(stats, c0, Cg, float(L), mean, m2, eps)
        if Cg == 1:
            channel_forward_coefficients(stats, c0, gamma[p0], beta[p0], coef)
        else:
            slice_forward_coefficients(stats, c0, Cg, gamma, beta, p0, coef)
        for j in range(Cg):
            mean_hi, scale, shift = coef[c0 + j, 0], coef[c0 + j, 1], coef[c0 + j, 2]
            xr = x3[s, j]
            yr = y3[s, j]
            for i in range(Q):
                yr[i] = normalized(xr[i], mean_hi, scale, shift)
        p0 += Cg
        if p0 == G * Cg:
            p0 = 0


@njit(fastmath=ELEMENTWISE_FLAGS, **KERNEL_OPTIONS)
def _group_backward(dy2, x2, dx2, s0, s1, G, Cg, Q, gamma, eps, stats, given, coef):
    L = x2.shape[1]
    if _tiny(Cg, L):
        _tiny_backward(dy2[s0:s1], x2[s0:s1], dx2[s0:s1], s0, G, gamma, eps, stats, given, coef)
        return
    if Cg == 1:
        # As in _group_forward: each step in one loop across the slices.
        n = s1 - s0
        if given == 0:
            _channel_moments(x2, s0, s1, eps, stats)
        if given < 5:
            _channel_grad_sums(dy2, x2, s0, s1, stats)
        _channel_backward_run(stats, s0, n, G, gamma, coef)
        for c in range(s0, s1):
            mean_hi, a, k, mdy_hi, e = coef[c, 0], coef[c, 1], coef[c, 2], coef[c, 3], coef[c, 4]
            gr = dy2[c]
            xr = x2[c]
            dr = dx2[c]
            for q in range(L):
                dr[q] = backward_value(gr[q], xr[q], mean_hi, a, k, mdy_hi, e)
        return
    dy3 = dy2.reshape(x2.shape[0], Cg, Q)
    x3 = x2.reshape(x2.shape[0], Cg, Q)
    dx3 = dx2.reshape(x2.shape[0], Cg, Q)
    p0 = (s0 % G) * Cg
    for s in range(s0, s1):
        c0 = s * Cg
        if given == 0:
            mean, m2 = block_moments(x2[s])
            set_moments(stats, c0, Cg, float(L), mean, m2, eps)
        if given < 5:
            mean = stats[MEAN, c0]
            for j in range(Cg):
                a, b = block_grad_sums(dy3[s, j], x3[s, j], mean)
                stats[SUM_DY, c0 + j] = a
                stats[SUM_DYXC, c0 + j] = b
        if Cg == 1:
            channel_backward_coefficients(stats, c0, gamma[p0], coef)
        else:
            slice_backward_coefficients(stats, c0, Cg, gamma, p0, coef)
        for j in range(Cg):
            c = c0 + j
            mean_hi, a, k, mdy_hi, e = coef[c, 0], coef[c, 1], coef[c, 2], coef[c, 3], coef[c, 4]
            gr = dy3[s, j]
            xr = x3[s, j]
            dr = dx3[s, j]
            for i in range(Q):
                dr[i] = backward_value(gr[i], xr[i], mean_hi, a, k, mdy_hi, e)
        p0 += Cg
        if p0 == G * Cg:
            p0 = 0


@njit(inline="always", **KERNEL_OPTIONS)
def _rows_moments_body(xf, N, P, G, Cg, Q, eps, stats):
    """Fill (count, mean, invstd, m2) of ``stats``: parallel parts merged in order."""
    S = N * G
    L = Cg * Q
    if _short_slices(P, L):
        x2 = xf.reshape(S, L)
        size = _group_size(L)
        for t in prange((S + size - 1) // size):
            _group_moments(x2, t * size, min(S, (t + 1) * size), Cg, eps, stats)
        return
    per_row, per_part, parts = rows_plan(P, L)
    nblocks = P * per_row
    partial = np.empty((S * parts, 3))
    for t in prange(S * parts):
        _, base, j0, j1 = _part_of_task(t, parts, per_part, nblocks, P, G, L)
        count, mean, m2 = _range_moments(xf, base, G * L, L, per_row, j0, j1)
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
        set_moments(stats, s * Cg, Cg, count, mean, m2, eps)


@njit(inline="always", **KERNEL_OPTIONS)
def _rows_forward_body(xf, yf, N, P, G, Cg, Q, gamma, beta, eps, stats, given, moments):
    """y = (x - mean) * invstd * gamma + beta for every slice, in parallel."""
    S = N * G
    L = Cg * Q
    coef = np.empty((S * Cg, 3), dtype=yf.dtype)
    if _short_slices(P, L):
        x2 = xf.reshape(S, L)
        y2 = yf.reshape(S, L)
        size = _group_size(L)
        for t in prange((S + size - 1) // size):
            _group_forward(
                x2,
                y2,
                t * size,
                min(S, (t + 1) * size),
                G,
                Cg,
                Q,
                gamma,
                beta,
                eps,
                stats,
                given,
                coef,
            )
        return
    per_row, per_part, parts = rows_plan(P, L)
    if parts == 1:
        for s in prange(S):
            _forward_slice(
                as_index(s), xf, yf, P, G, Cg, Q, per_row, gamma, beta, eps, stats, given, coef
            )
        return
    if given == 0:
        moments(xf, N, P, G, Cg, Q, eps, stats)
    for s in range(S):
        slice_forward_coefficients(stats, s * Cg, Cg, gamma, beta, (s % G) * Cg, coef)
    nblocks = P * per_row
    for t in prange(S * parts):
        s, base, j0, j1 = _part_of_task(t, parts, per_part, nblocks, P, G, L)
        _range_normalize(xf, yf, base, G * L, L, Q, per_row, j0, j1, coef, s * Cg)


@njit(inline="always", **KERNEL_OPTIONS)
def _rows_backward_body(dyf, xf, dxf, N, P, G, Cg, Q, gamma, eps, stats, given, moments):
    """dx for every slice and the per-channel sums, in parallel."""
    S = N * G
    L = Cg * Q
    coef = np.empty((S * Cg, 5), dtype=dxf.dtype)
    if _short_slices(P, L):
        dy2 = dyf.reshape(S, L)
        x2 = xf.reshape(S, L)
        dx2 = dxf.reshape(S, L)
        size = _group_size(L)
        for t in prange((S + size - 1) // size):
            _group_backward(
                dy2,
                x2,
                dx2,
                t * size,
                min(S, (t + 1) * size),
                G,
                Cg,
                Q,
                gamma,
                eps,
                stats,
                given,
                coef,
            )
        return
    per_row, per_part, parts = rows_plan(P, L)
    if parts == 1:
        for s in prange(S):
            _backward_slice(
                as_index(s), dyf, xf, dxf, P, G, Cg, Q, per_row, gamma, eps, stats, given, coef
            )
        return
    if given == 0:
        moments(xf, N, P, G, Cg, Q, eps, stats)
    nblocks = P * per_row
    if given < 5:
        partial = np.zeros((S * parts, 2, Cg))
        for t in prange(S * parts):
            s, base, j0, j1 = _part_of_task(t, parts, per_part, nblocks, P, G, L)
            _range_grad_sums(
                dyf,
                xf,
                base,
                G * L,
                L,
                Q,
                per_row,
                j0,
                j1,
                stats[MEAN, s * Cg],
                partial[t, 0],
                partial[t, 1],
            )
        for s in range(S):
            for j in range(Cg):
                a = 0.0
                b = 0.0
                for t in range(s * parts, (s + 1) * parts):
                    a += partial[t, 0, j]
                    b += partial[t, 1, j]
                stats[SUM_DY, s * Cg + j] = a
                stats[SUM_DYXC, s * Cg + j] = b
    for s in range(S):
        slice_backward_coefficients(stats, s * Cg, Cg, gamma, (s % G) * Cg, coef)
    for t in prange(S * parts):
        s, base, j0, j1 = _part_of_task(t, parts, per_part, nblocks, P, G, L)
        _range_backward(dyf, xf, dxf, base, G * L, L, Q, per_row, j0, j1, coef, s * Cg)


@njit(inline="always", **KERNEL_OPTIONS)
def _rows_grad_sums_body(dyf, xf, N, P, G, Cg, Q, stats):
    """Fill rows (sum_dy, sum_dy_xc) of ``stats`` from its mean row."""
    S = N * G
    L = Cg * Q
    if _short_slices(P, L):
        dy2 = dyf.reshape(S, L)
        x2 = xf.reshape(S, L)
        size = _group_size(L)
        for t in prange((S + size - 1) // size):
            _group_grad_sums(dy2, x2, t * size, min(S, (t + 1) * size), Cg, Q, stats)
        return
    per_row, _, _ = rows_plan(P, L)
    for s in prange(S):
        _slice_grad_sums(dyf, xf, as_index(s), P, G, Cg, Q, per_row, stats)


# --------------------------------------------------------------------------
# The kernels: each body above compiled twice, with prange running in
# parallel and as a plain range.  They are spelled out as top-level functions
# because kernels made by a factory never hit Numba's on-disk cache.
# The forward and backward bodies get the statistics kernel to call (the
# parallel one or the serial twin) rather than inlining its body: every
# ``prange`` of a parallel kernel is compiled through Numba's gufunc wrapper
# layers, so an inlined statistics body cost each kernel its compile again.


@njit(parallel=True, **KERNEL_OPTIONS)
def rows_moments(xf, N, P, G, Cg, Q, eps, stats):
    """Fill (count, mean, invstd, m2) of ``stats`` for every slice, in parallel."""
    _rows_moments_body(xf, N, P, G, Cg, Q, eps, stats)


@njit(**KERNEL_OPTIONS)
def rows_moments_serial(xf, N, P, G, Cg, Q, eps, stats):
    """Single-threaded twin of :func:`rows_moments`: the same parts in the same
    order, so the same bits (used for small inputs, busy or forked callers)."""
    _rows_moments_body(xf, N, P, G, Cg, Q, eps, stats)


@njit(parallel=True, **KERNEL_OPTIONS)
def rows_forward(xf, yf, N, P, G, Cg, Q, gamma, beta, eps, stats, given):
    """y = (x - mean) * invstd * gamma + beta for every slice, in parallel."""
    _rows_forward_body(xf, yf, N, P, G, Cg, Q, gamma, beta, eps, stats, given, rows_moments)


@njit(**KERNEL_OPTIONS)
def rows_forward_serial(xf, yf, N, P, G, Cg, Q, gamma, beta, eps, stats, given):
    """Single-threaded twin of :func:`rows_forward`: the same parts in the same
    order, so the same bits (used for small inputs, busy or forked callers)."""
    _rows_forward_body(xf, yf, N, P, G, Cg, Q, gamma, beta, eps, stats, given, rows_moments_serial)


@njit(parallel=True, **KERNEL_OPTIONS)
def rows_backward(dyf, xf, dxf, N, P, G, Cg, Q, gamma, eps, stats, given):
    """dx and the per-channel sums for every slice, in parallel."""
    _rows_backward_body(dyf, xf, dxf, N, P, G, Cg, Q, gamma, eps, stats, given, rows_moments)


@njit(**KERNEL_OPTIONS)
def rows_backward_serial(dyf, xf, dxf, N, P, G, Cg, Q, gamma, eps, stats, given):
    """Single-threaded twin of :func:`rows_backward`: the same parts in the same
    order, so the same bits (used for small inputs, busy or forked callers)."""
    _rows_backward_body(dyf, xf, dxf, N, P, G, Cg, Q, gamma, eps, stats, given, rows_moments_serial)


@njit(parallel=True, **KERNEL_OPTIONS)
def rows_grad_sums(dyf, xf, N, P, G, Cg, Q, stats):
    """Fill (sum_dy, sum_dy_xc) of ``stats`` from its mean row, in parallel."""
    _rows_grad_sums_body(dyf, xf, N, P, G, Cg, Q, stats)


@njit(**KERNEL_OPTIONS)
def rows_grad_sums_serial(dyf, xf, N, P, G, Cg, Q, stats):
    """Single-threaded twin of :func:`rows_grad_sums`: the same parts in the same
    order, so the same bits (used for small inputs, busy or forked callers)."""
    _rows_grad_sums_body(dyf, xf, N, P, G, Cg, Q, stats)
