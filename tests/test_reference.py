"""Accuracy and semantics of the kernels against the float64 NumPy reference.

Layouts are chosen to reach every kernel path of :mod:`fastnorm.functional`:
the rows family (P == 1, or long rows) and the columns family (Q == 1, or
P > 1 with short rows), each serial (small inputs), parallel, and with slices
split into several parts (> 131072 elements per slice).
"""

from __future__ import annotations

import numba
import numpy as np
import pytest

import fastnorm
from fastnorm import functional
from fastnorm.reference import (
    instance_norm_backward_ref,
    instance_norm_ref,
    instance_norm_stats_ref,
)

PART = 131072

# (id, shape, axis, family, path) -- family/path are asserted in
# test_layout_table_reaches_every_path so the table cannot silently drift.
LAYOUTS = [
    ("nchw-serial", (2, 3, 8, 8), 1, "rows", "serial"),
    ("nchw-parallel", (2, 4, 96, 96), 1, "rows", "parallel"),
    ("nchw-split", (1, 2, 400, 400), 1, "rows", "split"),
    ("nhwc-serial", (2, 8, 8, 3), -1, "columns", "serial"),
    ("nhwc-parallel", (2, 64, 64, 16), -1, "columns", "parallel"),
    ("nhwc-split", (1, 400, 400, 2), -1, "columns", "split"),
    ("middle-short-rows-serial", (2, 5, 3, 7), 2, "columns", "serial"),
    ("middle-short-rows-parallel", (2, 64, 8, 200), -2, "columns", "parallel"),
    ("middle-long-rows-serial", (2, 4, 3, 300), 2, "rows", "serial"),
    ("middle-long-rows-split", (1, 300, 2, 500), 2, "rows", "split"),
    ("3d-ncw", (4, 3, 50), 1, "rows", "serial"),
    ("3d-nwc", (4, 50, 3), -1, "columns", "serial"),
    ("3d-ncw-parallel", (4, 3, 20000), 1, "rows", "parallel"),
    ("5d-ncdhw", (2, 3, 4, 5, 6), 1, "rows", "serial"),
    ("5d-ndhwc", (2, 4, 5, 6, 3), -1, "columns", "serial"),
    ("5d-middle", (2, 4, 3, 5, 6), 2, "columns", "serial"),
    ("5d-ncdhw-parallel", (2, 3, 16, 32, 32), 1, "rows", "parallel"),
    ("q1-middle", (3, 6, 4, 1), 2, "columns", "serial"),
    ("nchw-many-short-slices", (64, 128, 4, 4), 1, "rows", "parallel"),
    # Slices of at most 4 elements run across slices (rows.TINY_SLICE).
    ("nchw-tiny-2x2-serial", (3, 5, 2, 2), 1, "rows", "serial"),
    ("nchw-tiny-2x2-parallel", (64, 512, 2, 2), 1, "rows", "parallel"),
    ("ncl-tiny-3-serial", (4, 6, 3), 1, "rows", "serial"),
]
LAYOUT_IDS = [row[0] for row in LAYOUTS]
SHAPES_AXES = [pytest.param(shape, axis, id=name) for name, shape, axis, _, _ in LAYOUTS]


def _path(shape, axis):
    lay = functional.layout_of(np.empty(shape, np.float32), axis)
    family = lay.family
    if lay.size <= functional.SERIAL_MAX_ELEMENTS:
        return family, "serial"
    return family, "split" if lay.P * lay.Q > PART else "parallel"


def test_layout_table_reaches_every_path():
    reached = set()
    for name, shape, axis, family, path in LAYOUTS:
        assert _path(shape, axis) == (family, path), name
        reached.add((family, path))
    assert reached == {(f, p) for f in ("rows", "columns") for p in ("serial", "parallel", "split")}


# --------------------------------------------------------------------------
# helpers


def _channels(shape, axis):
    return shape[axis]


def _params(rng, C, dtype):
    gamma = (1.0 + 0.5 * rng.standard_normal(C)).astype(dtype)
    beta = (0.5 * rng.standard_normal(C)).astype(dtype)
    return gamma, beta


def _broadcast_channel(v, ndim, axis):
    shape = [1] * ndim
    shape[axis] = -1
    return np.asarray(v).reshape(shape)


