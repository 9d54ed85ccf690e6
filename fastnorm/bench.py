"""Benchmark table: fastnorm against the memory-bandwidth floor, NumPy and peers.

``python -m fastnorm.bench`` times the forward (into ``out=`` and into a fresh
array) and the backward of instance norm on a set of shapes, for fastnorm, a
NumPy two-pass implementation in the input's dtype and every installed peer
(PyTorch, ONNX Runtime).  Instance norm is memory-bound, so each time is also
given as a ratio to the floor measured in the same process: ``np.copyto(out,
x)`` for the forward (one read, one write) and ``np.add(dy, x, out=dx)`` for
the backward (two reads, one write).  All callables of a case are timed in
interleaved rounds and the medians reported, because memory bandwidth on a
shared machine drifts from minute to minute.  Every result is also compared
with the float64 reference of :mod:`fastnorm.reference`.

``--concurrency N`` measures instead the throughput of N Python threads that
call the public API at once against the same calls made one after another.

Peers are imported only when the benchmark runs; ``import fastnorm.bench``
imports neither PyTorch nor ONNX Runtime.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

import fastnorm
from fastnorm.reference import instance_norm_backward_ref, instance_norm_ref

__all__ = [
    "Case",
    "Inputs",
    "interleave",
    "main",
    "make_inputs",
    "median_ratio",
    "parse_cases",
]

#: The shapes of issue 4, by letter: "NxCx...[:AXIS]" and dtype.
SHAPES = {
    "A": ("1x64x256x256", "float32"),
    "B": ("8x32x128x128", "float32"),
    "C": ("1x16x32x32", "float32"),
    "D": ("2x16x32x64x64", "float32"),
    "E": ("16x80x4096", "float32"),
    "F": ("8x128x128x32:-1", "float32"),
    "G": ("64x256x8x8", "float32"),
    "B64": ("8x32x128x128", "float64"),
}
DEFAULT_SHAPES = ",".join(SHAPES)
QUICK_SHAPES = "2x8x16x16,2x8x8x16:-1,2x8x16x16@float64"
#: Relative tolerance of a match with the float64 reference, per dtype.
TOLERANCE = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-10}
EPS = 1e-5
#: Pause before each timing sample (seconds), see :func:`_sample`.
SETTLE = 2e-3
_SPATIAL = {1: "L", 2: "HW", 3: "DHW"}


# --------------------------------------------------------------------------
# cases and inputs


@dataclass(frozen=True)
class Case:
    """One benchmarked input: shape, channel axis and dtype."""

    name: str
    shape: tuple[int, ...]
    axis: int
    dtype: np.dtype

    @property
    def layout(self) -> str:
        """NCHW, NHWC, NCL, NDHWC, ... or ``axis=k`` for other positions."""
        ndim = len(self.shape)
        spatial = _SPATIAL.get(ndim - 2)
        axis = self.axis % ndim
        if spatial is None or axis not in (1, ndim - 1):
            return f"{ndim}-D axis={self.axis}"
        return "NC" + spatial if axis == 1 else "N" + spatial + "C"

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    @property
    def shape_text(self) -> str:
        dims = "x".join(map(str, self.shape))
        return dims if self.name == dims else f"{self.name} {dims}"


def _parse_token(token: str, axis: int, dtypes: list[str] | None) -> list[Case]:
    """``A``, ``B64``, ``1x64x256x256``, ``8x128x128x32:-1``, ``...@float64``."""
    name = token
    spec, dtype = SHAPES.get(token, (token, "float32"))
    if "@" in spec:
        spec, dtype = spec.split("@", 1)
    if ":" in spec:
        spec, axis_text = spec.split(":", 1)
        axis = int(axis_text)
    try:
        shape = tuple(int(d) for d in spec.lower().split("x"))
    except ValueError:
        raise ValueError(
            f"bad shape {token!r}: expected a letter of {', '.join(SHAPES)} or NxCx...[:AXIS]"
        ) from None
    if token not in SHAPES:
        name = "x".join(map(str, shape))
    return [Case(name, shape, axis, np.dtype(d)) for d in (dtypes or [dtype])]


def parse_cases(shapes: str, *, axis: int = 1, dtypes: str | None = None) -> list[Case]:
    """Cases from a comma-separated ``--shapes`` text.

    Parameters
    ----------
    shapes : str
        Letters of :data:`SHAPES` or ``NxCx...`` shapes, each with an optional
        ``:AXIS`` and ``@DTYPE`` suffix.
    axis : int, default 1
        Channel axis of the shapes that carry no ``:AXIS``.
    dtypes : str, optional
        Comma-separated dtypes that replace each shape's own dtype.

    Returns
    -------
    list of Case
    """
    wanted = [d.strip() for d in dtypes.split(",")] if dtypes else None
    cases = []
    for token in shapes.split(","):
        if token.strip():
            cases.extend(_parse_token(token.strip(), axis, wanted))
    return cases


@dataclass
class Inputs:
    """Arrays of one case: x, upstream gradient dy, gamma and beta."""

    x: np.ndarray
    dy: np.ndarray
    gamma: np.ndarray
    beta: np.ndarray


def make_inputs(case: Case, seed: int = 0) -> Inputs:
    """Random inputs: x ~ 3 + 2 N(0, 1), dy ~ N(0, 1), gamma ~ 1, beta ~ 0."""
    rng = np.random.default_rng(seed)
    channels = case.shape[case.axis]
    return Inputs(
        x=(3 + 2 * rng.standard_normal(case.shape)).astype(case.dtype),
        dy=rng.standard_normal(case.shape).astype(case.dtype),
        gamma=(1 + 0.1 * rng.standard_normal(channels)).astype(case.dtype),
        beta=(0.1 * rng.standard_normal(channels)).astype(case.dtype),
    )


# --------------------------------------------------------------------------
# implementations: each prepares the callables for one case


@dataclass
class Calls:
    """What one library can do on one case.

    ``forward`` writes into a preallocated output (None when the library
    has no ``out=``), ``fresh`` allocates its output, ``backward`` computes
    the input gradient; ``results`` returns ``(y, dx)`` as NumPy arrays in
    the input's layout, for the comparison with the reference.
    """

    forward: Callable | None
    fresh: Callable | None
    backward: Callable | None
    results: Callable[[], tuple]


def _fastnorm_calls(case: Case, inp: Inputs, threads: int) -> Calls:
    x, dy, g, b, axis = inp.x, inp.dy, inp.gamma, inp.beta, case.axis
    y, dx = np.empty_like(x), np.empty_like(x)

    def forward():
        return fastnorm.instance_norm(x, g, b, axis=axis, eps=EPS, out=y)

    def fresh():
        return fastnorm.instance_norm(x, g, b, axis=axis, eps=EPS)

    # The forward's statistics, saved for the backward as PyTorch's autograd
    # and fastnorm.InstanceNorm in training mode do (one pass over x less).
    mean, invstd = fastnorm.instance_norm_stats(x, axis=axis, eps=EPS)

    def backward():
        return fastnorm.instance_norm_backward(
            dy, x, g, axis=axis, eps=EPS, mean=mean, invstd=invstd, out=dx
        )

    return Calls(forward, fresh, backward, lambda: (fresh(), backward()[0]))


def _reduced_axes(ndim: int, axis: int) -> tuple[int, ...]:
    return tuple(i for i in range(1, ndim) if i != axis % ndim)


def _numpy_calls(case: Case, inp: Inputs, threads: int) -> Calls:
    """Two-pass instance norm in the input's dtype, with NumPy only."""
    x, dy = inp.x, inp.dy
    red = _reduced_axes(x.ndim, case.axis)
    cshape = [1] * x.ndim
    cshape[case.axis % x.ndim] = -1
    g, b = inp.gamma.reshape(cshape), inp.beta.reshape(cshape)
    y, dx = np.empty_like(x), np.empty_like(x)

    def normalize(out):
        """out = (x - mean) * invstd; returns invstd."""
        np.subtract(x, x.mean(axis=red, keepdims=True), out=out)
        var = np.square(out).mean(axis=red, keepdims=True)
        invstd = 1 / np.sqrt(var + x.dtype.type(EPS))
        out *= invstd
        return invstd

    def forward(out=y):
        normalize(out)
        out *= g
        out += b
        return out

    def backward(out=dx):
        invstd = normalize(out)  # out holds xhat
        mean_dy = dy.mean(axis=red, keepdims=True)
        mean_dy_xhat = (dy * out).mean(axis=red, keepdims=True)
        out *= mean_dy_xhat
        np.subtract(dy, out, out=out)
        out -= mean_dy
        out *= g * invstd
        return out

    def fresh():
        return forward(np.empty_like(x))

    return Calls(forward, fresh, backward, lambda: (fresh(), backward().copy()))


