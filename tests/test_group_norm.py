"""group_norm, group_norm_backward and group_norm_stats (the functional API).

Oracles, from the most independent: MXNet 1.9.1's own GroupNorm (golden
vectors, gamma/beta per group), PyTorch's ``F.group_norm`` forward and
autograd (gamma/beta per channel, NCHW and channels-last), the float64
reference of :mod:`fastnorm.reference`, float64 finite differences, and
``instance_norm``, which must be ``group_norm`` with one channel per group
bit for bit.  The reference itself is checked first against MXNet, PyTorch
and finite differences, so a bug there cannot hide one in the kernels.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import (
    NORM_GOLDEN_FILE,
    SHARED_NORM_GOLDEN_FILE,
    central_differences,
    load_norm_golden_cases,
    make_array,
    num_threads,
    rel_err,
)
from hypothesis import given, settings
from hypothesis import strategies as st

import fastnorm
from fastnorm.reference import (
    group_norm_backward_ref,
    group_norm_ref,
    group_norm_stats_ref,
    instance_norm_backward_ref,
    instance_norm_ref,
    layer_norm_backward_ref,
    layer_norm_ref,
)

#: Inputs above this many elements run the parallel kernels.
SERIAL_MAX = 65536

# (id, shape, axis, num_groups): NCHW, NHWC, middle axes, 3-D and 5-D, groups
# of one channel and one group, serial and parallel sizes, groups larger than
# one 131072-element part.
LAYOUTS = [
    ("nchw-serial", (2, 6, 5, 7), 1, 3),
    ("nchw-one-group", (3, 6, 4, 4), 1, 1),
    ("nchw-groups-of-one", (2, 6, 4, 4), 1, 6),
    ("nchw-parallel", (2, 64, 32, 32), 1, 32),
    ("nchw-many-short-groups", (64, 128, 4, 4), 1, 32),
    ("nhwc-serial", (2, 5, 7, 6), -1, 2),
    ("nhwc-rgb-one-group", (2, 9, 9, 3), -1, 1),
    ("nhwc-parallel", (2, 32, 32, 64), -1, 32),
    ("middle-short-rows", (2, 6, 12, 10), 2, 4),
    ("middle-long-rows", (2, 4, 6, 300), 2, 3),
    ("middle-parallel", (2, 16, 32, 200), -2, 8),
    ("middle-long-rows-parallel", (2, 8, 16, 300), 2, 4),
    ("2d-nc", (5, 12), 1, 4),
    ("2d-nc-negative", (3, 8), -1, 2),
    ("3d-ncw", (4, 6, 50), 1, 2),
    ("3d-nwc", (4, 50, 6), -1, 3),
    ("5d-ncdhw", (2, 6, 3, 4, 5), 1, 3),
    ("5d-ndhwc", (2, 3, 4, 5, 6), -1, 2),
    ("5d-middle", (2, 3, 8, 4, 5), 2, 4),
]
BIG_LAYOUTS = [
    ("nchw-split", (1, 4, 256, 256), 1, 1),
    ("nchw-split-channels", (1, 2, 400, 400), 1, 2),
    ("nhwc-split", (1, 256, 256, 4), -1, 2),
]


def _params(layouts, slow=()):
    return [
        pytest.param(shape, axis, g, id=name, marks=[pytest.mark.slow] if name in slow else [])
        for name, shape, axis, g in layouts
    ]


CASES = _params(LAYOUTS)
ALL_CASES = CASES + _params(BIG_LAYOUTS, slow={name for name, *_ in BIG_LAYOUTS})
PARALLEL_CASES = [
    p for p in ALL_CASES if int(np.prod(p.values[0])) > SERIAL_MAX
]  # thread-count identity needs the parallel kernels


def _affine(rng, n, dtype):
    gamma = (1.0 + 0.5 * rng.standard_normal(n)).astype(dtype)
    beta = (0.5 * rng.standard_normal(n)).astype(dtype)
    return gamma, beta


def _group_index(ndim, axis, n, channels):
    """Index of sample n, the given channels (a slice), every other axis."""
    idx = [slice(None)] * ndim
    idx[0] = n
    idx[axis % ndim] = channels
    return tuple(idx)


def _bcast(v, ndim, axis):
    shape = [1] * ndim
    shape[axis % ndim] = -1
    return np.asarray(v).reshape(shape)


def _assert_same(got, want):
    for a, b in zip(got, want, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------
# the reference itself


@pytest.mark.parametrize("shape, axis", [((2, 6, 4, 5), 1), ((2, 4, 5, 6), -1), ((2, 4, 6, 5), 2)])
def test_reference_groups_of_one_channel_are_instance_norm(rng, shape, axis):
    x = rng.standard_normal(shape)
    dy = rng.standard_normal(shape)
    C = shape[axis]
    gamma, beta = _affine(rng, C, np.float64)
    np.testing.assert_allclose(
        group_norm_ref(x, C, gamma, beta, axis=axis),
        instance_norm_ref(x, gamma, beta, axis=axis),
        rtol=0,
        atol=1e-13,
    )
    for a, b in zip(
        group_norm_backward_ref(dy, x, C, gamma, axis=axis),
        instance_norm_backward_ref(dy, x, gamma, axis=axis),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)


def test_reference_one_group_is_layer_norm_over_the_sample(rng):
    x = 3.0 + rng.standard_normal((3, 4, 5, 6))
    dy = rng.standard_normal(x.shape)
    axes = (1, 2, 3)
    np.testing.assert_allclose(group_norm_ref(x, 1), layer_norm_ref(x, axis=axes), atol=1e-13)
    dx, dgamma, dbeta = group_norm_backward_ref(dy, x, 1)
    dx_l, dgamma_l, dbeta_l = layer_norm_backward_ref(dy, x, axis=axes)
    np.testing.assert_allclose(dx, dx_l, atol=1e-12)
    # layer norm's parameters are per element; group norm's per channel.
    np.testing.assert_allclose(dgamma, dgamma_l.sum(axis=(1, 2)), atol=1e-12)
    np.testing.assert_allclose(dbeta, dbeta_l.sum(axis=(1, 2)), atol=1e-12)


def test_reference_per_group_gamma_is_repeated_per_channel(rng):
    x = rng.standard_normal((2, 6, 5, 3))
    dy = rng.standard_normal(x.shape)
    gamma, beta = _affine(rng, 3, np.float64)
    gc, bc = np.repeat(gamma, 2), np.repeat(beta, 2)
    np.testing.assert_array_equal(group_norm_ref(x, 3, gamma, beta), group_norm_ref(x, 3, gc, bc))
    dx, dgamma, dbeta = group_norm_backward_ref(dy, x, 3, gamma)
    dx_c, dgamma_c, dbeta_c = group_norm_backward_ref(dy, x, 3, gc)
    np.testing.assert_array_equal(dx, dx_c)
    assert dgamma.shape == dbeta.shape == (3,) and dgamma_c.shape == (6,)
    np.testing.assert_allclose(dgamma, dgamma_c.reshape(3, 2).sum(axis=1), rtol=1e-14)
    np.testing.assert_allclose(dbeta, dbeta_c.reshape(3, 2).sum(axis=1), rtol=1e-14)


@pytest.mark.parametrize("per_group", [False, True], ids=["per-channel", "per-group"])
def test_reference_gradients_match_central_differences(per_group):
    rng = np.random.default_rng(11)
    shape, axis, G = (2, 2, 6, 3), 2, 3
    x = rng.standard_normal(shape)
    w = rng.standard_normal(shape)
    gamma, beta = _affine(rng, G if per_group else 6, np.float64)
    dx, dgamma, dbeta = group_norm_backward_ref(w, x, G, gamma, axis=axis)

    def loss():
        return float(np.sum(group_norm_ref(x, G, gamma, beta, axis=axis) * w))

    np.testing.assert_allclose(dx, central_differences(loss, x), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dgamma, central_differences(loss, gamma), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dbeta, central_differences(loss, beta), rtol=1e-6, atol=1e-7)


def test_reference_matches_mxnet(group_norm_golden_case):
    case, meta = group_norm_golden_case, group_norm_golden_case["meta"]
    G, eps = meta["num_groups"], meta["eps"]
    y = group_norm_ref(case["x"], G, case["gamma"], case["beta"], eps=eps)
    assert np.max(np.abs(y - case["y"])) <= 1e-5
    dx, dgamma, dbeta = group_norm_backward_ref(case["dy"], case["x"], G, case["gamma"], eps=eps)
    assert rel_err(dx, case["dx"]) <= 1e-5
    assert np.max(np.abs(dgamma - case["dgamma"])) <= 1e-4
    assert rel_err(dbeta, case["dbeta"]) <= 1e-5


# --------------------------------------------------------------------------
# MXNet 1.9.1 golden vectors (gamma/beta per group, channel axis 1)


def _golden_forward(case, x=None, axis=1):
    meta = case["meta"]
    x = case["x"] if x is None else x
    return fastnorm.group_norm(
        x, meta["num_groups"], case["gamma"], case["beta"], axis=axis, eps=meta["eps"]
    )


def _golden_backward(case, dy=None, x=None, axis=1):
    meta = case["meta"]
    x = case["x"] if x is None else x
    dy = case["dy"] if dy is None else dy
    return fastnorm.group_norm_backward(
        dy, x, meta["num_groups"], case["gamma"], axis=axis, eps=meta["eps"]
    )


def _golden_y_expected_const(case):
    """The exact answer of a constant case: each channel's group's beta."""
    meta = case["meta"]
    per_channel = np.repeat(case["beta"], meta["shape"][1] // meta["num_groups"])
    return np.broadcast_to(_bcast(per_channel, len(meta["shape"]), 1), meta["shape"])


def test_golden_forward(group_norm_golden_case):
    case = group_norm_golden_case
    y = _golden_forward(case)
    assert y.dtype == case["x"].dtype and y.shape == case["x"].shape
    if case["meta"]["kind"] == "const":
        np.testing.assert_array_equal(y, _golden_y_expected_const(case))
    else:
        assert np.max(np.abs(y.astype(np.float64) - case["y"])) <= 1e-5


def test_golden_backward(group_norm_golden_case):
    case = group_norm_golden_case
    dx, dgamma, dbeta = _golden_backward(case)
    assert dx.dtype == dgamma.dtype == dbeta.dtype == np.float32
    assert dx.shape == case["x"].shape
    # MXNet's parameters are per group, so are the gradients returned.
    assert dgamma.shape == dbeta.shape == (case["meta"]["num_groups"],)
    if case["meta"]["kind"] == "const":
        # Zero variance: dx is gamma * (dy - mean(dy)) / sqrt(eps), ~1e2 here,
        # so judged relative to its size; xhat is exactly 0, so is dgamma.
        assert rel_err(dx, case["dx"]) <= 1e-6
        np.testing.assert_array_equal(dgamma, 0)
    else:
        assert np.max(np.abs(dx.astype(np.float64) - case["dx"])) <= 1e-5
        assert rel_err(dgamma, case["dgamma"]) <= 1e-5
    assert rel_err(dbeta, case["dbeta"]) <= 1e-5


def test_golden_channels_last(group_norm_golden_case):
    # The same MXNet vectors with the channel axis moved last: no copy to NCHW is made.
    case = group_norm_golden_case
    last = lambda a: np.moveaxis(a, 1, -1)  # noqa: E731
    y = _golden_forward(case, x=last(case["x"]), axis=-1)
    np.testing.assert_array_equal(y, last(_golden_forward(case)))
    got = _golden_backward(case, dy=last(case["dy"]), x=last(case["x"]), axis=-1)
    dx, dgamma, dbeta = _golden_backward(case)
    np.testing.assert_array_equal(got[0], last(dx))
    assert rel_err(got[1], dgamma) <= 1e-6 and rel_err(got[2], dbeta) <= 1e-6


def test_golden_vendored_copy_is_the_shared_file():
    if not SHARED_NORM_GOLDEN_FILE.is_file():
        pytest.skip(f"no shared original at {SHARED_NORM_GOLDEN_FILE} to compare with")
    assert NORM_GOLDEN_FILE.read_bytes() == SHARED_NORM_GOLDEN_FILE.read_bytes()


def test_golden_cases_cover_every_kind():
    if not NORM_GOLDEN_FILE.is_file():
        pytest.skip(f"no golden vectors at {NORM_GOLDEN_FILE}")
    for op in ("groupnorm", "layernorm"):
        assert {c["meta"]["kind"] for c in load_norm_golden_cases(op)} >= {"randn", "const"}, op


# --------------------------------------------------------------------------
# PyTorch's F.group_norm (per-channel gamma)

TORCH_CASES = [
    pytest.param((3, 6, 17), 3, id="ncw"),
    pytest.param((2, 8, 9, 11), 4, id="nchw"),
    pytest.param((2, 8, 9, 11), 1, id="nchw-one-group"),
    pytest.param((2, 8, 9, 11), 8, id="nchw-groups-of-one"),
    pytest.param((2, 6, 4, 5, 6), 2, id="ncdhw"),
    pytest.param((2, 64, 40, 40), 32, id="nchw-parallel"),
    pytest.param((5, 12), 4, id="nc"),
]
TORCH_TOL = {np.float32: (1e-5, 1e-5), np.float64: (1e-12, 1e-11)}  # (y abs, grads rel)


def _torch_group_norm(x_nc, dy_nc, G, gamma, beta, eps):
    """(y, dx, dgamma, dbeta) of torch, for x/dy given as channel-axis-1 tensors."""
    torch = pytest.importorskip("torch")
    xt = x_nc.detach().requires_grad_(True)
    gt = torch.from_numpy(gamma).requires_grad_(True)
    bt = torch.from_numpy(beta).requires_grad_(True)
    yt = torch.nn.functional.group_norm(xt, G, weight=gt, bias=bt, eps=eps)
    yt.backward(dy_nc)
    return yt.detach(), xt.grad, gt.grad.numpy(), bt.grad.numpy()


def _compare_torch(got, want, dtype):
    y_tol, g_tol = TORCH_TOL[dtype]
    y, dx, dgamma, dbeta = got
    y_t, dx_t, dgamma_t, dbeta_t = want
    assert np.max(np.abs(y - y_t)) <= y_tol * max(1.0, np.max(np.abs(y_t)))
    assert rel_err(dx, dx_t) <= g_tol
    assert rel_err(dgamma, dgamma_t) <= g_tol
    assert rel_err(dbeta, dbeta_t) <= g_tol


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, G", TORCH_CASES)
@pytest.mark.parametrize("eps", [1e-5, 0.1])
def test_matches_torch_channels_first(shape, G, dtype, eps):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng([*shape, G])
    x = (2.0 + 3.0 * rng.standard_normal(shape)).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    gamma, beta = _affine(rng, shape[1], dtype)
    y_t, dx_t, dgamma_t, dbeta_t = _torch_group_norm(
        torch.from_numpy(x), torch.from_numpy(dy), G, gamma, beta, eps
    )
    y = fastnorm.group_norm(x, G, gamma, beta, eps=eps)
    dx, dgamma, dbeta = fastnorm.group_norm_backward(dy, x, G, gamma, eps=eps)
    assert y.dtype == dx.dtype == dgamma.dtype == dbeta.dtype == dtype
    _compare_torch((y, dx, dgamma, dbeta), (y_t.numpy(), dx_t.numpy(), dgamma_t, dbeta_t), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, G", TORCH_CASES)
def test_matches_torch_channels_last(shape, G, dtype):
    # torch gets a channels_last (or channels_last_3d) view of the NHWC array
    # fastnorm normalizes along axis=-1: both see the same memory.
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng([*shape, G, 1])
    ndim = len(shape)
    last_shape = (shape[0], *shape[2:], shape[1])
    to_first = (0, ndim - 1, *range(1, ndim - 1))
    x = (2.0 + 3.0 * rng.standard_normal(last_shape)).astype(dtype)
    dy = rng.standard_normal(last_shape).astype(dtype)
    gamma, beta = _affine(rng, shape[1], dtype)
    y_t, dx_t, dgamma_t, dbeta_t = _torch_group_norm(
        torch.from_numpy(x).permute(*to_first), torch.from_numpy(dy).permute(*to_first), G,
        gamma, beta, 1e-5,
    )  # fmt: skip
    back = lambda t: np.moveaxis(t.numpy(), 1, -1)  # noqa: E731
    y = fastnorm.group_norm(x, G, gamma, beta, axis=-1)
    dx, dgamma, dbeta = fastnorm.group_norm_backward(dy, x, G, gamma, axis=-1)
    _compare_torch((y, dx, dgamma, dbeta), (back(y_t), back(dx_t), dgamma_t, dbeta_t), dtype)


# --------------------------------------------------------------------------
# float64 reference: accuracy in every layout


@pytest.mark.parametrize("shape, axis, G", ALL_CASES)
@pytest.mark.parametrize(
    "offset, spread", [(1e4, 1e-2), (1e6, 1.0), (0.0, 1.0)], ids=["1e4", "1e6", "centered"]
)
def test_float32_accuracy(rng, shape, axis, G, offset, spread):
    x = (offset + spread * rng.standard_normal(shape)).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    C = shape[axis]

    # The bar, on the unit-scale output: within 1e-6 of float64 math.
    y = fastnorm.group_norm(x, G, axis=axis)
    assert y.dtype == np.float32 and y.shape == shape
    assert np.max(np.abs(y - group_norm_ref(x, G, axis=axis))) <= 1e-6

    for n_params in {C, G}:  # per channel and per group
        gamma, beta = _affine(rng, n_params, np.float32)
        y = fastnorm.group_norm(x, G, gamma, beta, axis=axis)
        y_ref = group_norm_ref(x, G, gamma, beta, axis=axis)
        assert np.max(np.abs(y - y_ref)) <= 1e-6 * max(1.0, np.max(np.abs(y_ref))), n_params

        dx, dgamma, dbeta = fastnorm.group_norm_backward(dy, x, G, gamma, axis=axis)
        dx_ref, dgamma_ref, dbeta_ref = group_norm_backward_ref(dy, x, G, gamma, axis=axis)
        assert dx.dtype == dgamma.dtype == dbeta.dtype == np.float32
        assert dgamma.shape == dbeta.shape == (n_params,)
        assert rel_err(dx, dx_ref) <= 1e-5, n_params
        assert rel_err(dgamma, dgamma_ref) <= 1e-6, n_params
        assert rel_err(dbeta, dbeta_ref) <= 1e-6, n_params


@pytest.mark.parametrize("shape, axis, G", CASES)
@pytest.mark.parametrize(
    # kappa = offset/spread amplifies the float64 rounding of x - mean.
    "offset, spread, tol",
    [(1e4, 1e-2, 1e-8), (10.0, 1.0, 1e-12)],
    ids=["1e4", "10"],
)
def test_float64_accuracy(rng, shape, axis, G, offset, spread, tol):
    x = offset + spread * rng.standard_normal(shape)
    dy = rng.standard_normal(shape)
    gamma, beta = _affine(rng, shape[axis], np.float64)
    y = fastnorm.group_norm(x, G, gamma, beta, axis=axis)
    assert y.dtype == np.float64
    assert np.max(np.abs(y - group_norm_ref(x, G, gamma, beta, axis=axis))) <= tol
    got = fastnorm.group_norm_backward(dy, x, G, gamma, axis=axis)
    want = group_norm_backward_ref(dy, x, G, gamma, axis=axis)
    for a, b in zip(got, want, strict=True):
        assert a.dtype == np.float64
        assert rel_err(a, b) <= tol


@pytest.mark.parametrize("shape, axis, G", ALL_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stats_match_reference(rng, shape, axis, G, dtype):
    x = (1e4 + rng.standard_normal(shape)).astype(dtype)
    mean, invstd = fastnorm.group_norm_stats(x, G, axis=axis, eps=1e-3)
    mean_ref, invstd_ref = group_norm_stats_ref(x, G, axis=axis, eps=1e-3)
    assert mean.shape == invstd.shape == (shape[0], G)
    assert mean.dtype == invstd.dtype == np.float64
    np.testing.assert_allclose(mean, mean_ref, rtol=1e-13)
    np.testing.assert_allclose(invstd, invstd_ref, rtol=1e-10)


@pytest.mark.parametrize("shape, axis, G", ALL_CASES)
def test_stats_of_groups_whose_channels_differ(rng, shape, axis, G):
    """Channels of a group far apart (offsets of 1e6, spread 1e-3): the
    group's variance is mostly between its channels, which the merge of the
    channels' statistics adds (channels-last: columns of equal counts)."""
    C = shape[axis]
    if G == C:
        pytest.skip("groups of one channel: nothing is merged between channels")
    at_axis = [C if i == axis % len(shape) else 1 for i in range(len(shape))]
    x = 1e6 * rng.standard_normal(C).reshape(at_axis) + 1e-3 * rng.standard_normal(shape)
    mean, invstd = fastnorm.group_norm_stats(x, G, axis=axis, eps=0.0)
    mean_ref, invstd_ref = group_norm_stats_ref(x, G, axis=axis, eps=0.0)
    np.testing.assert_allclose(mean, mean_ref, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(invstd, invstd_ref, rtol=1e-12)
    y = fastnorm.group_norm(x, G, axis=axis)
    assert np.max(np.abs(y - group_norm_ref(x, G, axis=axis))) <= 1e-12


@pytest.mark.parametrize("shape, axis, G", CASES)
@pytest.mark.parametrize("gamma_kind", ["none", "channel", "group"])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_backward_with_given_stats_is_identical(rng, shape, axis, G, gamma_kind, dtype):
    x = (3.0 + rng.standard_normal(shape)).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    n_params = {"none": 0, "channel": shape[axis], "group": G}[gamma_kind]
    gamma = _affine(rng, n_params, dtype)[0] if n_params else None
    mean, invstd = fastnorm.group_norm_stats(x, G, axis=axis, eps=1e-4)
    saved = mean.copy(), invstd.copy()
    want = fastnorm.group_norm_backward(dy, x, G, gamma, axis=axis, eps=1e-4)
    got = fastnorm.group_norm_backward(
        dy, x, G, gamma, axis=axis, eps=1e-4, mean=mean, invstd=invstd
    )
    _assert_same(got, want)
    _assert_same((mean, invstd), saved)


# --------------------------------------------------------------------------
# float64 finite differences


@pytest.mark.parametrize(
    "shape, axis, G",
    [
        ((2, 4, 5), 1, 2),
        ((2, 3, 4), -1, 2),
        ((2, 6, 2, 3), 1, 3),
        ((2, 2, 6, 3), 2, 2),
        ((1, 2, 2, 2, 4), -1, 1),
        ((2, 3, 2, 2), 1, 3),
    ],
)
@pytest.mark.parametrize("per_group", [False, True], ids=["per-channel", "per-group"])
@pytest.mark.parametrize("eps", [1e-5, 0.5])
def test_gradients_match_central_differences(shape, axis, G, per_group, eps):
    rng = np.random.default_rng([*shape, axis % len(shape), G, per_group])
    x = rng.standard_normal(shape)
    w = rng.standard_normal(shape)
    gamma, beta = _affine(rng, G if per_group else shape[axis], np.float64)
    dx, dgamma, dbeta = fastnorm.group_norm_backward(w, x, G, gamma, axis=axis, eps=eps)

    def loss():
        return float(np.sum(fastnorm.group_norm(x, G, gamma, beta, axis=axis, eps=eps) * w))

    np.testing.assert_allclose(dx, central_differences(loss, x), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dgamma, central_differences(loss, gamma), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dbeta, central_differences(loss, beta), rtol=1e-6, atol=1e-7)


def test_gradient_with_implicit_gamma_is_per_channel():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 4, 3))
    w = rng.standard_normal(x.shape)
    dx, dgamma, dbeta = fastnorm.group_norm_backward(w, x, 2)
    assert dgamma.shape == dbeta.shape == (4,)
    ones = np.ones(4)

    def loss():
        return float(np.sum(fastnorm.group_norm(x, 2, ones) * w))

    np.testing.assert_allclose(dx, central_differences(loss, x), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dgamma, central_differences(loss, ones), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dbeta, w.sum(axis=(0, 2)), rtol=1e-13)


