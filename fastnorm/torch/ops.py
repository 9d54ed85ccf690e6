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
  ``mean`` and ``invstd`` of shape (N, C), computed once (a statistics pass,
  then a normalization pass with them) and saved for the backward, which
  then skips its own statistics pass (as PyTorch's autograd does).

The functional wrappers pick the first when no gradient is needed (and in
eager mode call its implementation, ``instance_forward`` etc., directly,
skipping the dispatcher's overhead).  Both have autograd, so calling either
directly under autograd is correct.

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

from . import _views as V
from ._threads import follow_torch

__all__ = [
    "group_forward",
    "group_norm",
    "group_norm_backward",
    "group_norm_train",
    "instance_forward",
    "instance_norm",
    "instance_norm_backward",
    "instance_norm_train",
    "layer_forward",
    "layer_norm",
    "layer_norm_backward",
    "layer_norm_train",
]


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


def _wanted(ctx, *grads):
    """The gradients of the op's inputs that autograd asked for (None for the
    others), then None for eps, which has no gradient."""
    needs = ctx.needs_input_grad[: len(grads)]
    return (*(g if need else None for g, need in zip(grads, needs, strict=True)), None)


def instance_forward(x: Tensor, weight, bias, eps: float, with_stats: bool):
    """The implementation of ``instance_norm`` (``with_stats``: ``instance_norm_train``).

    Parameters
    ----------
    x : Tensor
        (N, C, *spatial) CPU tensor.
    weight, bias : Tensor of shape (C,) or None
        Per-channel scale and shift.
    eps : float
        Added to the variance.
    with_stats : bool
        Also return the float64 (N, C) mean and invstd.

    Returns
    -------
    Tensor or tuple of Tensor
        The output (in x's dtype and memory format), and with ``with_stats``
        the statistics.
    """
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
        _, mean, invstd = fastnorm.instance_norm(
            xn, g, b, axis=view.axis, eps=eps, out=yn, return_stats=True
        )
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
    return instance_forward(input, weight, bias, eps, False)


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
    return instance_forward(input, weight, bias, eps, True)


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


def _save_for_backward(ctx, x, weight, output):
    """Keep x, weight and the forward's statistics (None when the op returned
    only y) for the backward; the statistics get no gradient."""
    if isinstance(output, tuple):
        _, mean, invstd = output
        ctx.mark_non_differentiable(mean, invstd)
    else:
        mean = invstd = None
    ctx.save_for_backward(x, weight, mean, invstd)


def _instance_setup(ctx, inputs, output):
    x, weight, _, eps = inputs
    _save_for_backward(ctx, x, weight, output)
    ctx.eps = eps


def _instance_backward(ctx, grad_output, *_stats_grads):
    # The statistics are non-differentiable outputs: their (zero) gradients
    # are ignored.
    x, weight, mean, invstd = ctx.saved_tensors
    dx, dweight, dbias = torch.ops.fastnorm.instance_norm_backward(
        grad_output, x, weight, mean, invstd, ctx.eps
    )
    return _wanted(ctx, dx, dweight, dbias)


instance_norm.register_autograd(_instance_backward, setup_context=_instance_setup)
instance_norm_train.register_autograd(_instance_backward, setup_context=_instance_setup)


# --------------------------------------------------------------------------
# group norm


def _group_arrays(*arrays: np.ndarray) -> list:
    """(N, C) arrays as (N, C, 1): fastnorm wants an axis to normalize over."""
    return [a[..., None] if a.ndim == 2 else a for a in arrays]


def _check_groups(x: Tensor, num_groups: int) -> None:
    C = x.shape[1]
    if num_groups < 1 or C % num_groups:
        raise ValueError(
            f"num_groups must be >= 1 and divide the number of channels {C}, got {num_groups}"
        )


def group_forward(x: Tensor, num_groups: int, weight, bias, eps: float, with_stats: bool):
    """The implementation of ``group_norm`` (``with_stats``: ``group_norm_train``).

    As :func:`instance_forward`, with ``num_groups`` groups of consecutive
    channels; the statistics have shape (N, num_groups).
    """
    V.check_input("input", x, 2)
    _check_groups(x, num_groups)
    V.check_param("weight", weight, (x.shape[1],))
    V.check_param("bias", bias, (x.shape[1],))
    follow_torch()
    xc = _to_compute(x)
    view = V.view_of(xc)
    y = V.empty_like(xc, view)
    xn, yn = _group_arrays(V.as_numpy(xc, view), V.as_numpy(y, view))
    g, b = V.param_numpy(weight), V.param_numpy(bias)
    if with_stats:
        _, mean, invstd = fastnorm.group_norm(
            xn, num_groups, g, b, axis=view.axis, eps=eps, out=yn, return_stats=True
        )
    else:
        fastnorm.group_norm(xn, num_groups, g, b, axis=view.axis, eps=eps, out=yn)
    y = y if y.dtype == x.dtype else y.to(x.dtype)
    if not with_stats:
        return y
    return y, torch.from_numpy(mean), torch.from_numpy(invstd)


def _group_out_fake(x: Tensor) -> Tensor:
    return V.empty_like(x, V.view_of(x))


@torch.library.custom_op("fastnorm::group_norm", mutates_args=())
def group_norm(
    input: Tensor, num_groups: int, weight: Tensor | None, bias: Tensor | None, eps: float
) -> Tensor:
    """Group norm of an (N, C, *) CPU tensor, in its memory format.

    Parameters
    ----------
    input : Tensor
        (N, C, *), at least 2 dimensions; float32/float64 native,
        float16/bfloat16 computed in float32.
    num_groups : int
        Divides C; each group holds C // num_groups consecutive channels.
    weight, bias : Tensor of shape (C,) or None
        Per-channel scale and shift (None: ones and zeros).
    eps : float
        Added to the variance inside the square root.

    Returns
    -------
    Tensor
        The normalized tensor, with the input's dtype and memory format.
    """
    return group_forward(input, num_groups, weight, bias, eps, False)


@group_norm.register_fake
def _group_norm_fake(input, num_groups, weight, bias, eps):
    return _group_out_fake(input)


@torch.library.custom_op("fastnorm::group_norm_train", mutates_args=())
def group_norm_train(
    input: Tensor, num_groups: int, weight: Tensor | None, bias: Tensor | None, eps: float
) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`group_norm` that also returns float64 (N, num_groups) mean and invstd."""
    return group_forward(input, num_groups, weight, bias, eps, True)


@group_norm_train.register_fake
def _group_norm_train_fake(input, num_groups, weight, bias, eps):
    shape = (input.shape[0], num_groups)
    return (
        _group_out_fake(input),
        input.new_empty(shape, dtype=torch.float64),
        input.new_empty(shape, dtype=torch.float64),
    )


@torch.library.custom_op("fastnorm::group_norm_backward", mutates_args=())
def group_norm_backward(
    grad_output: Tensor,
    input: Tensor,
    num_groups: int,
    weight: Tensor | None,
    mean: Tensor | None,
    invstd: Tensor | None,
    eps: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of group norm with respect to input, weight and bias.

    mean and invstd (float64, (N, num_groups)) are the forward's statistics
    from ``group_norm_train``, or None to recompute them.  grad_input has
    the input's dtype and memory format; grad_weight and grad_bias shape
    (C,) in weight's dtype (input's when weight is None).
    """
    V.check_input("input", input, 2)
    V.check_input("grad_output", grad_output, 2)
    follow_torch()
    xc = _to_compute(input)
    view = V.view_of(xc)
    dx = V.empty_like(xc, view)
    dyn, xn, dxn = _group_arrays(
        V.as_numpy(_to_compute(grad_output).to(xc.dtype), view),
        V.as_numpy(xc, view),
        V.as_numpy(dx, view),
    )
    stats = {}
    if mean is not None and invstd is not None:
        stats = {"mean": mean.detach().numpy(), "invstd": invstd.detach().numpy()}
    _, dgamma, dbeta = fastnorm.group_norm_backward(
        dyn, xn, num_groups, V.param_numpy(weight), axis=view.axis, eps=eps, out=dxn, **stats
    )
    gdtype = _grad_dtype(input, weight)
    return (
        dx if dx.dtype == input.dtype else dx.to(input.dtype),
        torch.from_numpy(np.asarray(dgamma)).to(gdtype),
        torch.from_numpy(np.asarray(dbeta)).to(gdtype),
    )


@group_norm_backward.register_fake
def _group_norm_backward_fake(grad_output, input, num_groups, weight, mean, invstd, eps):
    C = input.shape[1]
    gdtype = _grad_dtype(input, weight)
    return (
        _group_out_fake(input),
        input.new_empty((C,), dtype=gdtype),
        input.new_empty((C,), dtype=gdtype),
    )


def _group_setup(ctx, inputs, output):
    x, num_groups, weight, _, eps = inputs
    _save_for_backward(ctx, x, weight, output)
    ctx.num_groups = num_groups
    ctx.eps = eps


def _group_backward(ctx, grad_output, *_stats_grads):
    x, weight, mean, invstd = ctx.saved_tensors
    dx, dweight, dbias = torch.ops.fastnorm.group_norm_backward(
        grad_output, x, ctx.num_groups, weight, mean, invstd, ctx.eps
    )
    return _wanted(ctx, dx, None, dweight, dbias)


group_norm.register_autograd(_group_backward, setup_context=_group_setup)
group_norm_train.register_autograd(_group_backward, setup_context=_group_setup)


# --------------------------------------------------------------------------
# layer norm
#
# Like PyTorch's layer_norm, inputs are normalized contiguous (other strides
# cost one copy) and outputs are contiguous: the normalized axes are the
# trailing ones, and x is viewed as (B, *normalized_shape).


def _layer_axis(k: int):
    return -1 if k == 1 else tuple(range(1, k + 1))


def _layer_check(x: Tensor, normalized_shape: list[int], weight, bias) -> tuple:
    V.check_input("input", x, 1)
    shape = tuple(normalized_shape)
    k = len(shape)
    if k == 0 or x.dim() < k or tuple(x.shape[x.dim() - k :]) != shape:
        raise ValueError(
            f"normalized_shape {list(shape)} must be non-empty and match the trailing "
            f"dimensions of input of shape {tuple(x.shape)}"
        )
    V.check_param("weight", weight, shape)
    V.check_param("bias", bias, shape)
    return shape


def layer_forward(x: Tensor, normalized_shape, weight, bias, eps: float, with_stats: bool):
    """The implementation of ``layer_norm`` (``with_stats``: ``layer_norm_train``).

    Normalizes over the trailing ``normalized_shape`` axes; the output is
    contiguous and the statistics have x's leading shape.
    """
    shape = _layer_check(x, normalized_shape, weight, bias)
    follow_torch()
    xc = _to_compute(x).contiguous()
    xn = xc.detach().numpy().reshape(-1, *shape)
    y = torch.empty(x.shape, dtype=xc.dtype)
    yn = y.numpy().reshape(xn.shape)
    g, b = V.param_numpy(weight), V.param_numpy(bias)
    axis = _layer_axis(len(shape))
    if with_stats:
        _, mean, invstd = fastnorm.layer_norm(
            xn, g, b, axis=axis, eps=eps, out=yn, return_stats=True
        )
    else:
        fastnorm.layer_norm(xn, g, b, axis=axis, eps=eps, out=yn)
    y = y if y.dtype == x.dtype else y.to(x.dtype)
    if not with_stats:
        return y
    stats_shape = x.shape[: x.dim() - len(shape)]
    return (
        y,
        torch.from_numpy(mean.reshape(stats_shape)),
        torch.from_numpy(invstd.reshape(stats_shape)),
    )


@torch.library.custom_op("fastnorm::layer_norm", mutates_args=())
def layer_norm(
    input: Tensor,
    normalized_shape: list[int],
    weight: Tensor | None,
    bias: Tensor | None,
    eps: float,
) -> Tensor:
    """Layer norm over the trailing ``normalized_shape`` axes of a CPU tensor.

    Parameters
    ----------
    input : Tensor
        (*, *normalized_shape); float32/float64 native, float16/bfloat16
        computed in float32.
    normalized_shape : list of int
        The trailing shape normalized over.
    weight, bias : Tensor of shape normalized_shape, or None
        Element-wise scale and shift (None: ones and zeros).
    eps : float
        Added to the variance inside the square root.

    Returns
    -------
    Tensor
        Contiguous (as PyTorch's layer_norm returns), input's dtype.
    """
    return layer_forward(input, normalized_shape, weight, bias, eps, False)


@layer_norm.register_fake
def _layer_norm_fake(input, normalized_shape, weight, bias, eps):
    return torch.empty_like(input, memory_format=torch.contiguous_format)


@torch.library.custom_op("fastnorm::layer_norm_train", mutates_args=())
def layer_norm_train(
    input: Tensor,
    normalized_shape: list[int],
    weight: Tensor | None,
    bias: Tensor | None,
    eps: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`layer_norm` that also returns float64 mean and invstd (the leading shape)."""
    return layer_forward(input, normalized_shape, weight, bias, eps, True)


@layer_norm_train.register_fake
def _layer_norm_train_fake(input, normalized_shape, weight, bias, eps):
    shape = input.shape[: input.dim() - len(normalized_shape)]
    return (
        torch.empty_like(input, memory_format=torch.contiguous_format),
        input.new_empty(shape, dtype=torch.float64),
        input.new_empty(shape, dtype=torch.float64),
    )


@torch.library.custom_op("fastnorm::layer_norm_backward", mutates_args=())
def layer_norm_backward(
    grad_output: Tensor,
    input: Tensor,
    normalized_shape: list[int],
    weight: Tensor | None,
    mean: Tensor | None,
    invstd: Tensor | None,
    eps: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of layer norm with respect to input, weight and bias.

    mean and invstd (float64, the input's leading shape) are the forward's
    statistics from ``layer_norm_train``, or None to recompute them.
    grad_input is contiguous in the input's dtype; grad_weight and
    grad_bias have normalized_shape, in weight's dtype (input's when
    weight is None).
    """
    shape = _layer_check(input, normalized_shape, weight, None)
    V.check_input("grad_output", grad_output, 1)
    follow_torch()
    xc = _to_compute(input).contiguous()
    xn = xc.detach().numpy().reshape(-1, *shape)
    dyn = _to_compute(grad_output).to(xc.dtype).detach().numpy().reshape(xn.shape)
    dx = torch.empty(input.shape, dtype=xc.dtype)
    stats = {}
    if mean is not None and invstd is not None:
        stats = {
            "mean": mean.detach().numpy().reshape(xn.shape[0]),
            "invstd": invstd.detach().numpy().reshape(xn.shape[0]),
        }
    _, dgamma, dbeta = fastnorm.layer_norm_backward(
        dyn,
        xn,
        V.param_numpy(weight),
        axis=_layer_axis(len(shape)),
        eps=eps,
        out=dx.numpy().reshape(xn.shape),
        **stats,
    )
    gdtype = _grad_dtype(input, weight)
    return (
        dx if dx.dtype == input.dtype else dx.to(input.dtype),
        torch.from_numpy(np.asarray(dgamma).reshape(shape)).to(gdtype),
        torch.from_numpy(np.asarray(dbeta).reshape(shape)).to(gdtype),
    )


@layer_norm_backward.register_fake
def _layer_norm_backward_fake(grad_output, input, normalized_shape, weight, mean, invstd, eps):
    gdtype = _grad_dtype(input, weight)
    shape = tuple(normalized_shape)
    return (
        torch.empty_like(input, memory_format=torch.contiguous_format),
        input.new_empty(shape, dtype=gdtype),
        input.new_empty(shape, dtype=gdtype),
    )


def _layer_setup(ctx, inputs, output):
    x, normalized_shape, weight, _, eps = inputs
    _save_for_backward(ctx, x, weight, output)
    ctx.normalized_shape = list(normalized_shape)
    ctx.eps = eps


def _layer_backward(ctx, grad_output, *_stats_grads):
    x, weight, mean, invstd = ctx.saved_tensors
    dx, dweight, dbias = torch.ops.fastnorm.layer_norm_backward(
        grad_output, x, ctx.normalized_shape, weight, mean, invstd, ctx.eps
    )
    return _wanted(ctx, dx, None, dweight, dbias)


layer_norm.register_autograd(_layer_backward, setup_context=_layer_setup)
layer_norm_train.register_autograd(_layer_backward, setup_context=_layer_setup)
