"""layer_norm, layer_norm_backward and layer_norm_stats (the functional API).

Oracles: MXNet 1.9.1's own LayerNorm (golden vectors: one axis, any
position), PyTorch's ``F.layer_norm`` forward and autograd (trailing axes;
channels-first ``axis=1`` against torch on the moved axis), the float64
reference of :mod:`fastnorm.reference` and float64 finite differences.  The
reference is checked first against MXNet and finite differences.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import central_differences, make_array, num_threads, rel_err
from hypothesis import given, settings
from hypothesis import strategies as st

import fastnorm
from fastnorm.reference import layer_norm_backward_ref, layer_norm_ref, layer_norm_stats_ref

#: Inputs above this many elements run the parallel kernels.
SERIAL_MAX = 65536

# (id, shape, axis): transformer rows, MXNet's single axis anywhere (0, a
# middle one, channels-first axis=1), PyTorch's trailing tuples, a middle
# and a leading tuple, every axis of the array, serial and parallel sizes.
LAYOUTS = [
    ("rows", (4, 10), -1),
    ("1d", (1000,), -1),
    ("1d-tuple", (300,), (0,)),
    ("axis0", (3, 7), 0),
    ("axis0-3d", (6, 4, 5), 0),
    ("tokens-serial", (2, 7, 96), -1),
    ("tokens-parallel", (2, 64, 768), -1),
    ("wide-rows-parallel", (64, 4096), -1),
    ("channels-first-serial", (2, 5, 4, 3), 1),
    ("channels-first-negative", (2, 6, 5, 4), -3),
    ("channels-first-parallel", (8, 96, 14, 14), 1),
    ("middle-long-rows", (2, 5, 300), 1),
    # one chunk of columns (statistics in a pass of their own) and two, the
    # second partial (statistics fused into each chunk's task)
    ("channels-first-one-chunk", (1, 300, 400), 1),
    ("channels-first-two-chunks", (1, 200, 700), 1),
    ("axis2", (2, 5, 4, 3), 2),
    ("trailing-2", (4, 6, 8, 10), (-2, -1)),
    ("trailing-2-positive", (4, 6, 8, 10), (2, 3)),
    ("trailing-3", (2, 3, 4, 5), (1, 2, 3)),
    ("trailing-2-parallel", (4, 6, 64, 64), (-2, -1)),
    ("middle-tuple", (2, 3, 4, 5), (1, 2)),
    ("middle-tuple-parallel", (4, 32, 16, 40), (1, 2)),
    ("leading-tuple", (3, 4, 5), (0, 1)),
    ("every-axis", (3, 4, 5), (0, 1, 2)),
]
BIG_LAYOUTS = [
    ("long-rows-split", (2, 300000), -1),
    ("trailing-2-split", (1, 2, 512, 512), (-2, -1)),
    ("channels-first-split", (1, 4, 300, 300), 1),
]


def _params(layouts, slow=False):
    marks = [pytest.mark.slow] if slow else []
    return [pytest.param(shape, axis, id=name, marks=marks) for name, shape, axis in layouts]


CASES = _params(LAYOUTS)
ALL_CASES = CASES + _params(BIG_LAYOUTS, slow=True)
PARALLEL_CASES = [p for p in ALL_CASES if int(np.prod(p.values[0])) > SERIAL_MAX]


def _axes(ndim, axis):
    """The normalized axes, non-negative and sorted."""
    axes = (axis,) if isinstance(axis, int) else axis
    return tuple(sorted(a % ndim for a in axes))


def _norm_shape(shape, axis):
    return tuple(shape[a] for a in _axes(len(shape), axis))


def _stats_shape(shape, axis):
    axes = _axes(len(shape), axis)
    return tuple(s for i, s in enumerate(shape) if i not in axes)


def _bcast(v, shape, axis):
    """A parameter of the normalized axes, broadcast to x's shape."""
    axes = _axes(len(shape), axis)
    return np.broadcast_to(
        np.asarray(v).reshape([s if i in axes else 1 for i, s in enumerate(shape)]), shape
    )


def _affine(rng, shape, dtype):
    gamma = (1.0 + 0.5 * rng.standard_normal(shape)).astype(dtype)
    beta = (0.5 * rng.standard_normal(shape)).astype(dtype)
    return gamma, beta


