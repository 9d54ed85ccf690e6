"""fastnorm.torch: custom operators, functional wrappers, modules, convert().

PyTorch's own modules are the oracle for outputs, gradients and running
statistics; ``torch.autograd.gradcheck`` (float64 finite differences) checks
every operator's backward.
"""

from __future__ import annotations

import copy
import subprocess
import sys
import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fastnorm  # noqa: E402
import fastnorm.torch as ft  # noqa: E402

F = torch.nn.functional


def _randn(*shape, dtype=torch.float64, seed=0, offset=0.0, scale=1.0):
    gen = torch.Generator().manual_seed(seed)
    return offset + scale * torch.randn(*shape, generator=gen, dtype=dtype)


def _channels_last(t):
    if t.dim() == 4:
        return t.contiguous(memory_format=torch.channels_last)
    if t.dim() == 5:
        return t.contiguous(memory_format=torch.channels_last_3d)
    return t.transpose(1, 2).contiguous().transpose(1, 2)  # (N, L, C) memory


def _is_channels_last(t):
    return t.permute(0, *range(2, t.dim()), 1).is_contiguous()


# --------------------------------------------------------------------------
# import behaviour


def test_import_fastnorm_does_not_import_torch():
    code = "import sys, fastnorm; fastnorm.instance_norm; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


def test_import_without_torch_names_the_install_command():
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.'):\n"
        "            raise ImportError('No module named torch')\n"
        "sys.meta_path.insert(0, Block())\n"
        "try:\n"
        "    import fastnorm.torch\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=300
    ).stdout
    assert "pip install torch==2.13.0" in out


# --------------------------------------------------------------------------
# gradcheck, every operator, input / weight / bias


def _gradcheck(fn, *inputs):
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize(
    "shape, cl",
    [((2, 3, 7), False), ((2, 3, 7), True), ((2, 3, 4, 5), False), ((2, 3, 4, 5), True),
     ((1, 2, 3, 4, 3), False), ((1, 2, 3, 4, 3), True)],
)  # fmt: skip
def test_gradcheck_instance_norm(shape, cl):
    x = _randn(*shape, seed=1, offset=2.0, scale=3.0)
    x = (_channels_last(x) if cl else x).requires_grad_()
    w = _randn(shape[1], seed=2).requires_grad_()
    b = _randn(shape[1], seed=3).requires_grad_()
    _gradcheck(lambda x, w, b: ft.instance_norm(x, w, b, 1e-3), x, w, b)
    # the operator without saved statistics (its backward recomputes them)
    _gradcheck(lambda x, w, b: torch.ops.fastnorm.instance_norm(x, w, b, 1e-3), x, w, b)
    _gradcheck(lambda x: ft.instance_norm(x), x)


@pytest.mark.parametrize(
    "shape, groups, cl",
    [((2, 6, 5), 3, False), ((2, 6, 5), 2, True), ((2, 4, 3, 5), 2, False),
     ((2, 4, 3, 5), 4, True), ((3, 6), 3, False), ((1, 4, 2, 3, 2), 2, True)],
)  # fmt: skip
def test_gradcheck_group_norm(shape, groups, cl):
    x = _randn(*shape, seed=4, offset=-1.0, scale=2.0)
    x = (_channels_last(x) if cl else x).requires_grad_()
    w = _randn(shape[1], seed=5).requires_grad_()
    b = _randn(shape[1], seed=6).requires_grad_()
    _gradcheck(lambda x, w, b: ft.group_norm(x, groups, w, b, 1e-3), x, w, b)
    _gradcheck(lambda x, w, b: torch.ops.fastnorm.group_norm(x, groups, w, b, 1e-3), x, w, b)


