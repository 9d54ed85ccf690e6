"""fastnorm's normalizations as PyTorch custom operators (``torch.ops.fastnorm.*``).

Each operator is registered with :func:`torch.library.custom_op`, so
``torch.compile`` (``fullgraph=True``) and ``torch.export`` see one opaque
node; :func:`torch.library.register_fake` gives it shapes, dtypes and
strides without running it, and :func:`torch.library.register_autograd`
gives it a backward through fastnorm's backward kernels.

Two forward operators per normalization:

* ``fastnorm::instance_norm`` returns the output only: one fused pass over
  the input (read once, written once), for inference;
* ``fastnorm::instance_norm_train`` also returns the float64 statistics
  ``mean`` and ``invstd`` of shape (N, C), computed once and saved for the
  backward, which then skips its own statistics pass (as PyTorch's autograd
  does).

The functional wrappers pick the first when no gradient is needed.  Both
have autograd, so calling either directly under autograd is correct.

Tensors reach fastnorm as NumPy views (no copy): contiguous tensors with
the channel axis at 1, channels-last tensors (``channels_last``,
``channels_last_3d``, or an (N, L, C) tensor transposed to (N, C, L))
through their (N, *spatial, C) permutation with ``axis=-1``.  Outputs have
the input's layout.  Other strides cost one contiguous copy and give a
contiguous output.  float16 and bfloat16 inputs are computed in float32 (one
conversion each way) and returned in their dtype.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

import fastnorm
from fastnorm import functional as _functional

from . import _views as V
from ._threads import follow_torch

__all__ = ["instance_norm", "instance_norm_backward", "instance_norm_train"]


def _to_compute(t: Tensor) -> Tensor:
    """float16/bfloat16 tensors as float32 (same strides); others unchanged."""
    return t.float() if t.dtype in V.REDUCED else t


def _grad_dtype(x: Tensor, weight: Tensor | None) -> torch.dtype:
    return x.dtype if weight is None else weight.dtype


def _stats_fake(x: Tensor) -> tuple[Tensor, Tensor]:
    shape = (x.shape[0], x.shape[1])
    return x.new_empty(shape, dtype=torch.float64), x.new_empty(shape, dtype=torch.float64)


# --------------------------------------------------------------------------
# instance norm


def _instance_forward(x: Tensor, weight, bias, eps: float, with_stats: bool):
    V.check_input("input", x, 3)
    V.check_param("weight", weight, (x.shape[1],))
    V.check_param("bias", bias, (x.shape[1],))
    follow_torch()
    view = V.view_of(x)
    xc = _to_compute(x)
    y = V.empty_like(xc, view)
    xn, yn = V.as_numpy(xc, view), V.as_numpy(y, view)
    g, b = V.param_numpy(weight), V.param_numpy(bias)
    if with_stats:
        mean, invstd = fastnorm.instance_norm_stats(xn, axis=view.axis, eps=eps)
        _functional.normalize_with_stats(xn, mean, invstd, g, b, axis=view.axis, out=yn)
    else:
        fastnorm.instance_norm(xn, g, b, axis=view.axis, eps=eps, out=yn)
    y = y if y.dtype == x.dtype else y.to(x.dtype)
    if not with_stats:
        return y
    return y, torch.from_numpy(mean), torch.from_numpy(invstd)


@torch.library.custom_op("fastnorm::instance_norm", mutates_args=())
def instance_norm(input: Tensor, weight: Tensor | None, bias: Tensor | None, eps: float) -> Tensor:
    """Instance norm of an (N, C, *spatial) CPU tensor, in its memory format.

    Parameters
    ----------
    input : Tensor
        (N, C, *spatial), at least 3 dimensions; float32/float64 native,
        float16/bfloat16 computed in float32.
    weight, bias : Tensor of shape (C,) or None
        Per-channel scale and shift (None: ones and zeros).
    eps : float
        Added to the variance inside the square root.

    Returns
    -------
    Tensor
        The normalized tensor, with the input's dtype and memory format.
    """
    return _instance_forward(input, weight, bias, eps, False)


@instance_norm.register_fake
def _instance_norm_fake(input, weight, bias, eps):
    return V.empty_like(input, V.view_of(input))


@torch.library.custom_op("fastnorm::instance_norm_train", mutates_args=())
def instance_norm_train(
    input: Tensor, weight: Tensor | None, bias: Tensor | None, eps: float
) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`instance_norm` that also returns its statistics.

    Returns
    -------
    output : Tensor
        As :func:`instance_norm`.
    mean, invstd : Tensor
        float64, shape (N, C): each slice's mean and ``1 / sqrt(var + eps)``
        (population variance), as the backward takes them.
    """
    return _instance_forward(input, weight, bias, eps, True)


