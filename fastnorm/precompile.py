"""Compiling the kernels ahead of the first request: :func:`warmup`.

A cold compile is CPU-bound and single-threaded inside one process (Numba
holds a process-wide compiler lock), while kernel families compile
independently into the shared on-disk cache.  So :func:`warmup` splits its
work into *units* (operation, dtype, layout, direction), hands all but one
share of them to worker processes, compiles its own share meanwhile, and
then loads everything the workers compiled from the cache.  The benchmark's
``compile_ahead`` uses the same workers (:func:`balanced_groups`,
:func:`start_workers`, :func:`wait_workers`).
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time

import numpy as np

#: Layout names accepted by warmup() and the channel axis each means.
LAYOUTS = {
    "channels_first": 1,
    "NCL": 1,
    "NCHW": 1,
    "NCDHW": 1,
    "channels_last": -1,
    "NLC": -1,
    "NHWC": -1,
    "NDHWC": -1,
}

#: Operations accepted by warmup(); group norm runs on instance norm's kernels.
OPS = ("instance_norm", "group_norm", "layer_norm")

#: What each unit compiles, by (kernels, axis, part): the module and name of
#: its parallel kernel (layer norm's statistics run on instance norm's
#: moments kernels, which the forward and backward kernels call), and its
#: relative cold-compile cost, seconds of float32 compile measured on a 2
#: vCPU AMD EPYC with the units of a family compiled in order (the split
#: only needs the proportions).  'instance' is the row (axis 1) and column
#: (axis -1) families; 'layer' the affine columns (axis 1) and rows (axis -1).
_UNIT_KERNELS = {
    ("instance", 1, "forward"): ("rows", "rows_forward", 19),
    ("instance", 1, "stats"): ("rows", "rows_moments", 6),
    ("instance", 1, "backward"): ("rows", "rows_backward", 19),
    ("instance", -1, "forward"): ("columns", "columns_forward", 17),
    ("instance", -1, "stats"): ("columns", "columns_moments", 6),
    ("instance", -1, "backward"): ("columns", "columns_backward", 21),
    ("layer", 1, "forward"): ("affine", "affine_columns_forward", 9),
    ("layer", 1, "stats"): ("columns", "columns_moments", 6),
    ("layer", 1, "backward"): ("affine", "affine_columns_backward", 9),
    ("layer", -1, "forward"): ("affine", "affine_rows_forward", 13),
    ("layer", -1, "stats"): ("rows", "rows_moments", 6),
    ("layer", -1, "backward"): ("affine", "affine_rows_backward", 10),
}


def balanced_groups(items, cost, n: int) -> list[list]:
    """Split ``items`` into at most ``n`` groups of similar total ``cost(item)``.

    Largest first, each to the least loaded group (deterministic: ties go to
    the first group).  Empty groups are dropped.
    """
    groups: list[list] = [[] for _ in range(max(1, n))]
    loads = [0.0] * len(groups)
    for item in sorted(items, key=lambda item: -cost(item)):
        i = loads.index(min(loads))
        groups[i].append(item)
        loads[i] += cost(item)
    return [group for group in groups if group]


def start_workers(entry: str, payloads) -> list:
    """Start one Python process per payload running ``entry(payload)``.

    ``entry`` is ``'module:function'``; each payload must be JSON-serializable.
    The workers inherit the environment (cache directory, thread settings)
    and print nothing.  Returns the processes started: fewer than the
    payloads when no interpreter can be started (the caller then does the
    work itself).
    """
    module, function = entry.split(":")
    code = f"import json, sys; from {module} import {function}; {function}(json.loads(sys.argv[1]))"
    workers = []
    if not _is_python(sys.executable):
        return workers
    for payload in payloads:
        try:
            workers.append(
                subprocess.Popen(
                    [sys.executable, "-c", code, json.dumps(payload)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        except OSError:
            break
    return workers


def _is_python(executable: str) -> bool:
    """Whether ``executable`` is a Python interpreter: embedded in a server
    (uWSGI, mod_wsgi) ``sys.executable`` may be the server's own binary,
    which must not be started with ``-c``."""
    name = os.path.basename(executable or "").lower()
    return name.startswith(("python", "pypy"))


def wait_workers(workers) -> bool:
    """Wait for every worker; True when all of them exited successfully."""
    ok = True
    for worker in workers:
        ok = worker.wait() == 0 and ok
    return ok


def _units(dtypes, layouts, ops, backward: bool, stats: bool, readonly: bool) -> list[dict]:
    """warmup()'s arguments as units (JSON-ready dicts), validated."""
    axes = []
    for layout in layouts:
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}; expected one of {sorted(LAYOUTS)}")
        if LAYOUTS[layout] not in axes:
            axes.append(LAYOUTS[layout])
    ops = (ops,) if isinstance(ops, str) else tuple(ops)
    for op in ops:
        if op not in OPS:
            raise ValueError(f"unknown op {op!r} in ops; expected some of {OPS}")
    kernels = []
    if "instance_norm" in ops or "group_norm" in ops:
        kernels.append("instance")
    if "layer_norm" in ops:
        kernels.append("layer")
    names = [np.dtype(dtype).name for dtype in dtypes]
    parts = ["forward"] + (["stats"] if stats else []) + (["backward"] if backward else [])
    return [
        {"kernels": k, "dtype": name, "axis": axis, "part": part, "readonly": bool(readonly)}
        for k in kernels
        for name in names
        for axis in axes
        for part in parts
    ]


