"""Shared fixtures for the fastnorm test suite."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import numba
import numpy as np
import pytest

_DATA = Path(__file__).resolve().parent / "data"
_SHARED = Path(__file__).resolve().parents[2] / "shared" / "golden"

#: MXNet 1.9.1 golden vectors: a verbatim copy of the workplace's
#: ``shared/golden/`` file, vendored so a clean clone tests against them too.
GOLDEN_FILE = _DATA / "mxnet_instancenorm.npz"
#: The shared original beside the repository, when present.
SHARED_GOLDEN_FILE = _SHARED / "mxnet_instancenorm.npz"

#: MXNet 1.9.1 GroupNorm and LayerNorm golden vectors (``meta['op']`` is
#: ``'groupnorm'`` or ``'layernorm'``), vendored the same way.
NORM_GOLDEN_FILE = _DATA / "mxnet_groupnorm_layernorm.npz"
SHARED_NORM_GOLDEN_FILE = _SHARED / "mxnet_groupnorm_layernorm.npz"

_FIELDS = ("x", "gamma", "beta", "y", "dy", "dx", "dgamma", "dbeta")


@pytest.fixture
def rng() -> np.random.Generator:
    """A freshly seeded generator, so every test is reproducible on its own."""
    return np.random.default_rng(20240601)


def _load_cases(path: Path) -> list[dict]:
    """Every case of a golden file as a dict of arrays plus the parsed ``meta``.

    Returns an empty list when the file is absent.
    """
    if not path.is_file():
        return []
    cases = []
    with np.load(path) as data:
        keys = sorted({name.split("/")[0] for name in data.files}, key=int)
        for key in keys:
            case = {field: data[f"{key}/{field}"] for field in _FIELDS}
            case["meta"] = json.loads(str(data[f"{key}/meta"]))
            meta = case["meta"]
            shape = "x".join(map(str, meta["shape"]))
            op = f"{meta['op']}-" if "op" in meta else ""
            case["id"] = f"{key}-{op}{meta['kind']}-{shape}"
            cases.append(case)
    return cases


def load_golden_cases() -> list[dict]:
    """Every instance-norm golden case as a dict of arrays plus the parsed ``meta``.

    Returns an empty list when the golden file is absent; tests built on it
    then skip with :data:`GOLDEN_SKIP_REASON`.
    """
    return _load_cases(GOLDEN_FILE)


def load_norm_golden_cases(op: str) -> list[dict]:
    """The group-norm (``op='groupnorm'``) or layer-norm (``'layernorm'``) golden cases.

    ``meta`` holds ``op``, ``shape``, ``eps``, ``kind`` and ``num_groups``
    (group norm: channel axis 1, gamma/beta per group, shape (num_groups,))
    or ``axis`` (layer norm: one axis, gamma/beta of its length).  Returns an
    empty list when the golden file is absent.
    """
    if op not in ("groupnorm", "layernorm"):
        raise ValueError(f"op must be 'groupnorm' or 'layernorm', got {op!r}")
    return [case for case in _load_cases(NORM_GOLDEN_FILE) if case["meta"]["op"] == op]


GOLDEN_SKIP_REASON = f"MXNet golden vectors not found at {GOLDEN_FILE}"
NORM_GOLDEN_SKIP_REASON = f"MXNet golden vectors not found at {NORM_GOLDEN_FILE}"

#: fixture name -> (loader, skip reason): tests taking the fixture run once per case.
_GOLDEN_FIXTURES = {
    "golden_case": (load_golden_cases, GOLDEN_SKIP_REASON),
    "group_norm_golden_case": (
        lambda: load_norm_golden_cases("groupnorm"),
        NORM_GOLDEN_SKIP_REASON,
    ),
    "layer_norm_golden_case": (
        lambda: load_norm_golden_cases("layernorm"),
        NORM_GOLDEN_SKIP_REASON,
    ),
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize any test taking a golden-case fixture over every case of its op."""
    for name, (load, reason) in _GOLDEN_FIXTURES.items():
        if name not in metafunc.fixturenames:
            continue
        cases = load()
        if cases:
            metafunc.parametrize(name, cases, ids=[c["id"] for c in cases])
        else:
            metafunc.parametrize(name, [pytest.param(None, marks=pytest.mark.skip(reason=reason))])


# --------------------------------------------------------------------------
# helpers shared by the group-norm and layer-norm tests


def rel_err(got, want) -> float:
    """max |got - want| relative to the largest magnitude of ``want`` (0 when empty)."""
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    if want.size == 0:
        return 0.0
    err = float(np.max(np.abs(got - want)))
    scale = float(np.max(np.abs(want)))
    return err / scale if scale else err


def central_differences(f, v: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar ``f()`` with respect to every element of ``v``.

    ``v`` is perturbed in place (and restored), so ``f`` must read it.
    """
    grad = np.empty(v.shape, np.float64)
    flat, gflat = v.reshape(-1), grad.reshape(-1)  # v must be contiguous: views, not copies
    assert np.shares_memory(flat, v)
    for i in range(flat.size):
        orig = flat[i]
        flat[i] = orig + h
        up = f()
        flat[i] = orig - h
        down = f()
        flat[i] = orig
        gflat[i] = (up - down) / (2 * h)
    return grad


def make_array(shape, dtype, layout: str, rng: np.random.Generator, offset: float = 0.0):
    """``offset + randn`` of ``shape`` in the memory ``layout`` asked for.

    ``'C'``, ``'F'`` (Fortran order), ``'strided'`` (every other element of
    the last axis of a wider array), ``'transposed'`` (a reversed-axes view)
    or ``'reversed'`` (negative strides on every axis).
    """
    if layout == "strided":
        base = offset + rng.standard_normal((*shape[:-1], 2 * shape[-1]))
        return base.astype(dtype)[..., ::2]
    if layout == "transposed":
        perm = list(range(len(shape)))[::-1]
        base = (offset + rng.standard_normal([shape[p] for p in perm])).astype(dtype)
        return base.transpose(perm)
    a = (offset + rng.standard_normal(shape)).astype(dtype)
    if layout == "F":
        return np.asfortranarray(a)
    if layout == "reversed":
        return np.ascontiguousarray(a[(slice(None, None, -1),) * a.ndim])[
            (slice(None, None, -1),) * a.ndim
        ]
    assert layout == "C", layout
    return a


@contextmanager
def num_threads(n: int):
    """Run the body with ``fastnorm.set_num_threads(n)``, then restore the default."""
    import fastnorm  # here, so that loading conftest never imports the package

    available = numba.config.NUMBA_NUM_THREADS
    if n > available:
        pytest.skip(f"needs {n} Numba threads, NUMBA_NUM_THREADS={available}")
    fastnorm.set_num_threads(n)
    try:
        yield
    finally:
        fastnorm.set_num_threads(None)
