"""fastnorm.InstanceNorm: Gluon's layer interface on top of the functional core."""

from __future__ import annotations

import gc
import itertools
import re
import warnings
import weakref

import numpy as np
import pytest

import fastnorm
from fastnorm import initializers
from fastnorm.layers import InstanceNorm, Parameter, ParameterDict


def _layer(x, **kwargs) -> InstanceNorm:
    layer = InstanceNorm(**kwargs)
    layer.initialize()
    layer(x)
    return layer


@pytest.fixture
def x(rng):
    return (rng.standard_normal((2, 3, 4, 5)) * 2 + 1).astype(np.float32)


# --------------------------------------------------------------------------
# MXNet parity


def test_gluon_doc_example():
    layer = InstanceNorm()
    layer.initialize()
    x = np.array([[[1.1, 2.2]], [[3.3, 4.4]]], dtype=np.float32)
    y = layer(x)
    want = np.array([[[-0.99998355, 0.99998331]], [[-0.99998319, 0.99998361]]], np.float32)
    assert y.dtype == np.float32 and y.shape == (2, 1, 2)
    np.testing.assert_allclose(y, want, rtol=0, atol=1e-6)
    assert repr(layer) == "InstanceNorm(eps=1e-05, axis=1, center=True, scale=False, in_channels=1)"


def test_golden_through_layer(golden_case):
    # golden_case: every MXNet golden vector (parametrized in conftest).
    case, meta = golden_case, golden_case["meta"]
    layer = InstanceNorm(axis=meta["axis"], epsilon=meta["eps"], center=True, scale=True)
    layer.initialize()
    layer.gamma.set_data(case["gamma"])
    layer.beta.set_data(case["beta"])
    layer.train()
    y = layer(case["x"])
    dx = layer.backward(case["dy"])

    # const: the exact answer is beta; MXNet's float32 rounding is ~7e-5 off
    # (and gives a dgamma of ~1e-4 where the truth is 0).
    atol = 1e-4 if meta["kind"] == "const" else 1e-5
    np.testing.assert_allclose(y, case["y"], rtol=0, atol=atol)
    # dx is scaled by gamma * invstd (~900 for const), so the tolerance is
    # relative to its size.  Slices of one element (shape 4x3x1x1): the exact
    # dx is 0; the core's float32 coefficient form leaves ~1.4e-5 there.
    dx_atol = max(atol * max(1.0, float(np.abs(case["dx"]).max()) * 1e-2), 2e-5)
    np.testing.assert_allclose(dx, case["dx"], rtol=0, atol=dx_atol)
    for p, want in ((layer.gamma, case["dgamma"]), (layer.beta, case["dbeta"])):
        tol = atol * max(1.0, float(np.abs(want).max()))
        np.testing.assert_allclose(p.grad(), want, rtol=0, atol=tol, err_msg=p.name)


def test_scale_false_still_applies_gamma(x):
    layer = _layer(x)  # scale=False: gamma is not trained, but applied
    assert layer.gamma.grad_req == "null" and layer.beta.grad_req == "write"
    layer.gamma.set_data(np.full(3, 2.0))
    y = layer(x).astype(np.float64)
    np.testing.assert_allclose(y.std(axis=(2, 3)), 2.0, rtol=1e-4)
    np.testing.assert_allclose(y.mean(axis=(2, 3)), 0.0, atol=1e-5)


def test_same_as_functional(x, rng):
    layer = InstanceNorm(axis=-1, epsilon=1e-3)
    layer.initialize()
    layer(x)
    g, b = rng.standard_normal(5), rng.standard_normal(5)
    layer.gamma.set_data(g)
    layer.beta.set_data(b)
    want = fastnorm.instance_norm(x, g.astype(np.float32), b.astype(np.float32), axis=-1, eps=1e-3)
    np.testing.assert_array_equal(layer(x), want)
    layer.train()
    np.testing.assert_array_equal(layer(x), want)  # stats computed once, same result


# --------------------------------------------------------------------------
# training