# --------------------------------------------------------------------------
# group_norm with groups of one channel is instance_norm, bit for bit


@pytest.mark.parametrize("shape, axis, G", [p for p in ALL_CASES if len(p.values[0]) >= 3])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_groups_of_one_channel_are_instance_norm(rng, shape, axis, G, dtype):
    C = shape[axis]
    x = (1e3 + rng.standard_normal(shape)).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    gamma, beta = _affine(rng, C, dtype)
    _assert_same(
        [fastnorm.group_norm(x, C, gamma, beta, axis=axis)],
        [fastnorm.instance_norm(x, gamma, beta, axis=axis)],
    )
    _assert_same([fastnorm.group_norm(x, C, axis=axis)], [fastnorm.instance_norm(x, axis=axis)])
    _assert_same(
        fastnorm.group_norm_backward(dy, x, C, gamma, axis=axis),
        fastnorm.instance_norm_backward(dy, x, gamma, axis=axis),
    )
    _assert_same(
        fastnorm.group_norm_backward(dy, x, C, axis=axis),
        fastnorm.instance_norm_backward(dy, x, axis=axis),
    )
    _assert_same(
        fastnorm.group_norm_stats(x, C, axis=axis), fastnorm.instance_norm_stats(x, axis=axis)
    )


# --------------------------------------------------------------------------
# thread counts