def _assert_same(got, want):
    for a, b in zip(got, want, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------
# the reference itself


def test_reference_is_the_textbook_formula(rng):
    x = rng.standard_normal((3, 4, 5))
    gamma, beta = _affine(rng, (4, 5), np.float64)
    mean = x.reshape(3, -1).mean(axis=1)[:, None, None]
    std = np.sqrt(x.reshape(3, -1).var(axis=1) + 1e-3)[:, None, None]
    np.testing.assert_allclose(
        layer_norm_ref(x, gamma, beta, axis=(1, 2), eps=1e-3),
        (x - mean) / std * gamma + beta,
        rtol=1e-13,
        atol=1e-14,
    )
    m, s = layer_norm_stats_ref(x, axis=(-2, -1), eps=1e-3)
    assert m.shape == s.shape == (3,)
    np.testing.assert_allclose(s, 1 / std.ravel(), rtol=1e-13)


@pytest.mark.parametrize("axis", [-1, 1, 0, (1, 2), (0, 1, 2)])
def test_reference_gradients_match_central_differences(axis):
    rng = np.random.default_rng(13)
    x = rng.standard_normal((3, 4, 2))
    w = rng.standard_normal(x.shape)
    gamma, beta = _affine(rng, _norm_shape(x.shape, axis), np.float64)
    dx, dgamma, dbeta = layer_norm_backward_ref(w, x, gamma, axis=axis)

    def loss():
        return float(np.sum(layer_norm_ref(x, gamma, beta, axis=axis) * w))

    np.testing.assert_allclose(dx, central_differences(loss, x), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dgamma, central_differences(loss, gamma), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dbeta, central_differences(loss, beta), rtol=1e-6, atol=1e-7)


def test_reference_matches_mxnet(layer_norm_golden_case):
    case, meta = layer_norm_golden_case, layer_norm_golden_case["meta"]
    axis, eps = meta["axis"], meta["eps"]
    y = layer_norm_ref(case["x"], case["gamma"], case["beta"], axis=axis, eps=eps)
    assert np.max(np.abs(y - case["y"])) <= 2e-5  # const: MXNet is 1.3e-5 off beta
    dx, dgamma, dbeta = layer_norm_backward_ref(
        case["dy"], case["x"], case["gamma"], axis=axis, eps=eps
    )
    assert rel_err(dx, case["dx"]) <= 1e-5
    assert np.max(np.abs(dgamma - case["dgamma"])) <= 1e-4
    assert rel_err(dbeta, case["dbeta"]) <= 1e-5


# --------------------------------------------------------------------------
# MXNet 1.9.1 golden vectors (one axis, any position)


def test_golden_forward(layer_norm_golden_case):
    case, meta = layer_norm_golden_case, layer_norm_golden_case["meta"]
    y = fastnorm.layer_norm(
        case["x"], case["gamma"], case["beta"], axis=meta["axis"], eps=meta["eps"]
    )
    assert y.dtype == case["x"].dtype and y.shape == case["x"].shape
    if meta["kind"] == "const":
        # MXNet is ~1.3e-5 off here; the exact answer is beta.
        np.testing.assert_array_equal(y, _bcast(case["beta"], y.shape, meta["axis"]))
    else:
        assert np.max(np.abs(y.astype(np.float64) - case["y"])) <= 1e-5
    # The same axis as a one-element tuple gives the same bits.
    y1 = fastnorm.layer_norm(
        case["x"], case["gamma"], case["beta"], axis=(meta["axis"],), eps=meta["eps"]
    )
    np.testing.assert_array_equal(y1, y)


def test_golden_backward(layer_norm_golden_case):
    case, meta = layer_norm_golden_case, layer_norm_golden_case["meta"]
    dx, dgamma, dbeta = fastnorm.layer_norm_backward(
        case["dy"], case["x"], case["gamma"], axis=meta["axis"], eps=meta["eps"]
    )
    assert dx.dtype == dgamma.dtype == dbeta.dtype == np.float32
    assert dx.shape == case["x"].shape and dgamma.shape == dbeta.shape == case["gamma"].shape
    if meta["kind"] == "const":
        # Zero variance: dx is ~1e2 (1/sqrt(eps)), judged relative to its size;
        # xhat is exactly 0, so is dgamma (MXNet leaves ~4e-5).
        assert rel_err(dx, case["dx"]) <= 1e-6
        np.testing.assert_array_equal(dgamma, 0)
    else:
        assert np.max(np.abs(dx.astype(np.float64) - case["dx"])) <= 1e-5
        assert rel_err(dgamma, case["dgamma"]) <= 1e-5
    assert rel_err(dbeta, case["dbeta"]) <= 1e-5


# --------------------------------------------------------------------------
# PyTorch's F.layer_norm

TORCH_TOL = {np.float32: (1e-5, 1e-5), np.float64: (1e-12, 1e-11)}  # (y abs, grads rel)


def _torch_layer_norm(x, dy, gamma, beta, k, eps):
    """torch's (y, dx, dgamma, dbeta) normalizing the last k axes."""
    torch = pytest.importorskip("torch")
    xt = torch.from_numpy(x).requires_grad_(True)
    gt = torch.from_numpy(gamma).requires_grad_(True)
    bt = torch.from_numpy(beta).requires_grad_(True)
    yt = torch.nn.functional.layer_norm(xt, x.shape[x.ndim - k :], weight=gt, bias=bt, eps=eps)
    yt.backward(torch.from_numpy(dy))
    return yt.detach().numpy(), xt.grad.numpy(), gt.grad.numpy(), bt.grad.numpy()


def _compare_torch(got, want, dtype):
    y_tol, g_tol = TORCH_TOL[dtype]
    assert np.max(np.abs(got[0] - want[0])) <= y_tol * max(1.0, np.max(np.abs(want[0])))
    for a, b in zip(got[1:], want[1:], strict=True):
        assert rel_err(a, b) <= g_tol


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "shape, axis",
    [
        ((4, 10), -1),
        ((3, 17, 768), -1),
        ((4, 6, 8, 10), (-2, -1)),
        ((2, 3, 4, 5), (1, 2, 3)),
        ((2, 3, 4, 5), (-3, -2, -1)),
        ((64, 4096), -1),
        ((2, 5, 9, 64), (2, 3)),
    ],
)
@pytest.mark.parametrize("eps", [1e-5, 0.1])
def test_matches_torch_trailing_axes(shape, axis, dtype, eps):
    pytest.importorskip("torch")
    rng = np.random.default_rng([*shape, len(_axes(len(shape), axis))])
    x = (2.0 + 3.0 * rng.standard_normal(shape)).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    gamma, beta = _affine(rng, _norm_shape(shape, axis), dtype)
    want = _torch_layer_norm(x, dy, gamma, beta, len(_axes(len(shape), axis)), eps)
    y = fastnorm.layer_norm(x, gamma, beta, axis=axis, eps=eps)
    dx, dgamma, dbeta = fastnorm.layer_norm_backward(dy, x, gamma, axis=axis, eps=eps)
    assert y.dtype == dx.dtype == dgamma.dtype == dbeta.dtype == dtype
    assert dgamma.shape == dbeta.shape == gamma.shape
    _compare_torch((y, dx, dgamma, dbeta), want, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(2, 5, 4, 3), (8, 96, 14, 14), (2, 6, 300)])
def test_matches_torch_channels_first(shape, dtype):
    # ConvNeXt's channels-first LayerNorm: fastnorm normalizes axis=1 in place,
    # torch normalizes the last axis of the moved array.
    pytest.importorskip("torch")
    rng = np.random.default_rng([*shape, 1])
    x = (2.0 + 3.0 * rng.standard_normal(shape)).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    gamma, beta = _affine(rng, shape[1], dtype)
    last = lambda a: np.ascontiguousarray(np.moveaxis(a, 1, -1))  # noqa: E731
    y_t, dx_t, dgamma_t, dbeta_t = _torch_layer_norm(last(x), last(dy), gamma, beta, 1, 1e-5)
    y = fastnorm.layer_norm(x, gamma, beta, axis=1)
    dx, dgamma, dbeta = fastnorm.layer_norm_backward(dy, x, gamma, axis=1)
    back = lambda a: np.moveaxis(a, -1, 1)  # noqa: E731
    _compare_torch((y, dx, dgamma, dbeta), (back(y_t), back(dx_t), dgamma_t, dbeta_t), dtype)


# --------------------------------------------------------------------------
# float64 reference: accuracy in every layout


