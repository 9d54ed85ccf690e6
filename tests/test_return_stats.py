"""``return_stats=True``: the forward hands back the statistics it computed."""

from __future__ import annotations

import numpy as np
import pytest

import fastnorm

CASES = [
    # (forward, stats function, keyword arguments, shape)
    (fastnorm.instance_norm, fastnorm.instance_norm_stats, {}, (2, 4, 5, 6)),
    (fastnorm.instance_norm, fastnorm.instance_norm_stats, {"axis": -1}, (2, 50, 40, 8)),
    (fastnorm.instance_norm, fastnorm.instance_norm_stats, {}, (2, 8, 300, 300)),
    (fastnorm.group_norm, fastnorm.group_norm_stats, {"num_groups": 2}, (2, 4, 5, 6)),
    (fastnorm.group_norm, fastnorm.group_norm_stats, {"num_groups": 4, "axis": -1}, (2, 9, 9, 8)),
    (fastnorm.layer_norm, fastnorm.layer_norm_stats, {}, (7, 33)),
    (fastnorm.layer_norm, fastnorm.layer_norm_stats, {"axis": (-2, -1)}, (3, 200, 300)),
    (fastnorm.layer_norm, fastnorm.layer_norm_stats, {"axis": 1}, (2, 6, 40, 40)),
]


@pytest.mark.parametrize("forward, stats, kw, shape", CASES)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_same_bits_as_separate_calls(rng, forward, stats, kw, shape, dtype):
    x = (1e3 + rng.standard_normal(shape)).astype(dtype)
    y, mean, invstd = forward(x, return_stats=True, **kw)
    np.testing.assert_array_equal(y, forward(x, **kw))
    want_mean, want_invstd = stats(x, **kw)
    assert mean.dtype == invstd.dtype == np.float64
    np.testing.assert_array_equal(mean, want_mean)
    np.testing.assert_array_equal(invstd, want_invstd)


@pytest.mark.parametrize("forward, stats, kw, shape", CASES[:1] + CASES[3:4] + CASES[5:6])
def test_with_out_and_empty(rng, forward, stats, kw, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    out = np.empty_like(x)
    y, _, _ = forward(x, out=out, return_stats=True, **kw)
    assert y is out
    empty = np.zeros((0, *shape[1:]), np.float32)
    y, mean, invstd = forward(empty, return_stats=True, **kw)
    assert y.shape == empty.shape
    want_mean, _ = stats(empty, **kw)
    assert mean.shape == want_mean.shape and np.isnan(mean).all() and np.isnan(invstd).all()


@pytest.mark.parametrize("value", [1, "yes", None])
def test_flag_must_be_bool(value):
    x = np.ones((2, 3, 4), np.float32)
    for call in (
        lambda: fastnorm.instance_norm(x, return_stats=value),
        lambda: fastnorm.group_norm(x, 3, return_stats=value),
        lambda: fastnorm.layer_norm(x, return_stats=value),
    ):
        with pytest.raises(TypeError, match="return_stats"):
            call()