def _torch_calls(case: Case, inp: Inputs, threads: int) -> Calls | str:
    """``torch.nn.functional.instance_norm``; channels-last memory for axis=-1."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    axis = case.axis % len(case.shape)

    def tensor(a):  # a view with the channels on axis 1
        return torch.from_numpy(a).movedim(axis, 1)

    x, dy = tensor(inp.x), tensor(inp.dy)
    g, b = torch.from_numpy(inp.gamma), torch.from_numpy(inp.beta)
    xg, gg, bg = (t.detach().requires_grad_(True) for t in (x, g, b))
    yg = F.instance_norm(xg, weight=gg, bias=bg, eps=EPS)

    def fresh():
        return F.instance_norm(x, weight=g, bias=b, eps=EPS)

    def backward():
        return torch.autograd.grad(yg, (xg, gg, bg), dy, retain_graph=True)

    def results():
        y = fresh().movedim(1, axis).numpy()
        return y, backward()[0].detach().movedim(1, axis).numpy()

    return Calls(None, fresh, backward, results)


def _onnx_model(onnx, case: Case):
    from onnx import TensorProto, helper

    elem = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE}
    elem = elem[case.dtype]
    channels = case.shape[1]
    node = helper.make_node("InstanceNormalization", ["x", "scale", "B"], ["y"], epsilon=EPS)
    graph = helper.make_graph(
        [node],
        "instance_norm",
        [
            helper.make_tensor_value_info("x", elem, list(case.shape)),
            helper.make_tensor_value_info("scale", elem, [channels]),
            helper.make_tensor_value_info("B", elem, [channels]),
        ],
        [helper.make_tensor_value_info("y", elem, list(case.shape))],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _onnxruntime_calls(case: Case, inp: Inputs, threads: int) -> Calls | str:
    """An ``InstanceNormalization`` model; output bound to a buffer for out=."""
    import onnx
    import onnxruntime as ort

    if case.axis % len(case.shape) != 1:
        return "n/a"
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    model = _onnx_model(onnx, case).SerializeToString()
    try:
        session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception:  # no kernel for this dtype
        return "n/a"
    feeds = {"x": inp.x, "scale": inp.gamma, "B": inp.beta}
    y = np.empty_like(inp.x)
    binding = session.io_binding()
    for name, value in feeds.items():
        binding.bind_cpu_input(name, value)
    binding.bind_output("y", "cpu", 0, y.dtype, y.shape, y.ctypes.data)

    def forward():
        session.run_with_iobinding(binding)
        return y

    def fresh():
        return session.run(None, feeds)[0]

    return Calls(forward, fresh, None, lambda: (fresh(), None))


@dataclass(frozen=True)
class Library:
    """A benchmarked implementation; ``module`` is imported to detect a peer."""

    name: str
    prepare: Callable
    module: str | None = None


LIBRARIES = (
    Library("fastnorm", _fastnorm_calls),
    Library("numpy", _numpy_calls),
    Library("torch", _torch_calls, "torch"),
    Library("onnxruntime", _onnxruntime_calls, "onnxruntime"),
)


def available_libraries() -> tuple[list[Library], dict[str, str]]:
    """Libraries whose module imports, and the reason each other one is skipped."""
    found, skipped = [], {}
    for lib in LIBRARIES:
        if lib.module is None:
            found.append(lib)
            continue
        try:
            __import__(lib.module)
        except Exception as exc:  # ImportError, or a broken install
            skipped[lib.name] = f"not installed ({type(exc).__name__}: {exc})"
        else:
            found.append(lib)
    return found, skipped


# --------------------------------------------------------------------------
# timing


def _calibrate(fn: Callable, min_time: float) -> int:
    """Calls per sample so that one sample lasts at least ``min_time``."""
    fn()
    start = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - start
    return max(1, min(100_000, math.ceil(min_time / max(elapsed, 1e-8))))


def _sample(fn: Callable, number: int, settle: float = SETTLE) -> float:
    """Seconds per call over ``number`` calls.

    The pause and the untimed call first let the thread pools of the
    previously timed library go idle and wake up this one's, so that no
    library pays for another's spinning threads.
    """
    time.sleep(settle)
    fn()
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number


def interleave(fns: dict, rounds: int, min_time: float = 2e-3, on_round=None) -> dict:
    """Seconds per call of each callable, timed in interleaved rounds.

    Parameters
    ----------
    fns : dict
        Key -> callable without arguments.
    rounds : int
        Each round times every callable once, in order.
    min_time : float
        Minimum duration of one sample; fast callables are looped.
    on_round : callable, optional
        Called with the round index before each round (progress).

    Returns
    -------
    dict
        Key -> list of ``rounds`` times, seconds per call.
    """
    numbers = {key: _calibrate(fn, min_time) for key, fn in fns.items()}
    times = {key: [] for key in fns}
    for r in range(rounds):
        if on_round is not None:
            on_round(r)
        for key, fn in fns.items():
            times[key].append(_sample(fn, numbers[key]))
    return times


def median_ratio(times: list, floor: list) -> float:
    """Median over rounds of the time/floor ratio within the round."""
    return statistics.median(t / f for t, f in zip(times, floor, strict=True))


# --------------------------------------------------------------------------
# one case


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
# concurrency (issue 5): N threads at once vs the same calls one after another

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


# --------------------------------------------------------------------------
# output


def _fmt_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def _cells(entry: dict | None, op: str, with_gbps: bool) -> list[str]:
    if entry is None or op not in entry:
        return ["-"] * (3 if with_gbps else 2)
    m = entry[op]
    cells = [_fmt_time(m["seconds"]), f"{m['ratio']:.2f}"]
    if with_gbps:
        cells.insert(1, f"{m['gbps']:.1f}")
    return cells


HEADER = (
    "case",
    "layout",
    "dtype",
    "impl",
    "fwd out=",
    "GB/s",
    "x floor",
    "fwd fresh",
    "x floor",
    "bwd out=",
    "GB/s",
    "x floor",
    "matches ref",
)


def _case_rows(record: dict) -> list[list[str]]:
    rows = []
    results = dict(record["results"])
    names = list(results) + list(record["unavailable"])
    for i, name in enumerate(names):
        lead = ["", "", ""]
        if i == 0:
            lead = [record["shape_text"], record["layout"], record["dtype"]]
        entry = results.get(name)
        if entry is None:
            rows.append([*lead, name, record["unavailable"][name]] + [""] * 8)
            continue
        match = "-"
        if "match" in entry:
            match = "yes" if entry["match"] else f"NO ({entry['max_error']:.1e})"
        rows.append(
            [
                *lead,
                name,
                *_cells(entry, "forward", True),
                *_cells(entry, "fresh", False),
                *_cells(entry, "backward", True),
                match,
            ]
        )
    return rows


def format_table(rows: list[list[str]]) -> str:
    """Left-aligned text columns; the 'n/a' filler rows may overflow."""
    widths = [max(len(r[i]) for r in rows if len(r[i]) < 40) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [c.ljust(w) if len(c) < 40 else c for c, w in zip(row, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _peer_speedups(record: dict) -> str:
    """fastnorm's lead over the fastest installed peer, per op."""
    res = record["results"]
    ours = res.get("fastnorm", {})
    parts = []
    for op, peer_ops in (("forward", ("forward", "fresh")), ("backward", ("backward",))):
        peers = [
            m[o]["seconds"]
            for name, m in res.items()
            if name not in ("fastnorm", "numpy", "floor")
            for o in peer_ops
            if o in m
        ]
        if peers and op in ours:
            parts.append(f"{op} {min(peers) / ours[op]['seconds']:.1f}x")
    return ", ".join(parts)


