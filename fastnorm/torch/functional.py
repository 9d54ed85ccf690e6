"""Functional wrappers with ``torch.nn.functional``'s signatures.

They validate like PyTorch, choose the inference operator (one fused pass)
when no gradient is needed and the training operator (statistics saved for
the backward) otherwise, and update running statistics for the modules.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from . import _views as V
from . import ops as _ops

__all__ = ["group_norm", "instance_norm", "layer_norm"]


_PLAIN = (Tensor, torch.nn.Parameter)


def _eager(*tensors) -> bool:
    """Whether the operator's implementation may be called directly.

    In eager mode without autograd, dispatching through the custom operator
    only costs time (about 20 us per call here, more than fastnorm's whole
    kernel for a small input).  Under ``torch.compile``/``torch.export``
    (fake or proxy tensors) and for tensor subclasses the operator is used,
    so tracing always sees it.
    """
    if torch.compiler.is_compiling():
        return False
    return all(t is None or type(t) in _PLAIN for t in tensors)


def _needs_grad(*tensors) -> bool:
    if not torch.is_grad_enabled():
        return False
    return any(t is not None and t.requires_grad for t in tensors)


def _check_eps(eps) -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float)):
        raise TypeError(f"eps must be a real number, got {eps!r}")
    eps = float(eps)
    if not (eps >= 0.0 and math.isfinite(eps)):
        raise ValueError(f"eps must be finite and >= 0, got {eps!r}")
    return eps


def _update_running(running: Tensor | None, batch: Tensor, momentum: float) -> None:
    """``running = (1 - momentum) * running + momentum * batch``, in place."""
    if running is not None:
        running.mul_(1.0 - momentum).add_(batch.to(running.dtype), alpha=momentum)


def instance_norm(
    input: Tensor,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
    *,
    running_mean: Tensor | None = None,
    running_var: Tensor | None = None,
    use_input_stats: bool = True,
    momentum: float = 0.1,
) -> Tensor:
    """Instance normalization of an (N, C, *spatial) CPU tensor with fastnorm.

    The same result as ``torch.nn.functional.instance_norm`` (with float64
    statistics), differentiable, and in the input's memory format
    (channels-last in, channels-last out, without a copy).

    Parameters
    ----------
    input : Tensor
        (N, C, *spatial) with at least one spatial axis; float32/float64
        computed natively, float16/bfloat16 in float32.
    weight, bias : Tensor of shape (C,), optional
        Per-channel scale and shift.
    eps : float, default 1e-5
        Added to the variance inside the square root.
    running_mean, running_var : Tensor of shape (C,), optional
        Keyword-only (``F.instance_norm`` takes them first, positionally).
        With ``use_input_stats=True`` they are updated in place as PyTorch
        does: ``running = (1 - momentum) * running + momentum * batch``,
        where batch is the mean over samples of each instance's mean, or of
        its unbiased variance.
    use_input_stats : bool, default True
        False normalizes with ``running_mean`` and ``running_var`` instead
        (PyTorch's own kernel: this is an element-wise affine map).
    momentum : float, default 0.1
        For the running statistics update.

    Returns
    -------
    Tensor
        input's shape, dtype and memory format.

    Raises
    ------
    ValueError
        Like PyTorch, when ``use_input_stats`` and each instance has a
        single element; when the input is not on the CPU.
    TypeError
        For dtypes other than float16, bfloat16, float32 and float64.
    """
    eps = _check_eps(eps)
    V.check_input("input", input, 3)
    if not use_input_stats:
        if running_mean is None or running_var is None:
            raise ValueError(
                "use_input_stats=False needs running_mean and running_var, got "
                f"running_mean={'None' if running_mean is None else 'a tensor'}, "
                f"running_var={'None' if running_var is None else 'a tensor'}"
            )
        return torch.nn.functional.instance_norm(
            input, running_mean, running_var, weight, bias, False, momentum, eps
        )
    if math.prod(input.shape[2:]) == 1:
        # PyTorch's message: instance statistics of one element are meaningless.
        raise ValueError(
            f"Expected more than 1 spatial element when training, got input size {input.size()}"
        )
    track = running_mean is not None or running_var is not None
    if not track and not _needs_grad(input, weight, bias):
        if _eager(input, weight, bias):
            return _ops.instance_forward(input, weight, bias, eps, False)
        return _ops.instance_norm(input, weight, bias, eps)
    y, mean, invstd = _ops.instance_norm_train(input, weight, bias, eps)
    if track:
        with torch.no_grad():
            n = math.prod(input.shape[2:])
            _update_running(running_mean, mean.mean(0), momentum)
            # var from invstd = 1 / sqrt(var + eps): float64, exact to ~1e-16
            # of var + eps; unbiased like PyTorch's running variance.
            var = (invstd.square().reciprocal() - eps).clamp_min(0.0)
            _update_running(running_var, var.mean(0) * (n / (n - 1)), momentum)
    return y


def group_norm(
    input: Tensor,
    num_groups: int,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Group normalization of an (N, C, *) CPU tensor with fastnorm.

    ``torch.nn.functional.group_norm``'s signature and result (with float64
    statistics), differentiable, in the input's memory format
    (channels-last in, channels-last out, without a copy).

    Parameters
    ----------
    input : Tensor
        (N, C, *) with at least 2 dimensions; float32/float64 computed
        natively, float16/bfloat16 in float32.
    num_groups : int
        Number of groups; divides C.  Each group of C // num_groups
        consecutive channels is normalized together, per sample.
    weight, bias : Tensor of shape (C,), optional
        Per-channel scale and shift.
    eps : float, default 1e-5
        Added to the variance inside the square root.

    Returns
    -------
    Tensor
        input's shape, dtype and memory format.
    """
    eps = _check_eps(eps)
    if isinstance(num_groups, bool) or not isinstance(num_groups, int):
        raise TypeError(f"num_groups must be an int, got {num_groups!r}")
    V.check_input("input", input, 2)
    N, C = input.shape[0], input.shape[1]
    if num_groups >= 1 and N * C // num_groups * math.prod(input.shape[2:]) == 1:
        # PyTorch's check and message, kept for parity.
        size = [N * C // num_groups, num_groups, *input.shape[2:]]
        raise ValueError(
            f"Expected more than 1 value per channel when training, got input size {size}"
        )
    if not _needs_grad(input, weight, bias):
        if _eager(input, weight, bias):
            return _ops.group_forward(input, num_groups, weight, bias, eps, False)
        return _ops.group_norm(input, num_groups, weight, bias, eps)
    return _ops.group_norm_train(input, num_groups, weight, bias, eps)[0]


def layer_norm(
    input: Tensor,
    normalized_shape,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Layer normalization over the trailing axes of a CPU tensor with fastnorm.

    ``torch.nn.functional.layer_norm``'s signature and result (with float64
    statistics), differentiable.

    Parameters
    ----------
    input : Tensor
        (*, *normalized_shape); float32/float64 computed natively,
        float16/bfloat16 in float32.  Non-contiguous inputs cost one copy.
    normalized_shape : int or sequence of int
        The trailing shape to normalize over.
    weight, bias : Tensor of shape normalized_shape, optional
        Element-wise scale and shift.
    eps : float, default 1e-5
        Added to the variance inside the square root.

    Returns
    -------
    Tensor
        input's shape and dtype, contiguous (as PyTorch's layer_norm).
    """
    eps = _check_eps(eps)
    if isinstance(normalized_shape, int) and not isinstance(normalized_shape, bool):
        normalized_shape = [normalized_shape]
    try:
        shape = [int(d) for d in normalized_shape]
    except TypeError:
        raise TypeError(
            f"normalized_shape must be an int or a sequence of ints, got {normalized_shape!r}"
        ) from None
    V.check_input("input", input, len(shape))
    if not _needs_grad(input, weight, bias):
        if _eager(input, weight, bias):
            return _ops.layer_forward(input, shape, weight, bias, eps, False)
        return _ops.layer_norm(input, shape, weight, bias, eps)
    return _ops.layer_norm_train(input, shape, weight, bias, eps)[0]
