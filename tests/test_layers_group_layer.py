"""fastnorm.GroupNorm and fastnorm.LayerNorm: MXNet Gluon 1.9.1's layers on the shared base.

Checked against MXNet 1.9.1's own outputs (golden vectors), the float64
twins of :mod:`fastnorm.reference`, the functional API bit for bit, and float64
finite differences; plus the parameter bookkeeping both layers inherit from
:class:`fastnorm.layers.NormBlock`.
"""

from __future__ import annotations

import itertools
import re
import warnings

import numpy as np
import pytest

import fastnorm
from fastnorm import initializers
from fastnorm.layers import GroupNorm, InstanceNorm, LayerNorm, NormBlock, ParameterDict
from fastnorm.reference import (
    group_norm_backward_ref,
    group_norm_ref,
    layer_norm_backward_ref,
    layer_norm_ref,
)


def _ready(layer, x):
    """``layer`` initialized and called once on x (which settles deferred shapes)."""
    layer.initialize()
    layer(x)
    return layer


def _set_params(layer, rng):
    """Random gamma (around 1) and beta, in the parameters' shape."""
    shape = layer.gamma.shape
    layer.gamma.set_data(1 + 0.5 * rng.standard_normal(shape))
    layer.beta.set_data(rng.standard_normal(shape))
    return layer.gamma.data().copy(), layer.beta.data().copy()


def _check_golden(layer, case, atol):
    """Train-mode forward and backward of ``layer`` against one MXNet case."""
    layer.initialize()
    layer.gamma.set_data(case["gamma"])
    layer.beta.set_data(case["beta"])
    layer.train()
    y = layer(case["x"])
    dx = layer.backward(case["dy"])
    assert y.dtype == np.float32 and dx.dtype == np.float32
    np.testing.assert_allclose(y, case["y"], rtol=0, atol=atol)
    # dx is scaled by gamma * invstd (large for the const kind), so its
    # tolerance follows its size, as for the InstanceNorm layer.
    dx_atol = max(atol * max(1.0, float(np.abs(case["dx"]).max()) * 1e-2), 2e-5)
    np.testing.assert_allclose(dx, case["dx"], rtol=0, atol=dx_atol)
    for p, want in ((layer.gamma, case["dgamma"]), (layer.beta, case["dbeta"])):
        assert p.grad().shape == want.shape
        tol = atol * max(1.0, float(np.abs(want).max()))
        np.testing.assert_allclose(p.grad(), want, rtol=0, atol=tol, err_msg=p.name)


# --------------------------------------------------------------------------
# the shared base


@pytest.mark.parametrize("cls", [InstanceNorm, GroupNorm, LayerNorm])
def test_one_base_owns_the_bookkeeping(cls):
    # One definition of each shared method: a layer that copied one would
    # drift from the others (and from the MXNet .params support of the base).
    assert issubclass(cls, NormBlock)
    shared = (
        "initialize",
        "collect_params",
        "cast",
        "save_parameters",
        "load_parameters",
        "train",
        "eval",
        "register_forward_hook",
        "register_forward_pre_hook",
        "__call__",
        "forward",
        "backward",
        "summary",
        "__repr__",
    )
    assert [name for name in shared if name in cls.__dict__] == []


def test_exported_from_fastnorm():
    assert fastnorm.GroupNorm is GroupNorm and fastnorm.LayerNorm is LayerNorm


def test_default_prefixes_count_per_kind():
    a, b = GroupNorm(), GroupNorm()
    c = LayerNorm()
    assert re.fullmatch(r"groupnorm\d+_", a.prefix) and a.prefix != b.prefix
    assert re.fullmatch(r"layernorm\d+_", c.prefix)
    assert int(b.prefix[9:-1]) == int(a.prefix[9:-1]) + 1  # not advanced by other kinds
    assert list(a.collect_params()) == [f"{a.prefix}gamma", f"{a.prefix}beta"]
    assert GroupNorm(prefix="gn_").name == "gn"


# --------------------------------------------------------------------------
# GroupNorm: MXNet parity


