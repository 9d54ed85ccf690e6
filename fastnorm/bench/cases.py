"""Benchmark cases: the shapes of each op, their parsing from ``--shapes``, their inputs.

A case is one input of one op: instance norm and group norm normalize per
(sample, channel or group of channels) with the channel on ``axis``; layer
norm normalizes over ``axis``.  Named cases (letters) carry their op; raw
``NxCx...`` shapes take the op given on the command line.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

__all__ = [
    "DEFAULT_AXIS",
    "EPS",
    "GROUPS",
    "GROUP_SHAPES",
    "LAYER_SHAPES",
    "OFFSET",
    "OFFSET_TEXT",
    "OPS",
    "QUICK",
    "SHAPES",
    "TABLES",
    "TOLERANCE",
    "Case",
    "Inputs",
    "default_cases",
    "make_inputs",
    "parse_cases",
]

#: The normalizations the bench covers, in table order.
OPS = ("instance", "group", "layer")
#: Axis of a raw shape without ``:AXIS``: the channel axis (instance, group
#: norm) or the normalized axis (layer norm).
DEFAULT_AXIS = {"instance": 1, "group": 1, "layer": -1}
#: Groups of the group-norm cases (diffusion U-Nets and ResNet-GN use 32).
GROUPS = 32

#: Instance norm, the shapes of issue 4, by letter: "NxCx...[:AXIS]" and dtype.
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
#: Group norm (issue 11): diffusion U-Net blocks and ResNet-GN, NCHW; the
#: default table also runs each channels-last (``U320:-1``).
GROUP_SHAPES = {
    "U320": ("1x320x64x64", "float32"),
    "U640": ("2x640x32x32", "float32"),
    "U1280": ("1x1280x16x16", "float32"),
    "R128": ("8x128x56x56", "float32"),
}
#: Layer norm (issue 12): transformer rows (tokens x hidden), ViT-B's tokens,
#: and ConvNeXt's channels-first layer norm over axis 1 of NCHW.
LAYER_SHAPES = {
    "T768": ("4096x768", "float32"),
    "T4096": ("1024x4096", "float32"),
    "T1024": ("16384x1024", "float32"),
    "ViT": ("8x197x768", "float32"),
    "CF": ("8x96x56x56:1", "float32"),
}
#: Named cases of each op.
TABLES = {"instance": SHAPES, "group": GROUP_SHAPES, "layer": LAYER_SHAPES}
#: The default run of each op.
DEFAULT = {
    "instance": ",".join(SHAPES),
    "group": ",".join(f"{name},{name}:-1" for name in GROUP_SHAPES),
    "layer": ",".join(LAYER_SHAPES),
}
#: ``--quick``: tiny shapes of each op (a smoke test).
QUICK = {
    "instance": "2x8x16x16,2x8x8x16:-1,2x8x16x16@float64",
    "group": "2x64x8x8,2x8x8x64:-1",
    "layer": "64x96,2x16x8x8:1",
}
#: Relative tolerance of a match with the float64 reference, per dtype.
TOLERANCE = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-10}
EPS = 1e-5
#: Offset of the accuracy input (``OFFSET + N(0, 1)``), where float32
#: accumulation of sums or squares loses the variance.
OFFSET = 1e4
#: OFFSET as the table writes it ("1e4").
OFFSET_TEXT = f"{OFFSET:.0e}".replace("e+0", "e")
_SPATIAL = {1: "L", 2: "HW", 3: "DHW"}
_TOKEN = re.compile(r"(?P<spec>[^:@]+)(?::(?P<axis>[+-]?\d+))?(?:@(?P<dtype>\w+))?")


@dataclass(frozen=True)
class Case:
    """One benchmarked input of one op.

    Parameters
    ----------
    name : str
        A letter of :data:`TABLES` or the shape text.
    shape : tuple of int
    axis : int
        Channel axis (instance, group norm) or normalized axis (layer norm).
    dtype : numpy.dtype
    op : {'instance', 'group', 'layer'}, default 'instance'
    groups : int, optional
        Number of groups; group norm only.
    """

    name: str
    shape: tuple[int, ...]
    axis: int
    dtype: np.dtype
    op: str = "instance"
    groups: int | None = None

    def __post_init__(self):
        if self.op not in OPS:
            raise ValueError(f"op={self.op!r}: expected one of {', '.join(OPS)}")
        if not -len(self.shape) <= self.axis < len(self.shape):
            raise ValueError(
                f"axis={self.axis} of shape {self.shape_text}: expected an axis of its "
                f"{len(self.shape)} dimensions"
            )
        if (self.op == "group") != (self.groups is not None):
            raise ValueError(f"groups={self.groups!r}: expected an int for group norm only")
        if self.op == "group" and (self.groups < 1 or self.channels % self.groups):
            raise ValueError(
                f"groups={self.groups} for {self.channels} channels ({self.shape_text}): "
                "expected a divisor of the channel count"
            )

    @property
    def channels(self) -> int:
        """Length of ``axis``: channels, or the normalized length of layer norm."""
        return self.shape[self.axis]

    @property
    def layout(self) -> str:
        """NCHW, NHWC, NCL, NDHWC, ... or ``axis=k``; layer norm: the normalized axis."""
        ndim = len(self.shape)
        axis = self.axis % ndim
        spatial = _SPATIAL.get(ndim - 2)
        if self.op == "layer":
            if axis == ndim - 1:
                return "last axis"
            return f"NC{spatial} axis=1" if spatial and axis == 1 else f"axis={self.axis}"
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

    @property
    def title(self) -> str:
        """The op's table title: 'instance norm', 'group norm, 32 groups', 'layer norm'."""
        return f"group norm, {self.groups} groups" if self.op == "group" else f"{self.op} norm"


