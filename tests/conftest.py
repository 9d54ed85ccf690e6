"""Shared fixtures for the fastnorm test suite."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

#: MXNet 1.9.1 golden vectors: a verbatim copy of the workplace's
#: ``shared/golden/`` file, vendored so a clean clone tests against them too.
GOLDEN_FILE = Path(__file__).resolve().parent / "data" / "mxnet_instancenorm.npz"
#: The shared original beside the repository, when present.
SHARED_GOLDEN_FILE = (
    Path(__file__).resolve().parents[2] / "shared" / "golden" / "mxnet_instancenorm.npz"
)


@pytest.fixture
def rng() -> np.random.Generator:
    """A freshly seeded generator, so every test is reproducible on its own."""
    return np.random.default_rng(20240601)


def load_golden_cases() -> list[dict]:
    """Every golden case as a dict of arrays plus the parsed ``meta``.

    Returns an empty list when the golden file is absent; tests built on it
    then skip with :data:`GOLDEN_SKIP_REASON`.
    """
    if not GOLDEN_FILE.is_file():
        return []
    cases = []
    with np.load(GOLDEN_FILE) as data:
        keys = sorted({name.split("/")[0] for name in data.files}, key=int)
        for key in keys:
            case = {
                field: data[f"{key}/{field}"]
                for field in ("x", "gamma", "beta", "y", "dy", "dx", "dgamma", "dbeta")
            }
            case["meta"] = json.loads(str(data[f"{key}/meta"]))
            case["id"] = f"{key}-{case['meta']['kind']}-{'x'.join(map(str, case['meta']['shape']))}"
            cases.append(case)
    return cases


GOLDEN_SKIP_REASON = f"MXNet golden vectors not found at {GOLDEN_FILE}"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize any test taking ``golden_case`` over every golden case."""
    if "golden_case" not in metafunc.fixturenames:
        return
    cases = load_golden_cases()
    if cases:
        metafunc.parametrize("golden_case", cases, ids=[c["id"] for c in cases])
    else:
        metafunc.parametrize(
            "golden_case", [pytest.param(None, marks=pytest.mark.skip(reason=GOLDEN_SKIP_REASON))]
        )
