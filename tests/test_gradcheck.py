"""Finite-difference check of the backward in float64.

For the scalar loss L = sum(y * w), dy = w; central differences of L with
respect to every element of x, gamma and beta must match the analytic
gradients returned by instance_norm_backward.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastnorm

H = 1e-6


def _loss(x, gamma, beta, w, axis, eps):
    return float(np.sum(fastnorm.instance_norm(x, gamma, beta, axis=axis, eps=eps) * w))


def _numeric(f, v):
    """Central differences of f() with respect to every element of v (in place)."""
    grad = np.empty_like(v)
    flat, gflat = v.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        orig = flat[i]
        flat[i] = orig + H
        up = f()
        flat[i] = orig - H
        down = f()
        flat[i] = orig
        gflat[i] = (up - down) / (2 * H)
    return grad


@pytest.mark.parametrize(
    "shape, axis",
    [((2, 3, 5), 1), ((2, 4, 3), -1), ((2, 3, 2, 3), 1), ((2, 2, 3, 3), 2), ((1, 2, 2, 2, 3), -1)],
)
@pytest.mark.parametrize("eps", [1e-5, 0.5])
def test_gradients_match_central_differences(shape, axis, eps):
    rng = np.random.default_rng([*shape, axis % len(shape)])
    C = shape[axis]
    x = rng.standard_normal(shape)
    w = rng.standard_normal(shape)
    gamma = 1.0 + 0.5 * rng.standard_normal(C)
    beta = rng.standard_normal(C)

    dx, dgamma, dbeta = fastnorm.instance_norm_backward(w, x, gamma, axis=axis, eps=eps)

    def f():
        return _loss(x, gamma, beta, w, axis, eps)

    np.testing.assert_allclose(dx, _numeric(f, x), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dgamma, _numeric(f, gamma), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dbeta, _numeric(f, beta), rtol=1e-6, atol=1e-7)


def test_gradient_with_implicit_gamma():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 4))
    w = rng.standard_normal(x.shape)
    dx, dgamma, _ = fastnorm.instance_norm_backward(w, x)
    ones = np.ones(3)
    np.testing.assert_allclose(
        dx, _numeric(lambda: _loss(x, None, None, w, 1, 1e-5), x), rtol=1e-6, atol=1e-7
    )
    np.testing.assert_allclose(
        dgamma, _numeric(lambda: _loss(x, ones, None, w, 1, 1e-5), ones), rtol=1e-6, atol=1e-7
    )
