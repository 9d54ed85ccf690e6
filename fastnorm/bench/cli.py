"""Command line of ``python -m fastnorm.bench``."""

from __future__ import annotations

import argparse
import importlib
import json
import sys

import fastnorm

from .cases import DEFAULT, GROUPS, OFFSET_TEXT, OPS, TABLES, default_cases, parse_cases
from .concurrency import CONCURRENCY_JOBS, QUICK_JOBS, run_concurrency
from .plot import plot_report, require_matplotlib
from .report import render, render_concurrency
from .run import machine, run_benchmark, set_threads

__all__ = ["Progress", "build_parser", "main"]

#: Interleaved rounds, and the shortest timing sample (seconds), of a run
#: and of a --quick run.
ROUNDS, MIN_TIME = 9, 2e-3
QUICK_ROUNDS, QUICK_MIN_TIME = 3, 2e-4


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


def _letters(table: dict) -> str:
    return ", ".join(
        f"{k}={v[0]}" + ("" if v[1] == "float32" else f"@{v[1]}") for k, v in table.items()
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fastnorm.bench",
        description=(
            "Time fastnorm's instance, group and layer norm (forward into out=, forward into a "
            "fresh array, backward) against the memory-bandwidth floor measured in the same "
            "process, a NumPy two-pass implementation and every installed peer (PyTorch "
            "instance_norm, group_norm and layer_norm, ONNX Runtime); check every result "
            "against the float64 reference and give each implementation's error on data "
            f"offset by {OFFSET_TEXT}."
        ),
        epilog=(
            "Named cases carry their op: "
            + "; ".join(f"{op} norm: {_letters(TABLES[op])}" for op in OPS)
            + ". On a name, :AXIS moves its channel dimension (U320:-1 = U320 channels-last). "
            + "Default tables: "
            + "; ".join(f"{op}: {DEFAULT[op]}" for op in OPS)
            + ". `--models [ARGS...]`, first on the line, runs the model benchmark of "
            "fastnorm.bench.models with ARGS instead."
        ),
    )
    parser.add_argument(
        "--op",
        choices=(*OPS, "all"),
        default=None,
        help="op of the default tables and of raw --shapes; 'all' (the default without "
        "--shapes) runs the instance, group and layer norm tables; raw --shapes default "
        "to instance",
    )
    parser.add_argument(
        "--shapes",
        default=None,
        help="comma-separated names or NxCx...[:AXIS][@DTYPE] shapes (default: the tables of --op)",
    )
    parser.add_argument("--dtype", help="dtype(s) for every shape, e.g. float32,float64")
    parser.add_argument(
        "--axis",
        type=int,
        default=None,
        help="axis of raw shapes without :AXIS: the channel axis of instance and group norm "
        "(default 1), the normalized axis of layer norm (default -1)",
    )
    parser.add_argument(
        "--groups",
        type=int,
        default=GROUPS,
        help="groups of every group-norm case (default %(default)s)",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="threads for fastnorm and peers (default: all)"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help=f"interleaved rounds (default {ROUNDS}; --quick {QUICK_ROUNDS})",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument(
        "--plot",
        metavar="PATH",
        help="also draw time / floor per implementation and case as a PNG (needs matplotlib: "
        "pip install 'fastnorm[plot]')",
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny shapes and few rounds (a smoke test)"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        metavar="N",
        help="instead of the table: N threads calling at once vs the same calls in sequence",
    )
    parser.add_argument(
        "--models",
        nargs=argparse.REMAINDER,
        metavar="ARGS",
        help="first on the line: run the model benchmark (fastnorm.bench.models) with the "
        "remaining arguments instead",
    )
    return parser


def _run_models(parser: argparse.ArgumentParser, argv: list[str]) -> int:
    """``--models ARGS``: delegate to ``fastnorm.bench.models.main(ARGS)``."""
    if argv[0] != "--models":
        parser.error(
            "--models must come first: every argument after it goes to the model benchmark"
        )
    name = f"{__package__}.models"
    try:
        models = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:  # the module exists but a dependency of it is missing
            raise
        parser.error(f"--models: {name} is not part of this installation of fastnorm")
    return models.main(argv[1:])


def _cases(parser: argparse.ArgumentParser, args) -> list:
    try:
        if args.shapes:
            return parse_cases(
                args.shapes,
                op=args.op or "instance",
                axis=args.axis,
                dtypes=args.dtype,
                groups=args.groups,
            )
        return default_cases(
            args.op or "all", quick=args.quick, dtypes=args.dtype, groups=args.groups
        )
    except (ValueError, TypeError) as exc:
        parser.error(str(exc))


def main(argv=None) -> int:
    """Entry point of ``python -m fastnorm.bench``."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--models" in argv:
        return _run_models(parser, argv)
    args = parser.parse_args(argv)
    if args.plot:
        try:
            require_matplotlib()
        except ImportError as exc:
            parser.error(str(exc))
        if args.concurrency:
            parser.error("--plot draws the table; it does not apply to --concurrency")
    import numba

    threads = args.threads or numba.config.NUMBA_NUM_THREADS
    set_threads(threads)
    rounds = args.repeat or (QUICK_ROUNDS if args.quick else ROUNDS)
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
        cases = _cases(parser, args)
        min_time = QUICK_MIN_TIME if args.quick else MIN_TIME
        report = run_benchmark(cases, threads, rounds, min_time, progress)
        text = render(report)
    progress.done()
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    if args.plot:
        plot_report(report, args.plot)
        print(f"plot: {args.plot}")
    return 0
