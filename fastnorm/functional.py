"""Public functions on NumPy arrays: validation, canonical views, dispatch.

Nothing here loops over data; the kernels in :mod:`fastnorm._kernels` do.
This module turns any accepted input into the canonical flat C-ordered view
(N, P, C, Q), picks the kernel family and the serial or parallel variant from
the shape alone, and turns every bad input into a ``TypeError`` or
``ValueError`` that names the argument before Numba could see it.

The validation and view helpers without a leading underscore
(``layout_of``, ``float_input``, ``check_eps``, ``channel_param``, ...) are
shared with the layer, the Dask integration and the runtime, so every entry
point gives the same errors; they are not part of the public API.
"""

from __future__ import annotations

import math
import operator
from typing import NamedTuple

import numpy as np

from . import _kernels as K
from . import runtime

__all__ = [
    "backward_with_sums",
    "group_norm",
    "group_norm_backward",
    "group_norm_stats",
    "instance_norm",
    "instance_norm_backward",
    "instance_norm_stats",
    "layer_norm",
    "layer_norm_backward",
    "layer_norm_stats",
    "layer_norm_with_stats",
    "normalize_with_stats",
    "partial_grad_sums",
    "partial_moments",
]

#: Inputs up to this many elements run on the single-threaded kernels: a
#: parallel launch (~2 us here) costs more than their whole computation.
SERIAL_MAX_ELEMENTS = 65536
#: A channel axis in the middle with rows shorter than this uses the
#: channels-last kernels (per-column statistics) instead of per-row blocks.
MIN_ROW_LENGTH = 256

_FLOAT32 = np.dtype(np.float32)
_FLOAT64 = np.dtype(np.float64)
_NATIVE = (_FLOAT32, _FLOAT64)
_FLOAT16 = np.dtype(np.float16)

_ROWS = {
    "forward": (K.rows_forward_serial, K.rows_forward),
    "backward": (K.rows_backward_serial, K.rows_backward),
    "moments": (K.rows_moments_serial, K.rows_moments),
    "grad_sums": (K.rows_grad_sums_serial, K.rows_grad_sums),
}
_COLUMNS = {
    "forward": (K.columns_forward_serial, K.columns_forward),
    "backward": (K.columns_backward_serial, K.columns_backward),
    "moments": (K.columns_moments_serial, K.columns_moments),
    "grad_sums": (K.columns_grad_sums_serial, K.columns_grad_sums),
}


class Layout(NamedTuple):
    """Where the channel axis sits: x viewed as (N, P, C, Q), and how to run it.

    ``G`` groups of ``Cg = C // G`` consecutive channels share a mean and a
    variance (instance norm: G = C, Cg = 1).

    Everything a call needs from the shape is computed once by
    :func:`layout_of` and cached (planning per call cost more than a small
    input's kernel): ``family`` is 'columns' (per-column statistics) or
    'rows' (contiguous rows), ``kernels`` its (serial, parallel) pairs by
    name, ``M`` the rows the channels-last kernels fold into one (1 for the
    row kernels), ``dims`` what the kernels take, ``serial`` whether the
    input is small enough for the single-threaded twins.
    """

    shape: tuple
    axis: int
    N: int
    P: int
    C: int
    Q: int
    G: int
    Cg: int
    M: int
    family: str
    kernels: dict
    dims: tuple
    size: int
    serial: bool


# --------------------------------------------------------------------------
# validation


def _describe(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def as_array(name: str, value) -> np.ndarray:
    if type(value) is np.ndarray:
        return value
    if value is None or isinstance(value, (str, bytes, dict, set)):
        raise TypeError(f"{name} must be an array of floats, got {_describe(value)}")
    try:
        return np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} must be an array of floats, got {_describe(value)}") from exc


def compute_dtype(name: str, dtype: np.dtype) -> np.dtype:
    """float32/float64 compute natively; float16 computes in float32.

    Non-native byte orders compute in the native dtype of the same kind (the
    flat view converts them once).
    """
    if dtype is _FLOAT32 or dtype is _FLOAT64 or dtype in _NATIVE:  # `is`: 0.25 us less
        return dtype
    if dtype.kind == "f" and not dtype.isnative:
        dtype = dtype.newbyteorder("=")
        if dtype in _NATIVE:
            return dtype
    if dtype == _FLOAT16:
        return _FLOAT32
    raise TypeError(
        f"{name} has dtype {dtype}; expected float16, float32 or float64 "
        "(convert integers or other types with .astype(np.float32) first)"
    )


#: Layouts of recently seen (shape, axis) pairs: planning costs more than a
#: small input's whole kernel (bounded; cleared when full).
_LAYOUTS: dict = {}
_LAYOUTS_MAX = 256


def layout_of(x: np.ndarray, axis, num_groups=None) -> Layout:
    """The (cached) layout of x with its channel axis and groups (None: G = C)."""
    cacheable = type(axis) is int and (num_groups is None or type(num_groups) is int)
    if cacheable:
        lay = _LAYOUTS.get((x.shape, axis, num_groups))
        if lay is not None:
            return lay
    lay = _plan_layout(x.shape, axis, num_groups)
    if cacheable:
        if len(_LAYOUTS) >= _LAYOUTS_MAX:
            _LAYOUTS.clear()
        _LAYOUTS[(x.shape, axis, num_groups)] = lay
    return lay