def _letter_op(name: str) -> str | None:
    for op, table in TABLES.items():
        if name in table:
            return op
    return None


def _bad(token: str) -> ValueError:
    letters = ", ".join(name for table in TABLES.values() for name in table)
    return ValueError(f"bad shape {token!r}: expected a case name ({letters}) or NxCx...[:AXIS]")


def _parse_token(
    token: str, op: str, axis: int | None, dtypes: list[str] | None, groups: int
) -> list[Case]:
    """``A``, ``U320:-1``, ``1x64x256x256``, ``8x128x128x32:-1``, ``...@float64``.

    A letter has its own op, axis and dtype (``op`` and ``axis`` apply to raw
    shapes only); its ``:AXIS`` moves its channel (or normalized) dimension.
    """
    match = _TOKEN.fullmatch(token)
    if match is None:
        raise _bad(token)
    spec, axis_text, dtype = match["spec"], match["axis"], match["dtype"]
    letter_op = _letter_op(spec)
    own_axis = DEFAULT_AXIS[op] if axis is None else axis
    if letter_op is not None:
        name, op = spec, letter_op
        spec, letter_dtype = TABLES[op][name]
        dtype = dtype or letter_dtype
        own_axis = DEFAULT_AXIS[op]
    elif not spec[:1].isdigit():
        raise _bad(token)
    if ":" in spec:
        spec, own = spec.split(":", 1)
        own_axis = int(own)
    try:
        shape = tuple(int(d) for d in spec.lower().split("x"))
    except ValueError:
        raise _bad(token) from None
    if letter_op is None:
        name = "x".join(map(str, shape))
        if axis_text is not None:
            own_axis = int(axis_text)
    elif axis_text is not None:  # move the letter's channel dimension
        target = int(axis_text)
        if not -len(shape) <= target < len(shape):
            raise ValueError(f"bad axis in {token!r}: {name} has {len(shape)} dimensions")
        dims = list(shape)
        dims.insert(target % len(shape), dims.pop(own_axis % len(shape)))
        shape, own_axis = tuple(dims), target
    try:
        dtype_list = [np.dtype(d) for d in (dtypes or [dtype or "float32"])]
    except TypeError:
        dtype_list = []
    if not dtype_list or any(d not in TOLERANCE for d in dtype_list):
        given = f"--dtype {','.join(dtypes)!r}" if dtypes else repr(token)
        raise ValueError(f"bad dtype in {given}: expected float32 or float64")
    group_count = groups if op == "group" else None
    return [Case(name, shape, own_axis, d, op, group_count) for d in dtype_list]


