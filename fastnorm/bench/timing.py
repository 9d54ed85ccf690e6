"""Interleaved timing: every callable of a case once per round, medians of rounds."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable

__all__ = ["interleave", "median_ratio"]

#: Pause before each timing sample (seconds), see :func:`_sample`.
SETTLE = 2e-3
#: Calls at least this long (seconds) get no untimed call before their
#: sample: waking a thread pool is lost in them, and the slow NumPy baseline
#: on the largest cases would otherwise double the run time.
LONG_CALL = 0.05


def _calibrate(fn: Callable, min_time: float) -> tuple[int, float]:
    """Calls per sample so that one sample lasts at least ``min_time``, and one call's time."""
    fn()
    start = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - start
    return max(1, min(100_000, math.ceil(min_time / max(elapsed, 1e-8)))), elapsed


def _sample(fn: Callable, number: int, settle: float = SETTLE, warm: bool = True) -> float:
    """Seconds per call over ``number`` calls.

    The pause and the untimed call (``warm``) first let the thread pools of
    the previously timed library go idle and wake up this one's, so that no
    library pays for another's spinning threads.
    """
    time.sleep(settle)
    if warm:
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
    plans = {key: _calibrate(fn, min_time) for key, fn in fns.items()}
    times = {key: [] for key in fns}
    for r in range(rounds):
        if on_round is not None:
            on_round(r)
        for key, fn in fns.items():
            number, elapsed = plans[key]
            times[key].append(_sample(fn, number, warm=elapsed < LONG_CALL))
    return times


def median_ratio(times: list, floor: list) -> float:
    """Median over rounds of the time/floor ratio within the round."""
    return statistics.median(t / f for t, f in zip(times, floor, strict=True))