def warm_units(units) -> None:
    """Make the calls of each unit: on a small input (serial kernels) and on
    one large enough for the parallel kernels; also a worker's entry point."""
    from . import functional as F

    functions = {
        "instance": (F.instance_norm, F.instance_norm_stats, F.instance_norm_backward),
        "layer": (F.layer_norm, F.layer_norm_stats, F.layer_norm_backward),
    }
    big = F.SERIAL_MAX_ELEMENTS * 2
    for unit in units:
        forward, statistics, gradients = functions[unit["kernels"]]
        axis = unit["axis"]
        # (1, 2, 4, 4) and a (2, 4, 64, big/512) input of > SERIAL_MAX_ELEMENTS
        for shape in ((1, 2, 4, 4), (2, 4, 64, big // 512)):
            if axis == -1:
                shape = (shape[0], *shape[2:], shape[1])
            x = np.random.default_rng(0).standard_normal(shape).astype(unit["dtype"])
            inputs = [x]
            if unit["readonly"]:
                ro = x.copy()
                ro.flags.writeable = False
                inputs.append(ro)
            for arr in inputs:
                if unit["part"] == "forward":
                    forward(arr, axis=axis)
                elif unit["part"] == "stats":
                    statistics(arr, axis=axis)
                else:
                    gradients(arr, arr, axis=axis)
                    mean, invstd = statistics(arr, axis=axis)
                    gradients(arr, arr, axis=axis, mean=mean, invstd=invstd)


def warmup(
    dtypes=("float32",),
    layouts=("NCHW", "NHWC"),
    *,
    backward: bool = True,
    stats: bool = True,
    readonly: bool = False,
    ops=("instance_norm",),
    processes: int | None = None,
) -> float:
    """Compile (or load from the cache) every kernel a service will call.

    Calls the public functions on a tiny input (serial kernels) and on one
    large enough for the parallel kernels, for each dtype and layout, so the
    first request does not pay for compilation.  With an empty cache the
    work is shared between ``processes`` processes (this one and workers
    writing the shared on-disk cache), then this process loads the rest.

    Parameters
    ----------
    dtypes : sequence of dtype-like, default ('float32',)
        Input dtypes the service uses; float16 warms the float32 kernels.
    layouts : sequence of str, default ('NCHW', 'NHWC')
        'NCHW'/'NCL'/'NCDHW'/'channels_first' (channel axis 1, row kernels)
        and 'NHWC'/'NLC'/'NDHWC'/'channels_last' (axis -1, column kernels).
        For layer norm, channels-first means normalizing axis 1 of a 4-D
        input (ConvNeXt) and channels-last the trailing axis.
    backward : bool, default True
        Also warm the backward functions (training only).
    stats : bool, default True
        Also warm the ``*_stats`` functions.
    readonly : bool, default False
        Also warm the variants for read-only inputs (e.g. arrays made by
        ``np.frombuffer`` on bytes), which Numba compiles separately.
    ops : sequence of str, default ('instance_norm',)
        'instance_norm', 'group_norm' (the same kernels as instance norm)
        and 'layer_norm' (kernels of its own).
    processes : int, optional
        Processes compiling at once, this one included; default one per CPU.
        1 compiles everything here.  Workers are only started when the
        kernel cache is writable (they hand their work over through it).

    Returns
    -------
    float
        Seconds spent.
    """
    from . import runtime

    start = time.perf_counter()
    units = _units(dtypes, layouts, ops, backward, stats, readonly)
    if processes is None:
        processes = os.cpu_count() or 1
    if isinstance(processes, bool) or not isinstance(processes, int):
        raise TypeError(f"processes must be an int or None, got {processes!r}")
    if processes < 1:
        raise ValueError(f"processes must be at least 1, got {processes}")
    if processes > 1 and runtime.cache_dir() is not None:
        # Units of one kernel family share most helpers: split by family
        # when there are enough families, by unit otherwise.
        families: dict = {}
        for unit in _cold_units(units):
            families.setdefault((unit["kernels"], unit["axis"]), []).append(unit)
        if len(families) >= processes:
            groups = balanced_groups(
                list(families.values()), lambda us: sum(map(_cost, us)), processes
            )
            groups = [[u for us in group for u in us] for group in groups]
        else:
            groups = balanced_groups([u for us in families.values() for u in us], _cost, processes)
        if len(groups) > 1:
            workers = start_workers("fastnorm.precompile:warm_units", groups[1:])
            warm_units(groups[0])
            wait_workers(workers)
    warm_units(units)  # loads what the workers compiled (or compiles what they did not)
    return time.perf_counter() - start


def _family(unit) -> tuple:
    return unit["kernels"], unit["axis"], unit["part"]


def _cost(unit) -> int:
    return _UNIT_KERNELS[_family(unit)][2]


def _cold_units(units) -> list[dict]:
    """The units whose kernel has no valid on-disk cache entry for its dtype,
    one per kernel and dtype (layer norm's statistics share instance norm's)."""
    cold = []
    seen = set()
    for unit in units:
        module, name, _ = _UNIT_KERNELS[_family(unit)]
        dtype = unit["dtype"] if unit["dtype"] != "float16" else "float32"
        if (module, name, dtype) in seen:
            continue
        seen.add((module, name, dtype))
        kernel = getattr(importlib.import_module(f"fastnorm._kernels.{module}"), name)
        if not _cached(kernel, np.dtype(dtype).name):
            cold.append(unit)
    return cold


def _cached(kernel, dtype: str) -> bool:
    """True when the kernel's cache index holds an entry for dtype that is
    valid for the current sources (Numba's index loader checks the stamp)."""
    try:
        index = kernel._cache._cache_file._load_index()
    except Exception:  # no index, unreadable, or a Numba without these internals
        return False
    return any(dtype in str(key[0]) for key in index)
