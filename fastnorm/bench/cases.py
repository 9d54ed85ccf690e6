"""Benchmark cases: the shapes, their parsing from ``--shapes``, and their inputs."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["EPS", "SHAPES", "TOLERANCE", "Case", "Inputs", "make_inputs", "parse_cases"]

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
_SPATIAL = {1: "L", 2: "HW", 3: "DHW"}


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