def test_gradient_descent_reduces_loss(rng):
    x = rng.standard_normal((4, 3, 6, 6))
    target = fastnorm.instance_norm(x, [2.0, 0.5, -1.0], [1.0, -2.0, 0.3])
    layer = InstanceNorm(scale=True, center=True).cast("float64")
    layer.initialize()
    layer.train()
    losses = []
    for _ in range(20):
        y = layer(x)
        diff = y - target
        losses.append(0.5 * float(np.sum(diff**2)))
        layer.backward(diff)
        for p in layer.collect_params().values():
            p.data()[:] -= 0.005 * p.grad()
    assert all(b < a for a, b in itertools.pairwise(losses))
    assert losses[-1] < 0.05 * losses[0]


def test_gradients_match_finite_differences(rng):
    x = rng.standard_normal((2, 3, 5))
    dy = rng.standard_normal(x.shape)
    layer = InstanceNorm(scale=True).cast(np.float64)
    layer.initialize()
    layer.train()
    layer(x)
    layer.backward(dy)
    h = 1e-6
    for p in (layer.gamma, layer.beta):
        num = np.empty(3)
        for c in range(3):
            base = p.data()[c]
            p.data()[c] = base + h
            up = np.sum(layer.forward(x) * dy)
            p.data()[c] = base - h
            down = np.sum(layer.forward(x) * dy)
            p.data()[c] = base
            num[c] = (up - down) / (2 * h)
        np.testing.assert_allclose(p.grad(), num, rtol=1e-6, atol=1e-7, err_msg=p.name)


def test_grad_req_write_add_null(x, rng):
    layer = _layer(x, scale=True)
    layer.gamma.grad_req = "add"
    layer.train()
    dy = rng.standard_normal(x.shape).astype(np.float32)
    layer(x)
    layer.backward(dy)
    first_g, first_b = layer.gamma.grad().copy(), layer.beta.grad().copy()
    layer(x)
    layer.backward(dy)
    np.testing.assert_allclose(layer.gamma.grad(), 2 * first_g, rtol=1e-6)  # 'add'
    np.testing.assert_array_equal(layer.beta.grad(), first_b)  # 'write'
    layer.gamma.zero_grad()
    assert not layer.gamma.grad().any()
    layer.collect_params().setattr("grad_req", "null")
    layer(x)
    layer.backward(dy)
    with pytest.raises(RuntimeError, match=r"grad_req='null'"):
        layer.beta.grad()


def test_backward_out_and_training_with_out_over_x(x, rng):
    layer = _layer(x, scale=True).train()
    dy = rng.standard_normal(x.shape).astype(np.float32)
    layer(x)
    want = layer.backward(dy)
    x2 = x.copy()
    y = layer(x2, out=x2)  # in place: the layer must keep its own copy of x
    assert y is x2
    out = np.empty_like(x)
    assert layer.backward(dy, out=out) is out
    np.testing.assert_array_equal(out, want)


def test_backward_errors_and_cache_release(x, rng):
    layer = _layer(x)
    with pytest.raises(RuntimeError, match=r"train\(\)"):
        layer.backward(np.ones_like(x))  # inference forward keeps nothing
    layer.train()
    layer(x)
    with pytest.raises(ValueError, match="dy"):
        layer.backward(np.ones((2, 3), np.float32))
    layer.backward(np.ones_like(x))  # the cache survived the bad dy
    with pytest.raises(RuntimeError, match="backward"):
        layer.backward(np.ones_like(x))  # released after use
    layer(x)
    layer.eval()
    with pytest.raises(RuntimeError, match="backward"):
        layer.backward(np.ones_like(x))  # eval() drops the cache


def test_inference_keeps_no_reference(rng):
    layer = InstanceNorm()
    layer.initialize()
    x = rng.standard_normal((2, 3, 8, 8))
    y = layer(x)
    refs = weakref.ref(x), weakref.ref(y)
    del x, y
    gc.collect()
    assert refs[0]() is None and refs[1]() is None
    layer.train()
    x = rng.standard_normal((2, 3, 8, 8))
    layer(x)
    ref = weakref.ref(x)
    layer.backward(np.ones_like(x))
    del x
    gc.collect()
    assert ref() is None  # released after backward


