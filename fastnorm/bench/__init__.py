"""Benchmark tables: fastnorm against the memory-bandwidth floor, NumPy and peers.

``python -m fastnorm.bench`` times the forward (into ``out=`` and into a fresh
array) and the backward of instance norm, group norm and layer norm on a set
of shapes per op, for fastnorm, a NumPy two-pass implementation in the
input's dtype and every installed peer (PyTorch's ``instance_norm``,
``group_norm`` and ``layer_norm``, and ``group_norm`` with one group per
channel for instance norm; ONNX Runtime).  Normalization is memory-bound, so
each time is also given as a ratio to the floor measured in the same process:
``np.copyto(out, x)`` for the forward (one read, one write) and ``np.add(dy,
x, out=dx)`` for the backward (two reads, one write).  All callables of a case
are timed in interleaved rounds and the medians reported, because memory
bandwidth on a shared machine drifts from minute to minute.  Every result is
compared with the float64 reference of :mod:`fastnorm.reference`, on the
timed input and on one offset by 1e4 (where float32 accumulation fails), and
fastnorm's speedup is given against the fastest path of any peer.

``--concurrency N`` measures instead the throughput of N Python threads that
call the public API at once against the same calls made one after another;
``--plot PATH`` draws the table (matplotlib); ``--models ...`` runs the model
benchmark of ``fastnorm.bench.models``.

Peers are imported only when the benchmark runs; ``import fastnorm.bench``
imports neither PyTorch nor ONNX Runtime.

Modules: :mod:`.cases` (shapes and inputs), :mod:`.ops` (how each op is
called), :mod:`.peers` (the timed implementations), :mod:`.timing`
(interleaved rounds), :mod:`.run` (one case, the whole run, compiling ahead),
:mod:`.report` (text output), :mod:`.plot`, :mod:`.concurrency` and
:mod:`.cli`.
"""

from .cases import (
    EPS,
    GROUP_SHAPES,
    GROUPS,
    LAYER_SHAPES,
    OFFSET,
    OPS,
    SHAPES,
    TABLES,
    Case,
    Inputs,
    default_cases,
    make_inputs,
    parse_cases,
)
from .cli import build_parser, main
from .ops import fastnorm_functions, lead_args, reference_results
from .peers import LIBRARIES, Calls, Library, available_libraries
from .report import format_table, render, render_concurrency
from .run import compile_ahead, fastest_peer, run_benchmark, run_case
from .timing import interleave, median_ratio

__all__ = [
    "EPS",
    "GROUPS",
    "GROUP_SHAPES",
    "LAYER_SHAPES",
    "LIBRARIES",
    "OFFSET",
    "OPS",
    "SHAPES",
    "TABLES",
    "Calls",
    "Case",
    "Inputs",
    "Library",
    "available_libraries",
    "build_parser",
    "compile_ahead",
    "default_cases",
    "fastest_peer",
    "fastnorm_functions",
    "format_table",
    "interleave",
    "lead_args",
    "main",
    "make_inputs",
    "median_ratio",
    "parse_cases",
    "reference_results",
    "render",
    "render_concurrency",
    "run_benchmark",
    "run_case",
]