@pytest.mark.parametrize("shape, norm", [((3, 8), [8]), ((2, 3, 5), [5]), ((2, 3, 4), [3, 4])])
def test_gradcheck_layer_norm(shape, norm):
    x = _randn(*shape, seed=7, offset=1.0, scale=2.0).requires_grad_()
    w = _randn(*norm, seed=8).requires_grad_()
    b = _randn(*norm, seed=9).requires_grad_()
    _gradcheck(lambda x, w, b: ft.layer_norm(x, norm, w, b, 1e-3), x, w, b)
    _gradcheck(lambda x, w, b: torch.ops.fastnorm.layer_norm(x, norm, w, b, 1e-3), x, w, b)


def test_opcheck_instance_and_group_norm():
    # PyTorch's own consistency checks of a custom op: schema, fake tensor
    # (shapes and strides of the fake impl), autograd registration.
    x = _randn(2, 4, 5, 3, seed=10, dtype=torch.float32)
    w, b = _randn(4, seed=11, dtype=torch.float32), _randn(4, seed=12, dtype=torch.float32)
    for xx in (x, _channels_last(x)):
        for args in ((xx, w, b, 1e-5), (xx.requires_grad_(), None, None, 1e-5)):
            torch.library.opcheck(torch.ops.fastnorm.instance_norm, args)
            torch.library.opcheck(torch.ops.fastnorm.instance_norm_train, args)
        torch.library.opcheck(torch.ops.fastnorm.group_norm, (xx, 2, w, b, 1e-5))
        torch.library.opcheck(torch.ops.fastnorm.group_norm_train, (xx, 2, w, b, 1e-5))


# --------------------------------------------------------------------------
# parity with the torch modules


def _parity(torch_mod, fast_mod, x, tol):
    """Same outputs and gradients (input, parameters) from two modules."""
    x1 = x.clone().requires_grad_()
    x2 = x.clone().requires_grad_()
    y1, y2 = torch_mod(x1), fast_mod(x2)
    assert y2.dtype == y1.dtype and y2.shape == y1.shape
    torch.testing.assert_close(y2, y1, atol=tol, rtol=tol)
    dy = _randn(*y1.shape, seed=99, dtype=y1.dtype)
    y1.backward(dy)
    y2.backward(dy)
    torch.testing.assert_close(x2.grad, x1.grad, atol=tol * 10, rtol=tol * 10)
    for (n1, p1), (n2, p2) in zip(
        torch_mod.named_parameters(), fast_mod.named_parameters(), strict=True
    ):
        assert n1 == n2.removeprefix("_orig_mod.")  # torch.compile's wrapper
        torch.testing.assert_close(p2.grad, p1.grad, atol=tol * 100, rtol=tol * 10)


INSTANCE_CASES = [
    (torch.nn.InstanceNorm1d, ft.InstanceNorm1d, (4, 3, 50)),
    (torch.nn.InstanceNorm2d, ft.InstanceNorm2d, (2, 3, 16, 20)),
    (torch.nn.InstanceNorm3d, ft.InstanceNorm3d, (2, 3, 6, 8, 10)),
]


@pytest.mark.parametrize("tcls, fcls, shape", INSTANCE_CASES)
@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_instance_norm_modules_match_torch(tcls, fcls, shape, affine, dtype):
    torch_mod = tcls(shape[1], affine=affine, dtype=dtype)
    if affine:
        with torch.no_grad():
            torch_mod.weight.copy_(_randn(shape[1], seed=1, dtype=dtype, offset=1.0))
            torch_mod.bias.copy_(_randn(shape[1], seed=2, dtype=dtype))
    fast_mod = fcls(shape[1], affine=affine, dtype=dtype)
    fast_mod.load_state_dict(torch_mod.state_dict())
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    x = _randn(*shape, seed=3, dtype=dtype, offset=2.0, scale=3.0)
    _parity(torch_mod, fast_mod, x, tol)
    if x.dim() >= 4:
        _parity(torch_mod, fast_mod, _channels_last(x), tol)
    # unbatched input (C, *spatial), handled by torch's forward
    torch.testing.assert_close(fast_mod(x[0]), torch_mod(x[0]), atol=tol, rtol=tol)