def test_modes():
    layer = InstanceNorm()
    assert layer.training is False
    assert layer.train() is layer and layer.training is True
    assert layer.eval() is layer and layer.training is False
    layer.train(False)
    assert layer.training is False
    with pytest.raises(TypeError, match="training"):
        layer.training = "yes"


# --------------------------------------------------------------------------
# parameters and initialization


def test_deferred_init_and_channel_mismatch(x):
    layer = InstanceNorm()
    assert layer.gamma.shape == (0,)
    layer.initialize()
    with pytest.raises(RuntimeError, match=r"deferred.*layer\(x\)"):
        layer.gamma.data()
    layer(x)
    assert layer.gamma.shape == (3,) and layer.beta.shape == (3,)
    np.testing.assert_array_equal(layer.gamma.data(), np.ones(3, np.float32))
    np.testing.assert_array_equal(layer.beta.data(), np.zeros(3, np.float32))
    assert "in_channels=3" in repr(layer)
    with pytest.raises(ValueError, match=r"expects 3 channels on axis 1.*has 4"):
        layer(np.zeros((2, 4, 5), np.float32))


def test_in_channels_checked(x):
    layer = InstanceNorm(in_channels=4)
    layer.initialize()
    assert layer.gamma.data().shape == (4,)  # known shape: no deferral
    with pytest.raises(ValueError, match=r"expects 4 channels.*has 3"):
        layer(x)


def test_uninitialized_errors(x):
    layer = InstanceNorm(in_channels=3)
    with pytest.raises(RuntimeError, match=r"instancenorm\d+_gamma.*initialize\(\)"):
        layer(x)
    with pytest.raises(RuntimeError, match=r"initialize\(\)"):
        layer.beta.grad()
    with pytest.raises(RuntimeError, match=r"cannot save.*gamma"):
        layer.save_parameters("unused.npz")


def test_initialize_twice_warns_and_keeps(x):
    layer = _layer(x)
    layer.gamma.set_data([1.0, 2.0, 3.0])
    with pytest.warns(UserWarning, match=r"already initialized.*force_reinit"):
        layer.initialize()
    np.testing.assert_array_equal(layer.gamma.data(), [1, 2, 3])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layer.initialize(force_reinit=True)
    np.testing.assert_array_equal(layer.gamma.data(), [1, 1, 1])


@pytest.mark.parametrize(
    ("init", "want"),
    [
        ("zeros", [0, 0, 0]),
        ("ones", [1, 1, 1]),
        (initializers.Constant(2.5), [2.5, 2.5, 2.5]),
        (0.5, [0.5, 0.5, 0.5]),
        ([1, 2, 3], [1, 2, 3]),
        (lambda shape, dtype: np.arange(shape[0], dtype=dtype), [0, 1, 2]),
    ],
)
def test_initializers(x, init, want):
    layer = _layer(x, gamma_initializer=init)
    np.testing.assert_array_equal(layer.gamma.data(), np.asarray(want, np.float32))


@pytest.mark.parametrize("cls", [initializers.Uniform, initializers.Normal])
def test_random_initializers_are_seedable(x, cls):
    values = [_layer(x, beta_initializer=cls(0.5, seed=7)).beta.data() for _ in range(2)]
    np.testing.assert_array_equal(values[0], values[1])
    assert np.unique(values[0]).size == 3
    other = _layer(x, beta_initializer=cls(0.5, seed=8)).beta.data()
    assert not np.array_equal(values[0], other)
    uniform = _layer(x, beta_initializer="uniform").beta.data()
    assert np.all(np.abs(uniform) <= 0.07)


def test_initialize_init_is_a_default_as_in_gluon(x):
    layer = InstanceNorm(gamma_initializer=None)
    layer.initialize(init=initializers.Constant(3.0))
    layer(x)
    np.testing.assert_array_equal(layer.gamma.data(), [3, 3, 3])  # no own init: default used
    np.testing.assert_array_equal(layer.beta.data(), [0, 0, 0])  # own 'zeros' wins


