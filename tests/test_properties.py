"""Hypothesis property tests: any shape, axis, dtype and memory layout.

Results are compared against the float64 reference with tolerances set by
the compute precision, and inputs must come back unmodified.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastnorm
from fastnorm.reference import instance_norm_backward_ref, instance_norm_ref

# y: absolute on unit-scale output; grads: relative to the largest magnitude.
TOL = {
    np.float16: (4e-3, 4e-3),  # float16 output rounding (2**-11 relative)
    np.float32: (2e-6, 1e-5),
    np.float64: (1e-12, 1e-11),
}
SETTINGS = settings(max_examples=60, deadline=None)


@st.composite
def cases(draw):
    ndim = draw(st.integers(3, 5))
    shape = tuple(draw(st.lists(st.integers(1, 6), min_size=ndim, max_size=ndim)))
    axis = draw(st.integers(1, ndim - 1))
    if draw(st.booleans()):
        axis -= ndim
    dtype = draw(st.sampled_from([np.float16, np.float32, np.float64]))
    layout = draw(st.sampled_from(["C", "F", "strided", "transposed"]))
    seed = draw(st.integers(0, 2**32 - 1))
    return shape, axis, dtype, layout, seed


def _make(shape, dtype, layout, rng, offset=0.0):
    """An array of ``shape`` in the requested memory layout."""
    if layout == "strided":
        # Every other element along the last axis of a wider array.
        base = offset + rng.standard_normal((*shape[:-1], 2 * shape[-1]))
        return base.astype(dtype)[..., ::2]
    if layout == "transposed":
        perm = list(range(len(shape)))[::-1]
        base = (offset + rng.standard_normal([shape[p] for p in perm])).astype(dtype)
        return base.transpose(perm)
    a = (offset + rng.standard_normal(shape)).astype(dtype)
    return np.asfortranarray(a) if layout == "F" else a


def _rel(got, want):
    scale = np.max(np.abs(want)) if want.size else 0.0
    err = np.max(np.abs(got.astype(np.float64) - want)) if want.size else 0.0
    return err / scale if scale else err


@SETTINGS
@given(cases())
def test_forward_and_backward_match_reference(case):
    shape, axis, dtype, layout, seed = case
    rng = np.random.default_rng(seed)
    x = _make(shape, dtype, layout, rng, offset=3.0)
    assert x.shape == shape
    dy = _make(shape, dtype, layout, rng)
    C = shape[axis]
    gamma = (1.0 + 0.3 * rng.standard_normal(C)).astype(dtype)
    beta = (0.3 * rng.standard_normal(C)).astype(dtype)
    saved = [a.copy() for a in (x, dy, gamma, beta)]
    y_tol, g_tol = TOL[dtype]

    y = fastnorm.instance_norm(x, gamma, beta, axis=axis)
    assert y.shape == shape and y.dtype == dtype
    y_ref = instance_norm_ref(x, gamma, beta, axis=axis)
    assert np.max(np.abs(y - y_ref)) <= y_tol * max(1.0, np.max(np.abs(y_ref)))

    dx, dgamma, dbeta = fastnorm.instance_norm_backward(dy, x, gamma, axis=axis)
    assert dx.shape == shape and dx.dtype == dgamma.dtype == dbeta.dtype == dtype
    assert dgamma.shape == dbeta.shape == (C,)
    dx_ref, dgamma_ref, dbeta_ref = instance_norm_backward_ref(dy, x, gamma, axis=axis)
    # dx is a difference of terms of size |gamma * invstd * dy| that cancel
    # almost fully in tiny slices (2 elements: dx ~ eps/var); judge it at the
    # scale of those terms, which is what the compute dtype can resolve.
    _, invstd = fastnorm.instance_norm_stats(x, axis=axis)
    term = np.max(np.abs(gamma.astype(np.float64))) * np.max(invstd) * np.max(np.abs(dy))
    assert np.max(np.abs(dx - dx_ref)) <= g_tol * max(np.max(np.abs(dx_ref)), term)
    assert _rel(dgamma, dgamma_ref) <= g_tol
    assert _rel(dbeta, dbeta_ref) <= g_tol

    for a, b in zip((x, dy, gamma, beta), saved, strict=True):
        np.testing.assert_array_equal(a, b)


@SETTINGS
@given(cases())
def test_layout_does_not_change_the_result(case):
    shape, axis, dtype, layout, seed = case
    x = _make(shape, dtype, layout, np.random.default_rng(seed))
    xc = np.ascontiguousarray(x)
    np.testing.assert_array_equal(
        fastnorm.instance_norm(x, axis=axis), fastnorm.instance_norm(xc, axis=axis)
    )
    m, s = fastnorm.instance_norm_stats(x, axis=axis)
    mc, sc = fastnorm.instance_norm_stats(xc, axis=axis)
    np.testing.assert_array_equal(m, mc)
    np.testing.assert_array_equal(s, sc)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@SETTINGS
@given(case=cases())
def test_in_place_equals_out_of_place(dtype, case):
    shape, axis, _, _, seed = case
    x = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    want = fastnorm.instance_norm(x, axis=axis)
    assert fastnorm.instance_norm(x, axis=axis, out=x) is x
    np.testing.assert_array_equal(x, want)
