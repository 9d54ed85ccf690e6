"""Zero-copy NumPy views of CPU tensors and outputs in the input's memory format.

fastnorm's kernels take any channel axis, so a channels-last tensor needs no
transposed copy: its ``(N, *spatial, C)`` permutation is a C-contiguous
array, and fastnorm normalizes it with ``axis=-1``.  The output is allocated
with the same permutation, so it comes back channels-last too.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

#: Tensor dtypes fastnorm computes natively; float16 and bfloat16 are
#: computed in float32 (NumPy has no bfloat16, and fastnorm computes float16
#: in float32 anyway).
NATIVE = (torch.float32, torch.float64)
REDUCED = (torch.float16, torch.bfloat16)


class View(NamedTuple):
    """How a tensor reaches fastnorm: a permutation (or None) and the channel axis.

    ``perm`` moves the channel axis last for channels-last tensors; the
    inverse permutation turns fastnorm's result back into a tensor of the
    input's strides.
    """

    perm: tuple | None
    inverse: tuple | None
    axis: int


_CONTIGUOUS = View(None, None, 1)
_LAST: dict = {}


def _channels_last(ndim: int) -> View:
    view = _LAST.get(ndim)
    if view is None:
        perm = (0, *range(2, ndim), 1)
        inverse = (0, ndim - 1, *range(1, ndim - 1))
        view = _LAST[ndim] = View(perm, inverse, -1)
    return view


def view_of(x: Tensor) -> View:
    """The :class:`View` of an (N, C, *spatial) tensor.

    Contiguous tensors are viewed as they are (channel axis 1).  Tensors
    whose (N, *spatial, C) permutation is contiguous -- ``channels_last``,
    ``channels_last_3d`` and their 3-d analogue -- are viewed through it with
    ``axis=-1``.  Other strides are viewed as they are, and fastnorm makes
    its one contiguous copy.
    """
    if x.is_contiguous() or x.dim() < 3:
        return _CONTIGUOUS
    view = _channels_last(x.dim())
    if x.permute(view.perm).is_contiguous():
        return view
    return _CONTIGUOUS


def empty_like(x: Tensor, view: View, dtype: torch.dtype | None = None) -> Tensor:
    """An uninitialized tensor of x's shape laid out as ``view`` says.

    Allocated with its final strides (never a view of another tensor):
    autograd forbids in-place changes (``ReLU(inplace=True)``) of a custom
    operator's output that is a view.
    """
    dtype = x.dtype if dtype is None else dtype
    if view.perm is None:
        return torch.empty(x.shape, dtype=dtype, device=x.device)
    strides = [0] * x.dim()
    step = 1
    for axis in reversed(view.perm):
        strides[axis] = step
        step *= x.shape[axis]
    return torch.empty_strided(x.shape, strides, dtype=dtype, device=x.device)


def as_numpy(t: Tensor, view: View) -> np.ndarray:
    """A NumPy view (never a copy) of ``t`` in fastnorm's axis order."""
    t = t.detach()
    if view.perm is not None:
        t = t.permute(view.perm)
    return t.numpy()


def param_numpy(t: Tensor | None) -> np.ndarray | None:
    """A (C,) weight or bias as NumPy; bfloat16 is converted to float32 first."""
    if t is None:
        return None
    t = t.detach()
    if t.dtype == torch.bfloat16:
        t = t.float()
    return t.numpy()


def check_input(name: str, x, min_dim: int) -> None:
    """TypeError/ValueError naming ``name`` for tensors fastnorm cannot take."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.device.type != "cpu":
        raise ValueError(
            f"{name} is on device {x.device}; fastnorm runs on the CPU only "
            "(move it with .cpu(), or use torch's own norm layers on this device)"
        )
    if x.dtype not in NATIVE and x.dtype not in REDUCED:
        raise TypeError(
            f"{name} has dtype {x.dtype}; expected torch.float32 or torch.float64 "
            "(float16 and bfloat16 are computed in float32)"
        )
    if x.dim() < min_dim:
        raise ValueError(
            f"{name} must have at least {min_dim} dimensions, got shape {tuple(x.shape)}"
        )
    if x.layout != torch.strided:
        raise ValueError(f"{name} must be a dense (strided) tensor, got layout {x.layout}")


def check_param(name: str, t, shape: tuple) -> None:
    """Checks a weight or bias: a CPU float tensor of the expected shape, or None."""
    if t is None:
        return
    check_input(name, t, 0)
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got shape {tuple(t.shape)}")
