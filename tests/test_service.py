"""Service scenarios in subprocesses: concurrent threads, fork, cache locations, cold start.

Each scenario runs in its own Python process, so an abort (SIGABRT from a
threading layer, a dead forked child) fails one test instead of the run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import fastnorm

WORKERS = Path(__file__).with_name("_service_workers.py")
PACKAGE = Path(fastnorm.__file__).resolve().parent
LAYERS = [None, "workqueue"]


def _env(layer=None, **extra):
    env = dict(os.environ)
    env.pop("NUMBA_THREADING_LAYER", None)
    if layer:
        env["NUMBA_THREADING_LAYER"] = layer
    env.update(extra)
    return env


def _run(args, env, timeout=240, cwd=None):
    proc = subprocess.run(
        [sys.executable, str(WORKERS), *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-3000:]}"
    assert proc.stdout.rstrip().endswith("OK"), proc.stdout
    return proc


@pytest.mark.parametrize("layer", LAYERS, ids=lambda v: v or "default")
def test_eight_threads_bit_identical(layer):
    proc = _run(["threads", 8, 500], _env(layer))
    if layer:
        assert f"layer {layer}" in proc.stdout


@pytest.mark.parametrize("layer", LAYERS, ids=lambda v: v or "default")
def test_fork_after_parallel_calls(layer):
    _run(["fork"], _env(layer))


# --------------------------------------------------------------------------
# cache locations


def _copy_package(site: Path) -> None:
    shutil.copytree(PACKAGE, site / "fastnorm", ignore=shutil.ignore_patterns("__pycache__"))


def _run_read_only(readonly: Path, args, env, timeout=240):
    """Run a worker with ``readonly`` mounted read-only (root) or chmod'ed (others)."""
    cmd = [sys.executable, str(WORKERS), *map(str, args)]
    if os.geteuid() == 0:  # root ignores permissions: use a read-only bind mount
        if not shutil.which("unshare"):
            pytest.skip("running as root without unshare: cannot make a read-only dir")
        script = 'mount --bind -o ro "$0" "$0" && exec "$@"'
        cmd = ["unshare", "-m", "sh", "-c", script, str(readonly), *cmd]
    else:
        for path in [readonly, *readonly.rglob("*")]:
            if path.is_dir():
                path.chmod(0o555)
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    finally:
        for path in [readonly, *readonly.rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)
    if "mount" in proc.stderr and proc.returncode != 0 and "OK" not in proc.stdout:
        pytest.skip(f"cannot bind-mount read-only here: {proc.stderr.strip()[:200]}")
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-3000:]}"
    assert proc.stdout.rstrip().endswith("OK"), proc.stdout
    return proc


@pytest.mark.slow
def test_read_only_install_caches_per_user(tmp_path):
    ro = tmp_path / "ro"
    _copy_package(ro / "site")
    user_cache = tmp_path / "user-cache"
    env = _env(PYTHONPATH=str(ro / "site"), XDG_CACHE_HOME=str(user_cache))
    env.pop("NUMBA_CACHE_DIR", None)
    proc = _run_read_only(ro, ["cold"], env)
    assert f"cache {user_cache}" in proc.stdout  # the per-user dir, not the package
    assert list(user_cache.rglob("*.nbi")), "nothing cached in the per-user dir"
    assert not list((ro / "site").rglob("*.nbi"))


@pytest.mark.slow
def test_unwritable_cache_everywhere_is_not_an_error(tmp_path):
    ro = tmp_path / "ro"
    _copy_package(ro / "site")
    (ro / "cache").mkdir()
    (ro / "user-cache").mkdir()
    env = _env(
        PYTHONPATH=str(ro / "site"),
        NUMBA_CACHE_DIR=str(ro / "cache"),
        XDG_CACHE_HOME=str(ro / "user-cache"),
    )
    proc = _run_read_only(ro, ["cold"], env)
    assert "cache None" in proc.stdout
    assert not list(ro.rglob("*.nbi"))


@pytest.mark.slow
def test_eight_concurrent_cold_starts():
    with tempfile.TemporaryDirectory() as cache:
        env = _env(NUMBA_CACHE_DIR=cache)
        cmd = [sys.executable, str(WORKERS), "cold"]
        procs = [
            subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(8)
        ]
        results = [(*p.communicate(timeout=300), p.returncode) for p in procs]
        for out, err, code in results:
            assert code == 0, err.decode()[-3000:]
            assert out.decode().rstrip().endswith("OK")
        # a second process loads what the eight wrote and is still right
        _run(["cold"], env)
