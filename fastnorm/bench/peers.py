"""The benchmarked implementations: fastnorm, a NumPy two-pass twin and the peers.

Each implementation prepares, for one case, the callables the benchmark times
(:class:`Calls`).  Peers are imported only when a case is prepared, never at
import time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

import fastnorm

from .cases import EPS, Case, Inputs

__all__ = ["LIBRARIES", "Calls", "Library", "available_libraries"]


@dataclass
class Calls:
    """What one library can do on one case.

    ``forward`` writes into a preallocated output (None when the library
    has no ``out=``), ``fresh`` allocates its output, ``backward`` computes
    the input gradient; ``results`` returns ``(y, dx)`` as NumPy arrays in
    the input's layout, for the comparison with the reference.
    """

    forward: Callable | None
    fresh: Callable | None
    backward: Callable | None
    results: Callable[[], tuple]


def _fastnorm_calls(case: Case, inp: Inputs, threads: int) -> Calls:
    x, dy, g, b, axis = inp.x, inp.dy, inp.gamma, inp.beta, case.axis
    y, dx = np.empty_like(x), np.empty_like(x)

    def forward():
        return fastnorm.instance_norm(x, g, b, axis=axis, eps=EPS, out=y)

    def fresh():
        return fastnorm.instance_norm(x, g, b, axis=axis, eps=EPS)

    # The forward's statistics, saved for the backward as PyTorch's autograd
    # and fastnorm.InstanceNorm in training mode do (one pass over x less).
    mean, invstd = fastnorm.instance_norm_stats(x, axis=axis, eps=EPS)

    def backward():
        return fastnorm.instance_norm_backward(
            dy, x, g, axis=axis, eps=EPS, mean=mean, invstd=invstd, out=dx
        )

    return Calls(forward, fresh, backward, lambda: (fresh(), backward()[0]))


def _reduced_axes(ndim: int, axis: int) -> tuple[int, ...]:
    return tuple(i for i in range(1, ndim) if i != axis % ndim)


def _numpy_calls(case: Case, inp: Inputs, threads: int) -> Calls:
    """Two-pass instance norm in the input's dtype, with NumPy only."""
    x, dy = inp.x, inp.dy
    red = _reduced_axes(x.ndim, case.axis)
    cshape = [1] * x.ndim
    cshape[case.axis % x.ndim] = -1
    g, b = inp.gamma.reshape(cshape), inp.beta.reshape(cshape)
    y, dx = np.empty_like(x), np.empty_like(x)

    def normalize(out):
        """out = (x - mean) * invstd; returns invstd."""
        np.subtract(x, x.mean(axis=red, keepdims=True), out=out)
        var = np.square(out).mean(axis=red, keepdims=True)
        invstd = 1 / np.sqrt(var + x.dtype.type(EPS))
        out *= invstd
        return invstd

    def forward(out=y):
        normalize(out)
        out *= g
        out += b
        return out

    def backward(out=dx):
        invstd = normalize(out)  # out holds xhat
        mean_dy = dy.mean(axis=red, keepdims=True)
        mean_dy_xhat = (dy * out).mean(axis=red, keepdims=True)
        out *= mean_dy_xhat
        np.subtract(dy, out, out=out)
        out -= mean_dy
        out *= g * invstd
        return out

    def fresh():
        return forward(np.empty_like(x))

    return Calls(forward, fresh, backward, lambda: (fresh(), backward().copy()))


def _torch_calls(case: Case, inp: Inputs, threads: int) -> Calls | str:
    """``torch.nn.functional.instance_norm``; channels-last memory for axis=-1."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    axis = case.axis % len(case.shape)

    def tensor(a):  # a view with the channels on axis 1
        return torch.from_numpy(a).movedim(axis, 1)

    x, dy = tensor(inp.x), tensor(inp.dy)
    g, b = torch.from_numpy(inp.gamma), torch.from_numpy(inp.beta)
    xg, gg, bg = (t.detach().requires_grad_(True) for t in (x, g, b))
    yg = F.instance_norm(xg, weight=gg, bias=bg, eps=EPS)

    def fresh():
        return F.instance_norm(x, weight=g, bias=b, eps=EPS)

    def backward():
        return torch.autograd.grad(yg, (xg, gg, bg), dy, retain_graph=True)

    def results():
        y = fresh().movedim(1, axis).numpy()
        return y, backward()[0].detach().movedim(1, axis).numpy()

    return Calls(None, fresh, backward, results)


def _onnx_model(onnx, case: Case):
    from onnx import TensorProto, helper

    elem = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE}
    elem = elem[case.dtype]
    channels = case.shape[1]
    node = helper.make_node("InstanceNormalization", ["x", "scale", "B"], ["y"], epsilon=EPS)
    graph = helper.make_graph(
        [node],
        "instance_norm",
        [
            helper.make_tensor_value_info("x", elem, list(case.shape)),
            helper.make_tensor_value_info("scale", elem, [channels]),
            helper.make_tensor_value_info("B", elem, [channels]),
        ],
        [helper.make_tensor_value_info("y", elem, list(case.shape))],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _onnxruntime_calls(case: Case, inp: Inputs, threads: int) -> Calls | str:
    """An ``InstanceNormalization`` model; output bound to a buffer for out=."""
    import onnx
    import onnxruntime as ort

    if case.axis % len(case.shape) != 1:
        return "n/a"
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    model = _onnx_model(onnx, case).SerializeToString()
    try:
        session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception:  # no kernel for this dtype
        return "n/a"
    feeds = {"x": inp.x, "scale": inp.gamma, "B": inp.beta}
    y = np.empty_like(inp.x)
    binding = session.io_binding()
    for name, value in feeds.items():
        binding.bind_cpu_input(name, value)
    binding.bind_output("y", "cpu", 0, y.dtype, y.shape, y.ctypes.data)

    def forward():
        session.run_with_iobinding(binding)
        return y

    def fresh():
        return session.run(None, feeds)[0]

    return Calls(forward, fresh, None, lambda: (fresh(), None))


@dataclass(frozen=True)
class Library:
    """A benchmarked implementation; ``module`` is imported to detect a peer."""

    name: str
    prepare: Callable
    module: str | None = None


LIBRARIES = (
    Library("fastnorm", _fastnorm_calls),
    Library("numpy", _numpy_calls),
    Library("torch", _torch_calls, "torch"),
    Library("onnxruntime", _onnxruntime_calls, "onnxruntime"),
)


def available_libraries() -> tuple[list[Library], dict[str, str]]:
    """Libraries whose module imports, and the reason each other one is skipped."""
    found, skipped = [], {}
    for lib in LIBRARIES:
        if lib.module is None:
            found.append(lib)
            continue
        try:
            __import__(lib.module)
        except Exception as exc:  # ImportError, or a broken install
            skipped[lib.name] = f"not installed ({type(exc).__name__}: {exc})"
        else:
            found.append(lib)
    return found, skipped