@pytest.mark.parametrize("shape, axis", ALL_CASES)
@pytest.mark.parametrize(
    "offset, spread", [(1e4, 1e-2), (1e6, 1.0), (0.0, 1.0)], ids=["1e4", "1e6", "centered"]
)
def test_float32_accuracy(rng, shape, axis, offset, spread):
    x = (offset + spread * rng.standard_normal(shape)).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)

    # The bar, on the unit-scale output: within 1e-6 of float64 math.
    y = fastnorm.layer_norm(x, axis=axis)
    assert y.dtype == np.float32 and y.shape == shape
    assert np.max(np.abs(y - layer_norm_ref(x, axis=axis))) <= 1e-6

    gamma, beta = _affine(rng, _norm_shape(shape, axis), np.float32)
    y = fastnorm.layer_norm(x, gamma, beta, axis=axis)
    y_ref = layer_norm_ref(x, gamma, beta, axis=axis)
    assert np.max(np.abs(y - y_ref)) <= 1e-6 * max(1.0, np.max(np.abs(y_ref)))

    dx, dgamma, dbeta = fastnorm.layer_norm_backward(dy, x, gamma, axis=axis)
    dx_ref, dgamma_ref, dbeta_ref = layer_norm_backward_ref(dy, x, gamma, axis=axis)
    assert dx.dtype == dgamma.dtype == dbeta.dtype == np.float32
    assert dgamma.shape == dbeta.shape == gamma.shape
    assert rel_err(dx, dx_ref) <= 1e-5
    assert rel_err(dgamma, dgamma_ref) <= 1e-6
    assert rel_err(dbeta, dbeta_ref) <= 1e-6


@pytest.mark.parametrize("shape, axis", CASES)
@pytest.mark.parametrize(
    # kappa = offset/spread amplifies the float64 rounding of x - mean.
    "offset, spread, tol",
    [(1e4, 1e-2, 1e-8), (10.0, 1.0, 1e-12)],
    ids=["1e4", "10"],
)
def test_float64_accuracy(rng, shape, axis, offset, spread, tol):
    x = offset + spread * rng.standard_normal(shape)
    dy = rng.standard_normal(shape)
    gamma, beta = _affine(rng, _norm_shape(shape, axis), np.float64)
    y = fastnorm.layer_norm(x, gamma, beta, axis=axis)
    assert y.dtype == np.float64
    assert np.max(np.abs(y - layer_norm_ref(x, gamma, beta, axis=axis))) <= tol
    got = fastnorm.layer_norm_backward(dy, x, gamma, axis=axis)
    for a, b in zip(got, layer_norm_backward_ref(dy, x, gamma, axis=axis), strict=True):
        assert a.dtype == np.float64
        assert rel_err(a, b) <= tol


