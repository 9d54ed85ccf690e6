"""MXNet Gluon's ``nn.LayerNorm`` layer on NumPy arrays."""

from __future__ import annotations

import operator

import numpy as np

from .. import functional as F
from .base import NormBlock, check_size

__all__ = ["LayerNorm"]


def _check_axis_spec(axis):
    """``axis`` as an int or a non-empty tuple of ints (a list becomes a tuple).

    Only the types are checked here; whether the axes exist and are
    consecutive depends on x and is checked by :func:`fastnorm.layer_norm`'s
    layout at each call.
    """
    if isinstance(axis, (tuple, list)):
        if not axis:
            raise ValueError(f"axis must name at least one axis, got {axis!r}")
        for a in axis:
            _check_axis_spec(a)
        return tuple(axis)
    if isinstance(axis, (bool, np.bool_)):
        raise TypeError(f"axis must be an int or a tuple of ints, got {axis!r}")
    try:
        operator.index(axis)
    except TypeError:
        raise TypeError(f"axis must be an int or a tuple of ints, got {axis!r}") from None
    return axis


class LayerNorm(NormBlock):
    r"""Layer normalization layer with MXNet Gluon's interface.

    Every slice along ``axis`` (all other indices fixed) is normalized, and
    each position along ``axis`` has its own scale and shift::

        out = (x - mean) / sqrt(var + epsilon) * gamma + beta

    Parameters
    ----------
    axis : int or tuple of int, default -1
        The normalized axis, any position (MXNet), or a tuple (or list) of
        consecutive axes (PyTorch's ``normalized_shape`` is ``axis=(-2, -1)`` and the
        like).  gamma and beta have the shape of those axes.
    epsilon : float, default 1e-5
        Added to the variance inside the square root.
    center : bool, default True
        Whether beta is trained (grad_req 'write'; 'null' when False).
    scale : bool, default True
        Whether gamma is trained (grad_req 'write'; 'null' when False).
    beta_initializer, gamma_initializer : initializer spec
        ``'zeros'`` and ``'ones'`` by default; see :mod:`fastnorm.initializers`.
    in_channels : int or tuple of int, default 0
        Size of the normalized axis; 0 defers the parameters' shape to the
        first call.  With a tuple ``axis``: 0, or a tuple of the sizes of
        those axes (a 0 in it is inferred).
    prefix : str, optional
        Parameter name prefix; by default ``'layernorm<k>_'``.

    Notes
    -----
    - As in MXNet 1.9.1 (and unlike its docstring), gamma and beta are always
      applied; ``center`` and ``scale`` only decide whether they are trained.
    - float16, float32 and float64 inputs in any memory layout, including a
      normalized axis in the middle (ConvNeXt's channels-first LayerNorm is
      ``axis=1``) without moving axes.
    - There is no autograd: after a forward in training mode (``train()``),
      :meth:`backward` takes ``dy``, returns ``dx`` and fills the
      parameters' gradients.

    Examples
    --------
    >>> import numpy as np
    >>> layer = LayerNorm()
    >>> layer.initialize()
    >>> x = np.array([[1, 2, 3, 4, 5], [1, 1, 2, 2, 2]], dtype=np.float32)  # MXNet's doc example
    >>> layer(x)  # MXNet prints [[-1.41421 -0.707105 0. 0.707105 1.41421] [-1.2247195 ...]]
    array([[-1.4142101 , -0.70710504,  0.        ,  0.70710504,  1.4142101 ],
           [-1.2247194 , -1.2247194 ,  0.81647956,  0.81647956,  0.81647956]],
          dtype=float32)
    """

    _prefix_hint = "layernorm"

    def __init__(
        self,
        axis=-1,
        epsilon=1e-5,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        in_channels=0,
        *,
        prefix=None,
    ):
        axis = _check_axis_spec(axis)
        if not isinstance(axis, tuple):
            shape = (check_size("in_channels", in_channels, "0: infer at first call"),)
        elif isinstance(in_channels, tuple):
            if len(in_channels) != len(axis):
                raise ValueError(
                    f"in_channels={in_channels!r} must give one size per axis of axis={axis!r}"
                )
            shape = tuple(
                check_size("in_channels", c, "0: infer at first call") for c in in_channels
            )
        else:
            size = check_size("in_channels", in_channels, "0: infer at first call")
            if size and len(axis) != 1:
                raise ValueError(
                    f"in_channels={in_channels!r} with axis={axis!r}: give a tuple of "
                    f"{len(axis)} sizes, or 0 to infer them at the first call"
                )
            shape = (size,) * len(axis)
        self._axis = axis
        super().__init__(
            param_shape=shape,
            epsilon=epsilon,
            center=center,
            scale=scale,
            beta_initializer=beta_initializer,
            gamma_initializer=gamma_initializer,
            prefix=prefix,
            kwargs={"eps": epsilon, "axis": axis, "center": center, "scale": scale},
        )

    def _repr_suffix(self) -> str:
        shape = self.gamma.shape
        return f", in_channels={shape if isinstance(self._axis, tuple) else shape[0]}"

    def _prepare(self, x):
        """x as an array, with gamma/beta ready for the size of its normalized axes."""
        x, _ = F.float_input("x", x)
        sizes = F.affine_layout_of(x, self._axis).param_shape  # checks the axes against x
        self._fit_params(
            sizes,
            lambda known: (
                f"{self!r} expects size {known if len(known) > 1 else known[0]} on "
                f"axis {self._axis}, but x of shape {x.shape} has "
                f"{sizes if len(sizes) > 1 else sizes[0]}"
            ),
        )
        return x

    def _normalize(self, x, gamma, beta, out, return_stats=False):
        return F.layer_norm(
            x, gamma, beta, axis=self._axis, eps=self._epsilon, out=out, return_stats=return_stats
        )

    def _gradients(self, dy, x, gamma, mean, invstd, out):
        return F.layer_norm_backward(
            dy, x, gamma, axis=self._axis, eps=self._epsilon, mean=mean, invstd=invstd, out=out
        )
