"""The benchmarked implementations: fastnorm, a NumPy two-pass twin and the peers.

Each implementation prepares, for one case, the callables the benchmark times
(:class:`Calls`), or returns why it cannot run that case.  Peers:

- ``torch``: PyTorch's function of the same name (``F.instance_norm``,
  ``F.group_norm``, ``F.layer_norm``), on a view of the NumPy data whose
  channels are on axis 1 (channels-last strides, i.e. PyTorch's
  ``channels_last`` memory format, for channel-last cases); the backward runs
  through autograd on a retained graph and is timed alone.
- ``torch-gn``: instance norm as ``F.group_norm(x, num_groups=C, weight, bias)``,
  one group per channel, PyTorch's faster CPU path for the same math.
- ``onnxruntime``: an ``InstanceNormalization`` (channels-first) or
  ``LayerNormalization`` (last axis) model, forward only.

Peers are imported only when a case is prepared, never at import time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .cases import EPS, OPS, Case, Inputs
from .ops import fastnorm_functions, lead_args, statistics_view

__all__ = ["LIBRARIES", "Calls", "Library", "available_libraries"]


@dataclass
class Calls:
    """What one library can do on one case.

    ``forward`` writes into a preallocated output (None when the library
    has no ``out=``), ``fresh`` allocates its output, ``backward`` computes
    the input gradient; ``results`` returns ``(y, dx)`` as NumPy arrays in
    the input's layout, for the comparison with the reference (dx None
    without a backward).  ``note`` says how a peer had to be called when it
    has no direct equivalent.
    """

    forward: Callable | None
    fresh: Callable | None
    backward: Callable | None
    results: Callable[[], tuple]
    note: str | None = None


def _fastnorm_calls(case: Case, inp: Inputs, threads: int) -> Calls:
    x, dy, g, b, axis = inp.x, inp.dy, inp.gamma, inp.beta, case.axis
    norm, norm_stats, norm_backward = fastnorm_functions(case)
    lead = lead_args(case)
    y, dx = np.empty_like(x), np.empty_like(x)

    def forward():
        return norm(x, *lead, g, b, axis=axis, eps=EPS, out=y)

    def fresh():
        return norm(x, *lead, g, b, axis=axis, eps=EPS)

    # The forward's statistics, saved for the backward as PyTorch's autograd
    # and fastnorm's layers in training mode do (one pass over x less).
    mean, invstd = norm_stats(x, *lead, axis=axis, eps=EPS)

    def backward():
        return norm_backward(dy, x, *lead, g, axis=axis, eps=EPS, mean=mean, invstd=invstd, out=dx)

    return Calls(forward, fresh, backward, lambda: (fresh(), backward()[0]))


def _numpy_calls(case: Case, inp: Inputs, threads: int) -> Calls:
    """Two-pass normalization in the input's dtype, with NumPy only.

    x is viewed so that every statistic reduces fixed axes (group norm splits
    the channel axis into groups), see :func:`.ops.statistics_view`.
    """
    view, red, param = statistics_view(case)
    x, dy = inp.x.reshape(view), inp.dy.reshape(view)
    g, b = inp.gamma.reshape(param), inp.beta.reshape(param)
    y, dx = np.empty_like(x), np.empty_like(x)
    eps = x.dtype.type(EPS)

    def normalize(out):
        """out = (x - mean) * invstd; returns invstd."""
        np.subtract(x, x.mean(axis=red, keepdims=True), out=out)
        var = np.square(out).mean(axis=red, keepdims=True)
        invstd = 1 / np.sqrt(var + eps)
        out *= invstd
        return invstd

    def forward(out=y):
        normalize(out)
        out *= g
        out += b
        return out

    def backward(out=dx):
        """dx = invstd (g dy - mean(g dy) - xhat mean(g dy xhat)); gamma may vary in a slice."""
        invstd = normalize(out)  # out holds xhat
        gdy = dy * g
        mean_gdy = gdy.mean(axis=red, keepdims=True)
        mean_gdy_xhat = (gdy * out).mean(axis=red, keepdims=True)
        out *= mean_gdy_xhat
        np.subtract(gdy, out, out=out)
        out -= mean_gdy
        out *= invstd
        return out

    def fresh():
        return forward(np.empty_like(x))

    def results():
        return fresh().reshape(case.shape), backward().copy().reshape(case.shape)

    return Calls(forward, fresh, backward, results)


def _torch_peer(case: Case, inp: Inputs, threads: int, call, dim: int, note=None) -> Calls:
    """Calls of ``call(x, weight, bias)`` on tensors whose ``case.axis`` sits at ``dim``.

    The tensors are views of the NumPy arrays (``movedim``), so channels-last
    data keeps its strides (PyTorch's channels_last memory format) and the
    library sees the layout it would in a model.
    """
    import torch

    torch.set_num_threads(threads)
    axis = case.axis % len(case.shape)

    def tensor(a):
        return torch.from_numpy(a).movedim(axis, dim)

    x, dy = tensor(inp.x), tensor(inp.dy)
    g, b = torch.from_numpy(inp.gamma), torch.from_numpy(inp.beta)
    xg, gg, bg = (t.detach().requires_grad_(True) for t in (x, g, b))
    yg = call(xg, gg, bg)

    def fresh():
        return call(x, g, b)

    def backward():
        return torch.autograd.grad(yg, (xg, gg, bg), dy, retain_graph=True)

    def results():
        y = fresh().movedim(dim, axis).numpy()
        return y, backward()[0].detach().movedim(dim, axis).numpy()

    return Calls(None, fresh, backward, results, note)


def _torch_calls(case: Case, inp: Inputs, threads: int) -> Calls:
    """PyTorch's function of the case's op (instance_norm, group_norm, layer_norm)."""
    import torch.nn.functional as F

    if case.op == "instance":
        return _torch_peer(
            case, inp, threads, lambda x, g, b: F.instance_norm(x, weight=g, bias=b, eps=EPS), 1
        )
    if case.op == "group":
        groups = case.groups
        return _torch_peer(
            case, inp, threads, lambda x, g, b: F.group_norm(x, groups, g, b, EPS), 1
        )
    shape = (case.channels,)
    note = None
    if case.axis % len(case.shape) != len(case.shape) - 1:
        note = (
            "F.layer_norm over the last dim of the tensor permuted to put axis "
            f"{case.axis} last (PyTorch has no layer norm over another axis); its time "
            "includes the contiguous copy layer_norm makes of it"
        )
    return _torch_peer(
        case, inp, threads, lambda x, g, b: F.layer_norm(x, shape, g, b, EPS), -1, note
    )


def _torch_gn_calls(case: Case, inp: Inputs, threads: int) -> Calls:
    """Instance norm as ``F.group_norm`` with one group per channel."""
    import torch.nn.functional as F

    groups = case.channels
    return _torch_peer(case, inp, threads, lambda x, g, b: F.group_norm(x, groups, g, b, EPS), 1)


def _onnx_model(case: Case) -> bytes:
    """InstanceNormalization or LayerNormalization (axis -1) of the case, opset 17."""
    from onnx import TensorProto, helper

    elem = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE}
    elem = elem[case.dtype]
    if case.op == "instance":
        node = helper.make_node("InstanceNormalization", ["x", "scale", "B"], ["y"], epsilon=EPS)
    else:
        node = helper.make_node(
            "LayerNormalization", ["x", "scale", "B"], ["y"], axis=-1, epsilon=EPS
        )
    channels = [case.channels]
    graph = helper.make_graph(
        [node],
        f"{case.op}_norm",
        [
            helper.make_tensor_value_info("x", elem, list(case.shape)),
            helper.make_tensor_value_info("scale", elem, channels),
            helper.make_tensor_value_info("B", elem, channels),
        ],
        [helper.make_tensor_value_info("y", elem, list(case.shape))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return model.SerializeToString()


def _onnxruntime_calls(case: Case, inp: Inputs, threads: int) -> Calls | str:
    """An ONNX model of the op; output bound to a buffer for out=."""
    import onnxruntime as ort

    axis = case.axis % len(case.shape)
    if case.op == "instance" and axis != 1:
        return "n/a (channel axis 1 only)"
    if case.op == "layer" and axis != len(case.shape) - 1:
        return "n/a (last axis only)"
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # ONNX Runtime's workers spin between runs by default; in a process that
    # also runs fastnorm's and PyTorch's thread pools on 2 cores they took the
    # cores from whichever library ran next (fastnorm's layer norm 2-15x
    # slower when timed after it).  Idle workers sleep instead.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(
            _onnx_model(case), options, providers=["CPUExecutionProvider"]
        )
    except Exception:  # no kernel for this dtype
        return f"n/a (no {case.dtype} kernel)"
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
    """A benchmarked implementation.

    ``module`` is imported to detect a peer; ``ops`` are the ops it runs.
    """

    name: str
    prepare: Callable
    module: str | None = None
    ops: tuple[str, ...] = OPS


LIBRARIES = (
    Library("fastnorm", _fastnorm_calls),
    Library("numpy", _numpy_calls),
    Library("torch", _torch_calls, "torch"),
    Library("torch-gn", _torch_gn_calls, "torch", ("instance",)),
    Library("onnxruntime", _onnxruntime_calls, "onnxruntime", ("instance", "layer")),
)
#: The floors' copy and add split between the threads (see .floors).
PARALLEL_FLOOR = "parallel floor"
#: Implementations that are not peers: ours, the NumPy baseline, the parallel floor.
NOT_PEERS = ("fastnorm", "numpy", PARALLEL_FLOOR)


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