@pytest.mark.parametrize("shape, axis, G", PARALLEL_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bit_identical_across_thread_counts(rng, shape, axis, G, dtype):
    assert int(np.prod(shape)) > SERIAL_MAX  # the parallel kernels run
    x = (1e3 + rng.standard_normal(shape)).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    gamma, beta = _affine(rng, shape[axis], dtype)
    gamma_g, beta_g = _affine(rng, G, dtype)

    def run():
        return (
            fastnorm.group_norm(x, G, gamma, beta, axis=axis),
            fastnorm.group_norm(x, G, gamma_g, beta_g, axis=axis),
            *fastnorm.group_norm_backward(dy, x, G, gamma, axis=axis),
            *fastnorm.group_norm_backward(dy, x, G, gamma_g, axis=axis),
            *fastnorm.group_norm_stats(x, G, axis=axis),
        )

    with num_threads(1):
        one = run()
    with num_threads(2):
        two = run()
    _assert_same(one, two)


# --------------------------------------------------------------------------
# parameters


def test_gamma_none_and_beta_none_are_ones_and_zeros(rng):
    x = rng.standard_normal((3, 6, 5, 4)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    ones, zeros = np.ones(6, np.float32), np.zeros(6, np.float32)
    y = fastnorm.group_norm(x, 3, eps=0.25)
    np.testing.assert_array_equal(y, fastnorm.group_norm(x, 3, ones, zeros, eps=0.25))
    assert np.max(np.abs(y - group_norm_ref(x, 3, eps=0.25))) <= 1e-6
    _assert_same(
        fastnorm.group_norm_backward(dy, x, 3, eps=0.25),
        fastnorm.group_norm_backward(dy, x, 3, ones, eps=0.25),
    )


@pytest.mark.parametrize("shape, axis, G", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_per_group_parameters_equal_repeated_per_channel(rng, shape, axis, G, dtype):
    x = (2.0 + rng.standard_normal(shape)).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    C = shape[axis]
    gamma, beta = _affine(rng, G, dtype)
    gc, bc = np.repeat(gamma, C // G), np.repeat(beta, C // G)
    # The same per-channel values applied: rounding may differ by an ulp at most.
    ulp = 4 * np.finfo(dtype).eps
    y = fastnorm.group_norm(x, G, gamma, beta, axis=axis)
    y_c = fastnorm.group_norm(x, G, gc, bc, axis=axis)
    assert np.max(np.abs(y - y_c)) <= ulp * max(1.0, np.max(np.abs(y_c)))
    dx, dgamma, dbeta = fastnorm.group_norm_backward(dy, x, G, gamma, axis=axis)
    dx_c, dgamma_c, dbeta_c = fastnorm.group_norm_backward(dy, x, G, gc, axis=axis)
    assert dgamma.shape == dbeta.shape == (G,) and dgamma_c.shape == dbeta_c.shape == (C,)
    assert rel_err(dx, dx_c) <= ulp
    sums = lambda v: v.astype(np.float64).reshape(G, C // G).sum(axis=1)  # noqa: E731
    tol = 1e-6 if dtype == np.float32 else 1e-12
    assert rel_err(dgamma, sums(dgamma_c)) <= tol
    assert rel_err(dbeta, sums(dbeta_c)) <= tol


def test_parameters_are_cast_to_compute_dtype(rng):
    x = rng.standard_normal((2, 6, 5, 5)).astype(np.float32)
    for n in (6, 3):
        g64, b64 = 1.0 + rng.standard_normal(n), rng.standard_normal(n)
        y = fastnorm.group_norm(x, 3, g64, b64)
        assert y.dtype == np.float32
        want = fastnorm.group_norm(x, 3, g64.astype(np.float32), b64.astype(np.float32))
        np.testing.assert_array_equal(y, want)
    y = fastnorm.group_norm(x, 3, [1, 2, 3], np.array([0, 1, 2], np.int64))
    want = fastnorm.group_norm(x, 3, np.array([1, 2, 3], np.float32), np.arange(3.0))
    np.testing.assert_array_equal(y, want)


def test_num_groups_numpy_int_is_accepted(rng):
    x = rng.standard_normal((2, 6, 5)).astype(np.float32)
    want = fastnorm.group_norm(x, 3)
    for g in (np.int64(3), np.int32(3), np.uint8(3)):
        np.testing.assert_array_equal(fastnorm.group_norm(x, g), want)
        assert fastnorm.group_norm_stats(x, g)[0].shape == (2, 3)


# --------------------------------------------------------------------------
# degenerate groups


@pytest.mark.parametrize("shape, axis, G", ALL_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_constant_groups_give_exactly_beta(rng, shape, axis, G, dtype):
    C = shape[axis]
    x = np.full(shape, 12345.678, dtype=dtype)
    beta = np.full(C, -0.5, dtype=dtype)
    beta[::2] = 0.25
    gamma, _ = _affine(rng, C, dtype)
    y = fastnorm.group_norm(x, G, gamma, beta, axis=axis)
    np.testing.assert_array_equal(y, np.broadcast_to(_bcast(beta, len(shape), axis), shape))
    dy = rng.standard_normal(shape).astype(dtype)
    _, dgamma, _ = fastnorm.group_norm_backward(dy, x, G, gamma, axis=axis)
    np.testing.assert_array_equal(dgamma, 0)  # xhat is exactly 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("value", [12345.678, -3.3, 1e-30, 0.0])
@pytest.mark.parametrize("per_group", [False, True], ids=["per-channel", "per-group"])
def test_constant_group_among_random_ones(rng, dtype, value, per_group):
    shape, G = (3, 6, 7, 9), 3
    x = rng.standard_normal(shape).astype(dtype)
    x[1, 2:4] = value  # group 1 of sample 1
    gamma, beta = _affine(rng, G if per_group else 6, dtype)
    y = fastnorm.group_norm(x, G, gamma, beta)
    want = beta[1] if per_group else _bcast(beta[2:4], 3, 0)
    np.testing.assert_array_equal(y[1, 2:4], np.broadcast_to(want, (2, 7, 9)))
    y_ref = group_norm_ref(x, G, gamma, beta)
    assert np.max(np.abs(y - y_ref)) <= 1e-6 * max(1.0, np.max(np.abs(y_ref)))


@pytest.mark.parametrize(
    "shape, axis", [((3, 4, 1, 1), 1), ((3, 1, 1, 4), -1), ((2, 3, 1), 1), ((2, 1, 3), 2)]
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_element_groups(rng, shape, axis, dtype):
    # xhat is exactly 0 and dy - mean(dy) is exactly 0: y is beta, dx and dgamma are 0.
    C = shape[axis]
    x = (100.0 * rng.standard_normal(shape)).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    gamma, beta = _affine(rng, C, dtype)
    y = fastnorm.group_norm(x, C, gamma, beta, axis=axis)
    np.testing.assert_array_equal(y, np.broadcast_to(_bcast(beta, len(shape), axis), shape))
    dx, dgamma, dbeta = fastnorm.group_norm_backward(dy, x, C, gamma, axis=axis)
    np.testing.assert_array_equal(dx, 0)
    np.testing.assert_array_equal(dgamma, 0)
    assert rel_err(dbeta, group_norm_backward_ref(dy, x, C, gamma, axis=axis)[2]) <= 1e-6


@pytest.mark.parametrize("shape, axis, G", CASES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_poisons_only_its_group(rng, shape, axis, G, bad):
    C = shape[axis]
    x = rng.standard_normal(shape).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    gamma, beta = _affine(rng, C, np.float32)
    clean_y = fastnorm.group_norm(x, G, gamma, beta, axis=axis)
    clean_dx, _, _ = fastnorm.group_norm_backward(dy, x, G, gamma, axis=axis)

    # The last channel of the last sample, mid-slice: its whole group goes NaN.
    n, Cg = shape[0] - 1, C // G
    group = slice(C - Cg, C)
    poisoned = x.copy()
    in_channel = np.zeros(shape, bool)
    in_channel[_group_index(len(shape), axis, n, C - 1)] = True
    where = np.flatnonzero(in_channel)
    poisoned.reshape(-1)[where[where.size // 2]] = bad
    sl = _group_index(len(shape), axis, n, group)

    y = fastnorm.group_norm(poisoned, G, gamma, beta, axis=axis)
    assert np.isnan(y[sl]).all()
    mask = np.ones(shape, bool)
    mask[sl] = False
    np.testing.assert_array_equal(y[mask], clean_y[mask])

    dx, dgamma, dbeta = fastnorm.group_norm_backward(dy, poisoned, G, gamma, axis=axis)
    assert np.isnan(dx[sl]).all()
    np.testing.assert_array_equal(dx[mask], clean_dx[mask])
    assert np.isnan(dgamma[group]).all()
    assert np.isfinite(dgamma[: C - Cg]).all() and np.isfinite(dbeta).all()

    mean, invstd = fastnorm.group_norm_stats(poisoned, G, axis=axis)
    finite = np.ones((shape[0], G), bool)
    finite[n, G - 1] = False
    assert np.isfinite(mean[finite]).all() and np.isfinite(invstd[finite]).all()


def test_nan_in_gradient_poisons_only_its_group(rng):
    shape, G = (2, 6, 6, 7), 3
    x = rng.standard_normal(shape).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    clean_dx, _, _ = fastnorm.group_norm_backward(dy, x, G)
    dy[1, 3, 2, 3] = np.nan  # channel 3: group 1 = channels 2, 3
    dx, dgamma, dbeta = fastnorm.group_norm_backward(dy, x, G)
    assert np.isnan(dx[1, 2:4]).all()
    mask = np.ones(shape, bool)
    mask[1, 2:4] = False
    np.testing.assert_array_equal(dx[mask], clean_dx[mask])
    assert np.isnan(dbeta[3]) and np.isfinite(np.delete(dbeta, 3)).all()
    assert np.isnan(dgamma[3]) and np.isfinite(np.delete(dgamma, 3)).all()


# --------------------------------------------------------------------------
# zero-size inputs


@pytest.mark.parametrize(
    "shape, axis, G",
    [
        ((0, 6, 4, 4), 1, 3),
        ((2, 6, 0, 4), 1, 3),
        ((0, 4, 4, 6), -1, 2),
        ((2, 4, 0, 6), -1, 3),
        ((2, 6, 0), 1, 2),
        ((2, 0, 4, 4), 1, 1),
        ((2, 0, 5, 6, 7), 1, 2),
    ],
)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("per_group", [False, True], ids=["per-channel", "per-group"])
def test_zero_size(shape, axis, G, dtype, per_group):
    x = np.empty(shape, dtype)
    n_params = G if per_group else shape[axis]
    gamma, beta = np.ones(n_params, dtype), np.zeros(n_params, dtype)
    y = fastnorm.group_norm(x, G, gamma, beta, axis=axis)
    assert y.shape == shape and y.dtype == dtype
    out = np.empty(shape, dtype)
    assert fastnorm.group_norm(x, G, gamma, beta, axis=axis, out=out) is out

    dx, dgamma, dbeta = fastnorm.group_norm_backward(x, x, G, gamma, axis=axis)
    assert dx.shape == shape and dx.dtype == dtype
    assert dgamma.shape == dbeta.shape == (n_params,)
    assert dgamma.dtype == dbeta.dtype == dtype
    np.testing.assert_array_equal(dgamma, 0)
    np.testing.assert_array_equal(dbeta, 0)

    mean, invstd = fastnorm.group_norm_stats(x, G, axis=axis)
    assert mean.shape == invstd.shape == (shape[0], G)
    assert mean.dtype == invstd.dtype == np.float64


# --------------------------------------------------------------------------
# dtypes


@pytest.mark.parametrize(
    "shape, axis, G", [((2, 6, 8, 8), 1, 3), ((2, 8, 8, 6), -1, 2), ((1, 4, 200, 200), 1, 2)]
)
def test_float16_computes_in_float32(rng, shape, axis, G):
    C = shape[axis]
    x = (2.0 + rng.standard_normal(shape)).astype(np.float16)
    dy = rng.standard_normal(shape).astype(np.float16)
    gamma, beta = _affine(rng, C, np.float16)
    f32 = lambda a: a.astype(np.float32)  # noqa: E731

    y = fastnorm.group_norm(x, G, gamma, beta, axis=axis)
    assert y.dtype == np.float16
    via32 = fastnorm.group_norm(f32(x), G, f32(gamma), f32(beta), axis=axis)
    np.testing.assert_array_equal(y, via32.astype(np.float16))
    assert rel_err(y, group_norm_ref(x, G, gamma, beta, axis=axis)) <= 1e-3

    got = fastnorm.group_norm_backward(dy, x, G, gamma, axis=axis)
    want = fastnorm.group_norm_backward(f32(dy), f32(x), G, f32(gamma), axis=axis)
    _assert_same(got, [w.astype(np.float16) for w in want])
    out = np.empty(shape, np.float16)
    assert fastnorm.group_norm(x, G, gamma, beta, axis=axis, out=out) is out
    np.testing.assert_array_equal(out, y)


@pytest.mark.parametrize("dtype", [">f2", ">f4", ">f8"])
def test_byte_swapped_inputs(rng, dtype):
    # Big-endian data (read from files) computes natively; results keep its dtype.
    x = rng.standard_normal((2, 6, 5, 4)).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    gamma = (1.0 + rng.standard_normal(3)).astype(dtype)
    native = lambda a: a.astype(a.dtype.newbyteorder("="))  # noqa: E731
    y = fastnorm.group_norm(x, 3, gamma)
    assert y.dtype == x.dtype
    np.testing.assert_array_equal(y, fastnorm.group_norm(native(x), 3, native(gamma)))
    _assert_same(
        [native(a) for a in fastnorm.group_norm_backward(dy, x, 3, gamma)],
        fastnorm.group_norm_backward(native(dy), native(x), 3, native(gamma)),
    )


def test_read_only_and_list_inputs(rng):
    x = rng.standard_normal((2, 6, 5))
    dy = rng.standard_normal(x.shape)
    gamma = 1.0 + rng.standard_normal(6)
    want = fastnorm.group_norm(x, 2, gamma), *fastnorm.group_norm_backward(dy, x, 2, gamma)
    for a in (x, dy, gamma):
        a.flags.writeable = False
    _assert_same(
        (fastnorm.group_norm(x, 2, gamma), *fastnorm.group_norm_backward(dy, x, 2, gamma)), want
    )
    np.testing.assert_array_equal(fastnorm.group_norm(x.tolist(), 2, gamma.tolist()), want[0])


@pytest.mark.parametrize(
    "shape, axis, G",
    [
        pytest.param((2, 6, 50), 1, 6, id="rows-groups-of-one"),
        pytest.param((2, 6, 50), 1, 3, id="rows"),
        pytest.param((2, 6, 8, 300), 1, 3, id="rows-long"),
        pytest.param((3, 40, 50), -1, 5, id="columns"),
        pytest.param((2, 6, 5, 7), 2, 1, id="middle"),
    ],
)
def test_float64_variance_overflow_is_inf_not_nan(rng, shape, axis, G):
    # Finite inputs whose squares overflow: the variance is inf and invstd 0,
    # so y is beta and dx, dgamma are 0 (as instance_norm on rows), never NaN.
    x = rng.standard_normal(shape) * 1e300
    dy = rng.standard_normal(shape)
    beta = np.arange(float(shape[axis]))
    y = fastnorm.group_norm(x, G, beta=beta, axis=axis)
    np.testing.assert_array_equal(y, np.broadcast_to(_bcast(beta, len(shape), axis), shape))
    mean, invstd = fastnorm.group_norm_stats(x, G, axis=axis)
    assert np.isfinite(mean).all() and (invstd == 0).all()
    dx, dgamma, dbeta = fastnorm.group_norm_backward(dy, x, G, axis=axis)
    np.testing.assert_array_equal(dx, 0)
    np.testing.assert_array_equal(dgamma, 0)
    assert np.isfinite(dbeta).all()


def test_dy_is_cast_to_x_dtype(rng):
    x = rng.standard_normal((2, 6, 5, 5)).astype(np.float32)
    dy = rng.standard_normal(x.shape)
    _assert_same(
        fastnorm.group_norm_backward(dy, x, 2),
        fastnorm.group_norm_backward(dy.astype(np.float32), x, 2),
    )


# --------------------------------------------------------------------------
# memory layouts and out=


def _views(rng, dtype):
    """(id, array, axis, num_groups) of non-C-contiguous inputs."""
    base = (5.0 + rng.standard_normal((3, 6, 10, 12))).astype(dtype)
    big = (5.0 + rng.standard_normal((2, 8, 96, 160))).astype(dtype)
    return [
        ("fortran", np.asfortranarray(base), 1, 3),
        ("fortran-nhwc", np.asfortranarray(base), -1, 4),
        ("strided", base[:, :, ::2], 1, 2),
        ("strided-last", base[:, :, :, 1::3], -1, 2),
        ("reversed", base[:, ::-1, :, ::-1], 1, 3),
        ("transpose-nhwc", base.transpose(0, 2, 3, 1), -1, 3),
        ("transpose-middle", base.transpose(0, 2, 1, 3), 2, 2),
        ("transpose-all", base.transpose(0, 3, 2, 1), 3, 6),
        ("big-strided", big[:, :, ::2, :], 1, 4),
        ("big-transpose", big.transpose(0, 2, 3, 1), -1, 2),
    ]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("which", range(10))
def test_non_contiguous_inputs(rng, dtype, which):
    name, x, axis, G = _views(rng, dtype)[which]
    assert not x.flags.c_contiguous, name
    C = x.shape[axis]
    gamma, beta = _affine(rng, C, dtype)
    dy = np.asfortranarray(rng.standard_normal(x.shape).astype(dtype))
    x_before = x.copy()
    xc = np.ascontiguousarray(x)

    y = fastnorm.group_norm(x, G, gamma, beta, axis=axis)
    np.testing.assert_array_equal(y, fastnorm.group_norm(xc, G, gamma, beta, axis=axis))
    assert np.max(np.abs(y - group_norm_ref(x, G, gamma, beta, axis=axis))) <= 1e-6 * 4
    _assert_same(
        fastnorm.group_norm_backward(dy, x, G, gamma, axis=axis),
        fastnorm.group_norm_backward(np.ascontiguousarray(dy), xc, G, gamma, axis=axis),
    )
    _assert_same(
        fastnorm.group_norm_stats(x, G, axis=axis), fastnorm.group_norm_stats(xc, G, axis=axis)
    )
    np.testing.assert_array_equal(x, x_before)


@pytest.mark.parametrize(
    "shape, axis, G",
    [
        pytest.param((2, 6, 8, 8), 1, 3, id="nchw-serial"),
        pytest.param((2, 8, 8, 6), -1, 2, id="nhwc-serial"),
        pytest.param((2, 64, 32, 32), 1, 32, id="nchw-parallel"),
        pytest.param((2, 32, 32, 64), -1, 16, id="nhwc-parallel"),
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_out(rng, shape, axis, G, dtype):
    x = (1.0 + rng.standard_normal(shape)).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    gamma, beta = _affine(rng, G, dtype)  # per group
    want = fastnorm.group_norm(x, G, gamma, beta, axis=axis)
    dwant = fastnorm.group_norm_backward(dy, x, G, gamma, axis=axis)

    out = np.full(shape, 7, dtype)
    assert fastnorm.group_norm(x, G, gamma, beta, axis=axis, out=out) is out
    np.testing.assert_array_equal(out, want)
    holder = np.full((*shape[:-1], 2 * shape[-1]), 7, dtype)
    out = holder[..., ::2]
    assert fastnorm.group_norm(x, G, gamma, beta, axis=axis, out=out) is out
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(holder[..., 1::2], 7)  # gaps untouched
    out = np.asfortranarray(np.zeros(shape, dtype))
    dx, dgamma, dbeta = fastnorm.group_norm_backward(dy, x, G, gamma, axis=axis, out=out)
    assert dx is out
    _assert_same((dx, dgamma, dbeta), dwant)

    # In place: out is x (forward), out is dy or x (backward).
    x2, dy2 = x.copy(), dy.copy()
    got = fastnorm.group_norm_backward(dy2, x2, G, gamma, axis=axis, out=dy2)
    assert got[0] is dy2
    _assert_same(got, dwant)
    np.testing.assert_array_equal(x2, x)
    x2, dy2 = x.copy(), dy.copy()
    got = fastnorm.group_norm_backward(dy2, x2, G, gamma, axis=axis, out=x2)
    assert got[0] is x2
    _assert_same(got, dwant)
    np.testing.assert_array_equal(dy2, dy)
    x2[...] = x
    assert fastnorm.group_norm(x2, G, gamma, beta, axis=axis, out=x2) is x2
    np.testing.assert_array_equal(x2, want)


def test_out_overlapping_input(rng):
    shape, G = (2, 6, 9, 8), 3
    x = rng.standard_normal(shape).astype(np.float32)
    want = fastnorm.group_norm(x, G)
    for shift in (1, 5, -3):
        buf = np.zeros(x.size + 8, np.float32)
        xin = buf[3 : 3 + x.size].reshape(shape)
        xin[...] = x
        out = buf[3 + shift : 3 + shift + x.size].reshape(shape)
        assert fastnorm.group_norm(xin, G, out=out) is out
        np.testing.assert_array_equal(out, want)


# --------------------------------------------------------------------------
# hypothesis: any shape, groups, axis, dtype, layout, parameters

TOL = {
    np.float16: (4e-3, 4e-3),  # float16 output rounding (2**-11 relative)
    np.float32: (2e-6, 1e-5),
    np.float64: (1e-12, 1e-11),
}
SETTINGS = settings(max_examples=50, deadline=None)


@st.composite
def cases(draw):
    ndim = draw(st.integers(2, 5))  # (N, C) too, as torch's group_norm takes it
    axis = draw(st.integers(1, ndim - 1))
    shape = draw(st.lists(st.integers(1, 5), min_size=ndim, max_size=ndim))
    shape[axis] = draw(st.integers(1, 12))
    C = shape[axis]
    G = draw(st.sampled_from([g for g in range(1, C + 1) if C % g == 0]))
    if draw(st.booleans()):
        axis -= ndim
    dtype = draw(st.sampled_from([np.float16, np.float32, np.float64]))
    layout = draw(st.sampled_from(["C", "F", "strided", "transposed", "reversed"]))
    params = draw(st.sampled_from(["none", "channel", "group"]))
    seed = draw(st.integers(0, 2**32 - 1))
    return tuple(shape), axis, G, dtype, layout, params, seed


@SETTINGS
@given(cases())
def test_hypothesis_matches_reference(case):
    shape, axis, G, dtype, layout, params, seed = case
    rng = np.random.default_rng(seed)
    x = make_array(shape, dtype, layout, rng, offset=3.0)
    dy = make_array(shape, dtype, layout, rng)
    C = shape[axis]
    n_params = {"none": C, "channel": C, "group": G}[params]
    gamma, beta = (None, None) if params == "none" else _affine(rng, n_params, dtype)
    inputs = [a for a in (x, dy, gamma, beta) if a is not None]
    saved = [a.copy() for a in inputs]
    y_tol, g_tol = TOL[dtype]

    y = fastnorm.group_norm(x, G, gamma, beta, axis=axis)
    assert y.shape == shape and y.dtype == dtype
    y_ref = group_norm_ref(x, G, gamma, beta, axis=axis)
    assert np.max(np.abs(y - y_ref)) <= y_tol * max(1.0, np.max(np.abs(y_ref)))

    dx, dgamma, dbeta = fastnorm.group_norm_backward(dy, x, G, gamma, axis=axis)
    assert dx.shape == shape and dx.dtype == dgamma.dtype == dbeta.dtype == dtype
    assert dgamma.shape == dbeta.shape == (n_params,)
    dx_ref, dgamma_ref, dbeta_ref = group_norm_backward_ref(dy, x, G, gamma, axis=axis)
    # dx cancels almost fully in tiny groups; judge it at the scale of its terms.
    _, invstd = group_norm_stats_ref(x, G, axis=axis)
    g_max = 1.0 if gamma is None else np.max(np.abs(gamma.astype(np.float64)))
    term = g_max * np.max(invstd) * np.max(np.abs(dy))
    assert np.max(np.abs(dx - dx_ref)) <= g_tol * max(np.max(np.abs(dx_ref)), term)
    assert rel_err(dgamma, dgamma_ref) <= g_tol
    assert rel_err(dbeta, dbeta_ref) <= g_tol

    mean, invstd_got = fastnorm.group_norm_stats(x, G, axis=axis)
    mean_ref, _ = group_norm_stats_ref(x, G, axis=axis)
    np.testing.assert_allclose(mean, mean_ref, rtol=1e-12 if dtype == np.float64 else 1e-6)
    np.testing.assert_allclose(invstd_got, invstd, rtol=1e-9 if dtype == np.float64 else 1e-5)
    for a, b in zip(inputs, saved, strict=True):
        np.testing.assert_array_equal(a, b)  # inputs are never modified


@SETTINGS
@given(cases())
def test_hypothesis_layout_and_in_place_do_not_change_the_result(case):
    shape, axis, G, dtype, layout, _, seed = case
    x = make_array(shape, dtype, layout, np.random.default_rng(seed))
    xc = np.ascontiguousarray(x)
    want = fastnorm.group_norm(xc, G, axis=axis)
    np.testing.assert_array_equal(fastnorm.group_norm(x, G, axis=axis), want)
    _assert_same(
        fastnorm.group_norm_stats(x, G, axis=axis), fastnorm.group_norm_stats(xc, G, axis=axis)
    )
    assert fastnorm.group_norm(x, G, axis=axis, out=x) is x
    np.testing.assert_array_equal(x, want)


# --------------------------------------------------------------------------
# bad input: ValueError/TypeError naming the argument

X = np.zeros((2, 6, 4, 5), np.float32)
G3 = 3


def _forward(**kw):
    args = {"x": X, "num_groups": G3, "gamma": None, "beta": None, **kw}
    return fastnorm.group_norm(
        args.pop("x"), args.pop("num_groups"), args.pop("gamma"), args.pop("beta"), **args
    )


def _backward(**kw):
    args = {"dy": np.ones_like(X), "x": X, "num_groups": G3, "gamma": None, **kw}
    args.pop("beta", None)
    return fastnorm.group_norm_backward(
        args.pop("dy"), args.pop("x"), args.pop("num_groups"), args.pop("gamma"), **args
    )


def _stats(**kw):
    args = {"x": X, "num_groups": G3, **kw}
    for unused in ("gamma", "beta", "out"):
        args.pop(unused, None)
    return fastnorm.group_norm_stats(args.pop("x"), args.pop("num_groups"), **args)


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
@pytest.mark.parametrize("value", [0, -1, -6])
def test_num_groups_below_one(func, value):
    msg = _raises(func, ValueError, r"\bnum_groups\b", num_groups=value)
    assert str(value) in msg


@pytest.mark.parametrize("func", ALL, ids=lambda f: f.__name__)
@pytest.mark.parametrize("value", [4, 5, 7, 12, 60])
def test_num_groups_not_dividing_channels(func, value):
    msg = _raises(func, ValueError, r"\bnum_groups\b", num_groups=value)
    assert str(value) in msg and "6" in msg  # the value and C


@pytest.mark.parametrize("func", ALL, ids=lambda f: f.__name__)
@pytest.mark.parametrize(
    "value", [1.5, 3.0, np.float64(3.0), "3", None, [3], (3,), True, np.bool_(True)]
)
def test_num_groups_not_an_int(func, value):
    _raises(func, TypeError, r"\bnum_groups\b", num_groups=value)


@pytest.mark.parametrize("func", WITH_GAMMA, ids=lambda f: f.__name__)
@pytest.mark.parametrize(
    "value",
    [
        np.ones(2),
        np.ones(4),
        np.ones(7),
        np.ones((6, 1)),
        np.ones((1, 3)),
        np.float32(1),
        np.ones(0),
    ],
    ids=["2", "4", "7", "col", "row", "scalar", "empty"],
)
def test_gamma_bad_shape(func, value):
    msg = _raises(func, ValueError, r"\bgamma\b", gamma=value)
    assert "(6,)" in msg and "(3,)" in msg  # per channel or per group


@pytest.mark.parametrize("value", [np.ones(2), np.ones((3, 1)), np.float64(0.0)])
def test_beta_bad_shape(value):
    msg = _raises(_forward, ValueError, r"\bbeta\b", beta=value)
    assert "(6,)" in msg and "(3,)" in msg


@pytest.mark.parametrize("name", ["gamma", "beta"])
@pytest.mark.parametrize(
    "value", [np.ones(3, np.complex64), np.ones(6, bool), np.array(["a", "b", "c"]), "abc"]
)
def test_param_bad_type(name, value):
    _raises(_forward, TypeError, rf"\b{name}\b", **{name: value})


@pytest.mark.parametrize("func", ALL, ids=lambda f: f.__name__)
@pytest.mark.parametrize("axis", [0, 4, -5, 100])
def test_axis_out_of_range(func, axis):
    msg = _raises(func, ValueError, r"\baxis\b", axis=axis)
    assert str(axis) in msg


@pytest.mark.parametrize("func", ALL, ids=lambda f: f.__name__)
@pytest.mark.parametrize("axis", [1.0, "1", None, (1,), True])
def test_axis_not_an_int(func, axis):
    _raises(func, TypeError, r"\baxis\b", axis=axis)


@pytest.mark.parametrize("func", ALL, ids=lambda f: f.__name__)
@pytest.mark.parametrize("dtype", [np.int32, np.bool_, np.complex64, object])
def test_x_bad_dtype(func, dtype):
    kw = {"x": np.zeros(X.shape, dtype)}
    msg = _raises(func, TypeError, r"\bx\b", **kw)
    assert str(np.dtype(dtype)) in msg


@pytest.mark.parametrize("func", ALL, ids=lambda f: f.__name__)
@pytest.mark.parametrize("shape", [(), (6,)])
def test_x_too_few_dims(func, shape):
    x = np.zeros(shape, np.float32)
    kw = {"x": x, "dy": x} if func is _backward else {"x": x}
    msg = _raises(func, ValueError, r"\bx\b", num_groups=1, **kw)
    assert str(shape) in msg


@pytest.mark.parametrize("func", ALL, ids=lambda f: f.__name__)
@pytest.mark.parametrize("eps", [-1e-5, float("nan"), float("inf")])
def test_eps_bad_value(func, eps):
    _raises(func, ValueError, r"\beps\b", eps=eps)


@pytest.mark.parametrize("shape", [(2, 6, 4), (2, 6, 5, 4), (1, 6, 4, 5)])
def test_dy_wrong_shape(shape):
    msg = _raises(_backward, ValueError, r"\bdy\b", dy=np.ones(shape, np.float32))
    assert str(shape) in msg


@pytest.mark.parametrize("name", ["mean", "invstd"])
@pytest.mark.parametrize("shape", [(2, 6), (2,), (3, 2), (2, 3, 1), (6,)])
def test_stat_wrong_shape(name, shape):
    # (2, 6) is instance norm's (N, C): group statistics are (N, num_groups).
    mean, invstd = fastnorm.group_norm_stats(X, G3)
    msg = _raises(
        _backward,
        ValueError,
        rf"\b{name}\b",
        **{"mean": mean, "invstd": invstd, name: np.ones(shape)},
    )
    assert "(2, 3)" in msg


@pytest.mark.parametrize("missing", ["mean", "invstd"])
def test_only_one_stat_given(missing):
    mean, invstd = fastnorm.group_norm_stats(X, G3)
    kw = {"invstd": invstd} if missing == "mean" else {"mean": mean}
    _raises(_backward, ValueError, rf"\b{missing}\b", **kw)


@pytest.mark.parametrize("func", WITH_GAMMA, ids=lambda f: f.__name__)
@pytest.mark.parametrize(
    "out",
    [
        np.empty((2, 6, 4), np.float32),
        np.empty((2, 6, 5, 4), np.float32),
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
        fastnorm.group_norm(X, 4, out=out)
    with pytest.raises(ValueError):
        fastnorm.group_norm_backward(X, X, 3, np.ones(4), out=out)
    np.testing.assert_array_equal(out, 7)
