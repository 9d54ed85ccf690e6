"""fastnorm's thread count inside PyTorch: it follows ``torch.get_num_threads()``.

PyTorch's intra-op pool and fastnorm's Numba threads are two thread pools
(two OpenMP runtimes with the default wheels) that take turns: a model runs
a torch operator, then a fastnorm one, never both at once from one Python
thread.  Giving fastnorm the thread count PyTorch was told to use keeps a
single knob (``torch.set_num_threads``) for both, so a service that limits
PyTorch to one thread per worker gets single-threaded fastnorm kernels too,
instead of fastnorm oversubscribing the cores the other workers use.
Concurrent calls from several Python threads are already safe in fastnorm:
one call at a time runs multi-threaded, overlapping calls run the
single-threaded twin kernels (see ``fastnorm.runtime``).
"""

from __future__ import annotations

import threading

import numba
import torch

import fastnorm

__all__ = ["follow_torch", "follow_torch_threads"]

_follow = True
_lock = threading.Lock()
#: The torch thread count last applied (applying costs a lock; checking is cheap).
_applied: int | None = None


def follow_torch_threads(enabled: bool = True) -> None:
    """Whether fastnorm's operators set fastnorm's threads from PyTorch's.

    Parameters
    ----------
    enabled : bool, default True
        True (the default): each fastnorm operator call sets
        :func:`fastnorm.set_num_threads` to ``torch.get_num_threads()``
        (capped at ``NUMBA_NUM_THREADS``) whenever PyTorch's count has
        changed since the last call.  False: leave fastnorm's thread count
        alone, for example after calling :func:`fastnorm.set_num_threads`
        yourself.
    """
    global _follow, _applied
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled must be a bool, got {enabled!r}")
    _follow = enabled
    _applied = None


def follow_torch() -> None:
    """Apply ``torch.get_num_threads()`` to fastnorm, if following is enabled."""
    global _applied
    if not _follow:
        return
    n = torch.get_num_threads()
    if n != _applied:
        with _lock:
            fastnorm.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))
            _applied = n
