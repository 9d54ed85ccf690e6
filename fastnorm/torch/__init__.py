"""fastnorm inside PyTorch models: custom operators, functional API, modules, convert().

``import fastnorm.torch`` needs PyTorch (``pip install torch==2.13.0``, the
CPU build); ``import fastnorm`` alone never imports it.

* ``torch.ops.fastnorm.*`` -- custom operators with autograd and fake
  (meta) implementations, opaque to ``torch.compile`` and ``torch.export``
  (:mod:`fastnorm.torch.ops`);
* :func:`instance_norm`, :func:`group_norm`, :func:`layer_norm` --
  ``torch.nn.functional``-style wrappers;
* :class:`InstanceNorm1d`, :class:`InstanceNorm2d`, :class:`InstanceNorm3d`,
  :class:`GroupNorm`, :class:`LayerNorm` -- subclasses of the torch.nn
  modules they replace;
* :func:`convert` -- replaces the torch.nn norm layers of a model in place;
* :func:`follow_torch_threads` -- fastnorm's threads follow
  ``torch.get_num_threads()`` (the default).
"""

from __future__ import annotations

try:
    import torch as _torch  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "fastnorm.torch needs PyTorch, which is not installed; install it with "
        "`pip install torch==2.13.0` (CPU build: add "
        "`--index-url https://download.pytorch.org/whl/cpu`)"
    ) from exc

from . import ops as ops
from ._threads import follow_torch_threads
from .convert import convert
from .functional import group_norm, instance_norm, layer_norm
from .modules import GroupNorm, InstanceNorm1d, InstanceNorm2d, InstanceNorm3d, LayerNorm

__all__ = [
    "GroupNorm",
    "InstanceNorm1d",
    "InstanceNorm2d",
    "InstanceNorm3d",
    "LayerNorm",
    "convert",
    "follow_torch_threads",
    "group_norm",
    "instance_norm",
    "layer_norm",
    "ops",
]