def render(report: dict) -> str:
    """The text table of a report made by :func:`run_benchmark`."""
    rows = [list(HEADER)]
    leads = []
    for record in report["cases"]:
        rows.extend(_case_rows(record))
        lead = _peer_speedups(record)
        if lead:
            leads.append(f"  {record['shape_text']} {record['dtype']}: {lead}")
    m = report["machine"]
    text = [
        f"fastnorm {report['fastnorm']} on {m['cpu']} ({m['cpus']} CPUs), "
        f"{report['threads']} threads ({m['threading_layer']}); "
        f"median of {report['rounds']} interleaved rounds",
        "floor: forward np.copyto(out, x), backward np.add(dy, x, out=dx); "
        "'x floor' = time / floor in the same round (lower is better)",
        "",
        format_table(rows),
    ]
    if report["skipped"]:
        text.append("")
        text.extend(f"skipped {name}: {why}" for name, why in report["skipped"].items())
    if leads:
        text += ["", "fastnorm speedup over the fastest installed peer (peer time / ours):", *leads]
    return "\n".join(text)


def render_concurrency(c: dict) -> str:
    rows = [
        ["mode", "calls", "time", "calls/s"],
        [
            "sequential",
            str(c["calls"]),
            _fmt_time(c["sequential_seconds"]),
            f"{c['sequential_calls_per_s']:.0f}",
        ],
        [
            f"{c['threads']} threads",
            str(c["calls"]),
            _fmt_time(c["concurrent_seconds"]),
            f"{c['concurrent_calls_per_s']:.0f}",
        ],
    ]
    return "\n".join(
        [
            f"concurrency: {c['threads']} Python threads x {c['calls'] // c['threads']} calls "
            "(mixed shapes, dtypes, forward and backward; public API, out=)",
            format_table(rows),
            f"throughput concurrent / sequential: {c['ratio']:.2f}x (>= 1: no collapse); "
            f"results identical: {'yes' if c['identical'] else 'NO'}",
        ]
    )


