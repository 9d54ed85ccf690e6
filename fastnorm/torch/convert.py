"""Swap the torch.nn norm layers of a model for fastnorm's."""

from __future__ import annotations

import torch

from . import modules as _modules

__all__ = ["convert", "replacements"]


def replacements() -> dict:
    """The torch.nn classes :func:`convert` replaces, mapped to fastnorm's."""
    return {
        torch.nn.InstanceNorm1d: _modules.InstanceNorm1d,
        torch.nn.InstanceNorm2d: _modules.InstanceNorm2d,
        torch.nn.InstanceNorm3d: _modules.InstanceNorm3d,
        torch.nn.GroupNorm: _modules.GroupNorm,
        torch.nn.LayerNorm: _modules.LayerNorm,
    }


def _swap(module: torch.nn.Module, cls: type) -> torch.nn.Module:
    """A ``cls`` instance with module's state: the same Parameter and buffer objects.

    The attribute dictionaries (parameters, buffers, hooks) are copied, not
    shared, so registering something on one later does not touch the other;
    the tensors themselves are shared, as ``convert_sync_batchnorm`` does.
    """
    new = cls.__new__(cls)
    new.__dict__.update(
        {k: (v.copy() if isinstance(v, dict) else v) for k, v in module.__dict__.items()}
    )
    return new


def convert(module: torch.nn.Module) -> torch.nn.Module:
    """Replace every torch.nn norm layer in a model by its fastnorm twin.

    Parameters
    ----------
    module : torch.nn.Module
        A model (changed in place) or a single norm layer.

    Returns
    -------
    torch.nn.Module
        ``module`` itself, its submodules replaced; or the replacement when
        ``module`` is itself a norm layer.

    Notes
    -----
    Replaced: exactly ``torch.nn.InstanceNorm1d/2d/3d``, ``GroupNorm`` and
    ``LayerNorm`` (their fastnorm subclasses are not); other subclasses are left alone,
    since they may override ``forward``.  Each replacement keeps the
    original's Parameter and buffer objects (so an optimizer built before
    still updates them), hooks, ``training`` flag, device and dtype.
    Inputs on other devices than the CPU raise at the first call.
    """
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    table = replacements()
    cls = table.get(type(module))
    if cls is not None:
        return _swap(module, cls)
    for parent in module.modules():
        for name, child in list(parent._modules.items()):
            cls = table.get(type(child)) if child is not None else None
            if cls is not None:
                parent._modules[name] = _swap(child, cls)
    return module
