"""Running the benchmark: kernels compiled ahead, every case timed on every library."""

from __future__ import annotations

import math
import os
import platform
import statistics
import sys

import numpy as np

import fastnorm

from .cases import OFFSET, TOLERANCE, Case, Inputs, make_inputs
from .floors import parallel_floor_calls
from .ops import reference_results
from .peers import NOT_PEERS, PARALLEL_FLOOR, Calls, available_libraries
from .timing import interleave, median_ratio

__all__ = [
    "case_from_spec",
    "case_spec",
    "checked_samples",
    "compile_ahead",
    "fastest_peer",
    "kernel_set",
    "machine",
    "run_benchmark",
    "run_case",
    "set_threads",
    "warm",
]


def _error(result, ref: np.ndarray) -> float:
    """Max absolute error relative to ``max(1, max|ref|)``."""
    diff = np.max(np.abs(np.asarray(result, dtype=np.float64) - ref))
    return float(diff / max(1.0, float(np.max(np.abs(ref)))))


#: Results are compared with the float64 reference on their first samples
#: (axis 0), at most this many elements: each sample is normalized on its
#: own, and the reference of the largest case (16M elements) took 8 s.
CHECK_ELEMENTS = 2**20


def checked_samples(case: Case) -> int:
    """How many leading samples of the case are compared with the reference."""
    if case.op == "layer" and case.axis % len(case.shape) == 0:
        return case.shape[0]  # normalized across the samples: all of them
    per_sample = math.prod(case.shape[1:])
    return max(1, min(case.shape[0], CHECK_ELEMENTS // max(per_sample, 1)))


def _head(inp: Inputs, samples: int) -> Inputs:
    return Inputs(inp.x[:samples], inp.dy[:samples], inp.gamma, inp.beta)


def _check(calls: Calls, refs: tuple, dtype: np.dtype) -> dict:
    samples = len(refs[0])
    errors = [
        _error(r[:samples], ref)
        for r, ref in zip(calls.results(), refs, strict=True)
        if r is not None
    ]
    worst = max(errors)
    return {"match": bool(worst <= TOLERANCE[dtype]), "max_error": worst}


def _offset_error(calls: Calls, refs: tuple) -> dict:
    """Max absolute error of (y, dx) on the offset input (no dx: no backward)."""
    samples = len(refs[0])
    y, dx = calls.results()
    errors = {}
    for key, result, ref in (("y", y, refs[0]), ("dx", dx, refs[1])):
        if result is not None:
            diff = np.asarray(result[:samples], dtype=np.float64) - ref
            errors[key] = float(np.max(np.abs(diff)))
    return errors


#: path -> (floor key, bytes moved per call in units of x.nbytes)
_PATHS = {
    "forward": ("forward", 2),
    "fresh": ("forward", 2),
    "backward": ("backward", 3),
}
#: The paths compared with peers, per direction.
DIRECTIONS = {"forward": ("forward", "fresh"), "backward": ("backward",)}


def _summarize(case: Case, times: dict, checks: dict) -> dict:
    results = {}
    for (lib, path), samples in times.items():
        floor_key, moved = _PATHS[path]
        seconds = statistics.median(samples)
        entry = results.setdefault(lib, {})
        entry[path] = {
            "seconds": seconds,
            "gbps": moved * case.nbytes / seconds / 1e9,
            "ratio": median_ratio(samples, times[("floor", floor_key)]),
        }
    for lib, check in checks.items():
        results[lib].update(check)
    return results


def fastest_peer(times: dict) -> dict:
    """fastnorm's speedup over the fastest path of any peer, per direction.

    The forward compares fastnorm's faster path (``out=`` or a fresh array)
    with the fastest forward path of every peer, the backward the backwards;
    "fastest" is the lowest median time.  The speedup is the median over
    rounds of (peer time / fastnorm time) within the round.

    Parameters
    ----------
    times : dict
        (library, path) -> seconds per call in each round, as timed.

    Returns
    -------
    dict
        direction -> {'peer', 'peer_path', 'path', 'speedup'}; a direction is
        missing when fastnorm or every peer lacks it.
    """
    out = {}
    for direction, paths in DIRECTIONS.items():
        ours = [key for key in times if key[0] == "fastnorm" and key[1] in paths]
        theirs = [key for key in times if key[0] not in (*NOT_PEERS, "floor") and key[1] in paths]
        if not ours or not theirs:
            continue
        best = min(ours, key=lambda k: statistics.median(times[k]))
        peer = min(theirs, key=lambda k: statistics.median(times[k]))
        out[direction] = {
            "peer": peer[0],
            "peer_path": peer[1],
            "path": best[1],
            "speedup": median_ratio(times[peer], times[best]),
        }
    return out


def run_case(case: Case, libraries, threads: int, rounds: int, min_time: float, progress) -> dict:
    """Time every library that runs the case's op; return the case's JSON-ready record.

    Each library is also run once on the offset input (``OFFSET + N(0, 1)``)
    and its max absolute error against the float64 reference recorded; both
    comparisons cover the first :func:`checked_samples` samples.
    """
    label = f"{case.op} norm {case.shape_text} {case.dtype}"
    samples = checked_samples(case)
    inp = make_inputs(case)
    refs = reference_results(case, _head(inp, samples))
    offset_inp = make_inputs(case, seed=1, offset=OFFSET)
    offset_refs = reference_results(case, _head(offset_inp, samples))
    floor_out = np.empty_like(inp.x)
    fns = {
        ("floor", "forward"): lambda: np.copyto(floor_out, inp.x),
        ("floor", "backward"): lambda: np.add(inp.dy, inp.x, out=floor_out),
    }
    parallel = parallel_floor_calls(inp.x, inp.dy, floor_out, threads)
    if parallel is not None:
        fns[(PARALLEL_FLOOR, "forward")], fns[(PARALLEL_FLOOR, "backward")] = parallel
    checks, unavailable, notes = {}, {}, {}
    for lib in libraries:
        if case.op not in lib.ops:
            continue
        progress(f"{label}: preparing {lib.name}")
        calls = lib.prepare(case, offset_inp, threads)
        if isinstance(calls, str):
            unavailable[lib.name] = calls
            continue
        offset_error = _offset_error(calls, offset_refs)
        calls = lib.prepare(case, inp, threads)
        checks[lib.name] = {**_check(calls, refs, case.dtype), "offset_error": offset_error}
        if calls.note:
            notes[lib.name] = calls.note
        for path in _PATHS:
            if getattr(calls, path) is not None:
                fns[(lib.name, path)] = getattr(calls, path)
    del offset_inp, offset_refs, refs

    def on_round(r):
        progress(f"{label}: round {r + 1}/{rounds}")

    times = interleave(fns, rounds, min_time, on_round)
    return {
        "op": case.op,
        "title": case.title,
        "groups": case.groups,
        "case": case.name,
        "shape": list(case.shape),
        "axis": case.axis,
        "layout": case.layout,
        "dtype": str(case.dtype),
        "bytes": case.nbytes,
        "checked_samples": samples,
        "results": _summarize(case, times, checks),
        "vs_fastest_peer": fastest_peer(times),
        "unavailable": unavailable,
        "notes": notes,
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


#: Rough compile time of one kernel family, in units of the rows family.
_COMPILE_COST = {"rows": 1, "columns": 2, "affine rows": 1, "affine columns": 2}


def kernel_set(case: Case) -> tuple[str, str]:
    """(dtype, kernel family) of a case: the cases of one set compile the same kernels.

    Instance and group norm share the 'rows' and 'columns' families (chosen
    by :mod:`fastnorm.functional` from the shape alone); layer norm uses the
    affine families, 'affine rows' when the normalized axes are innermost.
    """
    from fastnorm import functional

    if case.op == "layer":
        lay = functional._plan_affine_layout(case.shape, case.axis)
        return str(case.dtype), "affine rows" if lay.B == 1 else "affine columns"
    groups = case.groups if case.op == "group" else None
    return str(case.dtype), functional._plan_layout(case.shape, case.axis, groups).family


def case_spec(case: Case) -> list:
    """The case as JSON-ready values, for a compile worker's command line."""
    return [case.name, list(case.shape), case.axis, str(case.dtype), case.op, case.groups]


def case_from_spec(spec: list) -> Case:
    """The inverse of :func:`case_spec`."""
    name, shape, axis, dtype, op, groups = spec
    return Case(name, tuple(shape), axis, np.dtype(dtype), op, groups)


def warm(specs: list) -> None:
    """Make every fastnorm call the benchmark times once, on zeros (a compile worker).

    Parameters
    ----------
    specs : list
        The cases, as :func:`case_spec` makes them.
    """
    from .peers import LIBRARIES

    (fastnorm_library,) = (lib for lib in LIBRARIES if lib.name == "fastnorm")
    for spec in specs:
        case = case_from_spec(spec)
        x = np.zeros(case.shape, case.dtype)
        params = np.ones(case.channels, case.dtype)
        calls = fastnorm_library.prepare(case, Inputs(x, x, params, params), 1)
        calls.forward()
        calls.fresh()
        calls.backward()


def compile_ahead(cases, processes: int = 2) -> list[list[tuple[str, str]]]:
    """Load or compile the kernels the cases use, in several processes at once.

    On a fresh machine the default cases compile about a minute of kernels
    on one core, more than the benchmark itself; kernel families
    (:func:`kernel_set`) compile independently into the shared on-disk cache
    (its writes are locked), so ``processes`` workers, each making the
    benchmark's fastnorm calls of its cases (:func:`warm`), take a fraction
    of that and the benchmark then loads them.  With a warm cache this costs
    about a second.  Nothing happens when kernels are not cached or a single
    core is available; a worker that fails only means compiling later.

    Returns
    -------
    list of list of (dtype, family)
        The kernel sets of each worker process (empty when nothing ran).
    """
    from fastnorm import precompile, runtime

    processes = min(processes, os.cpu_count() or 1)
    if runtime.cache_dir() is None or processes < 2:
        return []
    sets: dict = {}
    for case in cases:
        sets.setdefault(kernel_set(case), []).append(case_spec(case))
    groups = precompile.balanced_groups(sets, lambda key: _COMPILE_COST[key[1]], processes)
    payloads = [[spec for key in group for spec in sets[key]] for group in groups]
    workers = precompile.start_workers("fastnorm.bench.run:warm", payloads)
    precompile.wait_workers(workers)
    return groups if len(workers) == len(groups) else []


def run_benchmark(cases, threads: int, rounds: int, min_time: float, progress) -> dict:
    """Run every case on every available library; the JSON-ready report."""
    progress("loading or compiling kernels (a first run compiles them, about 30 s)")
    compile_ahead(cases)
    libraries, skipped = available_libraries()
    records = []
    for i, case in enumerate(cases):
        progress(f"[{i + 1}/{len(cases)}] {case.op} norm {case.shape_text} {case.dtype}: starting")
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