def test_group_norm_doc_example():
    layer = GroupNorm()
    layer.initialize()
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    y = layer(x)
    row = [-1.5932543, -1.3035717, -1.0138891, -0.7242065]
    mid = [-0.4345239, -0.1448413, 0.1448413, 0.4345239]
    want = np.array([[row, mid, [-v for v in row[::-1]]]] * 2, np.float32)
    np.testing.assert_allclose(y, want, rtol=0, atol=1e-6)
    assert repr(layer) == "GroupNorm(eps=1e-05, num_groups=1, center=True, scale=True)"


def test_group_norm_golden(group_norm_golden_case):
    case, meta = group_norm_golden_case, group_norm_golden_case["meta"]
    layer = GroupNorm(meta["num_groups"], epsilon=meta["eps"])
    assert layer.gamma.shape == case["gamma"].shape == (meta["num_groups"],)  # per group
    # MXNet's GroupNorm returns exactly beta on the const case too: one tolerance.
    _check_golden(layer, case, 1e-5)


def test_group_norm_scale_false_still_applies_gamma(rng):
    x = rng.standard_normal((2, 4, 5, 5))
    layer = GroupNorm(2, scale=False, center=False).cast("float64")
    assert layer.gamma.grad_req == "null" and layer.beta.grad_req == "null"
    layer.initialize()
    layer.gamma.set_data([2.0, 3.0])
    y = layer(x)
    np.testing.assert_allclose(y[:, :2].std(axis=(1, 2, 3)), 2.0, rtol=1e-4)
    np.testing.assert_allclose(y[:, 2:].std(axis=(1, 2, 3)), 3.0, rtol=1e-4)


# --------------------------------------------------------------------------
# GroupNorm: against the reference and the functional API


