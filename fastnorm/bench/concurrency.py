"""Concurrency (issue 5): N Python threads calling at once vs the same calls in sequence."""

from __future__ import annotations

import statistics
import threading
import time

import numpy as np

import fastnorm

from .cases import Case, make_inputs

__all__ = ["CONCURRENCY_JOBS", "QUICK_JOBS", "run_concurrency"]

#: (shape, axis, dtype, op) of the mixed calls each thread makes.
CONCURRENCY_JOBS = (
    ((1, 16, 32, 32), 1, "float32", "forward"),
    ((2, 32, 64, 64), 1, "float32", "forward"),
    ((2, 32, 32, 64), -1, "float32", "forward"),
    ((1, 32, 64, 64), 1, "float64", "forward"),
    ((2, 16, 64, 64), 1, "float32", "backward"),
    ((1, 8, 32, 32), 1, "float64", "backward"),
)
QUICK_JOBS = (
    ((1, 4, 8, 8), 1, "float32", "forward"),
    ((1, 8, 8, 4), -1, "float32", "forward"),
    ((1, 4, 8, 8), 1, "float64", "backward"),
)


def _job(shape, axis, dtype, op, seed):
    """A public-API call writing into its own output; returns (call, output)."""
    case = Case("job", shape, axis, np.dtype(dtype))
    inp = make_inputs(case, seed)
    out = np.empty_like(inp.x)
    if op == "forward":
        return (
            lambda: fastnorm.instance_norm(inp.x, inp.gamma, inp.beta, axis=axis, out=out),
            out,
        )
    return (
        lambda: fastnorm.instance_norm_backward(inp.dy, inp.x, inp.gamma, axis=axis, out=out),
        out,
    )


def _run_threads(worklists: list) -> float:
    """Each worklist in its own thread, started together; wall seconds."""
    barrier = threading.Barrier(len(worklists) + 1)

    def work(calls):
        barrier.wait()
        for call in calls:
            call()

    threads = [threading.Thread(target=work, args=(w,)) for w in worklists]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - start


def _run_sequential(worklists: list) -> float:
    start = time.perf_counter()
    for calls in worklists:
        for call in calls:
            call()
    return time.perf_counter() - start


def run_concurrency(n_threads: int, calls_per_thread: int, rounds: int, jobs, progress) -> dict:
    """Throughput of ``n_threads`` concurrent callers vs the same calls in sequence.

    Every thread gets its own inputs and outputs and makes
    ``calls_per_thread`` calls cycling through ``jobs``.  Sequential and
    concurrent runs alternate for ``rounds`` rounds; the medians are
    reported, and the outputs of both runs are compared bit for bit.
    """
    worklists, outputs = [], []
    for t in range(n_threads):
        made = [_job(*jobs[i % len(jobs)], seed=t * 1000 + i) for i in range(calls_per_thread)]
        worklists.append([call for call, _ in made])
        outputs.extend(out for _, out in made)
    _run_sequential(worklists)  # compile/load every specialization
    expected = [out.copy() for out in outputs]
    seq, conc = [], []
    for r in range(rounds):
        progress(f"concurrency: round {r + 1}/{rounds}")
        seq.append(_run_sequential(worklists))
        conc.append(_run_threads(worklists))
    identical = all(
        np.array_equal(a, b, equal_nan=True) for a, b in zip(outputs, expected, strict=True)
    )
    n_calls = n_threads * calls_per_thread
    seq_s, conc_s = statistics.median(seq), statistics.median(conc)
    return {
        "threads": n_threads,
        "calls": n_calls,
        "jobs": [[list(s), a, d, op] for s, a, d, op in jobs],
        "sequential_seconds": seq_s,
        "concurrent_seconds": conc_s,
        "sequential_calls_per_s": n_calls / seq_s,
        "concurrent_calls_per_s": n_calls / conc_s,
        "ratio": seq_s / conc_s,
        "identical": identical,
    }
