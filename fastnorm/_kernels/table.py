"""The per-slice ``stats`` table every kernel reads and fills (Numba only).

``stats`` has shape (STATS_COLUMNS, N * C): float64 rows
``(count, mean, invstd, sum_dy, sum_dy_xc, m2)``, one column per (sample,
channel) slice ``s = n * C + c``.  A kernel's ``given`` level says how many
leading rows are inputs; it computes the others.  Each quantity is
contiguous, so (N, C) arrays move in and out with plain copies (the
transposed table made a 32768-slice backward spend 90 us on strided copies).
"""

from __future__ import annotations

from numba import njit

from .common import KERNEL_OPTIONS

COUNT, MEAN, INVSTD, SUM_DY, SUM_DYXC, M2 = 0, 1, 2, 3, 4, 5
#: Columns of the per-slice ``stats`` table.
STATS_COLUMNS = 6


@njit(**KERNEL_OPTIONS)
def fill_given_stats(stats, count, mean, invstd):
    """Set the given rows (count, mean, invstd) from flat (N * C,) arrays."""
    for s in range(stats.shape[1]):
        stats[COUNT, s] = count
        stats[MEAN, s] = mean[s]
        stats[INVSTD, s] = invstd[s]


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