@pytest.mark.parametrize("shape, axis", ALL_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stats_match_reference(rng, shape, axis, dtype):
    x = (1e4 + rng.standard_normal(shape)).astype(dtype)
    mean, invstd = fastnorm.layer_norm_stats(x, axis=axis, eps=1e-3)
    mean_ref, invstd_ref = layer_norm_stats_ref(x, axis=axis, eps=1e-3)
    assert mean.shape == invstd.shape == _stats_shape(shape, axis)
    assert mean.dtype == invstd.dtype == np.float64
    np.testing.assert_allclose(mean, mean_ref, rtol=1e-13)
    np.testing.assert_allclose(invstd, invstd_ref, rtol=1e-10)


@pytest.mark.parametrize("shape, axis", CASES)
@pytest.mark.parametrize("with_gamma", [False, True], ids=["no-gamma", "gamma"])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_backward_with_given_stats_is_identical(rng, shape, axis, with_gamma, dtype):
    x = (3.0 + rng.standard_normal(shape)).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    gamma = _affine(rng, _norm_shape(shape, axis), dtype)[0] if with_gamma else None
    mean, invstd = fastnorm.layer_norm_stats(x, axis=axis, eps=1e-4)
    saved = mean.copy(), invstd.copy()
    want = fastnorm.layer_norm_backward(dy, x, gamma, axis=axis, eps=1e-4)
    got = fastnorm.layer_norm_backward(dy, x, gamma, axis=axis, eps=1e-4, mean=mean, invstd=invstd)
    _assert_same(got, want)
    _assert_same((mean, invstd), saved)


@pytest.mark.parametrize("shape, axis", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_with_given_stats_is_identical(rng, shape, axis, dtype):
    # The forward computes the statistics its own way (fused into its tasks)
    # and must give layer_norm_stats' bits.
    x = (3.0 + rng.standard_normal(shape)).astype(dtype)
    gamma, beta = _affine(rng, _norm_shape(shape, axis), dtype)
    mean, invstd = fastnorm.layer_norm_stats(x, axis=axis, eps=1e-4)
    want = fastnorm.layer_norm(x, gamma, beta, axis=axis, eps=1e-4)
    got = fastnorm.functional.layer_norm_with_stats(x, mean, invstd, gamma, beta, axis=axis)
    _assert_same((got,), (want,))


# --------------------------------------------------------------------------
# float64 finite differences


@pytest.mark.parametrize(
    "shape, axis",
    [
        ((3, 5), -1),
        ((4, 3), 0),
        ((2, 3, 4), 1),
        ((2, 3, 4), (-2, -1)),
        ((2, 3, 2, 2), (1, 2)),
        ((7,), -1),
        ((2, 2, 3), (0, 1, 2)),
    ],
)
@pytest.mark.parametrize("eps", [1e-5, 0.5])
def test_gradients_match_central_differences(shape, axis, eps):
    rng = np.random.default_rng([*shape, len(_axes(len(shape), axis))])
    x = rng.standard_normal(shape)
    w = rng.standard_normal(shape)
    gamma, beta = _affine(rng, _norm_shape(shape, axis), np.float64)
    dx, dgamma, dbeta = fastnorm.layer_norm_backward(w, x, gamma, axis=axis, eps=eps)

    def loss():
        return float(np.sum(fastnorm.layer_norm(x, gamma, beta, axis=axis, eps=eps) * w))

    np.testing.assert_allclose(dx, central_differences(loss, x), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dgamma, central_differences(loss, gamma), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dbeta, central_differences(loss, beta), rtol=1e-6, atol=1e-7)


def test_gradient_with_implicit_gamma():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((3, 2, 4))
    w = rng.standard_normal(x.shape)
    dx, dgamma, dbeta = fastnorm.layer_norm_backward(w, x, axis=(1, 2))
    assert dgamma.shape == dbeta.shape == (2, 4)
    ones = np.ones((2, 4))

    def loss():
        return float(np.sum(fastnorm.layer_norm(x, ones, axis=(1, 2)) * w))

    np.testing.assert_allclose(dx, central_differences(loss, x), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dgamma, central_differences(loss, ones), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dbeta, w.sum(axis=0), rtol=1e-13)


# --------------------------------------------------------------------------
# spellings of the same axes, thread counts


@pytest.mark.parametrize(
    "shape, spellings",
    [
        ((4, 6, 8), [-1, 2, (2,), (-1,)]),
        ((4, 6, 8), [1, -2, (1,), (-2,)]),
        ((4, 6, 8, 10), [(2, 3), (-2, -1), (2, -1), (-2, 3)]),
        ((3, 4, 5), [(0, 1, 2), (-3, -2, -1)]),
    ],
)
def test_axis_spellings_are_identical(rng, shape, spellings):
    x = rng.standard_normal(shape).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    gamma, beta = _affine(rng, _norm_shape(shape, spellings[0]), np.float32)

    def run(axis):
        return (
            fastnorm.layer_norm(x, gamma, beta, axis=axis),
            *fastnorm.layer_norm_backward(dy, x, gamma, axis=axis),
            *fastnorm.layer_norm_stats(x, axis=axis),
        )

    want = run(spellings[0])
    for axis in spellings[1:]:
        _assert_same(run(axis), want)


@pytest.mark.parametrize("shape, axis", PARALLEL_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bit_identical_across_thread_counts(rng, shape, axis, dtype):
    assert int(np.prod(shape)) > SERIAL_MAX  # the parallel kernels run
    x = (1e3 + rng.standard_normal(shape)).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    gamma, beta = _affine(rng, _norm_shape(shape, axis), dtype)

    def run():
        return (
            fastnorm.layer_norm(x, gamma, beta, axis=axis),
            *fastnorm.layer_norm_backward(dy, x, gamma, axis=axis),
            *fastnorm.layer_norm_stats(x, axis=axis),
        )

    with num_threads(1):
        one = run()
    with num_threads(2):
        two = run()
    _assert_same(one, two)


def test_row_backward_with_more_rows_than_tasks(rng):
    # (2048, 768): more rows than GRADIENT_TASKS tasks of PART elements, so
    # each task takes several groups of rows and dgamma/dbeta add one
    # partial per task: the same bits for any thread count, float64 exact.
    from fastnorm._kernels.affine import GRADIENT_TASKS, PART

    shape = (2048, 768)
    assert shape[0] > GRADIENT_TASKS * (PART // shape[1])
    x = 1e3 + rng.standard_normal(shape)
    dy = rng.standard_normal(shape)
    gamma, _ = _affine(rng, shape[1:], np.float64)
    with num_threads(1):
        one = fastnorm.layer_norm_backward(dy, x, gamma)
    with num_threads(2):
        two = fastnorm.layer_norm_backward(dy, x, gamma)
    _assert_same(one, two)
    for got, want in zip(one, layer_norm_backward_ref(dy, x, gamma), strict=True):
        assert rel_err(got, want) <= 1e-10


# --------------------------------------------------------------------------
# parameters


def test_gamma_none_and_beta_none_are_ones_and_zeros(rng):
    x = rng.standard_normal((3, 6, 5)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    ones, zeros = np.ones((6, 5), np.float32), np.zeros((6, 5), np.float32)
    y = fastnorm.layer_norm(x, axis=(1, 2), eps=0.25)
    np.testing.assert_array_equal(y, fastnorm.layer_norm(x, ones, zeros, axis=(1, 2), eps=0.25))
    assert np.max(np.abs(y - layer_norm_ref(x, axis=(1, 2), eps=0.25))) <= 1e-6
    _assert_same(
        fastnorm.layer_norm_backward(dy, x, axis=(1, 2), eps=0.25),
        fastnorm.layer_norm_backward(dy, x, ones, axis=(1, 2), eps=0.25),
    )


def test_parameters_are_cast_to_compute_dtype(rng):
    x = rng.standard_normal((4, 6)).astype(np.float32)
    g64, b64 = 1.0 + rng.standard_normal(6), rng.standard_normal(6)
    y = fastnorm.layer_norm(x, g64, b64)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(
        y, fastnorm.layer_norm(x, g64.astype(np.float32), b64.astype(np.float32))
    )
    y = fastnorm.layer_norm(x, [1, 2, 3, 4, 5, 6], np.arange(6))
    want = fastnorm.layer_norm(x, np.arange(1.0, 7.0, dtype=np.float32), np.arange(6.0))
    np.testing.assert_array_equal(y, want)


# --------------------------------------------------------------------------
# degenerate slices


@pytest.mark.parametrize("shape, axis", ALL_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_constant_slices_give_exactly_beta(rng, shape, axis, dtype):
    x = np.full(shape, 12345.678, dtype=dtype)
    gamma, beta = _affine(rng, _norm_shape(shape, axis), dtype)
    y = fastnorm.layer_norm(x, gamma, beta, axis=axis)
    np.testing.assert_array_equal(y, _bcast(beta, shape, axis))
    dy = rng.standard_normal(shape).astype(dtype)
    _, dgamma, _ = fastnorm.layer_norm_backward(dy, x, gamma, axis=axis)
    np.testing.assert_array_equal(dgamma, 0)  # xhat is exactly 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("value", [12345.678, -3.3, 1e-30, 0.0])
def test_constant_row_among_random_ones(rng, dtype, value):
    x = rng.standard_normal((5, 3, 40)).astype(dtype)
    x[2, 1] = value
    gamma, beta = _affine(rng, 40, dtype)
    y = fastnorm.layer_norm(x, gamma, beta)
    np.testing.assert_array_equal(y[2, 1], beta)
    y_ref = layer_norm_ref(x, gamma, beta)
    assert np.max(np.abs(y - y_ref)) <= 1e-6 * max(1.0, np.max(np.abs(y_ref)))


@pytest.mark.parametrize("shape, axis", [((4, 1), -1), ((3, 1, 5), 1), ((2, 3, 1, 1), (2, 3))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_element_slices(rng, shape, axis, dtype):
    x = (100.0 * rng.standard_normal(shape)).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    gamma, beta = _affine(rng, _norm_shape(shape, axis), dtype)
    np.testing.assert_array_equal(
        fastnorm.layer_norm(x, gamma, beta, axis=axis), _bcast(beta, shape, axis)
    )
    dx, dgamma, dbeta = fastnorm.layer_norm_backward(dy, x, gamma, axis=axis)
    np.testing.assert_array_equal(dx, 0)
    np.testing.assert_array_equal(dgamma, 0)
    assert rel_err(dbeta, layer_norm_backward_ref(dy, x, gamma, axis=axis)[2]) <= 1e-6


@pytest.mark.parametrize("shape, axis", CASES)
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_poisons_only_its_slice(rng, shape, axis, bad):
    x = rng.standard_normal(shape).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    gamma, beta = _affine(rng, _norm_shape(shape, axis), np.float32)
    clean_y = fastnorm.layer_norm(x, gamma, beta, axis=axis)
    clean_dx, _, _ = fastnorm.layer_norm_backward(dy, x, gamma, axis=axis)

    # Poison the middle element of the last slice: that slice, and only it, goes NaN.
    axes = _axes(len(shape), axis)
    others = [i for i in range(len(shape)) if i not in axes]
    sl = tuple(shape[i] - 1 if i in others else slice(None) for i in range(len(shape)))
    poisoned = x.copy()
    target = poisoned[sl]
    target[np.unravel_index(target.size // 2, target.shape)] = bad
    y = fastnorm.layer_norm(poisoned, gamma, beta, axis=axis)
    assert np.isnan(y[sl]).all()
    mask = np.ones(shape, bool)
    mask[sl] = False
    np.testing.assert_array_equal(y[mask], clean_y[mask])

    dx, dgamma, dbeta = fastnorm.layer_norm_backward(dy, poisoned, gamma, axis=axis)
    assert np.isnan(dx[sl]).all()
    np.testing.assert_array_equal(dx[mask], clean_dx[mask])
    assert np.isnan(dgamma).all()  # every element's sum includes the poisoned slice
    assert np.isfinite(dbeta).all()

    mean, invstd = fastnorm.layer_norm_stats(poisoned, axis=axis)
    keep = np.ones(mean.shape, bool)
    keep[tuple(shape[i] - 1 for i in others)] = False
    assert np.isfinite(mean[keep]).all() and np.isfinite(invstd[keep]).all()


# --------------------------------------------------------------------------
# zero-size inputs


@pytest.mark.parametrize(
    "shape, axis",
    [
        ((0, 8), -1),
        ((0,), -1),
        ((4, 0), -1),
        ((2, 0, 5), -1),
        ((2, 3, 0), (1, 2)),
        ((0, 3, 4), 1),
        ((3, 0, 4), 0),
    ],
)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_zero_size(shape, axis, dtype):
    x = np.empty(shape, dtype)
    pshape = _norm_shape(shape, axis)
    gamma, beta = np.ones(pshape, dtype), np.zeros(pshape, dtype)
    y = fastnorm.layer_norm(x, gamma, beta, axis=axis)
    assert y.shape == shape and y.dtype == dtype
    out = np.empty(shape, dtype)
    assert fastnorm.layer_norm(x, gamma, beta, axis=axis, out=out) is out

    dx, dgamma, dbeta = fastnorm.layer_norm_backward(x, x, gamma, axis=axis)
    assert dx.shape == shape and dx.dtype == dtype
    assert dgamma.shape == dbeta.shape == pshape
    assert dgamma.dtype == dbeta.dtype == dtype
    np.testing.assert_array_equal(dgamma, 0)
    np.testing.assert_array_equal(dbeta, 0)

    mean, invstd = fastnorm.layer_norm_stats(x, axis=axis)
    assert mean.shape == invstd.shape == _stats_shape(shape, axis)
    assert mean.dtype == invstd.dtype == np.float64


# --------------------------------------------------------------------------
# dtypes


@pytest.mark.parametrize("shape, axis", [((8, 96), -1), ((2, 6, 8, 8), 1), ((4, 200, 200), (1, 2))])
def test_float16_computes_in_float32(rng, shape, axis):
    x = (2.0 + rng.standard_normal(shape)).astype(np.float16)
    dy = rng.standard_normal(shape).astype(np.float16)
    gamma, beta = _affine(rng, _norm_shape(shape, axis), np.float16)
    f32 = lambda a: a.astype(np.float32)  # noqa: E731

    y = fastnorm.layer_norm(x, gamma, beta, axis=axis)
    assert y.dtype == np.float16
    via32 = fastnorm.layer_norm(f32(x), f32(gamma), f32(beta), axis=axis)
    np.testing.assert_array_equal(y, via32.astype(np.float16))
    assert rel_err(y, layer_norm_ref(x, gamma, beta, axis=axis)) <= 1e-3
    got = fastnorm.layer_norm_backward(dy, x, gamma, axis=axis)
    want = fastnorm.layer_norm_backward(f32(dy), f32(x), f32(gamma), axis=axis)
    _assert_same(got, [w.astype(np.float16) for w in want])


@pytest.mark.parametrize("dtype", [">f2", ">f4", ">f8"])
def test_byte_swapped_inputs(rng, dtype):
    # Big-endian data (read from files) computes natively; results keep its dtype.
    x = rng.standard_normal((6, 5, 4)).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    gamma = (1.0 + rng.standard_normal((5, 4))).astype(dtype)
    native = lambda a: a.astype(a.dtype.newbyteorder("="))  # noqa: E731
    y = fastnorm.layer_norm(x, gamma, axis=(1, 2))
    assert y.dtype == x.dtype
    np.testing.assert_array_equal(y, fastnorm.layer_norm(native(x), native(gamma), axis=(1, 2)))
    _assert_same(
        [native(a) for a in fastnorm.layer_norm_backward(dy, x, gamma, axis=(1, 2))],
        fastnorm.layer_norm_backward(native(dy), native(x), native(gamma), axis=(1, 2)),
    )


def test_read_only_and_list_inputs(rng):
    x = rng.standard_normal((4, 6))
    dy = rng.standard_normal(x.shape)
    gamma = 1.0 + rng.standard_normal(6)
    want = fastnorm.layer_norm(x, gamma), *fastnorm.layer_norm_backward(dy, x, gamma)
    for a in (x, dy, gamma):
        a.flags.writeable = False
    _assert_same((fastnorm.layer_norm(x, gamma), *fastnorm.layer_norm_backward(dy, x, gamma)), want)
    np.testing.assert_array_equal(fastnorm.layer_norm(x.tolist(), gamma.tolist()), want[0])


@pytest.mark.parametrize("axis", [-1, 1, (1, 2)])
def test_float64_variance_overflow_is_inf_not_nan(rng, axis):
    # Finite inputs whose squares overflow: the variance is inf and invstd 0,
    # so y is beta and dx, dgamma are 0 (as instance_norm on rows), never NaN.
    x = rng.standard_normal((3, 40, 50)) * 1e300
    dy = rng.standard_normal(x.shape)
    beta = np.arange(float(np.prod(_norm_shape(x.shape, axis)))).reshape(_norm_shape(x.shape, axis))
    y = fastnorm.layer_norm(x, beta=beta, axis=axis)
    np.testing.assert_array_equal(y, _bcast(beta, x.shape, axis))
    mean, invstd = fastnorm.layer_norm_stats(x, axis=axis)
    assert np.isfinite(mean).all() and (invstd == 0).all()
    dx, dgamma, dbeta = fastnorm.layer_norm_backward(dy, x, axis=axis)
    np.testing.assert_array_equal(dx, 0)
    np.testing.assert_array_equal(dgamma, 0)
    assert np.isfinite(dbeta).all()


def test_dy_is_cast_to_x_dtype(rng):
    x = rng.standard_normal((5, 12)).astype(np.float32)
    dy = rng.standard_normal(x.shape)
    _assert_same(
        fastnorm.layer_norm_backward(dy, x), fastnorm.layer_norm_backward(dy.astype(np.float32), x)
    )


# --------------------------------------------------------------------------
# memory layouts and out=


def _views(rng, dtype):
    """(id, array, axis) of non-C-contiguous inputs."""
    base = (5.0 + rng.standard_normal((3, 6, 10, 12))).astype(dtype)
    big = (5.0 + rng.standard_normal((4, 96, 400))).astype(dtype)
    return [
        ("fortran-rows", np.asfortranarray(base), -1),
        ("fortran-trailing-2", np.asfortranarray(base), (-2, -1)),
        ("strided", base[:, :, ::2], -1),
        ("strided-last", base[:, :, :, 1::3], (2, 3)),
        ("reversed", base[:, ::-1, :, ::-1], 1),
        ("transposed", base.transpose(0, 2, 3, 1), -1),
        ("transposed-middle", base.transpose(0, 2, 1, 3), (1, 2)),
        ("transpose-all", base.transpose(3, 2, 1, 0), 0),
        ("big-strided", big[:, :, ::2], -1),
        ("big-transposed", big.transpose(0, 2, 1), -1),
    ]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("which", range(10))
def test_non_contiguous_inputs(rng, dtype, which):
    name, x, axis = _views(rng, dtype)[which]
    assert not x.flags.c_contiguous, name
    gamma, beta = _affine(rng, _norm_shape(x.shape, axis), dtype)
    dy = np.asfortranarray(rng.standard_normal(x.shape).astype(dtype))
    x_before = x.copy()
    xc = np.ascontiguousarray(x)
    y = fastnorm.layer_norm(x, gamma, beta, axis=axis)
    np.testing.assert_array_equal(y, fastnorm.layer_norm(xc, gamma, beta, axis=axis))
    assert np.max(np.abs(y - layer_norm_ref(x, gamma, beta, axis=axis))) <= 4e-6
    _assert_same(
        fastnorm.layer_norm_backward(dy, x, gamma, axis=axis),
        fastnorm.layer_norm_backward(np.ascontiguousarray(dy), xc, gamma, axis=axis),
    )
    _assert_same(fastnorm.layer_norm_stats(x, axis=axis), fastnorm.layer_norm_stats(xc, axis=axis))
    np.testing.assert_array_equal(x, x_before)


def test_non_contiguous_parameters(rng):
    x = rng.standard_normal((3, 8, 10)).astype(np.float32)
    wide = _affine(rng, (8, 20), np.float32)
    gamma, beta = wide[0][:, ::2], wide[1][:, ::2]
    want = fastnorm.layer_norm(x, gamma.copy(), beta.copy(), axis=(1, 2))
    np.testing.assert_array_equal(fastnorm.layer_norm(x, gamma, beta, axis=(1, 2)), want)
    np.testing.assert_array_equal(fastnorm.layer_norm(x, gamma.T.copy().T, beta, axis=(1, 2)), want)


@pytest.mark.parametrize(
    "shape, axis",
    [
        pytest.param((6, 40), -1, id="rows-serial"),
        pytest.param((2, 6, 8, 8), 1, id="channels-first-serial"),
        pytest.param((64, 4096), -1, id="rows-parallel"),
        pytest.param((4, 6, 64, 64), (-2, -1), id="trailing-2-parallel"),
        pytest.param((8, 96, 14, 14), 1, id="channels-first-parallel"),
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_out(rng, shape, axis, dtype):
    x = (1.0 + rng.standard_normal(shape)).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    gamma, beta = _affine(rng, _norm_shape(shape, axis), dtype)
    want = fastnorm.layer_norm(x, gamma, beta, axis=axis)
    dwant = fastnorm.layer_norm_backward(dy, x, gamma, axis=axis)

    out = np.full(shape, 7, dtype)
    assert fastnorm.layer_norm(x, gamma, beta, axis=axis, out=out) is out
    np.testing.assert_array_equal(out, want)
    holder = np.full((*shape[:-1], 2 * shape[-1]), 7, dtype)
    out = holder[..., ::2]
    assert fastnorm.layer_norm(x, gamma, beta, axis=axis, out=out) is out
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(holder[..., 1::2], 7)  # gaps untouched
    out = np.asfortranarray(np.zeros(shape, dtype))
    got = fastnorm.layer_norm_backward(dy, x, gamma, axis=axis, out=out)
    assert got[0] is out
    _assert_same(got, dwant)

    # In place: out is x (forward), out is dy or x (backward).
    x2, dy2 = x.copy(), dy.copy()
    got = fastnorm.layer_norm_backward(dy2, x2, gamma, axis=axis, out=dy2)
    assert got[0] is dy2
    _assert_same(got, dwant)
    np.testing.assert_array_equal(x2, x)
    x2, dy2 = x.copy(), dy.copy()
    got = fastnorm.layer_norm_backward(dy2, x2, gamma, axis=axis, out=x2)
    assert got[0] is x2
    _assert_same(got, dwant)
    np.testing.assert_array_equal(dy2, dy)
    x2 = x.copy()
    assert fastnorm.layer_norm(x2, gamma, beta, axis=axis, out=x2) is x2
    np.testing.assert_array_equal(x2, want)


def test_out_overlapping_input(rng):
    shape = (6, 9, 8)
    x = rng.standard_normal(shape).astype(np.float32)
    want = fastnorm.layer_norm(x, axis=(1, 2))
    for shift in (1, 5, -3):
        buf = np.zeros(x.size + 8, np.float32)
        xin = buf[3 : 3 + x.size].reshape(shape)
        xin[...] = x
        out = buf[3 + shift : 3 + shift + x.size].reshape(shape)
        assert fastnorm.layer_norm(xin, axis=(1, 2), out=out) is out
        np.testing.assert_array_equal(out, want)


# --------------------------------------------------------------------------
# hypothesis: any shape, axes (int or tuple, negative), dtype, layout

TOL = {
    np.float16: (4e-3, 4e-3),  # float16 output rounding (2**-11 relative)
    np.float32: (2e-6, 1e-5),
    np.float64: (1e-12, 1e-11),
}
SETTINGS = settings(max_examples=50, deadline=None)


@st.composite
def cases(draw):
    ndim = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(1, 6), min_size=ndim, max_size=ndim)))
    start = draw(st.integers(0, ndim - 1))
    length = draw(st.integers(1, ndim - start))
    axes = [a - ndim if draw(st.booleans()) else a for a in range(start, start + length)]
    axis = axes[0] if length == 1 and draw(st.booleans()) else tuple(axes)
    dtype = draw(st.sampled_from([np.float16, np.float32, np.float64]))
    layout = draw(st.sampled_from(["C", "F", "strided", "transposed", "reversed"]))
    with_params = draw(st.booleans())
    seed = draw(st.integers(0, 2**32 - 1))
    return shape, axis, dtype, layout, with_params, seed


@SETTINGS
@given(cases())
def test_hypothesis_matches_reference(case):
    shape, axis, dtype, layout, with_params, seed = case
    rng = np.random.default_rng(seed)
    x = make_array(shape, dtype, layout, rng, offset=3.0)
    dy = make_array(shape, dtype, layout, rng)
    pshape = _norm_shape(shape, axis)
    gamma, beta = _affine(rng, pshape, dtype) if with_params else (None, None)
    inputs = [a for a in (x, dy, gamma, beta) if a is not None]
    saved = [a.copy() for a in inputs]
    y_tol, g_tol = TOL[dtype]

    y = fastnorm.layer_norm(x, gamma, beta, axis=axis)
    assert y.shape == shape and y.dtype == dtype
    y_ref = layer_norm_ref(x, gamma, beta, axis=axis)
    assert np.max(np.abs(y - y_ref)) <= y_tol * max(1.0, np.max(np.abs(y_ref)))

    dx, dgamma, dbeta = fastnorm.layer_norm_backward(dy, x, gamma, axis=axis)
    assert dx.shape == shape and dx.dtype == dgamma.dtype == dbeta.dtype == dtype
    assert dgamma.shape == dbeta.shape == pshape
    dx_ref, dgamma_ref, dbeta_ref = layer_norm_backward_ref(dy, x, gamma, axis=axis)
    # dx cancels almost fully in tiny slices; judge it at the scale of its terms.
    mean_ref, invstd_ref = layer_norm_stats_ref(x, axis=axis)
    g_max = 1.0 if gamma is None else np.max(np.abs(gamma.astype(np.float64)))
    term = g_max * np.max(invstd_ref) * np.max(np.abs(dy))
    assert np.max(np.abs(dx - dx_ref)) <= g_tol * max(np.max(np.abs(dx_ref)), term)
    assert rel_err(dgamma, dgamma_ref) <= g_tol
    assert rel_err(dbeta, dbeta_ref) <= g_tol

    mean, invstd = fastnorm.layer_norm_stats(x, axis=axis)
    assert mean.shape == _stats_shape(shape, axis)
    np.testing.assert_allclose(mean, mean_ref, rtol=1e-12 if dtype == np.float64 else 1e-6)
    np.testing.assert_allclose(invstd, invstd_ref, rtol=1e-9 if dtype == np.float64 else 1e-5)
    for a, b in zip(inputs, saved, strict=True):
        np.testing.assert_array_equal(a, b)  # inputs are never modified


@SETTINGS
@given(cases())
def test_hypothesis_layout_and_in_place_do_not_change_the_result(case):
    shape, axis, dtype, layout, _, seed = case
    x = make_array(shape, dtype, layout, np.random.default_rng(seed))
    xc = np.ascontiguousarray(x)
    want = fastnorm.layer_norm(xc, axis=axis)
    np.testing.assert_array_equal(fastnorm.layer_norm(x, axis=axis), want)
    _assert_same(fastnorm.layer_norm_stats(x, axis=axis), fastnorm.layer_norm_stats(xc, axis=axis))
    assert fastnorm.layer_norm(x, axis=axis, out=x) is x
    np.testing.assert_array_equal(x, want)


# --------------------------------------------------------------------------
# bad input: ValueError/TypeError naming the argument

X = np.zeros((2, 3, 4, 5), np.float32)


def _forward(**kw):
    args = {"x": X, "gamma": None, "beta": None, **kw}
    return fastnorm.layer_norm(args.pop("x"), args.pop("gamma"), args.pop("beta"), **args)


def _backward(**kw):
    args = {"dy": np.ones_like(X), "x": X, "gamma": None, **kw}
    args.pop("beta", None)
    return fastnorm.layer_norm_backward(args.pop("dy"), args.pop("x"), args.pop("gamma"), **args)


def _stats(**kw):
    args = {"x": X, **kw}
    for unused in ("gamma", "beta", "out"):
        args.pop(unused, None)
    return fastnorm.layer_norm_stats(args.pop("x"), **args)


ALL = [_forward, _backward, _stats]
WITH_GAMMA = [_forward, _backward]


def _raises(func, exc, match, **kw):
    with pytest.raises(exc, match=match) as info:
        func(**kw)
    for err in (info.value, info.value.__cause__, info.value.__context__):
        if err is not None:
            assert not type(err).__module__.startswith("numba"), repr(err)
    return str(info.value)


@pytest.mark.parametrize("func", ALL, ids=lambda f: f.__name__)
@pytest.mark.parametrize("axis", [(1, 3), (0, 2), (-3, -1), (0, 1, 3)])
def test_axis_not_consecutive(func, axis):
    msg = _raises(func, ValueError, r"\baxis\b", axis=axis)
    assert str(axis) in msg


@pytest.mark.parametrize("func", ALL, ids=lambda f: f.__name__)
@pytest.mark.parametrize("axis", [4, -5, 100, (3, 4), (-5, -4), (0, 1, 2, 3, 4)])
def test_axis_out_of_range(func, axis):
    msg = _raises(func, ValueError, r"\baxis\b", axis=axis)
    assert str(axis) in msg


@pytest.mark.parametrize("func", ALL, ids=lambda f: f.__name__)
@pytest.mark.parametrize("axis", [(1, 1), (-1, 3), (2, 2, 3), (2, -2, 3), ()])
def test_axis_duplicates_or_empty(func, axis):
    msg = _raises(func, ValueError, r"\baxis\b", axis=axis)
    assert str(axis) in msg


@pytest.mark.parametrize("func", ALL, ids=lambda f: f.__name__)
@pytest.mark.parametrize(
    "axis", [1.0, "1", None, True, (1.0, 2), (True,), (2, "3"), np.bool_(True)]
)
def test_axis_not_an_int(func, axis):
    _raises(func, TypeError, r"\baxis\b", axis=axis)


@pytest.mark.parametrize("axis", [np.int64(-1), np.int32(1), (np.int64(2), np.int64(3))])
def test_axis_numpy_ints_are_accepted(axis):
    assert fastnorm.layer_norm(X, axis=axis).shape == X.shape


@pytest.mark.parametrize("func", WITH_GAMMA, ids=lambda f: f.__name__)
@pytest.mark.parametrize(
    "value",
    [
        np.ones(4),
        np.ones(6),
        np.ones((5, 1)),
        np.ones((1, 5)),
        np.float32(1),
        np.ones((4, 5)),
        np.ones(0),
    ],
    ids=["4", "6", "col", "row", "scalar", "2d", "empty"],
)
def test_gamma_bad_shape(func, value):
    msg = _raises(func, ValueError, r"\bgamma\b", gamma=value)
    assert "(5,)" in msg


@pytest.mark.parametrize("func", WITH_GAMMA, ids=lambda f: f.__name__)
@pytest.mark.parametrize("value", [np.ones((5, 4)), np.ones(20), np.ones(5), np.ones((1, 4, 5))])
def test_gamma_bad_shape_for_two_axes(func, value):
    msg = _raises(func, ValueError, r"\bgamma\b", gamma=value, axis=(-2, -1))
    assert "(4, 5)" in msg


@pytest.mark.parametrize("value", [np.ones(4), np.ones((5, 1)), np.float64(0.0)])
def test_beta_bad_shape(value):
    msg = _raises(_forward, ValueError, r"\bbeta\b", beta=value)
    assert "(5,)" in msg


@pytest.mark.parametrize("name", ["gamma", "beta"])
@pytest.mark.parametrize(
    "value", [np.ones(5, np.complex64), np.ones(5, bool), np.array(list("abcde")), "abc"]
)
def test_param_bad_type(name, value):
    _raises(_forward, TypeError, rf"\b{name}\b", **{name: value})


@pytest.mark.parametrize("func", ALL, ids=lambda f: f.__name__)
@pytest.mark.parametrize("dtype", [np.int32, np.bool_, np.complex64, object])
def test_x_bad_dtype(func, dtype):
    msg = _raises(func, TypeError, r"\bx\b", x=np.zeros(X.shape, dtype))
    assert str(np.dtype(dtype)) in msg


@pytest.mark.parametrize("func", ALL, ids=lambda f: f.__name__)
def test_x_zero_dimensional(func):
    x = np.zeros((), np.float32)
    kw = {"x": x, "dy": x} if func is _backward else {"x": x}
    _raises(func, ValueError, r"\b(x|axis)\b", **kw)


@pytest.mark.parametrize("func", ALL, ids=lambda f: f.__name__)
@pytest.mark.parametrize("eps", [-1e-5, float("nan"), float("inf")])
def test_eps_bad_value(func, eps):
    _raises(func, ValueError, r"\beps\b", eps=eps)


@pytest.mark.parametrize("shape", [(2, 3, 4), (2, 3, 5, 4), (1, 3, 4, 5)])
def test_dy_wrong_shape(shape):
    msg = _raises(_backward, ValueError, r"\bdy\b", dy=np.ones(shape, np.float32))
    assert str(shape) in msg


@pytest.mark.parametrize("name", ["mean", "invstd"])
@pytest.mark.parametrize("shape", [(2, 3), (2, 3, 4, 1), (2, 3, 5), (24,), (2, 3, 4, 5)])
def test_stat_wrong_shape(name, shape):
    mean, invstd = fastnorm.layer_norm_stats(X)
    kw = {"mean": mean, "invstd": invstd, name: np.ones(shape)}
    msg = _raises(_backward, ValueError, rf"\b{name}\b", **kw)
    assert "(2, 3, 4)" in msg


def test_stat_wrong_shape_for_two_axes():
    mean, invstd = fastnorm.layer_norm_stats(X)  # (2, 3, 4): the stats of axis=-1
    msg = _raises(_backward, ValueError, r"\bmean\b", axis=(-2, -1), mean=mean, invstd=invstd)
    assert "(2, 3)" in msg


@pytest.mark.parametrize("missing", ["mean", "invstd"])
def test_only_one_stat_given(missing):
    mean, invstd = fastnorm.layer_norm_stats(X)
    kw = {"invstd": invstd} if missing == "mean" else {"mean": mean}
    _raises(_backward, ValueError, rf"\b{missing}\b", **kw)


@pytest.mark.parametrize("func", WITH_GAMMA, ids=lambda f: f.__name__)
@pytest.mark.parametrize(
    "out",
    [
        np.empty((2, 3, 4), np.float32),
        np.empty((2, 3, 5, 4), np.float32),
        np.empty(X.shape, np.float64),
        np.empty(X.shape, np.float16),
    ],
    ids=["ndim", "shape", "float64", "float16"],
)
def test_out_wrong(func, out):
    msg = _raises(func, ValueError, r"\bout\b", out=out)
    assert str(out.shape) in msg or str(out.dtype) in msg


@pytest.mark.parametrize("func", WITH_GAMMA, ids=lambda f: f.__name__)
def test_out_read_only_or_not_an_array(func):
    out = np.empty(X.shape, np.float32)
    out.flags.writeable = False
    _raises(func, ValueError, r"\bout\b", out=out)
    _raises(func, TypeError, r"\bout\b", out=X.tolist())


def test_failed_call_leaves_out_untouched():
    out = np.full(X.shape, 7, np.float32)
    with pytest.raises(ValueError):
        fastnorm.layer_norm(X, np.ones(4), out=out)
    with pytest.raises(ValueError):
        fastnorm.layer_norm_backward(X, X, axis=(1, 3), out=out)
    np.testing.assert_array_equal(out, 7)
