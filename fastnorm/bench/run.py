"""Running the benchmark: kernels compiled ahead, every case timed on every library."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys

import numpy as np

import fastnorm
from fastnorm.reference import instance_norm_backward_ref, instance_norm_ref

from .cases import EPS, TOLERANCE, Case, make_inputs
from .peers import Calls, available_libraries
from .timing import interleave, median_ratio

__all__ = ["compile_ahead", "machine", "run_benchmark", "run_case", "set_threads"]


def _error(result, ref: np.ndarray) -> float:
    """Max absolute error relative to ``max(1, max|ref|)``."""
    diff = np.max(np.abs(np.asarray(result, dtype=np.float64) - ref))
    return float(diff / max(1.0, float(np.max(np.abs(ref)))))


def _check(calls: Calls, refs: tuple, dtype: np.dtype) -> dict:
    errors = [_error(r, ref) for r, ref in zip(calls.results(), refs, strict=True) if r is not None]
    worst = max(errors)
    return {"match": bool(worst <= TOLERANCE[dtype]), "max_error": worst}


_OPS = {  # op -> (floor key, bytes moved per call in units of x.nbytes)
    "forward": ("forward", 2),
    "fresh": ("forward", 2),
    "backward": ("backward", 3),
}


def _summarize(case: Case, times: dict, checks: dict) -> dict:
    results = {}
    for (lib, op), samples in times.items():
        floor_key, moved = _OPS[op]
        seconds = statistics.median(samples)
        entry = results.setdefault(lib, {})
        entry[op] = {
            "seconds": seconds,
            "gbps": moved * case.nbytes / seconds / 1e9,
            "ratio": median_ratio(samples, times[("floor", floor_key)]),
        }
    for lib, check in checks.items():
        results[lib].update(check)
    return results


def run_case(case: Case, libraries, threads: int, rounds: int, min_time: float, progress) -> dict:
    """Time every library on one case; return its JSON-ready record."""
    inp = make_inputs(case)
    refs = (
        instance_norm_ref(inp.x, inp.gamma, inp.beta, axis=case.axis, eps=EPS),
        instance_norm_backward_ref(inp.dy, inp.x, inp.gamma, axis=case.axis, eps=EPS)[0],
    )
    floor_out = np.empty_like(inp.x)
    fns = {
        ("floor", "forward"): lambda: np.copyto(floor_out, inp.x),
        ("floor", "backward"): lambda: np.add(inp.dy, inp.x, out=floor_out),
    }
    checks, unavailable = {}, {}
    for lib in libraries:
        progress(f"{case.shape_text} {case.dtype}: preparing {lib.name}")
        calls = lib.prepare(case, inp, threads)
        if isinstance(calls, str):
            unavailable[lib.name] = calls
            continue
        checks[lib.name] = _check(calls, refs, case.dtype)
        for op in ("forward", "fresh", "backward"):
            if getattr(calls, op) is not None:
                fns[(lib.name, op)] = getattr(calls, op)

    def on_round(r):
        progress(f"{case.shape_text} {case.dtype}: round {r + 1}/{rounds}")

    times = interleave(fns, rounds, min_time, on_round)
    return {
        "case": case.name,
        "shape": list(case.shape),
        "axis": case.axis,
        "layout": case.layout,
        "dtype": str(case.dtype),
        "bytes": case.nbytes,
        "results": _summarize(case, times, checks),
        "unavailable": unavailable,
    }


# --------------------------------------------------------------------------
# machine


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _threading_layer() -> str:
    import numba

    try:
        return numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet
        return "not initialized"


def set_threads(n: int) -> None:
    import numba

    setter = getattr(fastnorm, "set_num_threads", None) or numba.set_num_threads
    setter(n)


def machine(threads: int) -> dict:
    return {
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "threading_layer": _threading_layer(),
    }


#: Rough compile time of one (dtype, family) kernel set, in units of the rows set.
_COMPILE_COST = {"rows": 1, "columns": 2}


def compile_ahead(cases, processes: int = 2) -> list[list[tuple[str, str]]]:
    """Load or compile the kernels the cases use, in several processes at once.

    On a fresh machine the default cases compile about 50 s of kernels on
    one core, more than the benchmark itself; the kernel sets of different
    (dtype, family) pairs compile independently into the shared on-disk
    cache (its writes are locked), so ``processes`` workers take a fraction
    of that and the benchmark then loads them.  With a warm cache this costs
    about a second.  Nothing happens when kernels are not cached or a single
    core is available; a worker that fails only means compiling later.

    Returns
    -------
    list of list of (dtype, layout name)
        The work of each worker process (empty when nothing ran).
    """
    from fastnorm import functional, runtime

    processes = min(processes, os.cpu_count() or 1)
    if runtime.cache_dir() is None or processes < 2:
        return []
    sets = {}
    for case in cases:
        family = functional._plan_layout(case.shape, case.axis).family
        layout = "channels_last" if family == "columns" else "channels_first"
        sets[(str(case.dtype), layout)] = _COMPILE_COST[family]
    groups: list[list] = [[] for _ in range(min(processes, len(sets)))]
    loads = [0] * len(groups)
    for key in sorted(sets, key=lambda k: -sets[k]):  # largest first, to the least loaded
        i = loads.index(min(loads))
        groups[i].append(key)
        loads[i] += sets[key]
    workers = []
    for group in groups:
        calls = "; ".join(f"fastnorm.warmup(dtypes=[{d!r}], layouts=[{lay!r}])" for d, lay in group)
        try:
            workers.append(
                subprocess.Popen(
                    [sys.executable, "-c", f"import fastnorm; {calls}"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        except OSError:  # no interpreter to start: compile in this process later
            break
    for worker in workers:
        worker.wait()
    return groups if len(workers) == len(groups) else []


def run_benchmark(cases, threads: int, rounds: int, min_time: float, progress) -> dict:
    """Run every case on every available library; the JSON-ready report."""
    progress("loading or compiling kernels (a first run compiles them, about 30 s)")
    compile_ahead(cases)
    libraries, skipped = available_libraries()
    records = []
    for i, case in enumerate(cases):
        progress(f"[{i + 1}/{len(cases)}] {case.shape_text} {case.dtype}: starting")
        record = run_case(case, libraries, threads, rounds, min_time, progress)
        record["shape_text"] = case.shape_text
        records.append(record)
    return {
        "fastnorm": fastnorm.__version__,
        "machine": machine(threads),
        "threads": threads,
        "rounds": rounds,
        "versions": _versions(libraries),
        "skipped": skipped,
        "cases": records,
    }


def _versions(libraries) -> dict:
    versions = {}
    for lib in libraries:
        module = sys.modules.get(lib.module or lib.name)
        versions[lib.name] = getattr(module, "__version__", None)
    return versions
