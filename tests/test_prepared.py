"""fastnorm.prepare: a planned call is the plain function, bit for bit."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fastnorm

CASES = [
    # shape, axis, num_groups (None: instance norm)
    ((1, 16, 32, 32), 1, None),  # small: serial kernels
    ((2, 8, 5, 7), 1, 4),
    ((2, 6, 6, 12), -1, 3),  # channels last
    ((4, 64, 64, 32), -1, None),  # parallel, columns
    ((2, 32, 96, 96), 1, 8),  # parallel, rows
    ((3, 10, 7), 1, 5),
]


def _plain(x, num_groups, gamma, beta, axis, out=None):
    if num_groups is None:
        return fastnorm.instance_norm(x, gamma, beta, axis=axis, out=out)
    return fastnorm.group_norm(x, num_groups, gamma, beta, axis=axis, out=out)


@pytest.mark.parametrize("shape, axis, G", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("affine", [False, True])
def test_bit_identical_to_the_function(rng, shape, axis, G, dtype, affine):
    x = (5.0 + rng.standard_normal(shape)).astype(dtype)
    C = shape[axis]
    gamma = rng.standard_normal(C).astype(dtype) if affine else None
    beta = rng.standard_normal(C).astype(dtype) if affine else None
    plan = fastnorm.prepare(shape, dtype, axis=axis, num_groups=G)
    want = _plain(x, G, gamma, beta, axis)
    before = x.copy()
    got = plan(x, gamma, beta)
    np.testing.assert_array_equal(got, want)
    assert got.dtype == x.dtype and got.shape == x.shape
    np.testing.assert_array_equal(x, before)
    out = np.full_like(x, np.nan)
    assert plan(x, gamma, beta, out=out) is out
    np.testing.assert_array_equal(out, want)
    inplace = x.copy()
    assert plan(inplace, gamma, beta, out=inplace) is inplace
    np.testing.assert_array_equal(inplace, want)


@pytest.mark.parametrize("shape, axis, G", CASES[:3])
def test_other_inputs_take_the_checked_path(rng, shape, axis, G):
    plan = fastnorm.prepare(shape, np.float32, axis=axis, num_groups=G)
    x = rng.standard_normal(shape)
    # float64 into a float32 plan, a strided view, a list, a per-group gamma:
    # each is what the plain function gives for it.
    np.testing.assert_array_equal(plan(x), _plain(x, G, None, None, axis))
    x32 = np.asfortranarray(x.astype(np.float32))
    np.testing.assert_array_equal(plan(x32), _plain(x32, G, None, None, axis))
    lst = x32.tolist()
    np.testing.assert_array_equal(plan(lst), _plain(lst, G, None, None, axis))
    C = shape[axis]
    groups = C if G is None else G
    g = rng.standard_normal(groups).astype(np.float32)
    np.testing.assert_array_equal(plan(x32, g), _plain(x32, G, g, None, axis))
    ro = g.copy()
    ro.setflags(write=False)
    if groups == C:
        np.testing.assert_array_equal(plan(x32, ro), _plain(x32, G, g, None, axis))
    # A partly overlapping out goes through the function's scratch buffer.
    big = np.zeros(x32.size + 1, np.float32)
    src = big[1:].reshape(shape)
    src[...] = x32
    want = _plain(src.copy(), G, None, None, axis)
    dst = big[:-1].reshape(shape)
    plan(src, out=dst)
    np.testing.assert_array_equal(dst, want)


def test_wrong_input_raises_the_function_error(rng):
    plan = fastnorm.prepare((2, 16, 8, 8))
    with pytest.raises(ValueError, match="gamma"):
        plan(rng.standard_normal((2, 16, 8, 8)).astype(np.float32), np.ones(3, np.float32))
    with pytest.raises(TypeError, match="x"):
        plan("not an array")
    with pytest.raises(ValueError, match="out"):
        plan(np.ones((2, 16, 8, 8), np.float32), out=np.empty((2, 16, 8), np.float32))
    gplan = fastnorm.prepare((2, 16, 8, 8), num_groups=4)
    with pytest.raises(ValueError, match="num_groups"):
        gplan(np.ones((2, 6, 8, 8), np.float32))


def test_prepare_rejects_what_the_function_rejects():
    with pytest.raises(TypeError, match="shape"):
        fastnorm.prepare([2, 3, 4])
    with pytest.raises(TypeError, match="shape"):
        fastnorm.prepare((2, -3, 4))
    with pytest.raises(TypeError, match="dtype"):
        fastnorm.prepare((2, 3, 4), np.int32)
    with pytest.raises(TypeError, match="float16"):
        fastnorm.prepare((2, 3, 4), np.float16)
    with pytest.raises((ValueError, TypeError), match="axis"):
        fastnorm.prepare((2, 3, 4), axis=3)
    with pytest.raises(ValueError, match="num_groups"):
        fastnorm.prepare((2, 6, 4), num_groups=4)
    with pytest.raises(ValueError, match="eps"):
        fastnorm.prepare((2, 3, 4), eps=-1.0)


def test_empty_shape(rng):
    plan = fastnorm.prepare((0, 4, 3))
    x = np.empty((0, 4, 3), np.float32)
    assert plan(x).shape == (0, 4, 3)


def test_threads_share_a_plan(rng):
    shape = (2, 32, 48, 48)
    plan = fastnorm.prepare(shape, num_groups=8)
    xs = [rng.standard_normal(shape).astype(np.float32) for _ in range(8)]
    want = [fastnorm.group_norm(x, 8) for x in xs]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(plan, xs * 3))
    for i, y in enumerate(got):
        np.testing.assert_array_equal(y, want[i % 8])


def test_repr():
    text = repr(fastnorm.prepare((1, 3, 4), np.float64, num_groups=3))
    assert "shape=(1, 3, 4)" in text and "float64" in text and "num_groups=3" in text


# --------------------------------------------------------------------------
# Layers plan their inference calls per input shape


@pytest.mark.parametrize(
    "make, plain",
    [
        (
            lambda: fastnorm.InstanceNorm(),
            lambda x, g, b: fastnorm.instance_norm(x, g, b),
        ),
        (
            lambda: fastnorm.GroupNorm(num_groups=4),
            lambda x, g, b: fastnorm.group_norm(x, 4, g, b),
        ),
    ],
)
def test_layer_inference_through_its_plan(rng, make, plain):
    layer = make()
    layer.initialize()
    x = rng.standard_normal((2, 8, 6, 6)).astype(np.float32)
    layer(x)  # plans this shape
    assert len(layer._plans) == 1
    # Parameters changed in place after planning are used by the next call.
    layer.gamma.data()[:] = rng.standard_normal(layer.gamma.shape)
    layer.beta.data()[:] = rng.standard_normal(layer.beta.shape)
    g, b = layer.gamma.data(), layer.beta.data()
    for _ in range(2):
        np.testing.assert_array_equal(layer(x), plain(x, g, b))
    out = np.empty_like(x)
    assert layer(x, out=out) is out
    np.testing.assert_array_equal(out, plain(x, g, b))
    # Another dtype, a float16 input (no plan) and a cast layer all still agree.
    x64 = x.astype(np.float64)
    np.testing.assert_array_equal(layer(x64), plain(x64, g, b))
    x16 = x.astype(np.float16)
    np.testing.assert_array_equal(layer(x16), plain(x16, g, b))
    np.testing.assert_array_equal(layer(x16), plain(x16, g, b))
    layer.cast("float64")
    np.testing.assert_array_equal(layer(x), plain(x, g.astype(np.float64), b.astype(np.float64)))
    # A wrong channel count still gets the layer's own error.
    with pytest.raises(ValueError):
        layer(rng.standard_normal((2, 6, 6, 6)).astype(np.float32))
    # Training mode does not take the plan: the backward has its statistics.
    layer.cast("float32")
    layer.train()
    y = layer(x)
    dx = layer.backward(np.ones_like(y))
    assert dx.shape == x.shape


def test_layer_plans_are_bounded(rng):
    layer = fastnorm.InstanceNorm(in_channels=3)
    layer.initialize()
    for n in range(1, 40):
        layer(np.ones((n, 3, 4), np.float32))
    assert 1 <= len(layer._plans) <= 16


def test_layer_hooks_still_run_with_a_plan(rng):
    layer = fastnorm.InstanceNorm()
    layer.initialize()
    seen = []
    layer.register_forward_pre_hook(lambda blk, inputs: seen.append("pre"))
    layer.register_forward_hook(lambda blk, inputs, y: seen.append("post"))
    x = np.ones((1, 2, 3), np.float32)
    layer(x)
    layer(x)
    assert seen == ["pre", "post", "pre", "post"]
