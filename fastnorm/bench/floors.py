"""The parallel memory floor: the floors' copy and add split between the threads.

``np.copyto`` and ``np.add`` (the benchmark's floors) run on one core.  Two
cores move memory faster than one: on the project's 2 vCPU AMD EPYC, the
copy and the add split between two threads took 0.5-0.7x the time of
``np.copyto`` and ``np.add`` on the default cases (1-16 MiB), in the
benchmark's interleaved rounds.  These kernels show that
distance per case, so "near the floor" can be judged against what the
threads fastnorm uses can reach, not only against one core.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

__all__ = ["parallel_add", "parallel_copy", "parallel_floor_calls"]


@njit(parallel=True, nogil=True, cache=True)
def parallel_copy(x, out, tasks):
    """``out[:] = x`` (flat arrays) in ``tasks`` contiguous chunks."""
    n = x.size
    for t in prange(tasks):
        start = t * n // tasks
        stop = (t + 1) * n // tasks
        out[start:stop] = x[start:stop]


@njit(parallel=True, nogil=True, cache=True)
def parallel_add(a, b, out, tasks):
    """``out[:] = a + b`` (flat arrays) in ``tasks`` contiguous chunks."""
    n = a.size
    for t in prange(tasks):
        start = t * n // tasks
        stop = (t + 1) * n // tasks
        # Chunks as arrays of their own: indexing the whole arrays with the
        # chunk's bounds left the loop scalar (2.4x np.add's time).
        a_t = a[start:stop]
        b_t = b[start:stop]
        out_t = out[start:stop]
        for i in range(stop - start):
            out_t[i] = a_t[i] + b_t[i]


def parallel_floor_calls(x: np.ndarray, dy: np.ndarray, out: np.ndarray, threads: int):
    """(forward, backward) callables of the parallel floor on ``threads`` threads,
    or None when the arrays are not C-contiguous float32/float64 (the kernels
    take flat arrays of the compiled dtypes)."""
    arrays = (x, dy, out)
    if x.dtype not in (np.float32, np.float64) or not all(a.flags.c_contiguous for a in arrays):
        return None
    if any(a.dtype != x.dtype for a in arrays):
        return None
    xf, dyf, outf = (a.reshape(-1) for a in arrays)
    # Numba's thread count belongs to the calling thread: the benchmark's,
    # where fastnorm applies the same count.  One chunk per thread.
    tasks = max(1, min(threads, numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(tasks)

    def forward():
        parallel_copy(xf, outf, tasks)

    def backward():
        parallel_add(dyf, xf, outf, tasks)

    return forward, backward