def test_initializer_errors(x):
    with pytest.raises(ValueError, match=r"gamma_initializer='ons'.*'zeros', 'ones'"):
        InstanceNorm(gamma_initializer="ons")
    with pytest.raises(ValueError, match=r"beta_initializer='constant' needs a value"):
        InstanceNorm(beta_initializer="constant")
    with pytest.raises(TypeError, match="beta_initializer"):
        InstanceNorm(beta_initializer={"value": 1})
    with pytest.raises(TypeError, match="gamma_initializer"):
        InstanceNorm(gamma_initializer=["a", "b"])
    with pytest.raises(TypeError, match="Constant value"):
        initializers.Constant("1")
    with pytest.raises(TypeError, match="seed"):
        initializers.Uniform(seed="x")
    layer = InstanceNorm(gamma_initializer=[1.0, 2.0])
    layer.initialize()
    with pytest.raises(ValueError, match=r"instancenorm\d+_gamma.*\(3,\)"):
        layer(x)
    layer = InstanceNorm(gamma_initializer=lambda shape, dtype: np.array(["a"] * shape[0]))
    layer.initialize()
    with pytest.raises(TypeError, match=r"instancenorm\d+_gamma.*dtype"):
        layer(x)


def test_parameter_api_and_errors():
    p = Parameter("w", grad_req="add", shape=(0,), dtype="float64", init="ones")
    assert repr(p) == "Parameter w (shape=(0,), dtype=float64)"
    p.initialize()
    with pytest.raises(RuntimeError, match="deferred"):
        p.data()
    p.shape = (4,)
    p._finish_deferred_init()
    np.testing.assert_array_equal(p.data(), np.ones(4))
    assert p.grad().shape == (4,) and p.grad().dtype == np.float64
    with pytest.raises(ValueError, match=r"Parameter 'w' has shape \(4,\).*\(5,\)"):
        p.shape = (5,)
    with pytest.raises(ValueError, match=r"Parameter 'w' must have shape \(4,\)"):
        p.set_data(np.zeros(5))
    with pytest.raises(TypeError, match=r"Parameter 'w' must hold real numbers"):
        p.set_data(["a"] * 4)
    with pytest.raises(ValueError, match=r"grad_req must be one of 'write', 'add', 'null'"):
        p.grad_req = "always"
    with pytest.raises(ValueError, match="grad_req"):
        Parameter("v", grad_req="sometimes")
    with pytest.raises(TypeError, match="dtype"):
        Parameter("v", dtype=np.int32)
    with pytest.raises(TypeError, match="name"):
        Parameter(3)
    with pytest.raises(TypeError, match="shape"):
        Parameter("v", shape=3.5)
    with pytest.raises(ValueError, match="shape"):
        Parameter("v", shape=(-1,))
    q = Parameter("q", init="zeros")
    q.set_data([1.0, 2.0])  # initializes a parameter of unknown shape
    assert q.shape == (2,) and q.data().dtype == np.float32
    with pytest.raises(RuntimeError, match=r"Parameter 'u' has not been initialized.*initialize"):
        Parameter("u", shape=(2,)).data()


def test_parameter_initialize_overrides_and_param_dict(x):
    layer = _layer(x, scale=True)
    layer.gamma.initialize(initializers.Constant(4.0), force_reinit=True)  # explicit init wins
    np.testing.assert_array_equal(layer.gamma.data(), [4, 4, 4])
    params = layer.collect_params()
    layer.train()
    layer(x)
    layer.backward(np.ones_like(x))
    params.zero_grad()
    assert not params[f"{layer.prefix}gamma"].grad().any()
    params.initialize(force_reinit=True)
    np.testing.assert_array_equal(layer.gamma.data(), [1, 1, 1])


def test_grad_req_from_center_and_scale():
    assert InstanceNorm().beta.grad_req == "write"
    assert InstanceNorm(center=False).beta.grad_req == "null"
    assert InstanceNorm(scale=True).gamma.grad_req == "write"