@pytest.mark.parametrize("tcls, fcls, shape", INSTANCE_CASES)
@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
def test_running_stats_match_torch(tcls, fcls, shape, momentum):
    kw = dict(affine=True, track_running_stats=True, momentum=momentum)
    torch_mod, fast_mod = tcls(shape[1], **kw), fcls(shape[1], **kw)
    for step in range(3):
        x = _randn(*shape, seed=step, dtype=torch.float32, offset=step - 1.0, scale=2.0 + step)
        _parity(torch_mod, fast_mod, x, 1e-5)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(
            getattr(fast_mod, name), getattr(torch_mod, name), atol=1e-6, rtol=1e-6
        )
    if momentum is not None:  # momentum None: PyTorch passes 0.0, nothing moves
        assert not torch.equal(fast_mod.running_var, torch.ones(shape[1]))
    torch_mod.eval()
    fast_mod.eval()
    x = _randn(*shape, seed=9, dtype=torch.float32, offset=1.0)
    _parity(torch_mod, fast_mod, x, 1e-5)
    # eval leaves the running statistics alone
    torch.testing.assert_close(fast_mod.running_mean, torch_mod.running_mean)


def test_running_stats_under_no_grad_and_functional():
    x = _randn(3, 4, 10, seed=5, dtype=torch.float64)
    rm1, rv1 = torch.zeros(4, dtype=torch.float64), torch.ones(4, dtype=torch.float64)
    rm2, rv2 = rm1.clone(), rv1.clone()
    with torch.no_grad():
        y2 = ft.instance_norm(x, eps=1e-3, running_mean=rm2, running_var=rv2, momentum=0.3)
    y1 = F.instance_norm(x, rm1, rv1, momentum=0.3, eps=1e-3)
    torch.testing.assert_close(y2, y1, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(rm2, rm1, atol=1e-14, rtol=1e-12)
    torch.testing.assert_close(rv2, rv1, atol=1e-14, rtol=1e-12)
    y3 = ft.instance_norm(x, running_mean=rm2, running_var=rv2, use_input_stats=False)
    y4 = F.instance_norm(x, rm1, rv1, use_input_stats=False)
    torch.testing.assert_close(y3, y4)
    with pytest.raises(ValueError, match="running_mean and running_var"):
        ft.instance_norm(x, use_input_stats=False)


@pytest.mark.parametrize("groups, shape", [(2, (2, 6, 9, 7)), (3, (4, 6, 33)), (2, (4, 6))])
@pytest.mark.parametrize("affine", [False, True])
def test_group_norm_module_matches_torch(groups, shape, affine):
    torch_mod = torch.nn.GroupNorm(groups, shape[1], affine=affine)
    if affine:
        with torch.no_grad():
            torch_mod.weight.copy_(_randn(shape[1], seed=1, dtype=torch.float32, offset=1.0))
            torch_mod.bias.copy_(_randn(shape[1], seed=2, dtype=torch.float32))
    fast_mod = ft.GroupNorm(groups, shape[1], affine=affine)
    fast_mod.load_state_dict(torch_mod.state_dict())
    x = _randn(*shape, seed=4, dtype=torch.float32, offset=-3.0, scale=2.0)
    _parity(torch_mod, fast_mod, x, 1e-5)
    if x.dim() == 4:
        _parity(torch_mod, fast_mod, _channels_last(x), 1e-5)
        assert _is_channels_last(fast_mod(_channels_last(x)))


@pytest.mark.parametrize("norm, shape", [(8, (4, 8)), ((5,), (2, 3, 5)), ((3, 4), (2, 3, 4))])
@pytest.mark.parametrize("affine, bias", [(True, True), (True, False), (False, False)])
def test_layer_norm_module_matches_torch(norm, shape, affine, bias):
    torch_mod = torch.nn.LayerNorm(norm, elementwise_affine=affine, bias=bias)
    fast_mod = ft.LayerNorm(norm, elementwise_affine=affine, bias=bias)
    if affine:
        with torch.no_grad():
            torch_mod.weight.copy_(_randn(*torch_mod.weight.shape, seed=1, dtype=torch.float32))
    fast_mod.load_state_dict(torch_mod.state_dict())
    x = _randn(*shape, seed=4, dtype=torch.float32, offset=5.0, scale=2.0)
    _parity(torch_mod, fast_mod, x, 1e-5)
    _parity(torch_mod, fast_mod, x.transpose(0, 1).contiguous().transpose(0, 1), 1e-5)


@pytest.mark.parametrize(
    "tmod, fmod",
    [
        (torch.nn.InstanceNorm2d(4, affine=True, track_running_stats=True),
         ft.InstanceNorm2d(4, affine=True, track_running_stats=True)),
        (torch.nn.InstanceNorm1d(4), ft.InstanceNorm1d(4)),
        (torch.nn.GroupNorm(2, 4), ft.GroupNorm(2, 4)),
        (torch.nn.LayerNorm((4, 3), bias=False), ft.LayerNorm((4, 3), bias=False)),
    ],
)  # fmt: skip
def test_state_dict_round_trip_both_directions(tmod, fmod):
    with torch.no_grad():
        for i, p in enumerate(tmod.parameters()):
            p.copy_(_randn(*p.shape, seed=i, dtype=p.dtype))
        for name in ("running_mean", "running_var"):
            if getattr(tmod, name, None) is not None:
                getattr(tmod, name).copy_(_randn(4, seed=7, dtype=torch.float32).abs())
    fmod.load_state_dict(tmod.state_dict())
    assert list(fmod.state_dict()) == list(tmod.state_dict())
    back = copy.deepcopy(tmod)
    for t in back.state_dict().values():
        t.zero_()
    back.load_state_dict(fmod.state_dict())
    for key, value in tmod.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key
        assert torch.equal(fmod.state_dict()[key], value), key


# --------------------------------------------------------------------------
# convert()


class _Zoo(torch.nn.Module):
    """A model with every kind of norm layer convert() replaces."""

    def __init__(self, side=16):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.in2 = torch.nn.InstanceNorm2d(8, affine=True)
        self.body = torch.nn.Sequential(
            torch.nn.GroupNorm(4, 8),
            torch.nn.ReLU(),
            torch.nn.Conv3d(1, 2, 1),
            torch.nn.InstanceNorm3d(2, affine=True, track_running_stats=True),
        )
        self.in1 = torch.nn.InstanceNorm1d(8, track_running_stats=True)
        self.ln = torch.nn.LayerNorm(side * side)

    def forward(self, x):
        h = self.in2(self.conv(x))
        h = self.body[1](self.body[0](h))
        h3 = self.body[3](self.body[2](h[:, :1].unsqueeze(1)))
        # added after the last norm: every norm before it is shift invariant
        return self.ln(self.in1(h.flatten(2))) + h3.mean()


def _zoo(train, side=16):
    torch.manual_seed(0)
    model = _Zoo(side)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.train(train)


KINDS = {
    torch.nn.InstanceNorm1d,
    torch.nn.InstanceNorm2d,
    torch.nn.InstanceNorm3d,
    torch.nn.GroupNorm,
    torch.nn.LayerNorm,
}


@pytest.mark.parametrize("train", [True, False])
def test_convert_replaces_every_kind_and_keeps_state(train):
    reference = _zoo(train)
    model = _zoo(train)
    params = {n: p for n, p in model.named_parameters()}
    keys = list(model.state_dict())
    assert ft.convert(model) is model
    replaced = {
        type(m).__bases__[-1] for m in model.modules() if type(m).__module__.startswith("fastnorm")
    }
    assert replaced == KINDS
    assert not any(type(m) in KINDS for m in model.modules())
    assert all(m.training == train for m in model.modules())
    assert list(model.state_dict()) == keys
    assert all(p is params[n] for n, p in model.named_parameters())  # optimizers keep working
    x = _randn(2, 3, 16, 16, seed=1, dtype=torch.float32)
    _parity(reference, model, x, 1e-4)
    if train:  # running statistics moved the same way
        for name in ("body.3.running_mean", "body.3.running_var", "in1.running_var"):
            torch.testing.assert_close(
                model.state_dict()[name], reference.state_dict()[name], atol=1e-5, rtol=1e-5
            )


def test_convert_root_layer_and_errors():
    layer = torch.nn.InstanceNorm2d(3, affine=True).eval()
    new = ft.convert(layer)
    assert type(new) is ft.InstanceNorm2d and not new.training
    assert new.weight is layer.weight
    new.register_buffer("extra", torch.zeros(1))  # dicts copied, not shared
    assert "extra" not in layer._buffers
    assert ft.convert(new) is new  # already converted: unchanged

    class Custom(torch.nn.GroupNorm):
        def forward(self, x):
            return x

    model = torch.nn.Sequential(Custom(1, 2))
    assert type(ft.convert(model)[0]) is Custom  # subclasses may override forward
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        ft.convert("model")


# --------------------------------------------------------------------------
# torch.compile / torch.export


@pytest.mark.slow
def test_torch_compile_fullgraph_same_outputs_and_grads():
    torch._dynamo.reset()
    model = ft.convert(_zoo(True))
    eager = copy.deepcopy(model)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    x = _randn(2, 3, 16, 16, seed=2, dtype=torch.float32)
    _parity(eager, compiled, x, 1e-6)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), eager(x), atol=1e-6, rtol=1e-6)
    model.eval()
    eager.eval()
    with torch.inference_mode():
        torch.testing.assert_close(compiled(x), eager(x), atol=1e-6, rtol=1e-6)


