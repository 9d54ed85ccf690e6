"""Workloads run in subprocesses by test_service.py (an abort fails a test, not the run).

Usage: ``python _service_workers.py MODE [ARGS]``; prints ``OK`` and exits 0 on success.
"""

from __future__ import annotations

import os
import sys
import threading

import numpy as np


def _cases():
    """Mixed shapes/dtypes: serial-size and parallel-size, row and column kernels."""
    rng = np.random.default_rng(7)
    cases = []
    for dtype in (np.float32, np.float64):
        for shape, axis in (
            ((1, 3, 16, 16), 1),  # serial rows
            ((2, 16, 16, 3), -1),  # serial columns
            ((2, 4, 96, 96), 1),  # parallel rows (73728 elements)
            ((2, 48, 48, 16), -1),  # parallel columns
        ):
            x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
            dy = rng.standard_normal(shape).astype(dtype)
            c = shape[axis]
            g = rng.standard_normal(c).astype(dtype)
            b = rng.standard_normal(c).astype(dtype)
            cases.append((x, dy, g, b, axis))
    return cases


def _compute(fastnorm, case, op):
    x, dy, g, b, axis = case
    if op == 0:
        out = np.empty_like(x)
        fastnorm.instance_norm(x, g, b, axis=axis, out=out)
        return (out,)
    if op == 1:
        return fastnorm.instance_norm_backward(dy, x, g, axis=axis)
    return fastnorm.instance_norm_stats(x, axis=axis)


def _same(a, b):
    return all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))


def threads(n_threads: int = 8, calls: int = 500) -> None:
    """n_threads x calls on mixed cases; every result bit-identical to a 1-thread run."""
    import fastnorm

    cases = _cases()
    work = [(i, op) for i in range(len(cases)) for op in range(3)]
    expected = {key: _compute(fastnorm, cases[key[0]], key[1]) for key in work}
    errors = []
    start = threading.Barrier(n_threads)

    def run(seed):
        rng = np.random.default_rng(seed)
        start.wait()
        for k in rng.integers(0, len(work), calls):
            key = work[k]
            if not _same(_compute(fastnorm, cases[key[0]], key[1]), expected[key]):
                errors.append(key)
                return

    pool = [threading.Thread(target=run, args=(s,)) for s in range(n_threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        sys.exit(f"mismatch in {errors[:5]}")
    print("layer", fastnorm.threading_layer())


def _fork_task(i):
    import fastnorm

    case = _cases()[i]
    return _compute(fastnorm, case, 0), _compute(fastnorm, case, 2)


def fork() -> None:
    """Warm up and run parallel kernels, then fork: os.fork and a fork Pool."""
    import multiprocessing

    import fastnorm

    fastnorm.warmup(dtypes=("float32",), layouts=("NCHW",), backward=False)
    idx = [i for i, c in enumerate(_cases()) if c[0].size > 65536]
    expected = {i: _fork_task(i) for i in idx}  # parallel kernels run in the parent

    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            for i in idx:
                got = _fork_task(i)
                if not all(_same(a, b) for a, b in zip(got, expected[i], strict=True)):
                    code = 3
        except BaseException:
            code = 4
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"os.fork child failed: {os.waitstatus_to_exitcode(status)}")

    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as pool:
        results = pool.map(_fork_task, idx)
    for i, got in zip(idx, results, strict=True):
        if not all(_same(a, b) for a, b in zip(got, expected[i], strict=True)):
            sys.exit(f"pool result {i} differs")
    # the parent still runs parallel kernels afterwards
    if not all(_same(a, b) for a, b in zip(_fork_task(idx[0]), expected[idx[0]], strict=True)):
        sys.exit("parent result differs after fork")
    print("layer", fastnorm.threading_layer())


def cold() -> None:
    """One parallel-size forward checked against the reference."""
    import fastnorm
    from fastnorm.reference import instance_norm_ref

    dtype = np.float64 if os.getpid() % 2 else np.float32
    rng = np.random.default_rng(1)
    for shape in ((2, 4, 96, 96),):  # parallel kernel (and its helpers) only: keep it short
        x = rng.standard_normal(shape).astype(dtype)
        y = fastnorm.instance_norm(x)
        ref = instance_norm_ref(x)
        tol = 1e-5 if dtype == np.float32 else 1e-12
        if not np.allclose(y, ref, rtol=tol, atol=tol):
            sys.exit(f"wrong result for {shape} {dtype}")
    print("cache", fastnorm.runtime.cache_dir())


if __name__ == "__main__":
    mode = sys.argv[1]
    {"threads": threads, "fork": fork, "cold": cold}[mode](*map(int, sys.argv[2:]))
    print("OK")
