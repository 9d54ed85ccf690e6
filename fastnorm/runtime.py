"""Process-wide runtime concerns: threading layer, thread count, warmup."""

from __future__ import annotations


def call_parallel(parallel, serial, *args):
    """Run a parallel kernel; every parallel launch in fastnorm comes here.

    ``serial`` is a single-threaded kernel with the same arguments and the
    same results, or None when the operation has none.
    """
    return parallel(*args)