# --------------------------------------------------------------------------
# command line


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


def _set_threads(n: int) -> None:
    import numba

    setter = getattr(fastnorm, "set_num_threads", None) or numba.set_num_threads
    setter(n)


def _machine(threads: int) -> dict:
    return {
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "threading_layer": _threading_layer(),
    }


class Progress:
    """One status line on stderr, rewritten in place on a terminal."""

    def __init__(self, stream=None):
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self.last = ""

    def __call__(self, message: str) -> None:
        if self.tty:
            self.stream.write("\r" + message[:120].ljust(len(self.last)))
            self.last = message[:120]
        elif message.split(":")[0] != self.last.split(":")[0]:
            self.stream.write(message + "\n")
            self.last = message
        self.stream.flush()

    def done(self) -> None:
        if self.tty and self.last:
            self.stream.write("\r" + " " * len(self.last) + "\r")
            self.stream.flush()


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
        "machine": _machine(threads),
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fastnorm.bench",
        description=(
            "Time fastnorm's instance norm (forward into out=, forward into a fresh array, "
            "backward) against the memory-bandwidth floor measured in the same process, "
            "a NumPy two-pass implementation and every installed peer (PyTorch, ONNX Runtime); "
            "check every result against the float64 reference."
        ),
        epilog=(
            "Shapes: "
            + ", ".join(
                f"{k}={v[0]}" + ("" if v[1] == "float32" else f"@{v[1]}") for k, v in SHAPES.items()
            )
        ),
    )
    parser.add_argument(
        "--shapes",
        default=None,
        help="comma-separated letters or NxCx...[:AXIS][@DTYPE] shapes (default: %(default)s = "
        + DEFAULT_SHAPES
        + ")",
    )
    parser.add_argument("--dtype", help="dtype(s) for every shape, e.g. float32,float64")
    parser.add_argument(
        "--axis", type=int, default=1, help="channel axis of shapes without :AXIS (default 1)"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="threads for fastnorm and peers (default: all)"
    )
    parser.add_argument(
        "--repeat", type=int, default=None, help="interleaved rounds (default 9; --quick 3)"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument(
        "--quick", action="store_true", help="tiny shapes and few rounds (a smoke test)"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        metavar="N",
        help="instead of the table: N threads calling at once vs the same calls in sequence",
    )
    return parser


def main(argv=None) -> int:
    """Entry point of ``python -m fastnorm.bench``."""
    args = build_parser().parse_args(argv)
    import numba

    threads = args.threads or numba.config.NUMBA_NUM_THREADS
    _set_threads(threads)
    rounds = args.repeat or (3 if args.quick else 9)
    progress = Progress()
    if args.concurrency:
        jobs = QUICK_JOBS if args.quick else CONCURRENCY_JOBS
        per_thread = 2 * len(jobs) if args.quick else 8 * len(jobs)
        report = {
            "fastnorm": fastnorm.__version__,
            "concurrency": run_concurrency(args.concurrency, per_thread, rounds, jobs, progress),
        }
        report["machine"] = _machine(threads)
        text = render_concurrency(report["concurrency"])
    else:
        shapes = args.shapes or (QUICK_SHAPES if args.quick else DEFAULT_SHAPES)
        try:
            cases = parse_cases(shapes, axis=args.axis, dtypes=args.dtype)
        except (ValueError, TypeError) as exc:
            build_parser().error(str(exc))
        min_time = 2e-4 if args.quick else 2e-3
        report = run_benchmark(cases, threads, rounds, min_time, progress)
        text = render(report)
    progress.done()
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