def test_constructor_errors():
    with pytest.raises(TypeError, match="center"):
        InstanceNorm(center="yes")
    with pytest.raises(TypeError, match="scale"):
        InstanceNorm(scale=1)
    with pytest.raises(TypeError, match="in_channels"):
        InstanceNorm(in_channels=3.0)
    with pytest.raises(ValueError, match="in_channels"):
        InstanceNorm(in_channels=-1)
    with pytest.raises(ValueError, match="eps"):
        InstanceNorm(epsilon=-1.0)
    with pytest.raises(TypeError, match="eps"):
        InstanceNorm(epsilon="small")
    with pytest.raises(TypeError, match="prefix"):
        InstanceNorm(prefix=1)


def test_input_errors_come_from_the_core(x):
    layer = InstanceNorm(axis=0)
    layer.initialize()
    with pytest.raises(ValueError, match="axis"):
        layer(x)
    layer = _layer(x)
    with pytest.raises(TypeError, match="x"):
        layer(None)
    with pytest.raises(ValueError, match="3 dimensions"):
        layer(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="out"):
        layer(x, out=np.empty((2, 3), np.float32))


# --------------------------------------------------------------------------
# collect_params, save/load, cast


def test_collect_params_select():
    layer = InstanceNorm(prefix="norm_")
    assert list(layer.collect_params()) == ["norm_gamma", "norm_beta"]
    assert isinstance(layer.collect_params(), ParameterDict)
    assert list(layer.collect_params(".*beta")) == ["norm_beta"]
    assert list(layer.collect_params("norm_gamma|norm_beta")) == ["norm_gamma", "norm_beta"]
    assert list(layer.collect_params("beta")) == []  # re.match: anchored at the start
    assert layer.name == "norm"
    with pytest.raises(ValueError, match=r"select='\('.*regular expression"):
        layer.collect_params("(")
    with pytest.raises(TypeError, match="select"):
        layer.collect_params(3)
    assert "norm_gamma" in repr(layer.collect_params())


def test_default_prefixes_are_unique():
    a, b = InstanceNorm(), InstanceNorm()
    assert re.fullmatch(r"instancenorm\d+_gamma", a.gamma.name)
    assert a.gamma.name != b.gamma.name


def test_save_load_round_trip(tmp_path, x, rng):
    layer = _layer(x, scale=True)
    layer.gamma.set_data(rng.standard_normal(3))
    layer.beta.set_data(rng.standard_normal(3))
    path = tmp_path / "norm.params"  # Gluon-style name: saved exactly there
    layer.save_parameters(path)
    assert path.is_file()
    fresh = InstanceNorm(scale=True)  # deferred: the channel count comes from the file
    fresh.load_parameters(path)
    assert fresh.gamma.shape == (3,)
    np.testing.assert_array_equal(fresh.gamma.data(), layer.gamma.data())
    np.testing.assert_array_equal(fresh.beta.data(), layer.beta.data())
    np.testing.assert_array_equal(fresh(x), layer(x))
    # Full names are accepted too.
    full = tmp_path / "full.npz"
    np.savez(full, **{p.name: p.data() for p in layer.collect_params().values()})
    other = InstanceNorm(prefix=layer.prefix)
    other.load_parameters(full)
    np.testing.assert_array_equal(other.beta.data(), layer.beta.data())