def _rel(got, want):
    """max |got - want| relative to the largest magnitude of want."""
    got = np.asarray(got, np.float64)
    scale = np.max(np.abs(want)) if want.size else 0.0
    return float(np.max(np.abs(got - want)) / scale) if scale else float(np.max(np.abs(got)))


def _slice_index(ndim, axis, n, c):
    idx = [slice(None)] * ndim
    idx[0] = n
    idx[axis] = c
    return tuple(idx)


# --------------------------------------------------------------------------
# accuracy bars of the issue


@pytest.mark.parametrize("shape, axis", SHAPES_AXES)
@pytest.mark.parametrize(
    "offset, spread", [(1e4, 1e-2), (1e6, 1.0), (0.0, 1.0)], ids=["1e4", "1e6", "centered"]
)
def test_float32_accuracy(rng, shape, axis, offset, spread):
    x = (offset + spread * rng.standard_normal(shape)).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    gamma, beta = _params(rng, _channels(shape, axis), np.float32)

    # The bar, on the unit-scale output (gamma 1, beta 0).
    y = fastnorm.instance_norm(x, axis=axis)
    assert y.dtype == np.float32 and y.shape == shape
    assert np.max(np.abs(y - instance_norm_ref(x, axis=axis))) <= 1e-6
    # With gamma/beta the output is larger; float32 rounding scales with it.
    y = fastnorm.instance_norm(x, gamma, beta, axis=axis)
    y_ref = instance_norm_ref(x, gamma, beta, axis=axis)
    assert np.max(np.abs(y - y_ref)) <= 1e-6 * max(1.0, np.max(np.abs(y_ref)))

    dx, dgamma, dbeta = fastnorm.instance_norm_backward(dy, x, gamma, axis=axis)
    dx_ref, dgamma_ref, dbeta_ref = instance_norm_backward_ref(dy, x, gamma, axis=axis)
    assert dx.dtype == dgamma.dtype == dbeta.dtype == np.float32
    assert _rel(dx, dx_ref) <= 1e-5
    assert _rel(dgamma, dgamma_ref) <= 1e-6
    assert _rel(dbeta, dbeta_ref) <= 1e-6


def _longdouble_ref(dy, x, gamma, beta, axis, eps):
    """(y, dx, dgamma, dbeta) in extended precision.

    The float64 reference reduces strided axes by naive summation (NumPy is
    pairwise only along a contiguous axis), which for channels-last data at
    a 1e4 offset is less exact than the kernels; float64 results are judged
    against this instead.
    """
    x = np.moveaxis(x.astype(np.longdouble), axis, -1)
    dy = np.moveaxis(dy.astype(np.longdouble), axis, -1)
    n, c = x.shape[0], x.shape[-1]
    xs = np.ascontiguousarray(np.moveaxis(x.reshape(n, -1, c), 1, -1))  # (N, C, M)
    gs = np.ascontiguousarray(np.moveaxis(dy.reshape(n, -1, c), 1, -1))
    mean = xs.mean(axis=-1, keepdims=True)
    xc = xs - mean
    invstd = 1 / np.sqrt((xc * xc).mean(axis=-1, keepdims=True) + eps)
    xhat = xc * invstd
    g = gamma.astype(np.longdouble)[:, None]
    y = xhat * g + beta.astype(np.longdouble)[:, None]
    dx = g * invstd * (gs - gs.mean(-1, keepdims=True) - xhat * (gs * xhat).mean(-1, keepdims=True))

    def back(a):  # (N, C, M) -> x's layout
        return np.moveaxis(np.moveaxis(a, 1, -1).reshape(x.shape), -1, axis)

    return back(y), back(dx), (gs * xhat).sum(axis=(0, 2)), gs.sum(axis=(0, 2))


@pytest.mark.parametrize("shape, axis", SHAPES_AXES)
@pytest.mark.parametrize(
    "offset, spread, tol",
    # kappa = offset/spread amplifies float64 rounding of x - mean: tol ~ 50 kappa eps.
    [(1e4, 1e-2, 1e-8), (10.0, 1.0, 1e-13)],
    ids=["1e4", "10"],
)
def test_float64_accuracy(rng, shape, axis, offset, spread, tol):
    x = offset + spread * rng.standard_normal(shape)
    dy = rng.standard_normal(shape)
    gamma, beta = _params(rng, _channels(shape, axis), np.float64)
    y_ref, dx_ref, dgamma_ref, dbeta_ref = _longdouble_ref(dy, x, gamma, beta, axis, 1e-5)

    y = fastnorm.instance_norm(x, gamma, beta, axis=axis)
    assert y.dtype == np.float64
    assert np.max(np.abs(y - y_ref)) <= tol

    dx, dgamma, dbeta = fastnorm.instance_norm_backward(dy, x, gamma, axis=axis)
    assert dx.dtype == np.float64
    assert _rel(dx, dx_ref) <= tol
    assert _rel(dgamma, dgamma_ref) <= tol
    assert _rel(dbeta, dbeta_ref) <= 1e-13


