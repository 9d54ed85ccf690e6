"""MXNet Gluon's ``nn.InstanceNorm`` layer on NumPy arrays."""

from __future__ import annotations

from .. import functional as F
from ..prepared import prepare
from .base import NormBlock, check_size

__all__ = ["InstanceNorm"]


class InstanceNorm(NormBlock):
    r"""Instance normalization layer with MXNet Gluon's interface.

    Every (sample, channel) slice is normalized over all other axes::

        out = (x - mean) / sqrt(var + epsilon) * gamma[c] + beta[c]

    Parameters
    ----------
    axis : int, default 1
        The channel axis (any axis but 0; negative allowed).
    epsilon : float, default 1e-5
        Added to the variance inside the square root.
    center : bool, default True
        Whether beta is trained (grad_req 'write'; 'null' when False).
    scale : bool, default False
        Whether gamma is trained (grad_req 'write'; 'null' when False).
    beta_initializer, gamma_initializer : initializer spec
        ``'zeros'`` and ``'ones'`` by default; see :mod:`fastnorm.initializers`.
    in_channels : int, default 0
        Number of channels; 0 defers the parameters' shape to the first call.
    prefix : str, optional
        Parameter name prefix; by default ``'instancenorm<k>_'``.

    Notes
    -----
    Differences from MXNet's docstring and from Gluon:

    - gamma and beta are **always applied**.  ``center`` and ``scale`` only
      decide whether they get gradients.  MXNet's docstring says "If False,
      gamma is not used", but MXNet 1.9.1 applies gamma anyway (set gamma to
      2 with ``scale=False`` and the output has std 2 per slice); we do what
      MXNet does, not what it says.
    - The normalization uses ``sqrt(var + eps)``, as MXNet computes (its
      docstring's ``sqrt(var) + eps`` is a slip).
    - Not only float32: float16, float32 and float64 inputs, in any memory
      layout; the input's dtype need not match the parameters'.
    - A channel axis other than 1 is normalized in place by the kernels (no
      axis swaps and copies).
    - There is no autograd: after a forward in training mode (``train()``),
      :meth:`backward` takes ``dy`` and returns ``dx``, filling the
      parameters' gradients.  Inference (the default) keeps no reference
      to the input or the output.

    Examples
    --------
    >>> import numpy as np
    >>> layer = InstanceNorm()
    >>> layer.initialize()
    >>> x = np.array([[[1.1, 2.2]], [[3.3, 4.4]]], dtype=np.float32)
    >>> layer(x)  # MXNet prints [[[-0.99998355 0.99998331]] [[-0.99998319 0.99998361]]]
    array([[[-0.9999835 ,  0.9999835 ]],
    <BLANKLINE>
           [[-0.99998343,  0.99998343]]], dtype=float32)
    """

    _prefix_hint = "instancenorm"

    def __init__(
        self,
        axis=1,
        epsilon=1e-5,
        center=True,
        scale=False,
        beta_initializer="zeros",
        gamma_initializer="ones",
        in_channels=0,
        *,
        prefix=None,
    ):
        in_channels = check_size("in_channels", in_channels, "0: infer at first call")
        self._axis = axis
        super().__init__(
            param_shape=(in_channels,),
            epsilon=epsilon,
            center=center,
            scale=scale,
            beta_initializer=beta_initializer,
            gamma_initializer=gamma_initializer,
            prefix=prefix,
            kwargs={"eps": epsilon, "axis": axis, "center": center, "scale": scale},
        )

    def _repr_suffix(self) -> str:
        return f", in_channels={self.gamma.shape[0]}"

    def _prepare(self, x):
        """x as an array, with gamma/beta ready for its channel count."""
        x, _ = F.float_input("x", x)
        channels = F.layout_of(x, self._axis).C
        self._fit_params(
            (channels,),
            lambda known: (
                f"{self!r} expects {known[0]} channels on axis {self._axis}, but x of "
                f"shape {x.shape} has {channels}"
            ),
        )
        return x

    def _make_plan(self, x):
        return prepare(x.shape, x.dtype, axis=self._axis, eps=self._epsilon)

    def _normalize(self, x, gamma, beta, out, return_stats=False):
        return F.instance_norm(
            x, gamma, beta, axis=self._axis, eps=self._epsilon, out=out, return_stats=return_stats
        )

    def _gradients(self, dy, x, gamma, mean, invstd, out):
        return F.instance_norm_backward(
            dy, x, gamma, axis=self._axis, eps=self._epsilon, mean=mean, invstd=invstd, out=out
        )