def test_torch_export_keeps_the_ops_opaque():
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.InstanceNorm2d(4, affine=True), torch.nn.GroupNorm(2, 4)
    ).eval()
    ft.convert(model)
    x = _randn(1, 3, 10, 10, dtype=torch.float32)

    def targets(exported):
        return {str(n.target) for n in exported.graph.nodes if n.op == "call_function"}

    # parameters require grad: the training operators (statistics saved)
    exported = torch.export.export(model, (x,))
    assert {"fastnorm.instance_norm_train.default", "fastnorm.group_norm_train.default"} <= (
        targets(exported)
    )
    torch.testing.assert_close(exported.module()(x), model(x))
    with torch.no_grad():  # inference: the one-pass operators
        exported = torch.export.export(model, (x,))
    assert {"fastnorm.instance_norm.default", "fastnorm.group_norm.default"} <= targets(exported)
    torch.testing.assert_close(exported.module()(x), model(x))


# --------------------------------------------------------------------------
# memory formats, dtypes, grad modes, errors


def _spy(monkeypatch, name):
    """Record the arrays fastnorm.<name> receives."""
    seen = []
    real = getattr(fastnorm, name)

    def spy(x, *args, **kwargs):
        seen.append((x, kwargs))
        return real(x, *args, **kwargs)

    monkeypatch.setattr(fastnorm, name, spy)
    return seen