def test_load_errors(tmp_path, x):
    layer = _layer(x)
    missing = tmp_path / "missing.npz"
    np.savez(missing, gamma=np.ones(3))
    with pytest.raises(ValueError, match=r"\['beta'\] are missing.*allow_missing"):
        layer.load_parameters(missing)
    layer.beta.set_data([5.0, 5.0, 5.0])
    layer.load_parameters(missing, allow_missing=True)
    np.testing.assert_array_equal(layer.beta.data(), [5, 5, 5])

    extra = tmp_path / "extra.npz"
    np.savez(extra, gamma=np.ones(3), beta=np.zeros(3), running_mean=np.zeros(3))
    with pytest.raises(ValueError, match=r"\['running_mean'\].*ignore_extra"):
        layer.load_parameters(extra)
    layer.load_parameters(extra, ignore_extra=True)
    np.testing.assert_array_equal(layer.beta.data(), [0, 0, 0])

    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, gamma=np.ones(4), beta=np.zeros(4))
    with pytest.raises(ValueError, match=r"'gamma'.*shape \(4,\).*shape \(3,\)"):
        layer.load_parameters(wrong)

    text = tmp_path / "text.npz"
    np.savez(text, gamma=np.array(["a", "b", "c"]), beta=np.zeros(3))
    before = layer.beta.data().copy()
    with pytest.raises(ValueError, match=r"'gamma'.*dtype"):
        layer.load_parameters(text)
    np.testing.assert_array_equal(layer.beta.data(), before)  # nothing half-loaded

    junk = tmp_path / "junk.params"
    junk.write_text("not a zip")
    with pytest.raises(ValueError, match=r"not a NumPy \.npz"):
        layer.load_parameters(junk)
    with pytest.raises(FileNotFoundError):
        layer.load_parameters(tmp_path / "nope.npz")


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_cast(x, rng, dtype):
    layer = _layer(x, scale=True)
    assert layer.cast(dtype) is layer
    for p in (layer.gamma, layer.beta):
        assert p.dtype == dtype and p.data().dtype == dtype and p.grad().dtype == dtype
    xd = x.astype(dtype)
    layer.train()
    y = layer(xd)
    assert y.dtype == dtype
    dx = layer.backward(rng.standard_normal(x.shape).astype(dtype))
    assert dx.dtype == dtype and layer.gamma.grad().dtype == dtype
    ref = fastnorm.instance_norm(x.astype(np.float64))
    np.testing.assert_allclose(y, ref, atol=5e-3 if dtype == np.float16 else 1e-5)


def test_cast_deferred_and_errors(x):
    layer = InstanceNorm().cast("float64")
    layer.initialize()
    layer(x)
    assert layer.gamma.data().dtype == np.float64
    with pytest.raises(TypeError, match="dtype"):
        layer.cast(np.int64)
    with pytest.raises(TypeError, match="dtype"):
        layer.cast("bogus")
    with pytest.raises(TypeError, match="dtype"):
        layer.cast(None)


# --------------------------------------------------------------------------
# hooks, repr, summary


def test_hooks_and_detach(x):
    layer = _layer(x)
    calls = []
    pre = layer.register_forward_pre_hook(lambda blk, inp: calls.append(("pre", blk, inp)))
    post = layer.register_forward_hook(lambda blk, inp, out: calls.append(("post", inp, out)))
    y = layer(x)
    assert [c[0] for c in calls] == ["pre", "post"]
    assert calls[0][1] is layer and calls[0][2][0] is x
    assert calls[1][1][0] is x and calls[1][2] is y
    layer.forward(x)  # forward() itself runs no hooks, as in Gluon
    assert len(calls) == 2
    pre.detach()
    layer(x)
    assert [c[0] for c in calls] == ["pre", "post", "post"]
    post.detach()
    post.detach()  # a second detach is harmless
    layer(x)
    assert len(calls) == 3
    with layer.register_forward_hook(lambda *a: calls.append("ctx")):
        layer(x)
    layer(x)
    assert calls[-1] == "ctx" and len(calls) == 4
    with pytest.raises(TypeError, match="hook"):
        layer.register_forward_hook(None)
    with pytest.raises(TypeError, match="hook"):
        layer.register_forward_pre_hook(3)


def test_repr():
    layer = InstanceNorm(axis=-1, epsilon=1e-3, center=False, scale=True, in_channels=8)
    assert (
        repr(layer) == "InstanceNorm(eps=0.001, axis=-1, center=False, scale=True, in_channels=8)"
    )


def test_summary(x, capsys):
    layer = InstanceNorm(scale=True, center=False)
    layer.initialize()
    layer.train()
    layer.summary(x)
    text = capsys.readouterr().out
    assert "InstanceNorm-1" in text and "(2, 3, 4, 5)" in text
    assert "Total params: 6" in text
    assert "Trainable params: 3" in text and "Non-trainable params: 3" in text
    assert layer.training is True
    with pytest.raises(RuntimeError, match="backward"):
        layer.backward(np.ones_like(x))  # summary's forward is not a training forward
