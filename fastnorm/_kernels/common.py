"""Building blocks shared by the kernel families (Numba only).

Every reduction accumulates in float64.  Statistics use blocked Welford:
each block of at most ``BLOCK`` elements gets its mean and M2 from one
vectorized sweep of shifted sums, and blocks are merged with Chan et al.'s
pairwise formula on (count, mean, M2).  The split into blocks and
parts depends only on the shape, never on the thread count, so results are
bit-identical for any number of threads.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

#: Elements per Welford block (measured: 4096 was 12% faster than 1024).
BLOCK = 4096
#: Elements per part when a slice is split between tasks; a part of x and
#: its output fit in a 2 MiB L2, so a slice of at most PART elements is
#: read from memory once (statistics and normalization fused).
PART = 131072

#: Elements per wave: when slices need several parts, the statistics and the
#: output of about this much data are computed back to back, so the second
#: pass finds x in cache (2 MiB of float32, half of it in each core's L2).
WAVE = 4 * PART

#: Reductions vectorize only with ``reassoc``; these flags keep NaN/Inf.
REDUCE_FLAGS = {"reassoc", "contract", "nsz"}
#: Element-wise passes rely on their rounding order: no ``reassoc`` there.
ELEMENTWISE_FLAGS = {"contract", "nsz"}

#: Options every kernel shares (``cache`` so services skip the JIT).
KERNEL_OPTIONS = {"nogil": True, "cache": True, "error_model": "numpy"}


@njit(inline="always", **KERNEL_OPTIONS)
def as_index(i):
    """``i`` as a plain int64, for an index passed to a compiled helper.

    Numba compiles a helper once per argument type, and a literal constant
    (``0``) or a ``prange`` index (uint64 in a parallel kernel, int64 in its
    serial twin) is a type of its own: most helpers of the row and column
    families were compiled twice, a sixth of their cold compile.
    """
    return np.int64(i)


@njit(fastmath=REDUCE_FLAGS, **KERNEL_OPTIONS)
def block_moments(w):
    """Mean and M2 of a non-empty contiguous block, in one float64 sweep.

    Sums of ``d = w - w[0]`` and ``d * d`` are taken together (one read and
    one conversion per element: 1.6x faster than a sweep for the mean and
    one for M2).  Shifting by an element of the block bounds the
    cancellation in ``M2 = sum(d * d) - sum(d) ** 2 / n``: since
    ``(w[0] - mean) ** 2 <= M2``, ``sum(d * d) <= (n + 1) * M2``, so M2 keeps
    all but log2(n + 1) bits.  A constant block gives exactly its value as
    mean and M2 = 0; large offsets cancel before summing.
    """
    n = w.shape[0]
    x0 = np.float64(w[0])  # float() would keep float32
    s = 0.0
    s2 = 0.0
    for i in range(n):
        d = w[i] - x0
        s += d
        s2 += d * d
    return shifted_moments(x0, s, s2, n)


@njit(inline="always", **KERNEL_OPTIONS)
def shifted_moments(x0, s, s2, n):
    """(mean, M2) of n elements from s = sum(x - x0) and s2 = sum((x - x0) ** 2)."""
    shift = s / n
    m2 = s2 - s * shift
    if m2 < 0.0:  # rounding; a NaN passes through
        m2 = 0.0
    elif m2 != m2 and abs(s) < math.inf:
        # Finite data whose squares overflow float64 (|x| > 1e154): the
        # variance is inf, as a two-pass sum would say; inf - inf is no NaN input.
        m2 = math.inf
    return x0 + shift, m2


@njit(inline="always", **KERNEL_OPTIONS)
def chan_merge(na, ma, m2a, nb, mb, m2b):
    """Merge (count, mean, M2) of b into a (Chan, Golub & LeVeque).

    Merging into an empty state (``na == 0``) returns b exactly, so a slice
    split into one part gives the same bits as an unsplit one; ``d * (d *
    w)`` keeps that true when ``d * d`` overflows (inf * 0 would be NaN).
    """
    n = na + nb
    f = nb / n
    d = mb - ma
    return n, ma + d * f, m2a + m2b + d * (d * (na * f))


@njit(fastmath=REDUCE_FLAGS, **KERNEL_OPTIONS)
def block_grad_sums(g, w, mean):
    """sum(g) and sum(g * (w - mean)) of a contiguous block, in float64."""
    a = 0.0
    b = 0.0
    for i in range(w.shape[0]):
        gi = g[i]
        a += gi
        b += gi * (w[i] - mean)
    return a, b


@njit(inline="always", **KERNEL_OPTIONS)
def inverse_std(count, m2, eps):
    """1 / sqrt(population variance + eps)."""
    return 1.0 / math.sqrt(m2 / count + eps)


@njit(inline="always", **KERNEL_OPTIONS)
def forward_coefficients(mean, invstd, gamma, beta, coef, s):
    """Store (mean_hi, scale, shift) for slice ``s`` in the data dtype.

    The output is ``(x - mean_hi) * scale + shift``.  ``mean_hi`` is the
    float64 mean rounded to the data dtype, so ``x - mean_hi`` is exact for
    x near the mean; the rounding remainder ``mean - mean_hi`` moves into
    ``shift``.  A constant slice therefore gives exactly ``beta``, which the
    shortcut ``x * scale + (beta - mean * scale)`` does not.
    """
    scale = gamma * invstd
    coef[s, 0] = mean
    mean_hi = coef[s, 0]
    coef[s, 1] = scale
    coef[s, 2] = beta - (mean - mean_hi) * scale


@njit(inline="always", **KERNEL_OPTIONS)
def backward_coefficients(channel_count, mean, invstd, gamma, sum_dy, spread, gdyxc, coef, s):
    """Store (mean_hi, a, k, mdy_hi, e) for channel row ``s`` in the data dtype.

    For a slice (one or more channels sharing mean and invstd) the gradient
    is ``dx = invstd * (gamma_c * dy - gdy - (x - mean) * invstd**2 * gdyxc)``
    with ``gdy = mean(gamma * dy)`` and ``gdyxc = mean(gamma * dy * (x -
    mean))`` over the slice.  It is evaluated as::

        dx = a * (dy - mdy_hi) + ((x - mean_hi) * k + e)

    with ``a = gamma_c * invstd``, ``mdy`` the channel's mean of dy and the
    rounding remainders of the means folded into ``e``, so the two
    differences are exact near the means: a one-element slice gets dx
    exactly 0, and a constant slice ``a * (dy - mean(dy))``.  ``spread`` is
    ``gamma_c * mdy - gdy``, exactly 0 for a slice of one channel (computed
    by the caller: LLVM contracts a product minus its own rounding into an
    FMA, which leaves the rounding error, 1e-14 in dx, instead of 0).
    """
    a = gamma * invstd
    # invstd 0 (an infinite variance): dx is 0, even where gdyxc overflowed.
    k = -gdyxc * (invstd * invstd * invstd) if invstd != 0.0 else 0.0
    mdy = sum_dy / channel_count
    coef[s, 0] = mean
    mean_hi = coef[s, 0]
    coef[s, 1] = a
    coef[s, 2] = k
    coef[s, 3] = mdy
    mdy_hi = coef[s, 3]
    coef[s, 4] = -a * (mdy - mdy_hi) + invstd * spread + k * (mean_hi - mean)


@njit(inline="always", **KERNEL_OPTIONS)
def standardize_coefficients(mean, invstd, coef, s):
    """Store (mean_hi, invstd, r) for slice ``s`` in the data dtype.

    For an affine that varies inside a slice (layer norm's gamma[j]) the
    output is ``((x - mean_hi) * invstd + r) * gamma[j] + beta[j]``, with
    the rounding remainder of the mean in ``r``: a constant slice gives
    exactly beta, as in :func:`forward_coefficients`.
    """
    coef[s, 0] = mean
    mean_hi = coef[s, 0]
    coef[s, 1] = invstd
    coef[s, 2] = -(mean - mean_hi) * invstd


@njit(inline="always", **KERNEL_OPTIONS)
def affine_backward_coefficients(count, mean, invstd, sum_u, sum_uxc, coef, s):
    """Store (mean_hi, invstd, k, mu_hi, e) for slice ``s`` in the data dtype.

    With ``u = gamma[j] * dy`` rounded to the data dtype (as the element
    pass computes it), ``dx = invstd * (u - mean(u) - (x - mean) * invstd**2
    * mean(u * (x - mean)))``, evaluated as::

        dx = invstd * (u - mu_hi) + ((x - mean_hi) * k + e)

    so a one-element slice gets dx exactly 0.
    """
    mu = sum_u / count
    # invstd 0 (an infinite variance): dx is 0, even where sum_uxc overflowed.
    k = -(sum_uxc / count) * (invstd * invstd * invstd) if invstd != 0.0 else 0.0
    coef[s, 0] = mean
    mean_hi = coef[s, 0]
    coef[s, 1] = invstd
    coef[s, 2] = k
    coef[s, 3] = mu
    mu_hi = coef[s, 3]
    coef[s, 4] = -invstd * (mu - mu_hi) + k * (mean_hi - mean)


@njit(inline="always", **KERNEL_OPTIONS)
def standardized_affine(x, mean_hi, invstd, r, gamma, beta):
    """One output element of :func:`standardize_coefficients` (inlined)."""
    return ((x - mean_hi) * invstd + r) * gamma + beta


@njit(inline="always", **KERNEL_OPTIONS)
def affine_backward_value(u, x, mean_hi, invstd, k, mu_hi, e):
    """One element of dx from :func:`affine_backward_coefficients` (inlined)."""
    return invstd * (u - mu_hi) + ((x - mean_hi) * k + e)


@njit(inline="always", **KERNEL_OPTIONS)
def normalized(x, mean_hi, scale, shift):
    """One output element of the forward, from :func:`forward_coefficients`.

    Inlined into every element-wise loop, which must compile with
    ``ELEMENTWISE_FLAGS`` (an inlined function takes its caller's flags).
    """
    return (x - mean_hi) * scale + shift


@njit(inline="always", **KERNEL_OPTIONS)
def backward_value(g, x, mean_hi, a, k, mdy_hi, e):
    """One element of dx, from :func:`backward_coefficients` (inlined as above)."""
    return a * (g - mdy_hi) + ((x - mean_hi) * k + e)