@pytest.mark.parametrize("ndim", [3, 4, 5])
def test_channels_last_in_channels_last_out_without_copies(monkeypatch, ndim):
    shape = (2, 5, 6, 7, 3)[:ndim]
    x = _channels_last(_randn(*shape, seed=3, dtype=torch.float32, offset=4.0))
    seen = _spy(monkeypatch, "instance_norm")
    y = ft.instance_norm(x)
    arr, kwargs = seen[0]
    assert kwargs["axis"] == -1
    assert np.shares_memory(arr, x.numpy())  # a view of the tensor, no copy
    assert np.shares_memory(kwargs["out"], y.numpy())  # written in place
    assert _is_channels_last(y) and y.stride() == x.stride()
    torch.testing.assert_close(y, F.instance_norm(x.contiguous()), atol=1e-5, rtol=1e-5)
    seen = _spy(monkeypatch, "group_norm")
    y = ft.group_norm(x, 5)
    assert np.shares_memory(seen[0][0], x.numpy()) and y.stride() == x.stride()


def test_outputs_may_be_modified_in_place_under_autograd():
    # A custom op's output that is a view may not be modified in place
    # (ReLU(inplace=True) follows most norm layers): outputs are fresh tensors.
    for x in (_channels_last(_randn(1, 4, 5, 6, seed=1)), _randn(3, 4, seed=2)):
        xg = x.clone().requires_grad_()
        y = ft.group_norm(xg, 2)
        if x.dim() > 2:
            y = ft.instance_norm(torch.relu_(y))
        torch.relu_(y).sum().backward()
        assert xg.grad is not None
    xg = _randn(2, 3, 4, seed=3).requires_grad_()
    torch.relu_(ft.layer_norm(xg, (3, 4))).sum().backward()
    assert xg.grad is not None


