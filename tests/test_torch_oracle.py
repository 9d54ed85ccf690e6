"""PyTorch's instance_norm (forward and autograd backward) as an oracle.

PyTorch wants the channel axis at 1, so inputs are moved there for torch
and the results moved back.  float32 results are compared at float32
rounding scale, float64 ones much tighter.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastnorm

torch = pytest.importorskip("torch")

# (shape, axis): NCW, NCHW, NCDHW, NHWC, NDHWC, middle axes, a split slice.
CASES = [
    ((3, 4, 17), 1),
    ((2, 5, 17), -1),
    ((2, 3, 9, 11), 1),
    ((2, 9, 11, 3), -1),
    ((2, 9, 3, 11), 2),
    ((2, 3, 4, 5, 6), 1),
    ((2, 4, 5, 6, 3), 4),
    ((2, 4, 3, 5, 6), -3),
    ((2, 3, 64, 400), 1),
    ((1, 2, 400, 400), 1),
    ((2, 96, 96, 8), -1),
]
TOL = {np.float32: (1e-5, 1e-5), np.float64: (1e-12, 1e-11)}  # (y abs, grads rel)


def _torch_reference(x, gamma, beta, dy, axis, eps):
    xt = torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, axis, 1))).requires_grad_(True)
    gt = torch.from_numpy(gamma).requires_grad_(True)
    bt = torch.from_numpy(beta).requires_grad_(True)
    yt = torch.nn.functional.instance_norm(xt, weight=gt, bias=bt, eps=eps)
    yt.backward(torch.from_numpy(np.ascontiguousarray(np.moveaxis(dy, axis, 1))))
    back = lambda t: np.moveaxis(t.detach().numpy(), 1, axis)  # noqa: E731
    return back(yt), back(xt.grad), gt.grad.numpy(), bt.grad.numpy()


def _rel(got, want):
    return float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-30))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, axis", CASES)
@pytest.mark.parametrize("eps", [1e-5, 0.1])
def test_matches_torch(shape, axis, dtype, eps):
    rng = np.random.default_rng([*shape, axis % len(shape)])
    C = shape[axis]
    x = (2.0 + 3.0 * rng.standard_normal(shape)).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    gamma = (1.0 + 0.5 * rng.standard_normal(C)).astype(dtype)
    beta = rng.standard_normal(C).astype(dtype)
    y_t, dx_t, dgamma_t, dbeta_t = _torch_reference(x, gamma, beta, dy, axis, eps)
    y_tol, g_tol = TOL[dtype]

    y = fastnorm.instance_norm(x, gamma, beta, axis=axis, eps=eps)
    assert y.dtype == dtype
    assert np.max(np.abs(y - y_t)) <= y_tol * max(1.0, np.max(np.abs(y_t)))

    dx, dgamma, dbeta = fastnorm.instance_norm_backward(dy, x, gamma, axis=axis, eps=eps)
    assert dx.dtype == dgamma.dtype == dbeta.dtype == dtype
    # torch's float32 sums over long slices carry float32 accumulation error.
    assert _rel(dx, dx_t) <= g_tol
    assert _rel(dgamma, dgamma_t) <= g_tol
    assert _rel(dbeta, dbeta_t) <= g_tol


def test_random_shapes_and_axes():
    rng = np.random.default_rng(7)
    for _ in range(20):
        ndim = int(rng.integers(3, 6))
        shape = tuple(int(d) for d in rng.integers(1, 7, size=ndim))
        axis = int(rng.integers(1, ndim))
        if np.prod(shape) // (shape[0] * shape[axis]) < 2:
            continue  # torch refuses one-element slices
        if rng.random() < 0.5:
            axis -= ndim  # the same axis, counted from the end
        x = rng.standard_normal(shape)
        dy = rng.standard_normal(shape)
        C = shape[axis]
        gamma, beta = rng.standard_normal(C), rng.standard_normal(C)
        y_t, dx_t, dgamma_t, dbeta_t = _torch_reference(x, gamma, beta, dy, axis, 1e-5)
        y = fastnorm.instance_norm(x, gamma, beta, axis=axis)
        dx, dgamma, dbeta = fastnorm.instance_norm_backward(dy, x, gamma, axis=axis)
        np.testing.assert_allclose(y, y_t, atol=1e-10, err_msg=f"{shape} {axis}")
        np.testing.assert_allclose(dx, dx_t, atol=1e-9, err_msg=f"{shape} {axis}")
        np.testing.assert_allclose(dgamma, dgamma_t, atol=1e-9, err_msg=f"{shape} {axis}")
        np.testing.assert_allclose(dbeta, dbeta_t, atol=1e-12, err_msg=f"{shape} {axis}")
