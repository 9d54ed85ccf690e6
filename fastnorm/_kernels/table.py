"""The per-channel ``stats`` table every kernel reads and fills (Numba only).

A *slice* is what one mean and variance describe: a (sample, group) pair,
where a group is ``Cg`` consecutive channels (instance norm: ``Cg == 1``).
``stats`` has shape (STATS_COLUMNS, N * C): float64 rows
``(count, mean, invstd, sum_dy, sum_dy_xc, m2)``, one column per (sample,
channel) ``n * C + c``.  The slice quantities (count, mean, invstd, m2) are
repeated in every column of the slice's channels, so that everything
downstream (coefficients, parameter gradients, the Dask merge) indexes by
channel alone; the sums ``sum_dy = sum(dy)`` and ``sum_dy_xc = sum(dy * (x -
mean))`` are per channel, with ``mean`` the slice's mean.  The columns of
slice ``s`` are ``[s * Cg, (s + 1) * Cg)``.

A kernel's ``given`` level says how many leading rows are inputs; it
computes the others.  Each quantity is contiguous, so (N, C) arrays move in
and out with plain copies (the transposed table made a 32768-slice backward
spend 90 us on strided copies).
"""

from __future__ import annotations

from numba import njit

from .common import KERNEL_OPTIONS, backward_coefficients, forward_coefficients, inverse_std

COUNT, MEAN, INVSTD, SUM_DY, SUM_DYXC, M2 = 0, 1, 2, 3, 4, 5

# The slice helpers are plain calls, not inlined: inlined into every path of
# every kernel their loops made the cold compile of the row and column
# backwards about 30% longer.  The one-channel helpers are inlined: the
# short-slice loops call them per slice, where a call per 4- to 64-element
# slice made instance norm 1.5-3.7x slower.
#: Rows of the per-channel ``stats`` table.
STATS_COLUMNS = 6


@njit(inline="always", **KERNEL_OPTIONS)
def set_moments(stats, c0, Cg, count, mean, m2, eps):
    """Store a slice's (count, mean, invstd, m2) in its Cg columns from c0."""
    invstd = inverse_std(count, m2, eps)
    for c in range(c0, c0 + Cg):
        stats[COUNT, c] = count
        stats[MEAN, c] = mean
        stats[INVSTD, c] = invstd
        stats[M2, c] = m2


@njit(**KERNEL_OPTIONS)
def store_moments(stats, s0, count, mean, m2, eps):
    """set_moments for one-channel slices s0, s0 + 1, ... in one loop across
    them (the square roots and divisions vectorize instead of each slice
    waiting for its own)."""
    n = mean.shape[0]
    counts = stats[COUNT, s0 : s0 + n]
    means = stats[MEAN, s0 : s0 + n]
    invstds = stats[INVSTD, s0 : s0 + n]
    m2s = stats[M2, s0 : s0 + n]
    for i in range(n):
        counts[i] = count
        means[i] = mean[i]
        invstds[i] = inverse_std(count, m2[i], eps)
        m2s[i] = m2[i]


@njit(inline="always", **KERNEL_OPTIONS)
def channel_forward_coefficients(stats, c, gamma_c, beta_c, coef):
    """Forward coefficients of a one-channel slice at column c."""
    forward_coefficients(stats[MEAN, c], stats[INVSTD, c], gamma_c, beta_c, coef, c)


@njit(inline="always", **KERNEL_OPTIONS)
def channel_backward_coefficients(stats, c, gamma_c, coef):
    """Backward coefficients of a one-channel slice at column c (its spread is 0)."""
    count = stats[COUNT, c]
    gdyxc = gamma_c * stats[SUM_DYXC, c] / count
    backward_coefficients(
        count, stats[MEAN, c], stats[INVSTD, c], gamma_c, stats[SUM_DY, c], 0.0, gdyxc, coef, c
    )


@njit(**KERNEL_OPTIONS)
def slice_forward_coefficients(stats, c0, Cg, gamma, beta, p0, coef):
    """Forward coefficients of the Cg channels of the slice at column c0.

    ``p0`` is the slice's first channel within its sample (the index into
    gamma and beta); ``coef`` rows are table columns.
    """
    mean = stats[MEAN, c0]
    invstd = stats[INVSTD, c0]
    for j in range(Cg):
        forward_coefficients(mean, invstd, gamma[p0 + j], beta[p0 + j], coef, c0 + j)


@njit(**KERNEL_OPTIONS)
def slice_backward_coefficients(stats, c0, Cg, gamma, p0, coef):
    """Backward coefficients of the Cg channels of the slice at column c0.

    Needs the slice's count, mean and invstd and each channel's sums; see
    :func:`fastnorm._kernels.common.backward_coefficients`.
    """
    if Cg == 1:
        channel_backward_coefficients(stats, c0, gamma[p0], coef)
        return
    count = stats[COUNT, c0]
    mean = stats[MEAN, c0]
    invstd = stats[INVSTD, c0]
    channel_count = count / Cg
    # Gamma-weighted means over the slice: gdy = (1/Cg) sum_c gamma_c
    # mean_c(dy) and gdyxc = sum_c gamma_c sum_dy_xc_c / count, and each
    # channel's spread gamma_c * mean_c(dy) - gdy (0 for one channel).
    gdy = 0.0
    gdyxc = 0.0
    for j in range(Cg):
        gm = gamma[p0 + j]
        gdy += gm * (stats[SUM_DY, c0 + j] / channel_count)
        gdyxc += gm * stats[SUM_DYXC, c0 + j]
    gdy /= Cg
    gdyxc /= count
    for j in range(Cg):
        gm = gamma[p0 + j]
        sum_dy = stats[SUM_DY, c0 + j]
        spread = gm * (sum_dy / channel_count) - gdy
        backward_coefficients(channel_count, mean, invstd, gm, sum_dy, spread, gdyxc, coef, c0 + j)


@njit(**KERNEL_OPTIONS)
def fill_given_stats(stats, count, mean, invstd, Cg):
    """Set the given rows (count, mean, invstd) from flat (N * G,) arrays."""
    for s in range(mean.shape[0]):
        for c in range(s * Cg, (s + 1) * Cg):
            stats[COUNT, c] = count
            stats[MEAN, c] = mean[s]
            stats[INVSTD, c] = invstd[s]


@njit(**KERNEL_OPTIONS)
def channel_gradients(stats, dgamma, dbeta):
    """dgamma[c] = sum over samples of sum_dy_xc * invstd; dbeta[c] of sum_dy.

    Fills float64 (C,) arrays, summing samples in order.
    """
    C = dgamma.shape[0]
    dgamma[:] = 0.0
    dbeta[:] = 0.0
    for base in range(0, stats.shape[1], C):
        for c in range(C):
            dgamma[c] += stats[SUM_DYXC, base + c] * stats[INVSTD, base + c]
            dbeta[c] += stats[SUM_DY, base + c]