@pytest.mark.parametrize(
    ("shape", "groups", "axis"),
    [
        ((2, 6, 4, 5), 3, 1),
        ((2, 4, 5, 8), 2, -1),  # channels-last
        ((3, 8, 7), 1, 1),
        ((2, 4, 6, 3, 2), 4, 1),
        ((2, 5, 6, 3), 3, 2),  # a channel axis in the middle
    ],
)
def test_group_norm_matches_reference(rng, shape, groups, axis):
    x = rng.standard_normal(shape) * 3 + 2
    dy = rng.standard_normal(shape)
    layer = GroupNorm(groups, epsilon=1e-3, axis=axis).cast(np.float64)
    layer.initialize()
    g, b = _set_params(layer, rng)
    np.testing.assert_allclose(
        layer(x), group_norm_ref(x, groups, g, b, axis=axis, eps=1e-3), rtol=0, atol=1e-12
    )
    layer.train()
    y = layer(x)
    dx = layer.backward(dy)
    np.testing.assert_allclose(
        y, group_norm_ref(x, groups, g, b, axis=axis, eps=1e-3), rtol=0, atol=1e-12
    )
    want_dx, want_dg, want_db = group_norm_backward_ref(dy, x, groups, g, axis=axis, eps=1e-3)
    np.testing.assert_allclose(dx, want_dx, rtol=0, atol=1e-11)
    assert layer.gamma.grad().shape == (groups,)
    np.testing.assert_allclose(layer.gamma.grad(), want_dg, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(layer.beta.grad(), want_db, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_group_norm_same_as_functional(rng, dtype):
    x = (rng.standard_normal((2, 6, 4, 4)) * 2 + 1).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    layer = GroupNorm(3, epsilon=1e-4)
    layer.initialize()
    g, b = _set_params(layer, rng)
    want = fastnorm.group_norm(x, 3, g, b, eps=1e-4)
    got = layer(x)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, want)
    layer.train()
    np.testing.assert_array_equal(layer(x), want)  # statistics computed once, same output
    dx = layer.backward(dy)
    want_dx, want_dg, want_db = fastnorm.group_norm_backward(dy, x, 3, g, eps=1e-4)
    np.testing.assert_array_equal(dx, want_dx)
    np.testing.assert_array_equal(layer.gamma.grad(), want_dg.astype(np.float32))
    np.testing.assert_array_equal(layer.beta.grad(), want_db.astype(np.float32))


def test_group_norm_of_one_channel_per_group_is_instance_norm(rng):
    x = rng.standard_normal((2, 4, 3, 5)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    gn, inorm = GroupNorm(4), InstanceNorm(scale=True, in_channels=4)
    for layer in (gn, inorm):
        layer.initialize()
        layer.gamma.set_data([0.5, 1.0, 1.5, 2.0])
        layer.beta.set_data([0.0, -1.0, 1.0, 2.0])
        layer.train()
    np.testing.assert_array_equal(gn(x), inorm(x))
    np.testing.assert_array_equal(gn.backward(dy), inorm.backward(dy))
    np.testing.assert_array_equal(gn.gamma.grad(), inorm.gamma.grad())
    np.testing.assert_array_equal(gn.beta.grad(), inorm.beta.grad())


def test_group_norm_gradients_match_finite_differences(rng):
    x = rng.standard_normal((2, 4, 5))
    dy = rng.standard_normal(x.shape)
    layer = GroupNorm(2).cast("float64")
    layer.initialize()
    _set_params(layer, rng)
    layer.train()
    layer(x)
    dx = layer.backward(dy)
    h = 1e-6

    def loss():
        return float(np.sum(layer.forward(x) * dy))

    layer.eval()
    for p in (layer.gamma, layer.beta):
        num = np.empty(2)
        for i in range(2):
            base = p.data()[i]
            p.data()[i] = base + h
            up = loss()
            p.data()[i] = base - h
            down = loss()
            p.data()[i] = base
            num[i] = (up - down) / (2 * h)
        np.testing.assert_allclose(p.grad(), num, rtol=1e-6, atol=1e-7, err_msg=p.name)
    num_dx = np.empty_like(x)
    for i in np.ndindex(x.shape):
        base = x[i]
        x[i] = base + h
        up = loss()
        x[i] = base - h
        down = loss()
        x[i] = base
        num_dx[i] = (up - down) / (2 * h)
    np.testing.assert_allclose(dx, num_dx, rtol=1e-5, atol=1e-7)


def test_group_norm_training_step_reduces_loss(rng):
    x = rng.standard_normal((4, 6, 5, 5))
    target = group_norm_ref(x, 3, [2.0, 0.5, -1.0], [1.0, -2.0, 0.3])
    layer = GroupNorm(3).cast("float64")
    layer.initialize()
    layer.train()
    losses = []
    for _ in range(15):
        diff = layer(x) - target
        losses.append(0.5 * float(np.sum(diff**2)))
        layer.backward(diff)
        for p in layer.collect_params().values():
            p.data()[:] -= 0.002 * p.grad()
    assert all(b < a for a, b in itertools.pairwise(losses))
    assert losses[-1] < 0.05 * losses[0]


# --------------------------------------------------------------------------
# GroupNorm: parameters and errors


def test_group_norm_parameters_known_at_construction(rng):
    layer = GroupNorm(4, center=False)
    assert layer.num_groups == 4
    assert layer.gamma.shape == (4,) and layer.beta.shape == (4,)
    assert layer.gamma.grad_req == "write" and layer.beta.grad_req == "null"
    layer.initialize()  # nothing deferred: filled at once
    np.testing.assert_array_equal(layer.gamma.data(), np.ones(4, np.float32))
    np.testing.assert_array_equal(layer.beta.data(), np.zeros(4, np.float32))
    assert GroupNorm(2, scale=False).gamma.grad_req == "null"
    # any channel count divisible by 4 works with the same parameters
    for c in (4, 8, 12):
        assert layer(rng.standard_normal((2, c, 3)).astype(np.float32)).shape == (2, c, 3)


def test_group_norm_initializers(rng):
    layer = GroupNorm(
        3,
        gamma_initializer=initializers.Constant(2.0),
        beta_initializer=lambda shape, dtype: np.arange(shape[0], dtype=dtype),
    )
    layer.initialize()
    np.testing.assert_array_equal(layer.gamma.data(), [2, 2, 2])
    np.testing.assert_array_equal(layer.beta.data(), [0, 1, 2])
    with pytest.warns(UserWarning, match="already initialized"):
        layer.initialize()
    layer = GroupNorm(2, gamma_initializer=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"groupnorm\d+_gamma.*\(2,\)"):
        layer.initialize()


def test_group_norm_repr_and_axis(rng):
    layer = GroupNorm(2, epsilon=1e-3, center=False, axis=-1)
    assert repr(layer) == "GroupNorm(eps=0.001, num_groups=2, center=False, scale=True, axis=-1)"
    layer.initialize()
    x = rng.standard_normal((2, 5, 5, 4))
    want = fastnorm.group_norm(x, 2, np.ones(2), np.zeros(2), axis=-1, eps=1e-3)
    np.testing.assert_array_equal(layer(x), want)


def test_group_norm_errors(rng):
    with pytest.raises(TypeError, match="num_groups"):
        GroupNorm(2.0)
    with pytest.raises(TypeError, match="num_groups"):
        GroupNorm(True)
    with pytest.raises(ValueError, match=r"num_groups must be >= 1, got 0"):
        GroupNorm(0)
    with pytest.raises(ValueError, match="eps"):
        GroupNorm(2, epsilon=-1.0)
    with pytest.raises(TypeError, match="center"):
        GroupNorm(2, center="no")
    with pytest.raises(TypeError, match="prefix"):
        GroupNorm(2, prefix=3)
    with pytest.raises(ValueError, match="gamma_initializer"):
        GroupNorm(2, gamma_initializer="ons")
    layer = GroupNorm(3)
    x = rng.standard_normal((2, 6, 4)).astype(np.float32)
    with pytest.raises(RuntimeError, match=r"groupnorm\d+_gamma.*initialize\(\)"):
        layer(x)
    layer.initialize()
    with pytest.raises(ValueError, match=r"num_groups=3.*C=4"):
        layer(rng.standard_normal((2, 4, 5)))
    with pytest.raises(TypeError, match="x"):
        layer(None)
    bad_axis = GroupNorm(3, axis=0)
    bad_axis.initialize()
    with pytest.raises(ValueError, match="axis"):
        bad_axis(rng.standard_normal((3, 6, 4)))
    with pytest.raises(ValueError, match="out"):
        layer(x, out=np.empty((2, 6), np.float32))


def test_group_norm_save_load(tmp_path, rng):
    layer = GroupNorm(4, prefix="gn_")
    layer.initialize()
    _set_params(layer, rng)
    path = tmp_path / "gn.params"
    layer.save_parameters(path)
    fresh = GroupNorm(4)
    fresh.load_parameters(path)
    np.testing.assert_array_equal(fresh.gamma.data(), layer.gamma.data())
    np.testing.assert_array_equal(fresh.beta.data(), layer.beta.data())
    x = rng.standard_normal((2, 8, 3, 3)).astype(np.float32)
    np.testing.assert_array_equal(fresh(x), layer(x))
    # full names too, and a file of another group count is refused unchanged
    full = tmp_path / "full.npz"
    np.savez(full, gn_gamma=np.full(4, 3.0), gn_beta=np.zeros(4))
    other = GroupNorm(4, prefix="gn_")
    other.load_parameters(full)
    np.testing.assert_array_equal(other.gamma.data(), [3, 3, 3, 3])
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, gamma=np.ones(2), beta=np.zeros(2))
    with pytest.raises(ValueError, match=r"'gamma'.*shape \(2,\).*shape \(4,\)"):
        other.load_parameters(wrong)
    np.testing.assert_array_equal(other.gamma.data(), [3, 3, 3, 3])


def test_group_norm_cast_summary_and_hooks(rng, capsys):
    x = rng.standard_normal((2, 6, 4, 4)).astype(np.float32)
    layer = GroupNorm(3, center=False)
    layer.initialize()
    assert layer.cast("float16") is layer
    assert layer.gamma.data().dtype == np.float16 and layer.gamma.grad().dtype == np.float16
    calls = []
    with layer.register_forward_hook(lambda blk, inp, out: calls.append(out.shape)):
        y = layer(x)
    layer(x)
    assert calls == [(2, 6, 4, 4)] and y.dtype == np.float32
    layer.summary(x)
    text = capsys.readouterr().out
    assert "GroupNorm-1" in text and "Total params: 6" in text
    assert "Trainable params: 3" in text and "Non-trainable params: 3" in text


def test_group_norm_backward_cache_and_out_over_x(rng):
    x = rng.standard_normal((2, 6, 5)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    layer = GroupNorm(2)
    layer.initialize()
    with pytest.raises(RuntimeError, match=r"train\(\)"):
        layer.backward(dy)
    layer.train()
    layer(x)
    want = layer.backward(dy)
    x2 = x.copy()
    assert layer(x2, out=x2) is x2  # in place: the layer keeps its own copy of x
    out = np.empty_like(x)
    assert layer.backward(dy, out=out) is out
    np.testing.assert_array_equal(out, want)
    with pytest.raises(RuntimeError, match="backward"):
        layer.backward(dy)  # the cache is released after use


# --------------------------------------------------------------------------
# LayerNorm: MXNet parity


def test_layer_norm_doc_example():
    layer = LayerNorm()
    layer.initialize()
    x = np.array([[1, 2, 3, 4, 5], [1, 1, 2, 2, 2]], dtype=np.float32)
    y = layer(x)
    want = [
        [-1.41421, -0.707105, 0.0, 0.707105, 1.41421],
        [-1.2247195, -1.2247195, 0.81647956, 0.81647956, 0.81647956],
    ]
    np.testing.assert_allclose(y, np.array(want, np.float32), rtol=0, atol=1e-5)
    assert repr(layer) == "LayerNorm(eps=1e-05, axis=-1, center=True, scale=True, in_channels=5)"


def test_layer_norm_golden(layer_norm_golden_case):
    case, meta = layer_norm_golden_case, layer_norm_golden_case["meta"]
    layer = LayerNorm(axis=meta["axis"], epsilon=meta["eps"])
    # const: MXNet's y is 1.3e-5 from the exact answer (beta) and its dgamma
    # up to 4.5e-5 from the exact 0.
    _check_golden(layer, case, 5e-5 if meta["kind"] == "const" else 1e-5)
    assert layer.gamma.shape == (meta["shape"][meta["axis"]],)  # inferred from x


# --------------------------------------------------------------------------
# LayerNorm: against the reference and the functional API


@pytest.mark.parametrize(
    ("shape", "axis"),
    [
        ((6, 32), -1),  # (tokens, hidden)
        ((2, 3, 16), 2),
        ((2, 5, 4, 3), 1),  # channels-first (ConvNeXt)
        ((5, 7), 0),
        ((2, 3, 4, 5), (-2, -1)),  # PyTorch normalized_shape = (4, 5)
        ((2, 3, 4, 5), (1, 2)),
    ],
)
def test_layer_norm_matches_reference(rng, shape, axis):
    x = rng.standard_normal(shape) * 3 + 2
    dy = rng.standard_normal(shape)
    layer = LayerNorm(axis=axis, epsilon=1e-3).cast(np.float64)
    _ready(layer, x)
    g, b = _set_params(layer, rng)
    want = layer_norm_ref(x, g, b, axis=axis, eps=1e-3)
    np.testing.assert_allclose(layer(x), want, rtol=0, atol=1e-12)
    layer.train()
    np.testing.assert_allclose(layer(x), want, rtol=0, atol=1e-12)
    dx = layer.backward(dy)
    want_dx, want_dg, want_db = layer_norm_backward_ref(dy, x, g, axis=axis, eps=1e-3)
    np.testing.assert_allclose(dx, want_dx, rtol=0, atol=1e-11)
    assert layer.gamma.grad().shape == g.shape
    np.testing.assert_allclose(layer.gamma.grad(), want_dg, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(layer.beta.grad(), want_db, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_layer_norm_same_as_functional(rng, dtype):
    x = (rng.standard_normal((4, 3, 24)) * 2 + 1).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    layer = LayerNorm(epsilon=1e-4)
    _ready(layer, x)
    g, b = _set_params(layer, rng)
    want = fastnorm.layer_norm(x, g, b, eps=1e-4)
    got = layer(x)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, want)
    layer.train()
    np.testing.assert_array_equal(layer(x), want)
    dx = layer.backward(dy)
    want_dx, want_dg, want_db = fastnorm.layer_norm_backward(dy, x, g, eps=1e-4)
    np.testing.assert_array_equal(dx, want_dx)
    np.testing.assert_array_equal(layer.gamma.grad(), want_dg.astype(np.float32))
    np.testing.assert_array_equal(layer.beta.grad(), want_db.astype(np.float32))


def test_layer_norm_gradients_match_finite_differences(rng):
    x = rng.standard_normal((3, 2, 4))
    dy = rng.standard_normal(x.shape)
    layer = LayerNorm(axis=1, center=True).cast("float64")
    _ready(layer, x)
    _set_params(layer, rng)
    layer.train()
    layer(x)
    dx = layer.backward(dy)
    layer.eval()
    h = 1e-6

    def loss():
        return float(np.sum(layer.forward(x) * dy))

    for v, want in (
        (layer.gamma.data(), layer.gamma.grad()),
        (layer.beta.data(), layer.beta.grad()),
        (x, dx),
    ):
        num = np.empty(v.shape)
        for i in np.ndindex(v.shape):
            base = v[i]
            v[i] = base + h
            up = loss()
            v[i] = base - h
            down = loss()
            v[i] = base
            num[i] = (up - down) / (2 * h)
        np.testing.assert_allclose(want, num, rtol=1e-5, atol=1e-7)


# --------------------------------------------------------------------------
# LayerNorm: deferred initialization, parameters and errors


def test_layer_norm_deferred_init_and_mismatch(rng):
    layer = LayerNorm(axis=1)
    assert layer.gamma.shape == (0,)
    layer.initialize()
    with pytest.raises(RuntimeError, match=r"deferred.*layer\(x\)"):
        layer.gamma.data()
    x = rng.standard_normal((2, 5, 3)).astype(np.float32)
    layer(x)
    assert layer.gamma.shape == (5,) and layer.beta.shape == (5,)
    np.testing.assert_array_equal(layer.gamma.data(), np.ones(5, np.float32))
    assert repr(layer).endswith("in_channels=5)")
    with pytest.raises(ValueError, match=r"expects size 5 on axis 1.*has 4"):
        layer(np.zeros((2, 4, 3), np.float32))
    assert layer(np.zeros((7, 5), np.float32)).shape == (7, 5)  # any other shape


def test_layer_norm_in_channels(rng):
    layer = LayerNorm(in_channels=8)
    layer.initialize()
    assert layer.gamma.data().shape == (8,)  # known: nothing deferred
    with pytest.raises(ValueError, match=r"expects size 8 on axis -1.*has 6"):
        layer(rng.standard_normal((2, 6)))
    tup = LayerNorm(axis=(-2, -1), in_channels=(0, 5))
    tup.initialize()
    assert tup.gamma.shape == (0, 5)
    tup(rng.standard_normal((2, 3, 4, 5)))
    assert tup.gamma.shape == (4, 5) and tup.gamma.data().shape == (4, 5)
    assert repr(tup).endswith("axis=(-2, -1), center=True, scale=True, in_channels=(4, 5))")
    with pytest.raises(ValueError, match=r"expects size \(4, 5\).*has \(3, 5\)"):
        tup(rng.standard_normal((2, 3, 5)))
    assert LayerNorm(axis=(1, 2)).gamma.shape == (0, 0)
    assert LayerNorm(axis=(2,), in_channels=3).gamma.shape == (3,)


def test_layer_norm_constructor_errors():
    with pytest.raises(TypeError, match="axis"):
        LayerNorm(axis=1.0)
    assert repr(LayerNorm(axis=[1, 2])).startswith("LayerNorm(eps=1e-05, axis=(1, 2),")
    with pytest.raises(TypeError, match="axis"):
        LayerNorm(axis=(1, "2"))
    with pytest.raises(ValueError, match="axis"):
        LayerNorm(axis=())
    with pytest.raises(TypeError, match="in_channels"):
        LayerNorm(in_channels=4.0)
    with pytest.raises(ValueError, match="in_channels"):
        LayerNorm(in_channels=-1)
    with pytest.raises(ValueError, match=r"in_channels=\(4,\).*one size per axis"):
        LayerNorm(axis=(1, 2), in_channels=(4,))
    with pytest.raises(ValueError, match=r"in_channels=4 with axis=\(1, 2\)"):
        LayerNorm(axis=(1, 2), in_channels=4)
    with pytest.raises(TypeError, match="scale"):
        LayerNorm(scale=None)
    with pytest.raises(TypeError, match="eps"):
        LayerNorm(epsilon="small")


@pytest.mark.parametrize(
    ("axis", "match"),
    [
        (3, r"axis=3 is out of range.*3 dimensions"),
        (-4, r"axis=-4 is out of range"),
        ((0, 2), r"consecutive"),
        ((1, -2), r"distinct consecutive"),
    ],
)
def test_layer_norm_axis_errors_at_call(rng, axis, match):
    layer = LayerNorm(axis=axis)
    layer.initialize()
    with pytest.raises(ValueError, match=match):
        layer(rng.standard_normal((2, 3, 4)))
    assert layer.gamma.shape == (0,) * len(np.atleast_1d(axis))  # nothing inferred


def test_layer_norm_zero_dimensional_input():
    layer = LayerNorm()
    layer.initialize()
    with pytest.raises(ValueError, match="at least 1 dimension"):
        layer(np.float32(1.0))


def test_layer_norm_save_load_deferred(tmp_path, rng):
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    layer = _ready(LayerNorm(axis=(-2, -1)), x)
    _set_params(layer, rng)
    path = tmp_path / "ln.params"
    layer.save_parameters(path)
    fresh = LayerNorm(axis=(-2, -1))  # shape (0, 0): taken from the file
    fresh.load_parameters(path)
    assert fresh.gamma.shape == (4, 5)
    np.testing.assert_array_equal(fresh(x), layer(x))
    # a file of another rank does not fit the deferred (0, 0), and nothing is loaded
    bad = tmp_path / "bad.npz"
    np.savez(bad, gamma=np.ones(20), beta=np.zeros(20))
    other = LayerNorm(axis=(-2, -1))
    with pytest.raises(ValueError, match=r"'gamma'.*shape \(20,\).*shape \(0, 0\)"):
        other.load_parameters(bad)
    assert other.gamma.shape == (0, 0) and not other.gamma.initialized
    with pytest.raises(RuntimeError, match=r"cannot save.*layernorm\d+_gamma"):
        other.save_parameters(tmp_path / "unused.npz")


def test_layer_norm_bookkeeping(rng, capsys):
    x = rng.standard_normal((3, 8)).astype(np.float32)
    layer = LayerNorm(scale=False, prefix="ln_")
    assert layer.gamma.grad_req == "null" and layer.beta.grad_req == "write"
    _ready(layer, x)
    params = layer.collect_params()
    assert isinstance(params, ParameterDict) and list(params) == ["ln_gamma", "ln_beta"]
    assert list(layer.collect_params(".*beta")) == ["ln_beta"]
    layer.beta.grad_req = "add"
    layer.train()
    dy = rng.standard_normal(x.shape).astype(np.float32)
    layer(x)
    layer.backward(dy)
    first = layer.beta.grad().copy()
    layer(x)
    layer.backward(dy)
    np.testing.assert_allclose(layer.beta.grad(), 2 * first, rtol=1e-6)
    params.zero_grad()
    assert not layer.beta.grad().any()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layer.initialize(force_reinit=True)
    layer.cast(np.float64)
    assert layer.gamma.data().dtype == np.float64
    layer.summary(x)
    text = capsys.readouterr().out
    assert "LayerNorm-1" in text and "Total params: 16" in text
    assert "Trainable params: 8" in text and layer.training is True