def test_other_strides_one_copy_contiguous_out():
    base = _randn(2, 6, 10, 12, seed=4, dtype=torch.float32)
    for x in (base[:, ::2], base.transpose(2, 3), base[..., 1:-1]):
        y = ft.instance_norm(x)
        assert y.is_contiguous()
        torch.testing.assert_close(y, F.instance_norm(x), atol=1e-5, rtol=1e-5)
        g = ft.group_norm(x, x.shape[1] // 3 or 1)
        torch.testing.assert_close(g, F.group_norm(x, x.shape[1] // 3 or 1), atol=1e-5, rtol=1e-5)


def test_channels_last_group_norm_weight_grads_without_input_grad():
    # PyTorch 2.13's GroupNorm backward dies with SIGSEGV here (channels-last
    # input without requires_grad, weight with): fastnorm's gives PyTorch's
    # gradients of the contiguous input.
    x = _randn(2, 8, 4, 4, seed=11, dtype=torch.float32)
    fast, ref = ft.GroupNorm(2, 8), torch.nn.GroupNorm(2, 8)
    fast(_channels_last(x)).square().mean().backward()
    ref(x).square().mean().backward()
    torch.testing.assert_close(fast.weight.grad, ref.weight.grad, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(fast.bias.grad, ref.bias.grad, atol=1e-6, rtol=1e-5)


def test_gradient_with_another_layout_than_input():
    x = _channels_last(_randn(1, 4, 5, 6, seed=5)).requires_grad_()
    y = ft.instance_norm(x)
    dy = _randn(1, 4, 5, 6, seed=6)  # contiguous gradient, channels-last input
    (dx,) = torch.autograd.grad(y, x, dy)
    xr = x.detach().contiguous().requires_grad_()
    (dx_ref,) = torch.autograd.grad(F.instance_norm(xr), xr, dy)
    torch.testing.assert_close(dx, dx_ref, atol=1e-12, rtol=1e-12)
    assert _is_channels_last(dx)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_reduced_precision_is_computed_in_float32(dtype):
    x = _randn(2, 4, 8, 8, seed=7, dtype=torch.float32, offset=1.0).to(dtype)
    w = _randn(4, seed=8, dtype=torch.float32).requires_grad_()
    xg = x.clone().requires_grad_()
    y = ft.instance_norm(xg, w)
    assert y.dtype == dtype
    ref = F.instance_norm(x.float(), weight=w.detach())
    torch.testing.assert_close(y.float(), ref.to(dtype).float(), atol=0, rtol=0)
    y.float().sum().backward()
    assert xg.grad.dtype == dtype and w.grad.dtype == torch.float32
    gy = ft.group_norm(_channels_last(x), 2)
    assert gy.dtype == dtype and _is_channels_last(gy)


def test_eager_inference_path_equals_the_operator():
    # without autograd, eager calls skip the dispatcher: the same bits
    x = _channels_last(_randn(2, 6, 9, 7, seed=12, dtype=torch.float32, offset=3.0))
    w, b = _randn(6, seed=13, dtype=torch.float32), _randn(6, seed=14, dtype=torch.float32)
    with torch.no_grad():
        pairs = [
            (ft.instance_norm(x, w, b), torch.ops.fastnorm.instance_norm(x, w, b, 1e-5)),
            (ft.group_norm(x, 3, w, b), torch.ops.fastnorm.group_norm(x, 3, w, b, 1e-5)),
            (ft.layer_norm(x, [7]), torch.ops.fastnorm.layer_norm(x, [7], None, None, 1e-5)),
        ]
    for got, want in pairs:
        assert torch.equal(got, want) and got.stride() == want.stride()


def test_grad_modes_and_inputs_without_grad():
    x = _randn(2, 3, 9, seed=9, dtype=torch.float32)
    m = ft.InstanceNorm1d(3, affine=True)
    ref = torch.nn.InstanceNorm1d(3, affine=True)(x)
    with torch.no_grad():
        a = m(x)
    with torch.inference_mode():
        b = m(x)
    c = m(x)  # weight requires grad: the training op
    assert not a.requires_grad and not b.requires_grad and c.requires_grad
    for y in (a, b, c):
        torch.testing.assert_close(y, ref, atol=1e-6, rtol=1e-6)
    c.sum().backward()
    assert m.weight.grad is not None


def test_errors_name_argument_and_value():
    x = _randn(2, 4, 5, dtype=torch.float32)
    with pytest.raises(TypeError, match=r"dtype torch\.int64"):
        ft.instance_norm(torch.ones(2, 3, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match="device meta"):
        ft.instance_norm(torch.empty(2, 3, 4, device="meta"))
    with pytest.raises(ValueError, match="weight must have shape \\(4,\\)"):
        ft.instance_norm(x, torch.ones(3))
    with pytest.raises(ValueError, match="at least 3 dimensions"):
        ft.instance_norm(torch.ones(2, 4))
    with pytest.raises(ValueError, match="more than 1 spatial element"):
        ft.instance_norm(torch.ones(2, 4, 1))
    with pytest.raises(ValueError, match="num_groups must be >= 1 and divide"):
        ft.group_norm(x, 3)
    with pytest.raises(TypeError, match="num_groups must be an int"):
        ft.group_norm(x, 2.0)
    with pytest.raises(ValueError, match="eps must be finite"):
        ft.group_norm(x, 2, eps=-1.0)
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        ft.instance_norm(x.numpy())
    with pytest.raises(ValueError, match="normalized_shape"):
        ft.layer_norm(x, [4])


# --------------------------------------------------------------------------
# threads


def test_fastnorm_threads_follow_torch():
    before_torch, before_fast = torch.get_num_threads(), fastnorm.get_num_threads()
    x = _randn(2, 3, 300, 300, dtype=torch.float32)
    try:
        torch.set_num_threads(1)
        ft.instance_norm(x)
        assert fastnorm.get_num_threads() == 1
        torch.set_num_threads(before_torch)
        ft.instance_norm(x)
        assert fastnorm.get_num_threads() == min(
            before_torch, fastnorm.runtime.numba.config.NUMBA_NUM_THREADS
        )
        ft.follow_torch_threads(False)
        torch.set_num_threads(1)
        ft.instance_norm(x)
        assert fastnorm.get_num_threads() != 1 or before_fast == 1
    finally:
        ft.follow_torch_threads(True)
        torch.set_num_threads(before_torch)
        fastnorm.set_num_threads(None)
    with pytest.raises(TypeError, match="enabled must be a bool"):
        ft.follow_torch_threads(1)


@pytest.mark.slow
def test_concurrent_inference_from_several_threads():
    model = ft.convert(_zoo(False, side=128))  # large enough for the parallel kernels
    inputs = [_randn(1, 3, 128, 128, seed=s, dtype=torch.float32) for s in range(4)]
    with torch.no_grad():
        expected = [model(x) for x in inputs]
    results, errors = {}, []

    def work(i):
        try:
            with torch.no_grad():
                for _ in range(5):
                    results[i] = model(inputs[i])
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "deadlock"
    assert not errors
    for i, want in enumerate(expected):
        assert torch.equal(results[i], want)  # bit-identical in any thread mix
