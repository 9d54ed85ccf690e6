"""Parameter initializers for the layers (InstanceNorm, GroupNorm, LayerNorm), after MXNet's.

An initializer is anything :func:`create` accepts:

- a name: ``'zeros'``, ``'ones'``, ``'uniform'``, ``'normal'``;
- an :class:`Initializer` instance (:class:`Zero`, :class:`One`,
  :class:`Constant`, :class:`Uniform`, :class:`Normal`), the way to give a
  constant's value or a random generator's seed;
- a callable ``(shape, dtype) -> array``;
- an array-like (a number included), broadcast to the parameter's shape.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["Constant", "Initializer", "Normal", "One", "Uniform", "Zero", "create"]


class Initializer:
    """Base class: ``init(shape, dtype)`` returns a new array."""

    def __call__(self, shape: tuple, dtype) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Zero(Initializer):
    """All zeros (``'zeros'``)."""

    def __call__(self, shape, dtype):
        return np.zeros(shape, dtype)


class One(Initializer):
    """All ones (``'ones'``)."""

    def __call__(self, shape, dtype):
        return np.ones(shape, dtype)


class Constant(Initializer):
    """Every element set to ``value``."""

    def __init__(self, value):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"Constant value must be a real number, got {value!r}")
        self.value = value

    def __call__(self, shape, dtype):
        return np.full(shape, self.value, dtype)

    def __repr__(self):
        return f"Constant(value={self.value!r})"


class _Random(Initializer):
    """Shared seeding: ``seed`` is None, an int or a ``numpy.random.Generator``.

    The generator is created once, so successive calls draw new values and a
    given seed reproduces the whole sequence.
    """

    def __init__(self, seed):
        if seed is not None and not isinstance(seed, (numbers.Integral, np.random.Generator)):
            raise TypeError(
                f"seed must be None, an integer or a numpy.random.Generator, got {seed!r}"
            )
        self.seed = seed
        self._rng = np.random.default_rng(seed)


class Uniform(_Random):
    """Uniform on ``[-scale, scale)`` (MXNet's ``Uniform``, default scale 0.07)."""

    def __init__(self, scale=0.07, seed=None):
        super().__init__(seed)
        self.scale = float(scale)

    def __call__(self, shape, dtype):
        return self._rng.uniform(-self.scale, self.scale, shape).astype(dtype)

    def __repr__(self):
        return f"Uniform(scale={self.scale!r}, seed={self.seed!r})"


class Normal(_Random):
    """Normal with mean 0 and standard deviation ``sigma`` (MXNet's default 0.01)."""

    def __init__(self, sigma=0.01, seed=None):
        super().__init__(seed)
        self.sigma = float(sigma)

    def __call__(self, shape, dtype):
        return self._rng.normal(0.0, self.sigma, shape).astype(dtype)

    def __repr__(self):
        return f"Normal(sigma={self.sigma!r}, seed={self.seed!r})"


class _ArrayInit(Initializer):
    """A fixed array (or number); the parameter broadcasts it to its shape."""

    def __init__(self, value: np.ndarray):
        self.value = value

    def __call__(self, shape, dtype):
        return self.value.astype(dtype)

    def __repr__(self):
        return f"array(shape={self.value.shape})"


class _CallableInit(Initializer):
    def __init__(self, fn):
        self.fn = fn

    def __call__(self, shape, dtype):
        return self.fn(shape, dtype)

    def __repr__(self):
        return repr(self.fn)


_NAMES = {
    "zeros": Zero,
    "zero": Zero,
    "ones": One,
    "one": One,
    "uniform": Uniform,
    "normal": Normal,
}
_KNOWN = "'zeros', 'ones', 'uniform', 'normal' (and Constant(value) for a constant)"


def create(init, name: str = "initializer") -> Initializer | None:
    """Turn any accepted initializer spec into an :class:`Initializer`.

    ``None`` stays ``None`` (the caller's default applies).  ``name`` is used
    in error messages.
    """
    if init is None or isinstance(init, Initializer):
        return init
    if isinstance(init, str):
        key = init.lower()
        if key == "constant":
            # MXNet's Constant has no default value either.
            raise ValueError(
                f"{name}='constant' needs a value: pass fastnorm.initializers.Constant(value) "
                "or the number itself"
            )
        if key not in _NAMES:
            raise ValueError(f"{name}={init!r} is not a known initializer; known: {_KNOWN}")
        return _NAMES[key]()
    if callable(init):
        return _CallableInit(init)
    if isinstance(init, (bytes, dict, set)):
        raise TypeError(
            f"{name} must be an initializer name, an Initializer, a callable or an array, "
            f"got {type(init).__name__}"
        )
    try:
        value = np.asarray(init)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} must be an array of real numbers, got {init!r}") from exc
    if value.dtype.kind not in "fiu":
        raise TypeError(
            f"{name} must be an initializer name, an Initializer, a callable or an array of "
            f"real numbers, got {type(init).__name__} of dtype {value.dtype}"
        )
    return _ArrayInit(value)