def _check_axis(axis, ndim: int) -> int:
    if type(axis) is not int:
        if isinstance(axis, (bool, np.bool_)):
            raise TypeError(f"axis must be an integer, got {axis!r}")
        try:
            axis = operator.index(axis)
        except TypeError:
            raise TypeError(f"axis must be an integer, got {_describe(axis)}") from None
    a = axis + ndim if axis < 0 else axis
    if not 0 < a < ndim:
        raise ValueError(
            f"axis={axis} is not a valid channel axis for an array of {ndim} dimensions; "
            f"expected 1..{ndim - 1} or -{ndim - 1}..-1 (axis 0 holds the samples)"
        )
    return a


def _check_groups(num_groups, C: int) -> int:
    G = group_count(num_groups)
    if C % G:
        raise ValueError(
            f"num_groups={G} must divide the number of channels C={C} "
            f"(each group holds C // num_groups consecutive channels)"
        )
    return G


def _plan_layout(shape: tuple, axis, num_groups) -> Layout:
    ndim = len(shape)
    if ndim < 3 and num_groups is None:
        raise ValueError(
            f"x must have at least 3 dimensions (samples, channels, and at least one "
            f"axis to normalize over), got shape {shape}"
        )
    if ndim < 2:
        raise ValueError(
            f"x must have at least 2 dimensions (samples and channels), got shape {shape}"
        )
    a = _check_axis(axis, ndim)
    N, C = shape[0], shape[a]
    G = C if num_groups is None else _check_groups(num_groups, C)
    P = math.prod(shape[1:a])
    Q = math.prod(shape[a + 1 :])
    size = N * P * C * Q
    serial = size <= SERIAL_MAX_ELEMENTS
    Cg = C // G if G else 1
    if Q == 1 or (P > 1 and Q < MIN_ROW_LENGTH):
        M = _rows_to_fold(P, C * Q)
        dims = (N, P // M, C, Q, M, G)
        return Layout(shape, a, N, P, C, Q, G, Cg, M, "columns", _COLUMNS, dims, size, serial)
    dims = (N, P, G, Cg, Q)
    return Layout(shape, a, N, P, C, Q, G, Cg, 1, "rows", _ROWS, dims, size, serial)


#: Channels-last rows shorter than this many elements are folded together.
MIN_COLUMNS = 128


def _rows_to_fold(P: int, K: int) -> int:
    """Smallest divisor m of P with m * K >= MIN_COLUMNS (1 if none is small).

    Per-column loops over a handful of channels do not vectorize: NHWC with
    C = 3 ran at 8x np.copyto before folding rows.
    """
    if K >= MIN_COLUMNS:
        return 1
    for m in range(-(-MIN_COLUMNS // K), 4 * MIN_COLUMNS // K + 1):
        if P % m == 0:
            return m
    return 1


def check_eps(eps) -> float:
    if type(eps) is float and 0.0 <= eps < math.inf:
        return eps
    if isinstance(eps, (bool, np.bool_)) or not isinstance(
        eps, (int, float, np.integer, np.floating)
    ):
        raise TypeError(f"eps must be a real number, got {_describe(eps)}")
    value = float(eps)
    if not (value >= 0.0 and math.isfinite(value)):
        raise ValueError(f"eps must be finite and >= 0, got {eps!r}")
    return value


def channel_param(name: str, value, C: int, dtype: np.dtype, default: float, G=None) -> np.ndarray:
    """gamma/beta as a writable C-contiguous (C,) array of the compute dtype.

    The kernels take one such specialization.  An array that already is one
    is passed as it is: converting it cost 0.4 us per parameter, 10% of a
    small input's call.  With ``G`` groups, a (G,) array (one value per
    group, MXNet 1.x's GroupNorm) is also accepted and repeated per channel.
    """
    if value is None:
        return _constant_vector(C, default, dtype)
    if (
        type(value) is np.ndarray
        and value.dtype is dtype
        and value.shape == (C,)
        and value.flags.c_contiguous
        and value.flags.writeable
    ):
        return value
    arr = as_array(name, value)
    if arr.dtype.kind not in "fiu" or arr.dtype == np.bool_:
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if G is not None and G != C and arr.shape == (G,):
        return np.repeat(arr.astype(dtype), C // G)
    if arr.shape != (C,):
        if G is None or G == C:
            expected = f"({C},) (one value per channel)"
        else:
            expected = f"({C},) (one value per channel) or ({G},) (one value per group)"
        raise ValueError(f"{name} must have shape {expected}, got shape {arr.shape}")
    return np.array(arr, dtype=dtype, order="C")  # a new writable copy


_CONSTANTS: dict = {}


def _constant_vector(C: int, value: float, dtype: np.dtype) -> np.ndarray:
    """A shared vector of C copies of value (kernels never write it)."""
    key = (C, value, dtype)
    vec = _CONSTANTS.get(key)
    if vec is None:
        if len(_CONSTANTS) >= _LAYOUTS_MAX:
            _CONSTANTS.clear()
        vec = _CONSTANTS[key] = np.full(C, value, dtype)
    return vec


def _check_out(out, shape: tuple, dtype: np.dtype, what: str) -> np.ndarray:
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray, got {_describe(out)}")
    if out.shape != shape:
        raise ValueError(f"out must have the shape of {what} {shape}, got shape {out.shape}")
    if out.dtype != dtype:
        raise ValueError(f"out must have the dtype of {what} ({dtype}), got dtype {out.dtype}")
    if not out.flags.writeable:
        raise ValueError("out must be writable, got a read-only array")
    return out


def _check_stats(mean, invstd, shape: tuple, what: str):
    """Given (mean, invstd) of ``shape`` as flat float64 views; ``what``
    describes the expected shape in the errors."""
    if (mean is None) != (invstd is None):
        missing = "invstd" if invstd is None else "mean"
        raise ValueError(f"mean and invstd go together; {missing} is missing")
    arrays = []
    for name, value in (("mean", mean), ("invstd", invstd)):
        arr = as_array(name, value)
        if arr.dtype.kind != "f":
            raise TypeError(f"{name} must be a float array, got dtype {arr.dtype}")
        if arr.shape != shape:
            raise ValueError(f"{name} must have {what}, got shape {arr.shape}")
        arrays.append(flat_view(arr, _FLOAT64))
    return arrays


def float_input(name: str, value):
    """(array, compute dtype) of a float input, or a TypeError naming it."""
    arr = as_array(name, value)
    return arr, compute_dtype(name, arr.dtype)


# --------------------------------------------------------------------------
# views and dispatch


def flat_view(arr: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """A read-only flat C-ordered view (or, when unavoidable, copy) in ``dtype``.

    Kernels read their inputs through read-only views only, so writable and
    read-only arrays share one compiled specialization.
    """
    if arr.dtype != dtype:
        flat = arr.astype(dtype, order="C").reshape(-1)
    elif arr.flags.c_contiguous:
        flat = arr.ravel()  # a view here, and half the cost of reshape(-1)
    else:
        flat = np.ascontiguousarray(arr).reshape(-1)
    flat.setflags(write=False)
    return flat


def _result_buffer(out, compute: np.dtype, *flat_inputs: np.ndarray):
    """Flat buffer the kernel writes: ``out`` itself when that is safe.

    Writing in place over an input is safe only when both are the same
    memory element for element (every kernel reads an element before it
    writes it and finishes all statistics first); a partial overlap gets a
    scratch buffer.
    """
    if out is not None and out.dtype is compute and out.flags.c_contiguous:
        for inp in flat_inputs:  # a plain loop: a generator cost 0.3 us here
            if np.may_share_memory(out, inp) and not _same_memory(out, inp):
                break
        else:
            return out.ravel(), True
    return np.empty(flat_inputs[0].size, dtype=compute), False


def _same_memory(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two overlapping C-contiguous arrays of one dtype start together.

    When both are aligned, their offset is a whole number of items, so the
    first elements overlap only if they start together (4x cheaper than
    comparing ``__array_interface__`` addresses).
    """
    if a.flags.aligned and b.flags.aligned:
        return np.may_share_memory(a.ravel()[:1], b[:1])
    return a.__array_interface__["data"][0] == b.__array_interface__["data"][0]


def _as_result(arr: np.ndarray, compute: np.dtype, dtype: np.dtype) -> np.ndarray:
    """A float64 result in x's dtype, through the compute dtype (float16 input
    computes in float32: rounding float64 to float16 directly would differ)."""
    if compute != arr.dtype:
        arr = arr.astype(compute)
    return arr if arr.dtype == dtype else arr.astype(dtype)


def _finish(buf: np.ndarray, wrote_out: bool, out, shape: tuple, dtype: np.dtype):
    if out is None:
        result = buf.reshape(shape)
        return result if result.dtype == dtype else result.astype(dtype)
    if not wrote_out:
        np.copyto(out, buf.reshape(shape), casting="unsafe")
    return out


def new_stats(lay: Layout) -> np.ndarray:
    """An uninitialized per-slice ``stats`` array for the kernels."""
    return np.empty((K.STATS_COLUMNS, lay.N * lay.C))


def _run(pair, lay: Layout, *args):
    """Run a (serial, parallel) kernel pair: serial for small inputs."""
    serial, parallel = pair
    if lay.serial:
        return serial(*args)
    return runtime.call_parallel(parallel, serial, *args)


def _moments_into(stats, x, compute, lay, eps):
    """Fill (count, mean, invstd, m2) of ``stats`` for every slice of x."""
    xf = flat_view(x, compute)
    _run(lay.kernels["moments"], lay, xf, *lay.dims, eps, stats)


def forward_with_layout(x, compute, lay, g, b, eps, stats, given, out):
    """The forward once its arguments are valid: out handling and dispatch.

    Spelled out apart from :func:`_backward` on purpose: a shared generic
    version (tuples of inputs, ``*args`` packing) cost 0.6-1 us per call, 10%
    of a small input's whole call.
    """
    if out is not None:
        _check_out(out, x.shape, x.dtype, "x")
    if x.size == 0:
        return np.empty(x.shape, x.dtype) if out is None else out
    xf = flat_view(x, compute)
    buf, wrote_out = _result_buffer(out, compute, xf)
    _run(lay.kernels["forward"], lay, xf, buf, *lay.dims, g, b, eps, stats, given)
    return _finish(buf, wrote_out, out, x.shape, x.dtype)


def _backward(dy, x, compute, lay, g, eps, stats, given, out):
    """dx once the arguments are valid (``stats`` filled up to ``given``)."""
    if out is not None:
        _check_out(out, x.shape, x.dtype, "x")
    if x.size == 0:
        return np.empty(x.shape, x.dtype) if out is None else out
    xf = flat_view(x, compute)
    dyf = flat_view(dy, compute)
    buf, wrote_out = _result_buffer(out, compute, xf, dyf)
    _run(lay.kernels["backward"], lay, dyf, xf, buf, *lay.dims, g, eps, stats, given)
    return _finish(buf, wrote_out, out, x.shape, x.dtype)


def _gradient_inputs(dy, x, axis, num_groups=None):
    """Validated (dy, x, compute dtype, layout) of a backward."""
    x, compute = float_input("x", x)
    dy, _ = float_input("dy", dy)
    lay = layout_of(x, axis, num_groups)
    if dy.shape != x.shape:
        raise ValueError(f"dy must have the shape of x {x.shape}, got shape {dy.shape}")
    return dy, x, compute, lay


# --------------------------------------------------------------------------
# one implementation for instance norm (num_groups None: one group per
# channel) and group norm


def _stats_shape(lay: Layout) -> str:
    return "(N, C)" if lay.G == lay.C else "(N, num_groups)"


def _per_slice_stats(lay: Layout, stats: np.ndarray, row: int) -> np.ndarray:
    """(N, G) view or copy of a slice quantity of the per-channel table."""
    if lay.G == lay.C:
        return stats[row].reshape(lay.N, lay.C)
    return np.ascontiguousarray(stats[row, :: lay.Cg]).reshape(lay.N, lay.G)


def group_count(num_groups) -> int:
    """A valid group count (an integer >= 1, None included in the errors), as an int.

    Shared by the functions, the GroupNorm layer and fastnorm.dask, so all
    give the same errors; whether it divides C is checked with the input.
    """
    if isinstance(num_groups, (bool, np.bool_)) or not isinstance(num_groups, (int, np.integer)):
        raise TypeError(f"num_groups must be an integer, got {_describe(num_groups)}")
    G = int(num_groups)
    if G < 1:
        raise ValueError(f"num_groups must be >= 1, got {G}")
    return G


def _norm(x, num_groups, gamma, beta, axis, eps, out, return_stats=False):
    x, compute = float_input("x", x)
    lay = layout_of(x, axis, num_groups)
    eps = check_eps(eps)
    g = channel_param("gamma", gamma, lay.C, compute, 1.0, lay.G)
    b = channel_param("beta", beta, lay.C, compute, 0.0, lay.G)
    stats = new_stats(lay)
    y = forward_with_layout(x, compute, lay, g, b, eps, stats, 0, out)
    if not return_stats:
        return y
    if x.size == 0:
        return y, np.full((lay.N, lay.G), np.nan), np.full((lay.N, lay.G), np.nan)
    return y, _per_slice_stats(lay, stats, K.MEAN), _per_slice_stats(lay, stats, K.INVSTD)


def _check_flag(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {_describe(value)}")
    return bool(value)


def _norm_stats(x, num_groups, axis, eps):
    x, compute = float_input("x", x)
    lay = layout_of(x, axis, num_groups)
    eps = check_eps(eps)
    if x.size == 0:  # no elements, no statistics (also when C = 0 < num_groups)
        return np.full((lay.N, lay.G), np.nan), np.full((lay.N, lay.G), np.nan)
    stats = new_stats(lay)
    _moments_into(stats, x, compute, lay, eps)
    return _per_slice_stats(lay, stats, K.MEAN), _per_slice_stats(lay, stats, K.INVSTD)


def _norm_backward(dy, x, num_groups, gamma, axis, eps, mean, invstd, out):
    dy, x, compute, lay = _gradient_inputs(dy, x, axis, num_groups)
    eps = check_eps(eps)
    g = channel_param("gamma", gamma, lay.C, compute, 1.0, lay.G)
    Cg = lay.Cg
    stats = new_stats(lay)
    given = 0
    if mean is not None or invstd is not None:
        shape = (lay.N, lay.G)
        m, s = _check_stats(mean, invstd, shape, f"shape {_stats_shape(lay)} = {shape}")
        K.fill_given_stats(stats, float(lay.P * lay.Q * Cg), m, s, Cg)
        given = 3
    dx = _backward(dy, x, compute, lay, g, eps, stats, given, out)
    per_group = lay.G != lay.C and gamma is not None and np.shape(gamma) == (lay.G,)
    if x.size == 0:
        zeros = np.zeros(lay.G if per_group else lay.C, x.dtype)
        return dx, zeros, zeros.copy()
    dgamma = np.empty(lay.C)
    dbeta = np.empty(lay.C)
    K.channel_gradients(stats, dgamma, dbeta)
    if per_group:  # MXNet 1.x: one gamma per group gets its channels' sum
        dgamma = dgamma.reshape(lay.G, Cg).sum(axis=1)
        dbeta = dbeta.reshape(lay.G, Cg).sum(axis=1)
    if x.dtype != dgamma.dtype:
        return dx, _as_result(dgamma, compute, x.dtype), _as_result(dbeta, compute, x.dtype)
    return dx, dgamma, dbeta


# --------------------------------------------------------------------------
# public API


def instance_norm(x, gamma=None, beta=None, *, axis=1, eps=1e-5, out=None, return_stats=False):
    """Instance normalization of an array with a channel axis.

    Every (sample, channel) slice is normalized over all other axes::

        y = (x - mean) / sqrt(var + eps) * gamma[c] + beta[c]

    with the population variance, as MXNet Gluon's ``nn.InstanceNorm``,
    PyTorch's ``instance_norm`` and ONNX's ``InstanceNormalization`` do.
    It is :func:`group_norm` with one channel per group, to the bit.

    Parameters
    ----------
    x : array_like
        Input of at least 3 dimensions; axis 0 holds the samples.  float32
        and float64 are computed natively; float16 is computed in float32.
        Any memory layout is accepted.
    gamma, beta : array_like of shape (C,), optional
        Per-channel scale and shift; None means ones and zeros.  Converted to
        the compute dtype.
    axis : int, default 1
        The channel axis; any axis but 0, negative values allowed (``-1``
        for channels-last layouts such as NHWC).
    eps : float, default 1e-5
        Added to the variance inside the square root; finite and ``>= 0``.
    out : numpy.ndarray, optional
        Writable array of x's shape and dtype to receive the result; may be
        ``x`` itself.
    return_stats : bool, default False
        Also return the statistics the forward computed (those of
        :func:`instance_norm_stats`), for a training backward without a
        second pass over x.

    Returns
    -------
    numpy.ndarray
        The normalized array (``out`` when given), of x's shape and dtype;
        with ``return_stats``, the tuple ``(y, mean, invstd)``.

    Notes
    -----
    Statistics use blocked Welford accumulated in float64, so large offsets
    keep their digits; a constant slice gives exactly ``beta``; NaN or Inf
    in a slice makes only that slice NaN.
    """
    return _norm(x, None, gamma, beta, axis, eps, out, _check_flag("return_stats", return_stats))


def instance_norm_stats(x, *, axis=1, eps=1e-5):
    """Per (sample, channel) mean and ``1 / sqrt(var + eps)``.

    Parameters
    ----------
    x : array_like
        As for :func:`instance_norm`.
    axis : int, default 1
        The channel axis.
    eps : float, default 1e-5
        Added to the variance.

    Returns
    -------
    mean, invstd : numpy.ndarray
        float64 arrays of shape (N, C), the exact statistics the other
        functions use; passing them to :func:`instance_norm_backward` skips
        recomputing them and gives the same result.
    """
    return _norm_stats(x, None, axis, eps)


def instance_norm_backward(
    dy, x, gamma=None, *, axis=1, eps=1e-5, mean=None, invstd=None, out=None
):
    """Gradients of :func:`instance_norm` with respect to x, gamma and beta.

    Parameters
    ----------
    dy : array_like
        Upstream gradient, same shape as x; converted to x's compute dtype.
    x : array_like
        The forward's input.
    gamma : array_like of shape (C,), optional
        The forward's scale; None means ones.
    axis, eps
        As for the forward.
    mean, invstd : array_like of shape (N, C), optional
        Statistics from :func:`instance_norm_stats`; given together, they
        save one pass over x and give the same result.
    out : numpy.ndarray, optional
        Receives dx: writable, of x's shape and dtype (may be dy or x).

    Returns
    -------
    dx : numpy.ndarray
        Same shape and dtype as x.
    dgamma, dbeta : numpy.ndarray
        Shape (C,), x's dtype: ``sum(dy * xhat)`` and ``sum(dy)`` over
        samples and slice.  With gamma None, dgamma is the gradient for an
        implicit gamma of ones.
    """
    return _norm_backward(dy, x, None, gamma, axis, eps, mean, invstd, out)


def group_norm(
    x, num_groups, gamma=None, beta=None, *, axis=1, eps=1e-5, out=None, return_stats=False
):
    """Group normalization: channels in ``num_groups`` groups share statistics.

    Every (sample, group) slice -- the group's ``C // num_groups``
    consecutive channels and every axis except 0 and ``axis`` -- is
    normalized with its own mean and population variance::

        y = (x - mean[n, g]) / sqrt(var[n, g] + eps) * gamma[c] + beta[c]

    ``num_groups == C`` is :func:`instance_norm` (bit for bit);
    ``num_groups == 1`` normalizes each sample over everything.

    Parameters
    ----------
    x : array_like
        Input of at least 2 dimensions; axis 0 holds the samples.  Same
        dtypes and layouts as :func:`instance_norm`.
    num_groups : int
        Number of groups; must divide C (``x.shape[axis]``).
    gamma, beta : array_like of shape (C,) or (num_groups,), optional
        Scale and shift per channel (PyTorch, ONNX, MXNet 2) or per group
        (MXNet 1.x ``nn.GroupNorm``); None means ones and zeros.
    axis : int, default 1
        The channel axis; any axis but 0 (``-1`` for NHWC).
    eps : float, default 1e-5
        Added to the variance inside the square root; finite and ``>= 0``.
    out : numpy.ndarray, optional
        Writable array of x's shape and dtype to receive the result; may be
        ``x`` itself.
    return_stats : bool, default False
        Also return the (N, num_groups) statistics the forward computed.

    Returns
    -------
    numpy.ndarray
        The normalized array (``out`` when given), of x's shape and dtype;
        with ``return_stats``, the tuple ``(y, mean, invstd)``.
    """
    flag = _check_flag("return_stats", return_stats)
    return _norm(x, group_count(num_groups), gamma, beta, axis, eps, out, flag)


def group_norm_stats(x, num_groups, *, axis=1, eps=1e-5):
    """Per (sample, group) mean and ``1 / sqrt(var + eps)``.

    Returns
    -------
    mean, invstd : numpy.ndarray
        float64 arrays of shape (N, num_groups), the exact statistics the
        other functions use (see :func:`instance_norm_stats`).
    """
    return _norm_stats(x, group_count(num_groups), axis, eps)


def group_norm_backward(
    dy, x, num_groups, gamma=None, *, axis=1, eps=1e-5, mean=None, invstd=None, out=None
):
    """Gradients of :func:`group_norm` with respect to x, gamma and beta.

    Parameters
    ----------
    dy, x : array_like
        Upstream gradient and the forward's input, same shape.
    num_groups : int
        As for the forward.
    gamma : array_like of shape (C,) or (num_groups,), optional
        The forward's scale; None means ones.
    axis, eps
        As for the forward.
    mean, invstd : array_like of shape (N, num_groups), optional
        Statistics from :func:`group_norm_stats`; given together they save
        one pass over x and give the same result.
    out : numpy.ndarray, optional
        Receives dx: writable, of x's shape and dtype (may be dy or x).

    Returns
    -------
    dx : numpy.ndarray
        Same shape and dtype as x.
    dgamma, dbeta : numpy.ndarray
        x's dtype, in the shape of the gamma given: (C,) per channel (also
        when gamma is None) or (num_groups,) per group.
    """
    return _norm_backward(dy, x, group_count(num_groups), gamma, axis, eps, mean, invstd, out)


# --------------------------------------------------------------------------
# layer norm: x viewed as (A, L, B), normalized over L with an affine per
# normalized element (kernels in fastnorm._kernels.affine)

_AFFINE_ROWS = {
    "forward": (K.affine_rows_forward_serial, K.affine_rows_forward),
    "backward": (K.affine_rows_backward_serial, K.affine_rows_backward),
    "moments": (K.rows_moments_serial, K.rows_moments),
}
_AFFINE_COLUMNS = {
    "forward": (K.affine_columns_forward_serial, K.affine_columns_forward),
    "backward": (K.affine_columns_backward_serial, K.affine_columns_backward),
    "moments": (K.columns_moments_serial, K.columns_moments),
}


class AffineLayout(NamedTuple):
    """x viewed as (A, L, B) for layer norm over the axes ``first..last``.

    ``dims`` are what the forward and backward kernels take, ``moment_dims``
    what the statistics kernel of the same family takes (rows: each slice a
    row of L; columns: each of the B columns of a sample its own slice).
    """

    shape: tuple
    first: int
    last: int
    A: int
    L: int
    B: int
    param_shape: tuple
    stats_shape: tuple
    kernels: dict
    dims: tuple
    moment_dims: tuple
    size: int
    serial: bool


_AFFINE_LAYOUTS: dict = {}


def affine_layout_of(x: np.ndarray, axis) -> AffineLayout:
    """The (cached) layer-norm layout of x normalized over ``axis``."""
    cacheable = type(axis) is int or (type(axis) is tuple and all(type(a) is int for a in axis))
    if cacheable:
        lay = _AFFINE_LAYOUTS.get((x.shape, axis))
        if lay is not None:
            return lay
    lay = _plan_affine_layout(x.shape, axis)
    if cacheable:
        if len(_AFFINE_LAYOUTS) >= _LAYOUTS_MAX:
            _AFFINE_LAYOUTS.clear()
        _AFFINE_LAYOUTS[(x.shape, axis)] = lay
    return lay


def _normalized_axes(axis, ndim: int) -> tuple[int, int]:
    """(first, last) of the normalized axes: an int or a tuple of consecutive ints."""
    if isinstance(axis, (tuple, list)):
        axes = list(axis)
        if not axes:
            raise ValueError(f"axis must name at least one axis, got {axis!r}")
    else:
        axes = [axis]
    resolved = []
    for a in axes:
        if isinstance(a, (bool, np.bool_)):
            raise TypeError(f"axis must be an integer or a tuple of integers, got {axis!r}")
        try:
            a = operator.index(a)
        except TypeError:
            raise TypeError(
                f"axis must be an integer or a tuple of integers, got {_describe(axis)}"
            ) from None
        if not -ndim <= a < ndim:
            raise ValueError(
                f"axis={axis!r} is out of range for an array of {ndim} dimensions; "
                f"expected values in -{ndim}..{ndim - 1}"
            )
        resolved.append(a % ndim)
    resolved.sort()
    if len(set(resolved)) != len(resolved) or resolved[-1] - resolved[0] != len(resolved) - 1:
        raise ValueError(
            f"axis={axis!r} must name distinct consecutive axes (e.g. (-2, -1)), "
            f"got axes {tuple(resolved)}"
        )
    return resolved[0], resolved[-1]


def _plan_affine_layout(shape: tuple, axis) -> AffineLayout:
    ndim = len(shape)
    if ndim < 1:
        raise ValueError("x must have at least 1 dimension, got a 0-d array")
    first, last = _normalized_axes(axis, ndim)
    A = math.prod(shape[:first])
    L = math.prod(shape[first : last + 1])
    B = math.prod(shape[last + 1 :])
    size = A * L * B
    param_shape = tuple(shape[first : last + 1])
    stats_shape = tuple(shape[:first]) + tuple(shape[last + 1 :])
    serial = size <= SERIAL_MAX_ELEMENTS
    if B == 1:
        kernels, dims, moment_dims = _AFFINE_ROWS, (A, L), (A, 1, 1, 1, L)
    else:
        kernels, dims, moment_dims = _AFFINE_COLUMNS, (A, L, B), (A, L, B, 1, 1, B)
    return AffineLayout(
        shape,
        first,
        last,
        A,
        L,
        B,
        param_shape,
        stats_shape,
        kernels,
        dims,
        moment_dims,
        size,
        serial,
    )


def element_param(name: str, value, lay: AffineLayout, dtype: np.dtype, default: float):
    """gamma/beta of layer norm as a C-contiguous (L,) array of the compute dtype."""
    if value is None:
        return _constant_vector(lay.L, default, dtype)
    arr = as_array(name, value)
    if arr.dtype.kind not in "fiu" or arr.dtype == np.bool_:
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.shape != lay.param_shape:
        raise ValueError(
            f"{name} must have the shape of the normalized axes {lay.param_shape}, "
            f"got shape {arr.shape}"
        )
    if arr.dtype is dtype and arr.flags.c_contiguous and arr.flags.writeable:
        return arr.reshape(-1)  # kernels only read it
    # A writable copy: a read-only gamma would compile a second specialization.
    return np.array(arr, dtype=dtype, order="C").reshape(-1)


def _affine_stats_table(lay: AffineLayout) -> np.ndarray:
    return np.empty((K.STATS_COLUMNS, lay.A * lay.B))


def layer_norm(x, gamma=None, beta=None, *, axis=-1, eps=1e-5, out=None, return_stats=False):
    """Layer normalization over one axis or several consecutive axes.

    Every slice along the normalized axes is normalized with its own mean
    and population variance, with an affine per normalized element::

        y = (x - mean) / sqrt(var + eps) * gamma + beta

    as MXNet Gluon's ``nn.LayerNorm`` (one axis, any position) and
    PyTorch's ``layer_norm`` (``normalized_shape`` = the trailing axes).

    Parameters
    ----------
    x : array_like
        Input of at least 1 dimension; float16 (computed in float32),
        float32 or float64, any memory layout.
    gamma, beta : array_like of the normalized axes' shape, optional
        Scale and shift per normalized element; None means ones and zeros.
    axis : int or tuple of int, default -1
        The normalized axis, or a tuple of consecutive axes (``(-2, -1)``).
    eps : float, default 1e-5
        Added to the variance inside the square root; finite and ``>= 0``.
    out : numpy.ndarray, optional
        Writable array of x's shape and dtype to receive the result; may be
        ``x`` itself.
    return_stats : bool, default False
        Also return the statistics the forward computed (those of
        :func:`layer_norm_stats`).

    Returns
    -------
    numpy.ndarray
        The normalized array (``out`` when given), of x's shape and dtype;
        with ``return_stats``, the tuple ``(y, mean, invstd)``.
    """
    x, compute = float_input("x", x)
    lay = affine_layout_of(x, axis)
    eps = check_eps(eps)
    g = element_param("gamma", gamma, lay, compute, 1.0)
    b = element_param("beta", beta, lay, compute, 0.0)
    flag = _check_flag("return_stats", return_stats)
    stats = _affine_stats_table(lay)
    y = forward_with_layout(x, compute, lay, g, b, eps, stats, 0, out)
    if not flag:
        return y
    if x.size == 0:
        return y, np.full(lay.stats_shape, np.nan), np.full(lay.stats_shape, np.nan)
    return y, stats[K.MEAN].reshape(lay.stats_shape), stats[K.INVSTD].reshape(lay.stats_shape)


def layer_norm_stats(x, *, axis=-1, eps=1e-5):
    """Mean and ``1 / sqrt(var + eps)`` of every slice of :func:`layer_norm`.

    Returns
    -------
    mean, invstd : numpy.ndarray
        float64 arrays of x's shape without the normalized axes, the exact
        statistics the other functions use.
    """
    x, compute = float_input("x", x)
    lay = affine_layout_of(x, axis)
    eps = check_eps(eps)
    if x.size == 0:
        return np.full(lay.stats_shape, np.nan), np.full(lay.stats_shape, np.nan)
    stats = _affine_stats_table(lay)
    xf = flat_view(x, compute)
    _run(lay.kernels["moments"], lay, xf, *lay.moment_dims, eps, stats)
    return stats[K.MEAN].reshape(lay.stats_shape), stats[K.INVSTD].reshape(lay.stats_shape)


def layer_norm_backward(dy, x, gamma=None, *, axis=-1, eps=1e-5, mean=None, invstd=None, out=None):
    """Gradients of :func:`layer_norm` with respect to x, gamma and beta.

    Parameters
    ----------
    dy, x : array_like
        Upstream gradient and the forward's input, same shape.
    gamma : array_like of the normalized axes' shape, optional
        The forward's scale; None means ones.
    axis, eps
        As for the forward.
    mean, invstd : array_like, optional
        Statistics from :func:`layer_norm_stats` (x's shape without the
        normalized axes); given together they save one pass over x and give
        the same result.
    out : numpy.ndarray, optional
        Receives dx: writable, of x's shape and dtype (may be dy or x).

    Returns
    -------
    dx : numpy.ndarray
        Same shape and dtype as x.
    dgamma, dbeta : numpy.ndarray
        The normalized axes' shape, x's dtype: ``sum(dy * xhat)`` and
        ``sum(dy)`` over every slice.
    """
    x, compute = float_input("x", x)
    dy, _ = float_input("dy", dy)
    lay = affine_layout_of(x, axis)
    if dy.shape != x.shape:
        raise ValueError(f"dy must have the shape of x {x.shape}, got shape {dy.shape}")
    eps = check_eps(eps)
    g = element_param("gamma", gamma, lay, compute, 1.0)
    stats = _affine_stats_table(lay)
    given = 0
    if mean is not None or invstd is not None:
        what = f"the shape of x.shape without the normalized axes {lay.stats_shape}"
        m, s = _check_stats(mean, invstd, lay.stats_shape, what)
        K.fill_given_stats(stats, float(lay.L), m, s, 1)
        given = 3
    if out is not None:
        _check_out(out, x.shape, x.dtype, "x")
    if x.size == 0:
        zeros = np.zeros(lay.param_shape, x.dtype)
        return (np.empty(x.shape, x.dtype) if out is None else out), zeros, zeros.copy()
    xf = flat_view(x, compute)
    dyf = flat_view(dy, compute)
    buf, wrote_out = _result_buffer(out, compute, xf, dyf)
    dgamma = np.empty(lay.L)
    dbeta = np.empty(lay.L)
    _run(lay.kernels["backward"], lay, dyf, xf, buf, *lay.dims, g, eps, stats, given, dgamma, dbeta)
    dx = _finish(buf, wrote_out, out, x.shape, x.dtype)
    dgamma = dgamma.reshape(lay.param_shape)
    dbeta = dbeta.reshape(lay.param_shape)
    if x.dtype != dgamma.dtype:
        return dx, _as_result(dgamma, compute, x.dtype), _as_result(dbeta, compute, x.dtype)
    return dx, dgamma, dbeta


def layer_norm_with_stats(x, mean, invstd, gamma=None, beta=None, *, axis=-1, out=None):
    """The forward of :func:`layer_norm` with given statistics (a chunk-level
    building block: ``mean``/``invstd`` of x's shape without the normalized
    axes, gamma/beta of the normalized axes' shape)."""
    x, compute = float_input("x", x)
    lay = affine_layout_of(x, axis)
    g = element_param("gamma", gamma, lay, compute, 1.0)
    b = element_param("beta", beta, lay, compute, 0.0)
    what = f"the shape of x.shape without the normalized axes {lay.stats_shape}"
    m, s = _check_stats(mean, invstd, lay.stats_shape, what)
    stats = _affine_stats_table(lay)
    K.fill_given_stats(stats, float(lay.L), m, s, 1)
    return forward_with_layout(x, compute, lay, g, b, 0.0, stats, 3, out)


# --------------------------------------------------------------------------
# chunk-level building blocks (for fastnorm.dask): statistics of one chunk,
# merged elsewhere with Chan's formula, then applied chunk by chunk.  Slice
# quantities are (N, G) arrays (G = C without num_groups), sums (N, C).


def _given_stats(lay: Layout, **columns) -> np.ndarray:
    """A per-channel table filled from (N, G) slice and (N, C) channel arrays."""
    stats = np.zeros((K.STATS_COLUMNS, lay.N * lay.C))
    Cg = lay.Cg
    for name, value in columns.items():
        per_slice = name in ("count", "mean", "invstd")
        rows = lay.G if per_slice else lay.C
        arr = as_array(name, value)
        if arr.shape != (lay.N, rows):
            what = _stats_shape(lay) if per_slice else "(N, C)"
            raise ValueError(f"{name} must have shape {what} = {(lay.N, rows)}, got {arr.shape}")
        flat = arr.reshape(-1)
        stats[getattr(K, name.upper())] = np.repeat(flat, Cg) if per_slice else flat
    return stats


def partial_moments(x, *, axis=1, num_groups=None):
    """Count, mean and M2 (sum of squared deviations) of each slice of a chunk.

    Returns
    -------
    count, mean, m2 : numpy.ndarray
        float64 arrays of shape (N, G), ready for Chan's merge.  An empty
        slice has count 0, mean 0 and M2 0.
    """
    x, compute = float_input("x", x)
    lay = layout_of(x, axis, num_groups)
    if x.size == 0:  # also C = 0 < num_groups, where the table has no column
        return tuple(np.zeros((lay.N, lay.G)) for _ in range(3))
    stats = np.zeros((K.STATS_COLUMNS, lay.N * lay.C))
    _moments_into(stats, x, compute, lay, 1.0)
    return tuple(_per_slice_stats(lay, stats, row).copy() for row in (K.COUNT, K.MEAN, K.M2))


def partial_grad_sums(dy, x, mean, *, axis=1, num_groups=None):
    """Per-channel ``sum(dy)`` and ``sum(dy * (x - mean))`` of a chunk, (N, C).

    ``mean`` (N, G) is the mean of the whole slice, not of the chunk, so the
    sums of all chunks simply add up.
    """
    dy, x, compute, lay = _gradient_inputs(dy, x, axis, num_groups)
    stats = _given_stats(lay, mean=mean)
    if x.size:
        dyf, xf = flat_view(dy, compute), flat_view(x, compute)
        _run(lay.kernels["grad_sums"], lay, dyf, xf, *lay.dims, stats)
    return (
        stats[K.SUM_DY].reshape(lay.N, lay.C).copy(),
        stats[K.SUM_DYXC].reshape(lay.N, lay.C).copy(),
    )


def normalize_with_stats(
    x, mean, invstd, gamma=None, beta=None, *, axis=1, num_groups=None, out=None
):
    """The forward with given (N, G) statistics."""
    x, compute = float_input("x", x)
    lay = layout_of(x, axis, num_groups)
    g = channel_param("gamma", gamma, lay.C, compute, 1.0, lay.G)
    b = channel_param("beta", beta, lay.C, compute, 0.0, lay.G)
    stats = _given_stats(lay, mean=mean, invstd=invstd)
    return forward_with_layout(x, compute, lay, g, b, 0.0, stats, 3, out)


def backward_with_sums(
    dy, x, count, mean, invstd, sum_dy, sum_dy_xc, gamma=None, *, axis=1, num_groups=None, out=None
):
    """dx from whole-slice statistics and sums.

    ``count`` is the number of elements of each whole slice (not of the
    chunk); count, mean and invstd are (N, G) arrays, the sums (N, C).
    """
    dy, x, compute, lay = _gradient_inputs(dy, x, axis, num_groups)
    g = channel_param("gamma", gamma, lay.C, compute, 1.0, lay.G)
    stats = _given_stats(
        lay, count=count, mean=mean, invstd=invstd, sum_dy=sum_dy, sum_dyxc=sum_dy_xc
    )
    return _backward(dy, x, compute, lay, g, 0.0, stats, 5, out)