def parse_cases(
    shapes: str,
    *,
    op: str = "instance",
    axis: int | None = None,
    dtypes: str | None = None,
    groups: int = GROUPS,
) -> list[Case]:
    """Cases from a comma-separated ``--shapes`` text.

    Parameters
    ----------
    shapes : str
        Letters of :data:`TABLES` (each names its op) or ``NxCx...`` shapes,
        each with an optional ``:AXIS`` and ``@DTYPE`` suffix.  On a letter,
        ``:AXIS`` moves its channel (layer norm: normalized) dimension there,
        e.g. ``U320:-1`` is U320 channels-last.
    op : {'instance', 'group', 'layer', 'all'}, default 'instance'
        Op of the raw shapes; 'all' runs each raw shape with every op.
    axis : int, optional
        Axis of the raw shapes that carry no ``:AXIS``; default 1 (channel
        axis) for instance and group norm, -1 for layer norm.
    dtypes : str, optional
        Comma-separated dtypes that replace each shape's own dtype.
    groups : int, default 32
        Groups of every group-norm case.

    Returns
    -------
    list of Case

    Raises
    ------
    ValueError
        For an unknown letter or op, a bad shape, axis or dtype, or groups
        that do not divide a case's channels.
    """
    if op != "all" and op not in OPS:
        raise ValueError(f"op={op!r}: expected one of {', '.join(OPS)} or 'all'")
    ops = OPS if op == "all" else (op,)
    wanted = [d.strip() for d in dtypes.split(",") if d.strip()] if dtypes else None
    cases = []
    for token in (t.strip() for t in shapes.split(",")):
        match = _TOKEN.fullmatch(token)
        letter_op = _letter_op(match["spec"]) if match else None
        for each in (letter_op,) if letter_op else ops if token else ():
            cases.extend(_parse_token(token, each, axis, wanted, groups))
    return cases


def default_cases(
    op: str = "all", *, quick: bool = False, dtypes: str | None = None, groups: int = GROUPS
) -> list[Case]:
    """The default table of ``op`` ('all': instance, then group, then layer norm).

    Parameters
    ----------
    op : {'instance', 'group', 'layer', 'all'}, default 'all'
    quick : bool, default False
        The tiny shapes of :data:`QUICK` instead.
    dtypes, groups
        As in :func:`parse_cases`.
    """
    if op != "all" and op not in OPS:
        raise ValueError(f"op={op!r}: expected one of {', '.join(OPS)} or 'all'")
    texts = QUICK if quick else DEFAULT
    cases = []
    for each in OPS if op == "all" else (op,):
        cases.extend(parse_cases(texts[each], op=each, dtypes=dtypes, groups=groups))
    return cases


@dataclass
class Inputs:
    """Arrays of one case: x, upstream gradient dy, gamma and beta."""

    x: np.ndarray
    dy: np.ndarray
    gamma: np.ndarray
    beta: np.ndarray


def make_inputs(case: Case, seed: int = 0, *, offset: float | None = None) -> Inputs:
    """Random inputs: x ~ 3 + 2 N(0, 1), dy ~ N(0, 1), gamma ~ 1, beta ~ 0.

    With ``offset``, x ~ offset + N(0, 1) instead (the accuracy input).
    gamma and beta have one value per channel (instance and group norm, as
    PyTorch and ONNX take them) or per element of the normalized axis (layer
    norm).
    """
    rng = np.random.default_rng(seed)
    # Drawn in the case's dtype and shifted in place: a float64 draw and a
    # cast took seconds on the largest cases (16M elements).
    x = rng.standard_normal(case.shape, dtype=case.dtype)
    if offset is None:
        x *= 2
        x += 3
    else:
        x += case.dtype.type(offset)
    return Inputs(
        x=x,
        dy=rng.standard_normal(case.shape, dtype=case.dtype),
        gamma=(1 + 0.1 * rng.standard_normal(case.channels)).astype(case.dtype),
        beta=(0.1 * rng.standard_normal(case.channels)).astype(case.dtype),
    )