@instance_norm_train.register_fake
def _instance_norm_train_fake(input, weight, bias, eps):
    return (V.empty_like(input, V.view_of(input)), *_stats_fake(input))


@torch.library.custom_op("fastnorm::instance_norm_backward", mutates_args=())
def instance_norm_backward(
    grad_output: Tensor,
    input: Tensor,
    weight: Tensor | None,
    mean: Tensor | None,
    invstd: Tensor | None,
    eps: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of instance norm with respect to input, weight and bias.

    Parameters
    ----------
    grad_output, input : Tensor
        Same shape; grad_output may have any strides.
    weight : Tensor of shape (C,) or None
        The forward's scale.
    mean, invstd : Tensor of shape (N, C) or None
        The forward's statistics (from ``instance_norm_train``); None
        recomputes them from ``input``.
    eps : float
        The forward's eps.

    Returns
    -------
    grad_input : Tensor
        Input's shape, dtype and memory format.
    grad_weight, grad_bias : Tensor
        Shape (C,), in weight's dtype (input's when weight is None).
    """
    V.check_input("input", input, 3)
    V.check_input("grad_output", grad_output, 3)
    follow_torch()
    view = V.view_of(input)
    xc = _to_compute(input)
    dyc = _to_compute(grad_output).to(xc.dtype)
    dx = V.empty_like(xc, view)
    stats = {}
    if mean is not None and invstd is not None:
        stats = {"mean": mean.detach().numpy(), "invstd": invstd.detach().numpy()}
    _, dgamma, dbeta = fastnorm.instance_norm_backward(
        V.as_numpy(dyc, view),
        V.as_numpy(xc, view),
        V.param_numpy(weight),
        axis=view.axis,
        eps=eps,
        out=V.as_numpy(dx, view),
        **stats,
    )
    gdtype = _grad_dtype(input, weight)
    return (
        dx if dx.dtype == input.dtype else dx.to(input.dtype),
        torch.from_numpy(np.asarray(dgamma)).to(gdtype),
        torch.from_numpy(np.asarray(dbeta)).to(gdtype),
    )


@instance_norm_backward.register_fake
def _instance_norm_backward_fake(grad_output, input, weight, mean, invstd, eps):
    C = input.shape[1]
    gdtype = _grad_dtype(input, weight)
    return (
        V.empty_like(input, V.view_of(input)),
        input.new_empty((C,), dtype=gdtype),
        input.new_empty((C,), dtype=gdtype),
    )


def _instance_setup(ctx, inputs, output):
    x, weight, _, eps = inputs
    if isinstance(output, tuple):
        _, mean, invstd = output
        ctx.mark_non_differentiable(mean, invstd)
    else:
        mean = invstd = None
    ctx.save_for_backward(x, weight, mean, invstd)
    ctx.eps = eps


def _instance_backward(ctx, grad_output, *_stats_grads):
    # The statistics are non-differentiable outputs: their (zero) gradients
    # are ignored.
    x, weight, mean, invstd = ctx.saved_tensors
    dx, dweight, dbias = torch.ops.fastnorm.instance_norm_backward(
        grad_output, x, weight, mean, invstd, ctx.eps
    )
    need = ctx.needs_input_grad
    return (
        dx if need[0] else None,
        dweight if need[1] else None,
        dbias if need[2] else None,
        None,
    )


instance_norm.register_autograd(_instance_backward, setup_context=_instance_setup)
instance_norm_train.register_autograd(_instance_backward, setup_context=_instance_setup)
