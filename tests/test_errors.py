"""Every bad input gets a TypeError or ValueError that names the argument.

Each case runs through all public functions that take the argument, checks
the exception type and that the message names the argument, and that no
Numba error type (``numba.core.errors``) is what reached the user.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastnorm

X = np.zeros((2, 3, 4, 5), np.float32)
DY = np.ones_like(X)
C = 3


def _forward(**kw):
    args = {"x": X, "gamma": None, "beta": None, **kw}
    x = args.pop("x")
    return fastnorm.instance_norm(x, args.pop("gamma"), args.pop("beta"), **args)


def _backward(**kw):
    args = {"dy": DY, "x": X, "gamma": None, **kw}
    args.pop("beta", None)
    dy, x, gamma = args.pop("dy"), args.pop("x"), args.pop("gamma")
    return fastnorm.instance_norm_backward(dy, x, gamma, **args)


def _stats(**kw):
    x = kw.pop("x", X)
    for unused in ("gamma", "beta", "out"):
        kw.pop(unused, None)
    return fastnorm.instance_norm_stats(x, **kw)


ALL = [_forward, _backward, _stats]
WITH_GAMMA = [_forward, _backward]
WITH_OUT = [_forward, _backward]


def _raises(func, exc, match, **kw):
    with pytest.raises(exc, match=match) as info:
        func(**kw)
    # The exception raised must be ours, not Numba's (and not chained from it).
    for err in (info.value, info.value.__cause__, info.value.__context__):
        if err is not None:
            assert not type(err).__module__.startswith("numba"), repr(err)
    return info.value


# --------------------------------------------------------------------------
# x


@pytest.mark.parametrize("func", ALL, ids=lambda f: f.__name__)
@pytest.mark.parametrize("shape", [(), (5,), (2, 3)])
def test_x_too_few_dims(func, shape):
    x = np.zeros(shape, np.float32)
    kw = {"x": x}
    if func is _backward:
        kw["dy"] = x
    err = _raises(func, ValueError, r"\bx\b.*3 dimensions", **kw)
    assert str(shape) in str(err)


@pytest.mark.parametrize("func", ALL, ids=lambda f: f.__name__)
@pytest.mark.parametrize(
    "dtype", [np.int32, np.int64, np.uint8, np.bool_, np.complex64, np.complex128, object]
)
def test_x_bad_dtype(func, dtype):
    x = np.zeros((2, 3, 4), dtype=dtype)
    kw = {"x": x}
    if func is _backward:
        kw["dy"] = np.zeros((2, 3, 4), np.float32)
    err = _raises(func, TypeError, r"\bx\b", **kw)
    assert str(np.dtype(dtype)) in str(err)


@pytest.mark.parametrize("dtype", [np.int64, np.bool_, np.complex128])
def test_dy_bad_dtype(dtype):
    dy = np.zeros(X.shape, dtype=dtype)
    err = _raises(_backward, TypeError, r"\bdy\b", dy=dy)
    assert str(np.dtype(dtype)) in str(err)


@pytest.mark.parametrize("func", ALL, ids=lambda f: f.__name__)
@pytest.mark.parametrize("value", [None, "abc", {"a": 1}, [[1.0, 2.0], [3.0]]])
def test_x_not_an_array(func, value):
    _raises(func, TypeError, r"\bx\b", x=value)


def test_x_list_is_accepted():
    y = fastnorm.instance_norm(X.astype(np.float64).tolist())
    assert y.dtype == np.float64 and y.shape == X.shape


# --------------------------------------------------------------------------
# axis


@pytest.mark.parametrize("func", ALL, ids=lambda f: f.__name__)
@pytest.mark.parametrize("axis", [0, 4, -5, 100, -100])
def test_axis_out_of_range(func, axis):
    err = _raises(func, ValueError, r"\baxis\b", axis=axis)
    assert str(axis) in str(err)


@pytest.mark.parametrize("func", ALL, ids=lambda f: f.__name__)
@pytest.mark.parametrize("axis", [1.0, 1.5, "1", None, (1,), True, False, np.bool_(True)])
def test_axis_not_an_int(func, axis):
    _raises(func, TypeError, r"\baxis\b", axis=axis)


@pytest.mark.parametrize("axis", [np.int64(1), np.int32(-1)])
def test_axis_numpy_int_is_accepted(axis):
    assert fastnorm.instance_norm(X, axis=axis).shape == X.shape


# --------------------------------------------------------------------------
# gamma and beta


@pytest.mark.parametrize("func", WITH_GAMMA, ids=lambda f: f.__name__)
@pytest.mark.parametrize(
    "value",
    [np.ones(2), np.ones(4), np.ones((3, 1)), np.ones((1, 3)), np.float32(1.0), np.ones(0)],
    ids=["short", "long", "col", "row", "scalar", "empty"],
)
def test_gamma_bad_shape(func, value):
    err = _raises(func, ValueError, r"\bgamma\b", gamma=value)
    assert "(3,)" in str(err)


@pytest.mark.parametrize(
    "value",
    [np.ones(2), np.ones((3, 1)), np.float64(0.0)],
    ids=["short", "col", "scalar"],
)
def test_beta_bad_shape(value):
    err = _raises(_forward, ValueError, r"\bbeta\b", beta=value)
    assert "(3,)" in str(err)


@pytest.mark.parametrize("name", ["gamma", "beta"])
@pytest.mark.parametrize(
    "value",
    [np.ones(C, np.complex64), np.ones(C, bool), np.array(["a", "b", "c"]), np.ones(C, object)],
    ids=["complex", "bool", "str", "object"],
)
def test_param_bad_dtype(name, value):
    _raises(_forward, TypeError, rf"\b{name}\b", **{name: value})
    if name == "gamma":
        _raises(_backward, TypeError, r"\bgamma\b", gamma=value)


@pytest.mark.parametrize("name", ["gamma", "beta"])
@pytest.mark.parametrize("value", ["abc", {"a": 1}, [[1.0], [2.0, 3.0]]])
def test_param_not_an_array(name, value):
    _raises(_forward, TypeError, rf"\b{name}\b", **{name: value})


# --------------------------------------------------------------------------
# eps


@pytest.mark.parametrize("func", ALL, ids=lambda f: f.__name__)
@pytest.mark.parametrize("eps", [-1e-5, -1, float("nan"), float("inf"), -float("inf"), np.nan])
def test_eps_bad_value(func, eps):
    _raises(func, ValueError, r"\beps\b", eps=eps)


@pytest.mark.parametrize("func", ALL, ids=lambda f: f.__name__)
@pytest.mark.parametrize("eps", ["1e-5", None, [1e-5], np.ones(1), True, 1j])
def test_eps_not_a_number(func, eps):
    _raises(func, TypeError, r"\beps\b", eps=eps)


@pytest.mark.parametrize("eps", [0, 0.0, 1, np.float32(1e-3), np.int64(2)])
def test_eps_accepted(eps):
    assert np.isfinite(fastnorm.instance_norm(X + np.arange(5), eps=eps)).all()


# --------------------------------------------------------------------------
# dy, mean, invstd


@pytest.mark.parametrize("shape", [(2, 3, 4), (2, 3, 4, 6), (2, 3, 5, 4), (1, 3, 4, 5)])
def test_dy_wrong_shape(shape):
    err = _raises(_backward, ValueError, r"\bdy\b", dy=np.ones(shape, np.float32))
    assert str(shape) in str(err)


def _stats_of_x():
    return fastnorm.instance_norm_stats(X)


@pytest.mark.parametrize("missing", ["mean", "invstd"])
def test_only_one_stat_given(missing):
    mean, invstd = _stats_of_x()
    kw = {"invstd": invstd} if missing == "mean" else {"mean": mean}
    _raises(_backward, ValueError, rf"\b{missing}\b", **kw)


@pytest.mark.parametrize("name", ["mean", "invstd"])
@pytest.mark.parametrize("shape", [(2,), (3, 2), (2, 3, 1), (6,), (2, 4)])
def test_stat_wrong_shape(name, shape):
    mean, invstd = _stats_of_x()
    kw = {"mean": mean, "invstd": invstd, name: np.ones(shape)}
    err = _raises(_backward, ValueError, rf"\b{name}\b", **kw)
    assert "(2, 3)" in str(err)


@pytest.mark.parametrize("name", ["mean", "invstd"])
@pytest.mark.parametrize("value", ["abc", np.ones((2, 3), np.complex128), np.ones((2, 3), object)])
def test_stat_wrong_type(name, value):
    mean, invstd = _stats_of_x()
    kw = {"mean": mean, "invstd": invstd, name: value}
    _raises(_backward, TypeError, rf"\b{name}\b", **kw)


# --------------------------------------------------------------------------
# out


@pytest.mark.parametrize("func", WITH_OUT, ids=lambda f: f.__name__)
@pytest.mark.parametrize("shape", [(2, 3, 4), (2, 3, 5, 4), (1, 3, 4, 5), (2, 3, 4, 5, 1)])
def test_out_wrong_shape(func, shape):
    err = _raises(func, ValueError, r"\bout\b", out=np.empty(shape, np.float32))
    assert str(shape) in str(err)


@pytest.mark.parametrize("func", WITH_OUT, ids=lambda f: f.__name__)
@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int32, np.complex64])
def test_out_wrong_dtype(func, dtype):
    err = _raises(func, ValueError, r"\bout\b", out=np.empty(X.shape, dtype))
    assert str(np.dtype(dtype)) in str(err)


@pytest.mark.parametrize("func", WITH_OUT, ids=lambda f: f.__name__)
def test_out_read_only(func):
    out = np.empty(X.shape, np.float32)
    out.flags.writeable = False
    _raises(func, ValueError, r"\bout\b.*(writ|read)", out=out)


@pytest.mark.parametrize("func", WITH_OUT, ids=lambda f: f.__name__)
@pytest.mark.parametrize("value", [[0.0] * 5, "out", 3.0, np.zeros(X.shape).tolist()])
def test_out_not_an_ndarray(func, value):
    _raises(func, TypeError, r"\bout\b", out=value)


def test_read_only_inputs_are_fine():
    x = np.arange(120, dtype=np.float32).reshape(2, 3, 4, 5)
    x.flags.writeable = False
    dy = np.ones_like(x)
    dy.flags.writeable = False
    assert fastnorm.instance_norm(x).shape == x.shape
    assert fastnorm.instance_norm_backward(dy, x)[0].shape == x.shape


def test_failed_call_leaves_out_untouched():
    out = np.full(X.shape, 7, np.float32)
    with pytest.raises(ValueError):
        fastnorm.instance_norm(X, np.ones(2), out=out)
    with pytest.raises(ValueError):
        fastnorm.instance_norm_backward(DY, X, eps=-1.0, out=out)
    np.testing.assert_array_equal(out, 7)
