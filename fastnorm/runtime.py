"""Process-wide runtime concerns: threading layer, thread count, warmup."""

from __future__ import annotations


def call_parallel(parallel, serial, *args):
    """Run a parallel kernel (the single place where parallel kernels start)."""
    return parallel(*args)
