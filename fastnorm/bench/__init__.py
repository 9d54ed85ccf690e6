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

Modules: :mod:`.cases` (shapes and inputs), :mod:`.peers` (the timed
implementations), :mod:`.timing` (interleaved rounds), :mod:`.run` (one case,
the whole run, compiling ahead), :mod:`.report` (text output),
:mod:`.concurrency` and :mod:`.cli`.
"""

from .cases import EPS, SHAPES, Case, Inputs, make_inputs, parse_cases
from .cli import build_parser, main
from .peers import LIBRARIES, Calls, Library, available_libraries
from .report import format_table, render, render_concurrency
from .run import compile_ahead, run_benchmark, run_case
from .timing import interleave, median_ratio

__all__ = [
    "EPS",
    "LIBRARIES",
    "SHAPES",
    "Calls",
    "Case",
    "Inputs",
    "Library",
    "available_libraries",
    "build_parser",
    "compile_ahead",
    "format_table",
    "interleave",
    "main",
    "make_inputs",
    "median_ratio",
    "parse_cases",
    "render",
    "render_concurrency",
    "run_benchmark",
    "run_case",
]
