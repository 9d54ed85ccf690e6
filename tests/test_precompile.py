"""fastnorm.precompile: warmup, its split between processes, and the workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fastnorm
from fastnorm import precompile, runtime


def test_warmup_rejects_unknown_layout():
    with pytest.raises(ValueError, match="layout"):
        fastnorm.warmup(layouts=("NWHC",))


def test_warmup_runs():
    assert fastnorm.warmup(dtypes=("float32",), layouts=("NCHW",), backward=False) >= 0


def test_warmup_rejects_unknown_op():
    with pytest.raises(ValueError, match="batch_norm"):
        fastnorm.warmup(ops=("batch_norm",))


@pytest.mark.parametrize(
    "processes, error",
    [(0, ValueError), (-1, ValueError), (1.5, TypeError), (True, TypeError), ("2", TypeError)],
)
def test_warmup_rejects_bad_processes(processes, error):
    with pytest.raises(error, match="processes"):
        fastnorm.warmup(processes=processes)


def test_warmup_layer_norm_loads_its_kernels():
    from fastnorm._kernels import affine

    fastnorm.warmup(dtypes=("float32",), layouts=("NCHW", "NHWC"), ops="layer_norm")
    for kernel in (
        affine.affine_rows_forward,
        affine.affine_rows_backward_serial,
        affine.affine_columns_forward,
        affine.affine_columns_backward_serial,
    ):
        assert kernel.signatures, kernel


def test_balanced_groups_largest_first_to_the_least_loaded():
    cost = {"a": 5, "b": 4, "c": 3, "d": 2, "e": 1}
    groups = precompile.balanced_groups(list(cost), cost.get, 2)
    assert groups == [["a", "d", "e"], ["b", "c"]]
    assert precompile.balanced_groups(["a"], cost.get, 3) == [["a"]]  # no empty groups
    assert precompile.balanced_groups([], cost.get, 2) == []


def test_units_cover_every_op_dtype_layout_and_direction():
    units = precompile._units(
        ("float32", np.float64),
        ("NCHW", "NHWC", "NCDHW"),
        ("group_norm", "layer_norm"),
        True,
        False,
        False,
    )
    assert len(units) == 2 * 2 * 2 * 2  # kernels x dtypes x axes x (forward, backward)
    assert {u["part"] for u in units} == {"forward", "backward"}
    assert {u["dtype"] for u in units} == {"float32", "float64"}
    assert all(precompile._family(u) in precompile._UNIT_KERNELS for u in units)


def _record_split(monkeypatch, cold):
    """warmup with workers and compilation replaced by recorders."""
    calls = {"workers": [], "here": []}
    monkeypatch.setattr(runtime, "cache_dir", lambda: "/somewhere")
    monkeypatch.setattr(precompile, "_cold_units", lambda units: cold(units))
    monkeypatch.setattr(precompile, "warm_units", lambda units: calls["here"].append(list(units)))

    def start(entry, payloads):
        assert entry == "fastnorm.precompile:warm_units"
        json.dumps(payloads)  # what the worker receives on its command line
        calls["workers"].extend(payloads)
        return []

    monkeypatch.setattr(precompile, "start_workers", start)
    return calls


def test_warmup_gives_each_kernel_family_to_one_process(monkeypatch):
    calls = _record_split(monkeypatch, lambda units: units)
    fastnorm.warmup(processes=2)
    families = [{(u["kernels"], u["axis"]) for u in group} for group in calls["here"][:1]]
    families += [{(u["kernels"], u["axis"]) for u in group} for group in calls["workers"]]
    assert sorted(map(sorted, families)) == [[("instance", -1)], [("instance", 1)]]
    # then this process loads (here: runs) every unit
    assert len(calls["here"]) == 2 and len(calls["here"][1]) == 6


def test_warmup_splits_units_when_families_are_fewer_than_processes(monkeypatch):
    calls = _record_split(monkeypatch, lambda units: units)
    fastnorm.warmup(layouts=("NCHW",), processes=2)
    parts = [[u["part"] for u in group] for group in [calls["here"][0], *calls["workers"]]]
    assert sorted(map(sorted, parts)) == [["backward"], ["forward", "stats"]]


def test_warmup_starts_no_worker_when_warm_or_single(monkeypatch):
    calls = _record_split(monkeypatch, lambda units: [])
    fastnorm.warmup(processes=2)
    assert calls["workers"] == [] and len(calls["here"]) == 1
    calls = _record_split(monkeypatch, lambda units: units)
    fastnorm.warmup(processes=1)
    assert calls["workers"] == [] and len(calls["here"]) == 1
    monkeypatch.setattr(runtime, "cache_dir", lambda: None)  # nothing to hand work over
    fastnorm.warmup(processes=2)
    assert calls["workers"] == []


def test_cold_units_are_none_once_cached():
    if runtime.cache_dir() is None:
        pytest.skip("kernels are not cached here")
    units = precompile._units(("float32",), ("NCHW",), ("instance_norm",), False, True, False)
    precompile.warm_units(units)
    assert precompile._cold_units(units) == []
    # float16 runs on the float32 kernels; layer norm's statistics on instance norm's
    units = precompile._units(("float16",), ("NHWC",), ("layer_norm",), False, True, False)
    assert all(u["part"] != "stats" for u in precompile._cold_units(units))


def test_workers_run_the_entry_on_their_payload(tmp_path):
    made = [str(tmp_path / "a"), str(tmp_path / "b")]
    workers = precompile.start_workers("os:makedirs", made)
    assert len(workers) == 2 and precompile.wait_workers(workers)
    assert all(os.path.isdir(path) for path in made)
    # a failing worker (the directory exists now) is reported, not raised
    assert not precompile.wait_workers(precompile.start_workers("os:makedirs", made[:1]))


def test_workers_need_a_python_interpreter(monkeypatch):
    assert precompile._is_python("/usr/bin/python3.11") and precompile._is_python("pypy3")
    for server in ("/usr/bin/uwsgi", "", None):
        monkeypatch.setattr(sys, "executable", server)
        assert precompile.start_workers("os:makedirs", ["never"]) == []
    assert not os.path.exists("never")


@pytest.mark.slow
def test_warmup_with_a_worker_fills_an_empty_cache(tmp_path):
    """End to end in a fresh process and cache: one unit compiled by a worker,
    one here, both then loaded here and both in the on-disk cache."""
    code = (
        "import fastnorm, json\n"
        "from fastnorm import precompile\n"
        "from fastnorm._kernels import rows\n"
        "units = precompile._units(\n"
        "    ('float32',), ('NCHW',), ('instance_norm',), False, True, False)\n"
        "cold = precompile._cold_units(units)\n"
        "fastnorm.warmup(layouts=('NCHW',), backward=False, processes=2)\n"
        "print(json.dumps([len(cold), precompile._cold_units(units),\n"
        "    len(rows.rows_forward.signatures), len(rows.rows_moments.signatures)]))\n"
    )
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    n_cold, cold_after, n_forward, n_moments = json.loads(done.stdout.splitlines()[-1])
    if n_cold == 0:
        pytest.skip("NUMBA_CACHE_DIR is not used here")
    assert n_cold == 2 and cold_after == []
    assert n_forward == 1 and n_moments == 1
