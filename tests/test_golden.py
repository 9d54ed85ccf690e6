"""fastnorm against MXNet 1.9.1's own InstanceNorm (golden vectors).

MXNet computes in float32, so y and dx agree to about 1e-5 absolute; the
parameter gradients are sums over whole channels and get a tolerance
relative to their magnitude.  See ``tests/data/README.md``.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import GOLDEN_FILE, SHARED_GOLDEN_FILE, load_golden_cases

import fastnorm

ABS_TOL = 1e-5


def _rel_err(got: np.ndarray, want: np.ndarray) -> float:
    """Largest error relative to the largest magnitude of ``want``."""
    return float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-30))


def _forward(case):
    meta = case["meta"]
    return fastnorm.instance_norm(
        case["x"], case["gamma"], case["beta"], axis=meta["axis"], eps=meta["eps"]
    )


def _backward(case):
    meta = case["meta"]
    return fastnorm.instance_norm_backward(
        case["dy"], case["x"], case["gamma"], axis=meta["axis"], eps=meta["eps"]
    )


def test_forward(golden_case):
    y = _forward(golden_case)
    assert y.dtype == golden_case["x"].dtype
    assert y.shape == golden_case["x"].shape
    err = np.max(np.abs(y.astype(np.float64) - golden_case["y"]))
    if golden_case["meta"]["kind"] == "const":
        # MXNet's rounding is ~7e-5 off the exact answer here; ours is exact.
        assert err <= 1e-4
    else:
        assert err <= ABS_TOL


def test_const_case_is_exactly_beta(golden_case):
    if golden_case["meta"]["kind"] != "const":
        return
    y = _forward(golden_case)
    axis = golden_case["meta"]["axis"]
    shape = [1] * y.ndim
    shape[axis] = -1
    want = np.broadcast_to(golden_case["beta"].reshape(shape), y.shape)
    np.testing.assert_array_equal(y, want)


def test_backward(golden_case):
    dx, dgamma, dbeta = _backward(golden_case)
    x = golden_case["x"]
    assert dx.dtype == x.dtype and dx.shape == x.shape
    assert dgamma.shape == dbeta.shape == golden_case["gamma"].shape
    if golden_case["meta"]["kind"] == "const":
        # Zero variance: dx is dy's deviation times 1/sqrt(eps) (~900 here), so
        # compare relative to its magnitude.  xhat is exactly 0, so the exact
        # dgamma is 0; MXNet's rounding leaves ~1e-4 there.
        assert _rel_err(dx, golden_case["dx"]) <= 1e-6
        np.testing.assert_array_equal(dgamma, 0)
        assert np.max(np.abs(dgamma - golden_case["dgamma"])) <= 1e-4
        assert _rel_err(dbeta, golden_case["dbeta"]) <= 1e-5
        return
    assert np.max(np.abs(dx.astype(np.float64) - golden_case["dx"])) <= ABS_TOL
    assert _rel_err(dgamma, golden_case["dgamma"]) <= 1e-5
    assert _rel_err(dbeta, golden_case["dbeta"]) <= 1e-5


def test_vendored_copy_is_the_shared_file():
    if not SHARED_GOLDEN_FILE.is_file():
        pytest.skip(f"no shared original at {SHARED_GOLDEN_FILE} to compare with")
    assert GOLDEN_FILE.read_bytes() == SHARED_GOLDEN_FILE.read_bytes()


def test_every_kind_of_case_is_present():
    kinds = {case["meta"]["kind"] for case in load_golden_cases()}
    assert kinds == {"doc", "randn", "scaled", "const"}
