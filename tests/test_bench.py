"""Smoke tests of ``python -m fastnorm.bench`` (tiny shapes, few rounds)."""

import json
import subprocess
import sys

import pytest

from fastnorm import bench

QUICK = ["--quick", "--repeat", "2"]


def test_help_runs_as_a_module():
    proc = subprocess.run(
        [sys.executable, "-m", "fastnorm.bench", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0
    assert "--concurrency" in proc.stdout and "--shapes" in proc.stdout


def test_import_does_not_import_peers():
    code = "import sys, fastnorm.bench; print('torch' in sys.modules, 'onnxruntime' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == ["False", "False"]


def test_parse_cases():
    cases = bench.parse_cases("A,F,B64,2x3x4:-1@float64", dtypes=None)
    assert [(c.shape, c.axis, str(c.dtype), c.layout) for c in cases] == [
        ((1, 64, 256, 256), 1, "float32", "NCHW"),
        ((8, 128, 128, 32), -1, "float32", "NHWC"),
        ((8, 32, 128, 128), 1, "float64", "NCHW"),
        ((2, 3, 4), -1, "float64", "NLC"),
    ]
    assert len(bench.parse_cases("C", dtypes="float32,float64")) == 2
    with pytest.raises(ValueError, match="bad shape"):
        bench.parse_cases("Z")


def test_quick_table_and_json(tmp_path, capsys):
    path = tmp_path / "out.json"
    assert bench.main([*QUICK, "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "fwd out=" in out and "floor" in out and "fastnorm" in out and "numpy" in out
    report = json.loads(path.read_text())
    assert len(report["cases"]) == 3
    for record in report["cases"]:
        results = record["results"]
        assert results["fastnorm"]["match"] and results["numpy"]["match"]
        for op in ("forward", "fresh", "backward"):
            assert results["fastnorm"][op]["seconds"] > 0
            assert results["fastnorm"][op]["ratio"] > 0
        assert results["floor"]["forward"]["ratio"] == pytest.approx(1.0)


def test_missing_peers_are_skipped(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert bench.main([*QUICK, "--shapes", "2x4x8x8"]) == 0
    out = capsys.readouterr().out
    assert "skipped torch: not installed" in out
    assert "skipped onnxruntime: not installed" in out


def test_concurrency_quick(tmp_path, capsys):
    path = tmp_path / "c.json"
    assert bench.main(["--concurrency", "2", *QUICK, "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "concurrent / sequential" in out
    result = json.loads(path.read_text())["concurrency"]
    assert result["threads"] == 2 and result["identical"]
    assert result["sequential_calls_per_s"] > 0 and result["concurrent_calls_per_s"] > 0


def test_compile_ahead_splits_kernel_sets_between_processes(monkeypatch):
    cases = bench.parse_cases("2x8x16x16,2x8x8x16:-1,2x8x16x16@float64,4x8x16x16")
    groups = bench.compile_ahead(cases, processes=2)
    if not groups:
        pytest.skip("kernels are not cached here, or a single core")
    assert sorted(key for group in groups for key in group) == [
        ("float32", "channels_first"),
        ("float32", "channels_last"),
        ("float64", "channels_first"),
    ]
    # The costly channels-last set gets a worker of its own.
    assert [("float32", "channels_last")] in groups

    from fastnorm import runtime

    monkeypatch.setattr(runtime, "cache_dir", lambda: None)
    assert bench.compile_ahead(cases, processes=2) == []
