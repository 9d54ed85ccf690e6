"""MXNet Gluon 1.x's ``nn.GroupNorm`` layer on NumPy arrays."""

from __future__ import annotations

from .. import functional as F
from ..prepared import prepare
from .base import NormBlock

__all__ = ["GroupNorm"]


class GroupNorm(NormBlock):
    r"""Group normalization layer with MXNet Gluon 1.x's interface.

    The C channels are split into ``num_groups`` groups of ``C // num_groups``
    consecutive channels; every (sample, group) slice is normalized over its
    channels and all other axes but 0, and each group gets one scale and one
    shift::

        out = (x - mean[n, g]) / sqrt(var[n, g] + epsilon) * gamma[g] + beta[g]

    Parameters
    ----------
    num_groups : int, default 1
        Number of groups; must divide the channel count of the input.
    epsilon : float, default 1e-5
        Added to the variance inside the square root.
    center : bool, default True
        Whether beta is trained (grad_req 'write'; 'null' when False).
    scale : bool, default True
        Whether gamma is trained (grad_req 'write'; 'null' when False).
    beta_initializer, gamma_initializer : initializer spec
        ``'zeros'`` and ``'ones'`` by default; see :mod:`fastnorm.initializers`.
    axis : int, default 1
        The channel axis (any axis but 0; ``-1`` for channels-last).  MXNet
        has channel axis 1 only.
    prefix : str, optional
        Parameter name prefix; by default ``'groupnorm<k>_'``.

    Notes
    -----
    - gamma and beta have shape ``(num_groups,)``, one value per *group*, as
      in MXNet 1.9.1 (its parameters are known at construction, so nothing
      is deferred).  PyTorch, ONNX and MXNet 2 have one per channel, shape
      (C,); :func:`fastnorm.group_norm` accepts both, so per-channel values
      are applied with the functional API.
    - As in MXNet 1.9.1 (and unlike its docstring), gamma and beta are always
      applied; ``center`` and ``scale`` only decide whether they are trained.
    - float16, float32 and float64 inputs in any memory layout; there is no
      autograd: after a forward in training mode (``train()``),
      :meth:`backward` takes ``dy``, returns ``dx`` and fills the
      parameters' gradients (shape (num_groups,)).

    Examples
    --------
    >>> import numpy as np
    >>> layer = GroupNorm()
    >>> layer.initialize()
    >>> x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)  # MXNet's doc example
    >>> layer(x)[0, 0]  # MXNet prints [-1.5932543 -1.3035717 -1.0138891 -0.7242065]
    array([-1.5932543, -1.3035717, -1.0138891, -0.7242065], dtype=float32)
    """

    _prefix_hint = "groupnorm"

    def __init__(
        self,
        num_groups=1,
        epsilon=1e-5,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        *,
        axis=1,
        prefix=None,
    ):
        self._num_groups = F.group_count(num_groups)
        self._axis = axis
        kwargs = {"eps": epsilon, "num_groups": num_groups, "center": center, "scale": scale}
        if not (type(axis) is int and axis == 1):
            kwargs["axis"] = axis  # MXNet's repr has no axis: shown only when not its 1
        super().__init__(
            param_shape=(self._num_groups,),
            epsilon=epsilon,
            center=center,
            scale=scale,
            beta_initializer=beta_initializer,
            gamma_initializer=gamma_initializer,
            prefix=prefix,
            kwargs=kwargs,
        )

    @property
    def num_groups(self) -> int:
        return self._num_groups

    def _prepare(self, x):
        # The parameters' shape never depends on x; the functions check that
        # num_groups divides x's channel count and name both in the error.
        x, _ = F.float_input("x", x)
        return x

    def _make_plan(self, x):
        return prepare(
            x.shape, x.dtype, axis=self._axis, num_groups=self._num_groups, eps=self._epsilon
        )

    def _normalize(self, x, gamma, beta, out, return_stats=False):
        return F.group_norm(
            x,
            self._num_groups,
            gamma,
            beta,
            axis=self._axis,
            eps=self._epsilon,
            out=out,
            return_stats=return_stats,
        )

    def _gradients(self, dy, x, gamma, mean, invstd, out):
        return F.group_norm_backward(
            dy,
            x,
            self._num_groups,
            gamma,
            axis=self._axis,
            eps=self._epsilon,
            mean=mean,
            invstd=invstd,
            out=out,
        )
