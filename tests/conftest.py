"""Shared fixtures for the fastnorm test suite."""

from __future__ import annotations

import json
from pathlib import Path

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
