"""The per-slice ``stats`` table every kernel reads and fills (Numba only).

``stats`` has shape (N * C, STATS_COLUMNS), one row per (sample, channel)
slice ``s = n * C + c``, float64 columns
``(count, mean, invstd, sum_dy, sum_dy_xc, m2)``.  A kernel's ``given``
level says how many leading columns are inputs; it computes the others.
The two helpers here move (N, C) arrays in and (C,) gradients out without a
strided NumPy pass per column (those cost more than a small kernel).
"""

from __future__ import annotations

from numba import njit

from .common import KERNEL_OPTIONS

COUNT, MEAN, INVSTD, SUM_DY, SUM_DYXC, M2 = 0, 1, 2, 3, 4, 5
#: Columns of the per-slice ``stats`` table.
STATS_COLUMNS = 6


@njit(**KERNEL_OPTIONS)
def fill_given_stats(stats, count, mean, invstd):
    """Set the given columns (count, mean, invstd) from flat (N * C,) arrays."""
    for s in range(stats.shape[0]):
        stats[s, COUNT] = count
        stats[s, MEAN] = mean[s]
        stats[s, INVSTD] = invstd[s]


@njit(**KERNEL_OPTIONS)
def channel_gradients(stats, dgamma, dbeta):
    """dgamma[c] = sum over samples of sum_dy_xc * invstd; dbeta[c] of sum_dy.

    Fills float64 (C,) arrays, summing samples in order while
    reading the table row by row (a column-strided walk was 5x slower).
    """
    C = dgamma.shape[0]
    dgamma[:] = 0.0
    dbeta[:] = 0.0
    c = 0
    for s in range(stats.shape[0]):
        dgamma[c] += stats[s, SUM_DYXC] * stats[s, INVSTD]
        dbeta[c] += stats[s, SUM_DY]
        c += 1
        if c == C:
            c = 0
