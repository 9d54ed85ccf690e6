"""Command line of ``python -m fastnorm.bench``."""

from __future__ import annotations

import argparse
import json
import sys

import fastnorm

from .cases import DEFAULT_SHAPES, QUICK_SHAPES, SHAPES, parse_cases
from .concurrency import CONCURRENCY_JOBS, QUICK_JOBS, run_concurrency
from .report import render, render_concurrency
from .run import machine, run_benchmark, set_threads

__all__ = ["Progress", "build_parser", "main"]


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
    set_threads(threads)
    rounds = args.repeat or (3 if args.quick else 9)
    progress = Progress()
    if args.concurrency:
        jobs = QUICK_JOBS if args.quick else CONCURRENCY_JOBS
        per_thread = 2 * len(jobs) if args.quick else 8 * len(jobs)
        report = {
            "fastnorm": fastnorm.__version__,
            "concurrency": run_concurrency(args.concurrency, per_thread, rounds, jobs, progress),
        }
        report["machine"] = machine(threads)
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
