"""How fastnorm and the float64 reference compute each op of a case, and its statistics view.

Every op is called the same way: ``fastnorm.<op>_norm(x, [num_groups,]
gamma, beta, axis=, eps=, out=)`` and likewise for ``_stats``,
``_backward`` and the ``fastnorm.reference`` twins, so one dispatch serves
instance, group and layer norm.
"""

from __future__ import annotations

import numpy as np

import fastnorm
from fastnorm import reference

from .cases import EPS, Case, Inputs

__all__ = ["fastnorm_functions", "lead_args", "reference_results", "statistics_view"]


def lead_args(case: Case) -> tuple:
    """Positional arguments between x and gamma: the group count of group norm."""
    return (case.groups,) if case.op == "group" else ()


def fastnorm_functions(case: Case) -> tuple:
    """``fastnorm.<op>_norm``, ``<op>_norm_stats`` and ``<op>_norm_backward``.

    Resolved once per case, so a timed call pays for no dispatch of the bench.
    """
    return tuple(
        getattr(fastnorm, f"{case.op}_norm{suffix}") for suffix in ("", "_stats", "_backward")
    )


def reference_results(case: Case, inp: Inputs) -> tuple[np.ndarray, np.ndarray]:
    """(y, dx) of the float64 reference (:mod:`fastnorm.reference`)."""
    forward = getattr(reference, f"{case.op}_norm_ref")
    backward = getattr(reference, f"{case.op}_norm_backward_ref")
    lead = lead_args(case)
    y = forward(inp.x, *lead, inp.gamma, inp.beta, axis=case.axis, eps=EPS)
    dx = backward(inp.dy, inp.x, *lead, inp.gamma, axis=case.axis, eps=EPS)[0]
    return y, dx


def statistics_view(case: Case) -> tuple[tuple[int, ...], tuple[int, ...], list[int]]:
    """x's shape regrouped so each statistic is a reduction over fixed axes.

    Returns
    -------
    view : tuple of int
        A shape x reshapes to without a copy: group norm splits the channel
        axis into (groups, channels per group); the other ops keep x's shape.
    reduced : tuple of int
        Axes of ``view`` each mean and variance reduces (keepdims).
    param : list of int
        Shape of ``view``'s rank that broadcasts gamma and beta.
    """
    ndim = len(case.shape)
    axis = case.axis % ndim
    param = [1] * ndim
    param[axis] = case.channels
    if case.op == "layer":
        return case.shape, (axis,), param
    if case.op == "instance":
        return case.shape, tuple(i for i in range(1, ndim) if i != axis), param
    split = (case.groups, case.channels // case.groups)
    view = (*case.shape[:axis], *split, *case.shape[axis + 1 :])
    param = [1] * (ndim + 1)
    param[axis : axis + 2] = split
    return view, tuple(i for i in range(1, ndim + 1) if i != axis), param
