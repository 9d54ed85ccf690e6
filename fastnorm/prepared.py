"""Prepared calls: instance or group norm for one input shape, planned once.

A service that normalizes inputs of one shape again and again pays, on a
small input, more for checking and planning each call than for the kernel
itself.  :func:`prepare` does that work once, as an FFT library's plan does;
the object it returns checks that x has the shape and dtype it was made
for, then runs the function's own forward on the stored layout.  Any other x
goes through :func:`fastnorm.instance_norm` or :func:`fastnorm.group_norm`
unchanged, with its full checks and its errors, so a prepared call never
returns what the plain function would not.
"""

from __future__ import annotations

import numpy as np

from . import functional as F


class PreparedNorm:
    """Instance or group norm of inputs of one shape and dtype.

    Made by :func:`prepare`; call it as ``plan(x, gamma=None, beta=None,
    out=None)``.  Results are bit-identical to :func:`fastnorm.group_norm`
    (and :func:`fastnorm.instance_norm` for ``num_groups=None``) with the
    same arguments.  A plan holds no per-call state: threads may share one.
    """

    __slots__ = ("_lay", "axis", "dtype", "eps", "num_groups", "shape")
    # num_groups is None for instance norm (fallbacks then call instance_norm,
    # whose errors speak of channels, not groups).

    def __init__(self, shape, dtype, axis, num_groups, eps):
        if not isinstance(shape, tuple) or not all(
            isinstance(n, (int, np.integer)) and n >= 0 for n in shape
        ):
            raise TypeError(f"shape must be a tuple of non-negative ints, got {shape!r}")
        shape = tuple(int(n) for n in shape)
        probe = np.empty(shape, dtype=np.dtype(dtype)) if 0 in shape else None
        if probe is None:
            # Validate dtype, axis and groups as the functions do, without
            # allocating an input of the planned size.
            probe = np.lib.stride_tricks.as_strided(
                np.zeros(1, dtype=np.dtype(dtype)), shape, (0,) * len(shape)
            )
        _, compute = F.float_input("x", probe)
        if compute != probe.dtype:
            raise TypeError(
                f"dtype must be float32 or float64 for a prepared call, got {probe.dtype}"
                " (float16 computes in float32: call fastnorm.group_norm)"
            )
        groups = None if num_groups is None else F.group_count(num_groups)
        lay = F.layout_of(probe, axis, groups)
        self.shape = shape
        self.dtype = probe.dtype
        self.axis = lay.axis
        self.num_groups = groups
        self.eps = F.check_eps(eps)
        self._lay = lay

    def __repr__(self) -> str:
        return (
            f"PreparedNorm(shape={self.shape}, dtype={self.dtype.name}, axis={self.axis}, "
            f"num_groups={self.num_groups}, eps={self.eps})"
        )

    def __call__(self, x, gamma=None, beta=None, *, out=None):
        """Normalize x (of the planned shape and dtype).

        Parameters
        ----------
        x : numpy.ndarray
            Input; any other shape, dtype or layout is passed to
            :func:`fastnorm.group_norm`, which checks it in full.
        gamma, beta : numpy.ndarray, optional
            Per-channel (C,) scale and shift (per group (G,) accepted as in
            :func:`fastnorm.group_norm`).
        out : numpy.ndarray, optional
            Destination of x's shape and dtype; may be x itself.

        Returns
        -------
        numpy.ndarray
            The normalized array (``out`` when given).
        """
        y = self.run(x, gamma, beta, out)
        if y is not None:
            return y
        if self.num_groups is None:
            return F.instance_norm(x, gamma, beta, axis=self.axis, eps=self.eps, out=out)
        return F.group_norm(x, self.num_groups, gamma, beta, axis=self.axis, eps=self.eps, out=out)

    def run(self, x, gamma, beta, out):
        """The planned call, or None when x is not of the planned shape and dtype.

        Everything after the shape -- parameters, ``out``, non-contiguous x --
        goes through the same helpers as :func:`fastnorm.group_norm`, so the
        results and errors are that function's.
        """
        if type(x) is not np.ndarray or x.shape != self.shape or x.dtype is not self.dtype:
            return None
        lay = self._lay
        g = F.channel_param("gamma", gamma, lay.C, self.dtype, 1.0, lay.G)
        b = F.channel_param("beta", beta, lay.C, self.dtype, 0.0, lay.G)
        return F.forward_with_layout(x, self.dtype, lay, g, b, self.eps, F.new_stats(lay), 0, out)


def prepare(shape, dtype=np.float32, *, axis=1, num_groups=None, eps=1e-5) -> PreparedNorm:
    """Plan instance norm (``num_groups=None``) or group norm for one input shape.

    Parameters
    ----------
    shape : tuple of int
        Shape of the inputs the plan is for.
    dtype : dtype, default float32
        float32 or float64.
    axis : int, default 1
        Channel axis, as in :func:`fastnorm.instance_norm`.
    num_groups : int, optional
        Groups of channels (None: one per channel, instance norm).
    eps : float, default 1e-5
        Added to the variance.

    Returns
    -------
    PreparedNorm
        Call it as ``plan(x, gamma, beta, out=out)``.

    Raises
    ------
    TypeError, ValueError
        For what :func:`fastnorm.group_norm` would reject for this shape.

    Examples
    --------
    >>> import numpy as np, fastnorm
    >>> plan = fastnorm.prepare((1, 16, 32, 32))
    >>> x = np.random.default_rng(0).standard_normal((1, 16, 32, 32), dtype=np.float32)
    >>> bool(np.array_equal(plan(x), fastnorm.instance_norm(x)))
    True
    """
    return PreparedNorm(shape, dtype, axis, num_groups, eps)