@pytest.mark.parametrize("shape, axis", SHAPES_AXES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_outliers_where_sums_are_shifted(rng, shape, axis, dtype):
    # Block sums are taken about a block's first element; an outlier there
    # is the worst case for M2 = sum(d*d) - sum(d)**2/n (bounded by log2(n) bits).
    x = (1.0 + 1e-3 * rng.standard_normal(shape)).astype(dtype)
    x.reshape(-1)[::4096] = 1e3
    first = tuple(slice(None) if d in (0, axis % len(shape)) else 0 for d in range(len(shape)))
    x[first] = -1e3  # the first element of every slice
    y_ref = instance_norm_ref(x, axis=axis)
    y = fastnorm.instance_norm(x, axis=axis)
    tol = 1e-6 if dtype == np.float32 else 1e-12
    assert np.max(np.abs(y - y_ref)) <= tol * max(1.0, np.max(np.abs(y_ref)))
    mean, invstd = fastnorm.instance_norm_stats(x, axis=axis)
    mean_ref, invstd_ref = instance_norm_stats_ref(x, axis=axis)
    np.testing.assert_allclose(mean, mean_ref, rtol=1e-12)
    np.testing.assert_allclose(invstd, invstd_ref, rtol=1e-12)


@pytest.mark.parametrize("shape, axis", SHAPES_AXES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stats_match_reference(rng, shape, axis, dtype):
    x = (1e4 + rng.standard_normal(shape)).astype(dtype)
    mean, invstd = fastnorm.instance_norm_stats(x, axis=axis, eps=1e-3)
    mean_ref, invstd_ref = instance_norm_stats_ref(x, axis=axis, eps=1e-3)
    N, C = shape[0], shape[axis]
    assert mean.shape == invstd.shape == (N, C)
    assert mean.dtype == invstd.dtype == np.float64
    np.testing.assert_allclose(mean, mean_ref, rtol=1e-13)
    np.testing.assert_allclose(invstd, invstd_ref, rtol=1e-10)


def test_default_gamma_beta_and_eps(rng):
    x = rng.standard_normal((3, 4, 5, 6)).astype(np.float32)
    y = fastnorm.instance_norm(x, eps=0.25)
    assert np.max(np.abs(y - instance_norm_ref(x, eps=0.25))) <= 1e-6
    ones, zeros = np.ones(4, np.float32), np.zeros(4, np.float32)
    np.testing.assert_array_equal(y, fastnorm.instance_norm(x, ones, zeros, eps=0.25))
    # With gamma None, dgamma is the gradient of an implicit gamma of ones.
    dy = rng.standard_normal(x.shape).astype(np.float32)
    got = fastnorm.instance_norm_backward(dy, x, eps=0.25)
    want = fastnorm.instance_norm_backward(dy, x, ones, eps=0.25)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)


def test_mxnet_doc_example():
    x = np.array([[[1.1, 2.2]], [[3.3, 4.4]]], dtype=np.float32)
    y = fastnorm.instance_norm(x, np.array([1.0], np.float32), np.array([0.0], np.float32))
    want = np.array([[[-0.99998355, 0.99998331]], [[-0.99998319, 0.99998361]]])
    # MXNet's printed float32 output carries its own rounding (~2e-7).
    np.testing.assert_allclose(y, want, atol=5e-7)
    assert np.max(np.abs(y - instance_norm_ref(x))) <= 1e-7


# --------------------------------------------------------------------------
# given statistics


@pytest.mark.parametrize("shape, axis", SHAPES_AXES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_given_stats_are_bit_identical(rng, shape, axis, dtype):
    x = (3.0 + rng.standard_normal(shape)).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    gamma, _ = _params(rng, _channels(shape, axis), dtype)
    mean, invstd = fastnorm.instance_norm_stats(x, axis=axis, eps=1e-4)
    plain = fastnorm.instance_norm_backward(dy, x, gamma, axis=axis, eps=1e-4)
    given = fastnorm.instance_norm_backward(
        dy, x, gamma, axis=axis, eps=1e-4, mean=mean, invstd=invstd
    )
    for a, b in zip(plain, given, strict=True):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------
# degenerate slices


@pytest.mark.parametrize("shape, axis", SHAPES_AXES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_constant_slices_give_exactly_beta(rng, shape, axis, dtype):
    C = _channels(shape, axis)
    x = np.full(shape, 12345.678, dtype=dtype)
    beta = np.full(C, -0.5, dtype=dtype)
    beta[::2] = 0.25
    gamma, _ = _params(rng, C, dtype)
    y = fastnorm.instance_norm(x, gamma, beta, axis=axis)
    want = np.broadcast_to(_broadcast_channel(beta, len(shape), axis), shape)
    np.testing.assert_array_equal(y, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("value", [12345.678, -3.3, 1e-30, 0.0])
def test_constant_slice_among_random_ones(rng, dtype, value):
    shape, axis = (3, 4, 7, 9), 1
    x = rng.standard_normal(shape).astype(dtype)
    x[1, 2] = value
    beta = np.full(4, -0.5, dtype=dtype)
    y = fastnorm.instance_norm(x, None, beta, axis=axis)
    np.testing.assert_array_equal(y[1, 2], np.full((7, 9), -0.5, dtype))
    assert np.max(np.abs(y - instance_norm_ref(x, None, beta, axis=axis))) <= 1e-6


@pytest.mark.parametrize(
    "shape, axis",
    [((3, 4, 1, 1), 1), ((3, 1, 1, 4), -1), ((2, 3, 1), 1), ((2, 1, 3), 2), ((5, 1, 6, 1), 2)],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_element_slices_give_beta(rng, shape, axis, dtype):
    C = _channels(shape, axis)
    x = (100.0 * rng.standard_normal(shape)).astype(dtype)
    gamma, beta = _params(rng, C, dtype)
    y = fastnorm.instance_norm(x, gamma, beta, axis=axis)
    want = np.broadcast_to(_broadcast_channel(beta, len(shape), axis), shape)
    np.testing.assert_array_equal(y, want)


@pytest.mark.parametrize(
    "shape, axis",
    [((3, 4, 1, 1), 1), ((3, 1, 1, 4), -1), ((2, 3, 1), 1), ((2, 1, 3), 2), ((5, 1, 6, 1), 2)],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_element_slices_backward(rng, shape, axis, dtype):
    # xhat is exactly 0 and dy - mean(dy) is exactly 0: dx and dgamma are 0,
    # as in MXNet's own golden case 7; dbeta is sum(dy).
    C = _channels(shape, axis)
    x = (100.0 * rng.standard_normal(shape)).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    gamma, _ = _params(rng, C, dtype)
    dx, dgamma, dbeta = fastnorm.instance_norm_backward(dy, x, gamma, axis=axis)
    np.testing.assert_array_equal(dx, 0)
    np.testing.assert_array_equal(dgamma, 0)
    _, _, dbeta_ref = instance_norm_backward_ref(dy, x, gamma, axis=axis)
    assert _rel(dbeta, dbeta_ref) <= 1e-6


@pytest.mark.parametrize(
    "shape, axis",
    [((2, 3, 50), 1), ((2, 3, 9000), 1), ((3, 40, 3), -1), ((2, 6, 3, 7), 2)],
    ids=["rows", "rows-blocks", "columns", "middle"],
)
def test_float64_variance_overflow_is_inf_not_nan(rng, shape, axis):
    # Finite inputs whose squares overflow: invstd 0, so y is beta (as a
    # float64 two-pass computation gives) and dx is 0, never NaN.
    x = rng.standard_normal(shape) * 1e300
    beta = np.array([1.0, 2.0, 3.0])
    y = fastnorm.instance_norm(x, beta=beta, axis=axis)
    bshape = [1] * x.ndim
    bshape[axis] = 3
    np.testing.assert_array_equal(y, np.broadcast_to(beta.reshape(bshape), x.shape))
    mean, invstd = fastnorm.instance_norm_stats(x, axis=axis)
    assert np.isfinite(mean).all() and (invstd == 0).all()
    dx, _, _ = fastnorm.instance_norm_backward(np.ones_like(x), x, axis=axis)
    np.testing.assert_array_equal(dx, 0.0)


@pytest.mark.parametrize("shape, axis", SHAPES_AXES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_poisons_only_its_slice(rng, shape, axis, bad):
    x = rng.standard_normal(shape).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    gamma, beta = _params(rng, _channels(shape, axis), np.float32)
    clean_y = fastnorm.instance_norm(x, gamma, beta, axis=axis)
    clean_dx, _, _ = fastnorm.instance_norm_backward(dy, x, gamma, axis=axis)

    n, c = shape[0] - 1, _channels(shape, axis) - 1
    sl = _slice_index(len(shape), axis, n, c)
    poisoned = x.copy()
    # The bad value sits in the middle of the slice, not at its first element.
    target = np.unravel_index(poisoned[sl].size // 2, poisoned[sl].shape)
    poisoned[sl][target] = bad

    y = fastnorm.instance_norm(poisoned, gamma, beta, axis=axis)
    assert np.isnan(y[sl]).all()
    mask = np.ones(shape, bool)
    mask[sl] = False
    np.testing.assert_array_equal(y[mask], clean_y[mask])

    dx, dgamma, dbeta = fastnorm.instance_norm_backward(dy, poisoned, gamma, axis=axis)
    assert np.isnan(dx[sl]).all()
    np.testing.assert_array_equal(dx[mask], clean_dx[mask])
    assert np.isnan(dgamma[c])
    assert np.isfinite(np.delete(dgamma, c)).all() and np.isfinite(dbeta).all()


def test_nan_in_gradient_poisons_only_its_slice(rng):
    shape = (2, 3, 6, 7)
    x = rng.standard_normal(shape).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    clean_dx, _, _ = fastnorm.instance_norm_backward(dy, x)
    dy[1, 1, 2, 3] = np.nan
    dx, _, dbeta = fastnorm.instance_norm_backward(dy, x)
    assert np.isnan(dx[1, 1]).all()
    mask = np.ones(shape, bool)
    mask[1, 1] = False
    np.testing.assert_array_equal(dx[mask], clean_dx[mask])
    assert np.isnan(dbeta[1]) and np.isfinite(dbeta[[0, 2]]).all()


# --------------------------------------------------------------------------
# zero-size inputs


@pytest.mark.parametrize(
    "shape, axis",
    [
        ((0, 3, 4, 4), 1),
        ((2, 0, 4, 4), 1),
        ((2, 3, 0, 4), 1),
        ((0, 4, 4, 3), -1),
        ((2, 4, 0, 3), -1),
        ((2, 3, 0), 1),
        ((2, 0, 5, 6, 7), 1),
    ],
)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_zero_size(shape, axis, dtype):
    x = np.empty(shape, dtype)
    C = _channels(shape, axis)
    gamma, beta = np.ones(C, dtype), np.zeros(C, dtype)
    y = fastnorm.instance_norm(x, gamma, beta, axis=axis)
    assert y.shape == shape and y.dtype == dtype

    out = np.empty(shape, dtype)
    assert fastnorm.instance_norm(x, gamma, beta, axis=axis, out=out) is out

    dx, dgamma, dbeta = fastnorm.instance_norm_backward(x, x, gamma, axis=axis)
    assert dx.shape == shape and dx.dtype == dtype
    assert dgamma.shape == dbeta.shape == (C,)
    assert dgamma.dtype == dbeta.dtype == dtype
    np.testing.assert_array_equal(dbeta, 0)
    np.testing.assert_array_equal(dgamma, 0)

    mean, invstd = fastnorm.instance_norm_stats(x, axis=axis)
    assert mean.shape == invstd.shape == (shape[0], C)


# --------------------------------------------------------------------------
# dtypes


@pytest.mark.parametrize(
    "shape, axis", [((2, 3, 8, 8), 1), ((2, 8, 8, 3), -1), ((1, 3, 200, 200), 1)]
)
def test_float16_computes_in_float32(rng, shape, axis):
    C = _channels(shape, axis)
    x = (2.0 + rng.standard_normal(shape)).astype(np.float16)
    dy = rng.standard_normal(shape).astype(np.float16)
    gamma, beta = _params(rng, C, np.float16)

    y = fastnorm.instance_norm(x, gamma, beta, axis=axis)
    assert y.dtype == np.float16
    via32 = fastnorm.instance_norm(
        x.astype(np.float32), gamma.astype(np.float32), beta.astype(np.float32), axis=axis
    )
    np.testing.assert_array_equal(y, via32.astype(np.float16))
    assert _rel(y, instance_norm_ref(x, gamma, beta, axis=axis)) <= 1e-3

    dx, dgamma, dbeta = fastnorm.instance_norm_backward(dy, x, gamma, axis=axis)
    assert dx.dtype == dgamma.dtype == dbeta.dtype == np.float16
    want = fastnorm.instance_norm_backward(
        dy.astype(np.float32), x.astype(np.float32), gamma.astype(np.float32), axis=axis
    )
    for got, w in zip((dx, dgamma, dbeta), want, strict=True):
        np.testing.assert_array_equal(got, w.astype(np.float16))

    out = np.empty(shape, np.float16)
    assert fastnorm.instance_norm(x, gamma, beta, axis=axis, out=out) is out
    np.testing.assert_array_equal(out, y)


def test_parameters_are_cast_to_compute_dtype(rng):
    x = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    g64 = 1.0 + rng.standard_normal(3)
    b64 = rng.standard_normal(3)
    y = fastnorm.instance_norm(x, g64, b64)
    assert y.dtype == np.float32
    want = fastnorm.instance_norm(x, g64.astype(np.float32), b64.astype(np.float32))
    np.testing.assert_array_equal(y, want)
    # Lists and integer parameters are accepted too.
    y = fastnorm.instance_norm(x, [1, 2, 3], np.array([0, 1, 2], np.int64))
    want = fastnorm.instance_norm(x, np.array([1, 2, 3], np.float32), np.arange(3.0))
    np.testing.assert_array_equal(y, want)


def test_dy_is_cast_to_x_dtype(rng):
    x = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    dy = rng.standard_normal(x.shape)
    got = fastnorm.instance_norm_backward(dy, x)
    want = fastnorm.instance_norm_backward(dy.astype(np.float32), x)
    for a, b in zip(got, want, strict=True):
        assert a.dtype == np.float32
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------
# memory layouts


def _views(rng, dtype):
    """(id, array, axis) of non-C-contiguous inputs."""
    base = (5.0 + rng.standard_normal((3, 4, 10, 12))).astype(dtype)
    big = (5.0 + rng.standard_normal((2, 3, 160, 240))).astype(dtype)
    return [
        ("fortran", np.asfortranarray(base), 1),
        ("fortran-nhwc", np.asfortranarray(base), -1),
        ("strided", base[:, :, ::2], 1),
        ("strided-last", base[:, :, :, 1::3], -1),
        ("reversed", base[:, ::-1, :, ::-1], 1),
        ("transpose-nhwc", base.transpose(0, 2, 3, 1), -1),
        ("transpose-middle", base.transpose(0, 2, 1, 3), 2),
        ("transpose-all", base.transpose(0, 3, 2, 1), 3),
        ("big-strided", big[:, :, ::2, :], 1),
        ("big-transpose", big.transpose(0, 2, 3, 1), -1),
    ]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("which", range(10))
def test_non_contiguous_inputs(rng, dtype, which):
    name, x, axis = _views(rng, dtype)[which]
    assert not x.flags.c_contiguous, name
    C = _channels(x.shape, axis)
    gamma, beta = _params(rng, C, dtype)
    dy = rng.standard_normal(x.shape).astype(dtype).T.copy().T  # Fortran-ordered dy
    x_before = x.copy()
    xc = np.ascontiguousarray(x)

    y = fastnorm.instance_norm(x, gamma, beta, axis=axis)
    np.testing.assert_array_equal(y, fastnorm.instance_norm(xc, gamma, beta, axis=axis))
    assert np.max(np.abs(y - instance_norm_ref(x, gamma, beta, axis=axis))) <= 1e-6

    got = fastnorm.instance_norm_backward(dy, x, gamma, axis=axis)
    want = fastnorm.instance_norm_backward(np.ascontiguousarray(dy), xc, gamma, axis=axis)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)
    dx_ref, _, _ = instance_norm_backward_ref(dy, x, gamma, axis=axis)
    assert _rel(got[0], dx_ref) <= 1e-5

    mean, _ = fastnorm.instance_norm_stats(x, axis=axis)
    np.testing.assert_allclose(mean, instance_norm_stats_ref(x, axis=axis)[0], rtol=1e-13)
    np.testing.assert_array_equal(x, x_before)


# --------------------------------------------------------------------------
# out= and never modifying inputs


@pytest.mark.parametrize("shape, axis", SHAPES_AXES)
def test_inputs_never_modified(rng, shape, axis):
    x = rng.standard_normal(shape).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    gamma, beta = _params(rng, _channels(shape, axis), np.float32)
    copies = [a.copy() for a in (x, dy, gamma, beta)]
    fastnorm.instance_norm(x, gamma, beta, axis=axis)
    mean, invstd = fastnorm.instance_norm_stats(x, axis=axis)
    m_copy, s_copy = mean.copy(), invstd.copy()
    fastnorm.instance_norm_backward(dy, x, gamma, axis=axis)
    fastnorm.instance_norm_backward(dy, x, gamma, axis=axis, mean=mean, invstd=invstd)
    for a, b in zip((x, dy, gamma, beta, mean, invstd), (*copies, m_copy, s_copy), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "shape, axis",
    [
        pytest.param((2, 3, 8, 8), 1, id="rows-serial"),
        pytest.param((2, 8, 8, 3), -1, id="columns-serial"),
        pytest.param((1, 2, 400, 400), 1, id="rows-split"),
        pytest.param((2, 64, 64, 16), -1, id="columns-parallel"),
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
class TestOut:
    def _data(self, rng, shape, axis, dtype):
        x = (1.0 + rng.standard_normal(shape)).astype(dtype)
        dy = rng.standard_normal(shape).astype(dtype)
        gamma, beta = _params(rng, _channels(shape, axis), dtype)
        return x, dy, gamma, beta

    def test_out_contiguous(self, rng, shape, axis, dtype):
        x, dy, gamma, beta = self._data(rng, shape, axis, dtype)
        want = fastnorm.instance_norm(x, gamma, beta, axis=axis)
        out = np.full(shape, 7, dtype)
        assert fastnorm.instance_norm(x, gamma, beta, axis=axis, out=out) is out
        np.testing.assert_array_equal(out, want)

        dwant = fastnorm.instance_norm_backward(dy, x, gamma, axis=axis)
        out = np.full(shape, 7, dtype)
        dx, dgamma, dbeta = fastnorm.instance_norm_backward(dy, x, gamma, axis=axis, out=out)
        assert dx is out
        for a, b in zip((dx, dgamma, dbeta), dwant, strict=True):
            np.testing.assert_array_equal(a, b)

    def test_out_is_x(self, rng, shape, axis, dtype):
        x, dy, gamma, beta = self._data(rng, shape, axis, dtype)
        want = fastnorm.instance_norm(x, gamma, beta, axis=axis)
        dwant = fastnorm.instance_norm_backward(dy, x, gamma, axis=axis)

        x2, dy2 = x.copy(), dy.copy()
        dx, dgamma, dbeta = fastnorm.instance_norm_backward(dy2, x2, gamma, axis=axis, out=x2)
        assert dx is x2
        np.testing.assert_array_equal(dy2, dy)
        for a, b in zip((dx, dgamma, dbeta), dwant, strict=True):
            np.testing.assert_array_equal(a, b)

        x2, dy2 = x.copy(), dy.copy()
        dx, _, _ = fastnorm.instance_norm_backward(dy2, x2, gamma, axis=axis, out=dy2)
        assert dx is dy2
        np.testing.assert_array_equal(x2, x)
        np.testing.assert_array_equal(dx, dwant[0])

        assert fastnorm.instance_norm(x, gamma, beta, axis=axis, out=x) is x
        np.testing.assert_array_equal(x, want)

    def test_out_non_contiguous(self, rng, shape, axis, dtype):
        x, dy, gamma, beta = self._data(rng, shape, axis, dtype)
        want = fastnorm.instance_norm(x, gamma, beta, axis=axis)
        holder = np.full((*shape[:-1], 2 * shape[-1]), 7, dtype)
        out = holder[..., ::2]
        assert fastnorm.instance_norm(x, gamma, beta, axis=axis, out=out) is out
        np.testing.assert_array_equal(out, want)
        np.testing.assert_array_equal(holder[..., 1::2], 7)  # gaps untouched

        out = np.asfortranarray(np.zeros(shape, dtype))
        assert fastnorm.instance_norm(x, gamma, beta, axis=axis, out=out) is out
        np.testing.assert_array_equal(out, want)

        dwant = fastnorm.instance_norm_backward(dy, x, gamma, axis=axis)
        out = holder[..., 1::2]
        dx, _, _ = fastnorm.instance_norm_backward(dy, x, gamma, axis=axis, out=out)
        assert dx is out
        np.testing.assert_array_equal(dx, dwant[0])

    def test_out_overlapping_input(self, rng, shape, axis, dtype):
        x, dy, gamma, beta = self._data(rng, shape, axis, dtype)
        want = fastnorm.instance_norm(x, gamma, beta, axis=axis)
        dwant = fastnorm.instance_norm_backward(dy, x, gamma, axis=axis)
        size = x.size
        for shift in (1, 5, -3):
            # x and out share all but a few elements, shifted by ``shift``.
            buf = np.zeros(size + 8, dtype)
            xin = buf[3 : 3 + size].reshape(shape)
            xin[...] = x
            out = buf[3 + shift : 3 + shift + size].reshape(shape)
            assert fastnorm.instance_norm(xin, gamma, beta, axis=axis, out=out) is out
            np.testing.assert_array_equal(out, want)

            xin[...] = x
            dx, _, _ = fastnorm.instance_norm_backward(dy, xin, gamma, axis=axis, out=out)
            assert dx is out
            np.testing.assert_array_equal(dx, dwant[0])

    def test_out_overlapping_input_by_part_of_an_item(self, rng, shape, axis, dtype):
        # Unaligned views of one buffer, 2 bytes apart: overlapping, not the same.
        x, _, gamma, beta = self._data(rng, shape, axis, dtype)
        want = fastnorm.instance_norm(x, gamma, beta, axis=axis)
        nbytes = x.size * np.dtype(dtype).itemsize
        for start_x, start_out in ((1, 3), (4, 2), (2, 0)):
            raw = np.zeros(nbytes + 8, np.uint8)
            xin = raw[start_x : start_x + nbytes].view(dtype).reshape(shape)
            xin[...] = x
            out = raw[start_out : start_out + nbytes].view(dtype).reshape(shape)
            assert fastnorm.instance_norm(xin, gamma, beta, axis=axis, out=out) is out
            np.testing.assert_array_equal(out, want)

    def test_out_is_transposed_x(self, rng, shape, axis, dtype):
        # Same memory as x in a different element order: must not run in place.
        x, _, gamma, beta = self._data(rng, shape, axis, dtype)
        n = min(shape[-1], shape[-2])
        xs = np.ascontiguousarray(x[..., :n, :n])
        want = fastnorm.instance_norm(xs, gamma, beta, axis=axis)
        out = xs.swapaxes(-1, -2)
        assert fastnorm.instance_norm(xs, gamma, beta, axis=axis, out=out) is out
        np.testing.assert_array_equal(out, want)


# --------------------------------------------------------------------------
# thread counts


def _two_threads():
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs at least 2 Numba threads")


@pytest.mark.parametrize("shape, axis", SHAPES_AXES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bit_identical_across_thread_counts(rng, shape, axis, dtype):
    _two_threads()
    x = (1e3 + rng.standard_normal(shape)).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    gamma, beta = _params(rng, _channels(shape, axis), dtype)

    def run():
        return (
            fastnorm.instance_norm(x, gamma, beta, axis=axis),
            *fastnorm.instance_norm_backward(dy, x, gamma, axis=axis),
            *fastnorm.instance_norm_stats(x, axis=axis),
        )

    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = run()
        numba.set_num_threads(2)
        two = run()
    finally:
        numba.set_num_threads(before)
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [">f2", ">f4", ">f8"])
def test_byte_swapped_inputs(rng, dtype):
    # Big-endian data (read from files) computes natively; results keep its dtype.
    x = rng.standard_normal((2, 3, 6, 5)).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    native = x.astype(x.dtype.newbyteorder("="))
    y = fastnorm.instance_norm(x)
    assert y.dtype == x.dtype
    np.testing.assert_array_equal(y, fastnorm.instance_norm(native))
    dx, dgamma, dbeta = fastnorm.instance_norm_backward(dy, x)
    want = fastnorm.instance_norm_backward(dy.astype(native.dtype), native)
    for got, ref in zip((dx, dgamma, dbeta), want, strict=True):
        np.testing.assert_array_equal(got, ref)
