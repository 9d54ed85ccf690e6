"""Tests of ``python -m fastnorm.bench`` (tiny shapes, few rounds) and its parts."""

import json
import subprocess
import sys
import types

import numpy as np
import pytest

import fastnorm
from fastnorm import bench
from fastnorm.bench import peers, run

QUICK = ["--quick", "--repeat", "2"]


def _library(name):
    (lib,) = (lib for lib in bench.LIBRARIES if lib.name == name)
    return lib


def _needs(op):
    """Skip until the lead's functional API of ``op`` exists."""
    if not hasattr(fastnorm, f"{op}_norm"):
        pytest.skip(f"fastnorm.{op}_norm is not available yet")


def test_help_runs_as_a_module():
    proc = subprocess.run(
        [sys.executable, "-m", "fastnorm.bench", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0
    for flag in ("--concurrency", "--shapes", "--op", "--groups", "--plot", "--models"):
        assert flag in proc.stdout


def test_import_does_not_import_peers():
    code = (
        "import sys, fastnorm.bench; "
        "print(*(m in sys.modules for m in ('torch', 'onnxruntime', 'matplotlib')))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == ["False", "False", "False"]


def test_parse_cases():
    cases = bench.parse_cases("A,F,B64,2x3x4:-1@float64", dtypes=None)
    assert [(c.shape, c.axis, str(c.dtype), c.layout) for c in cases] == [
        ((1, 64, 256, 256), 1, "float32", "NCHW"),
        ((8, 128, 128, 32), -1, "float32", "NHWC"),
        ((8, 32, 128, 128), 1, "float64", "NCHW"),
        ((2, 3, 4), -1, "float64", "NLC"),
    ]
    assert {c.op for c in cases} == {"instance"}
    assert len(bench.parse_cases("C", dtypes="float32,float64")) == 2
    with pytest.raises(ValueError, match="bad shape"):
        bench.parse_cases("Z")


def test_parse_named_cases_of_every_op():
    u, u_last, t, cf, cf_last = bench.parse_cases("U320,U320:-1,T768@float64,CF,CF:-1")
    assert (u.op, u.shape, u.axis, u.groups, u.layout) == ("group", (1, 320, 64, 64), 1, 32, "NCHW")
    # ':AXIS' on a name moves its channel dimension there: U320 channels-last
    assert (u_last.shape, u_last.axis, u_last.layout) == ((1, 64, 64, 320), -1, "NHWC")
    assert (t.op, t.shape, t.axis, str(t.dtype), t.layout) == (
        "layer",
        (4096, 768),
        -1,
        "float64",
        "last axis",
    )
    assert (cf.shape, cf.axis, cf.layout) == ((8, 96, 56, 56), 1, "NCHW axis=1")
    assert (cf_last.shape, cf_last.axis) == ((8, 56, 56, 96), -1)
    assert t.groups is None and t.title == "layer norm" and u.title == "group norm, 32 groups"


def test_parse_raw_shapes_take_the_op():
    inst, group, layer = bench.parse_cases("2x64x4x4", op="all", groups=8)
    assert (inst.op, inst.axis) == ("instance", 1)
    assert (group.op, group.axis, group.groups) == ("group", 1, 8)
    assert (layer.op, layer.axis) == ("layer", -1)  # layer norm's own default axis
    (layer1,) = bench.parse_cases("2x64x4x4", op="layer", axis=1)
    assert layer1.axis == 1 and layer1.channels == 64


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        ("2x65x4x4", {"op": "group"}, "groups=32 for 65 channels"),
        ("2x64x4x4", {"op": "batch"}, "op='batch'"),
        ("A:7", {}, "bad axis in 'A:7'"),
        ("2x4x4:5", {}, "axis=5 of shape 2x4x4"),
        ("U320@floatx", {}, "bad dtype"),
        ("C", {"dtypes": "float16"}, "expected float32 or float64"),
        ("2x3x:1", {}, "bad shape"),
    ],
)
def test_parse_errors_name_the_value(text, kwargs, message):
    with pytest.raises(ValueError, match=message):
        bench.parse_cases(text, **kwargs)


def test_default_tables():
    default = bench.default_cases()
    assert [c.op for c in default] == ["instance"] * 8 + ["group"] * 8 + ["layer"] * 5
    group = [c for c in default if c.op == "group"]
    assert {c.layout for c in group} == {"NCHW", "NHWC"} and {c.groups for c in group} == {32}
    assert [c.shape for c in bench.default_cases("layer")] == [
        (4096, 768),
        (1024, 4096),
        (16384, 1024),
        (8, 197, 768),
        (8, 96, 56, 56),
    ]
    names = [name for table in bench.TABLES.values() for name in table]
    assert len(names) == len(set(names))  # a name says its op
    quick = bench.default_cases(quick=True)
    assert {c.op for c in quick} == set(bench.OPS)
    assert max(c.nbytes for c in quick) < 2**16


def test_checked_samples_bound_the_reference_work():
    cases = bench.parse_cases("T1024,A,R128,C")
    assert [run.checked_samples(c) for c in cases] == [1024, 1, 2, 1]
    # Layer norm over axis 0 mixes the samples: every one is checked.
    (across,) = bench.parse_cases("4096x8:0", op="layer")
    assert run.checked_samples(across) == 4096


def test_offset_inputs():
    case = bench.parse_cases("2x8x4x4")[0]
    inp = bench.make_inputs(case, offset=1e4)
    assert abs(inp.x.mean() - 1e4) < 0.5 and 0.5 < inp.x.std() < 2
    assert inp.x.dtype == np.float32 and inp.gamma.shape == (8,)


@pytest.mark.parametrize(
    "text",
    [
        "2x8x4x4",
        "2x4x4x8:-1",
        "2x8x2x3x4@float64",
        "2x16x4x4/group",
        "2x4x4x16:-1/group",
        "6x24/layer",
        "2x3x24/layer",
        "2x8x4x4:1/layer",
    ],
)
def test_numpy_twin_matches_the_reference(text):
    """The NumPy baseline's views and gradient are right for every op (gamma varies in groups)."""
    shape, _, op = text.partition("/")
    case = bench.parse_cases(shape, op=op or "instance", groups=4)[0]
    inp = bench.make_inputs(case)
    y_ref, dx_ref = bench.reference_results(case, inp)
    y, dx = peers._numpy_calls(case, inp, 1).results()
    tol = 1e-4 if case.dtype == np.float32 else 1e-10
    np.testing.assert_allclose(y, y_ref, atol=tol)
    np.testing.assert_allclose(dx, dx_ref, atol=tol)


def test_interleave_rounds_and_untimed_calls():
    """Each sample follows an untimed call, except for calls too long to need one."""
    import time

    counts = {"fast": 0, "slow": 0}

    def fast():
        counts["fast"] += 1

    def slow():
        counts["slow"] += 1
        time.sleep(bench.timing.LONG_CALL * 1.2)

    times = bench.interleave({"fast": fast, "slow": slow}, rounds=2, min_time=1e-4)
    assert [len(t) for t in times.values()] == [2, 2]
    assert min(times["slow"]) >= bench.timing.LONG_CALL
    assert counts["slow"] == 2 + 2  # calibration, then one timed call per round
    number = (counts["fast"] - 2) // 2 - 1
    assert number >= 1 and counts["fast"] == 2 + 2 * (1 + number)


def _times(**medians):
    """Three rounds per key ('lib path' -> median seconds)."""
    return {tuple(k.split("_")): [v * 0.9, v, v * 1.2] for k, v in medians.items()}


def test_fastest_peer_is_the_fastest_path_of_any_peer():
    times = _times(
        floor_forward=0.1,  # the floor and the NumPy baseline are not peers
        numpy_fresh=0.2,
        fastnorm_forward=2.0,
        fastnorm_fresh=1.6,  # ours: the faster of our two paths
        torch_fresh=4.0,
        torchgn_fresh=1.0,  # the fastest peer path, faster than ours
        fastnorm_backward=1.0,
        torch_backward=3.0,
        torchgn_backward=2.5,
    )
    best = run.fastest_peer(times)
    assert best["forward"] == {
        "peer": "torchgn",
        "peer_path": "fresh",
        "path": "fresh",
        "speedup": pytest.approx(1.0 / 1.6),
    }
    assert best["backward"]["peer"] == "torchgn" and best["backward"]["speedup"] == 2.5
    assert "(slower)" in bench.report.peer_speedups({"vs_fastest_peer": best})
    # No peer ran: no claim at all.
    assert run.fastest_peer(_times(fastnorm_forward=1.0, numpy_forward=9.0)) == {}


def test_quick_table_and_json(tmp_path, capsys):
    path = tmp_path / "out.json"
    assert bench.main([*QUICK, "--op", "instance", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "fwd out=" in out and "floor" in out and "fastnorm" in out and "numpy" in out
    assert "instance norm" in out and "err 1e4+" in out
    report = json.loads(path.read_text())
    assert len(report["cases"]) == 3
    for record in report["cases"]:
        results = record["results"]
        assert record["op"] == "instance"
        assert results["fastnorm"]["match"] and results["numpy"]["match"]
        for op in ("forward", "fresh", "backward"):
            assert results["fastnorm"][op]["seconds"] > 0
            assert results["fastnorm"][op]["ratio"] > 0
        assert results["floor"]["forward"]["ratio"] == pytest.approx(1.0)
        # Float64 statistics: exact at a 1e4 offset, where float32 sums are not.
        errors = results["fastnorm"]["offset_error"]
        assert errors["y"] < 1e-5 and errors["dx"] < 1e-5
        if record["dtype"] == "float32":
            assert results["numpy"]["offset_error"]["y"] > 100 * errors["y"]
        if "torch" in results:
            assert "torch-gn" in results and "forward" in record["vs_fastest_peer"]


def test_quick_group_table(tmp_path, capsys):
    _needs("group")
    path = tmp_path / "group.json"
    assert bench.main([*QUICK, "--op", "group", "--groups", "4", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "group norm, 4 groups" in out and "NHWC" in out
    for record in json.loads(path.read_text())["cases"]:
        assert record["op"] == "group" and record["groups"] == 4
        assert record["results"]["fastnorm"]["match"]
        assert record["results"]["fastnorm"]["offset_error"]["y"] < 1e-5


def test_quick_layer_table(tmp_path, capsys):
    _needs("layer")
    path = tmp_path / "layer.json"
    assert bench.main([*QUICK, "--op", "layer", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "layer norm" in out and "NCHW axis=1" in out
    for record in json.loads(path.read_text())["cases"]:
        assert record["results"]["fastnorm"]["match"]
        assert record["results"]["fastnorm"]["offset_error"]["y"] < 1e-5


def test_torch_peers_channels_last_and_results():
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    seen = []
    real = F.group_norm

    def spy(x, *args, **kwargs):
        seen.append(x.is_contiguous(memory_format=torch.channels_last))
        return real(x, *args, **kwargs)

    case = bench.parse_cases("2x8x6x8:-1")[0]
    inp = bench.make_inputs(case)
    y_ref, dx_ref = bench.reference_results(case, inp)
    F.group_norm = spy
    try:
        calls = _library("torch-gn").prepare(case, inp, 1)
        y, dx = calls.results()
    finally:
        F.group_norm = real
    assert seen and all(seen)  # NHWC data reaches group_norm as channels_last
    np.testing.assert_allclose(y, y_ref, atol=1e-4)
    np.testing.assert_allclose(dx, dx_ref, atol=1e-4)
    assert calls.forward is None and calls.note is None


def test_torch_layer_norm_over_a_middle_axis_is_noted():
    pytest.importorskip("torch")
    small = bench.Case("cf", (2, 8, 3, 5), 1, np.dtype(np.float32), "layer")
    inp = bench.make_inputs(small)
    calls = _library("torch").prepare(small, inp, 1)
    assert "permuted" in calls.note
    y_ref, dx_ref = bench.reference_results(small, inp)
    y, dx = calls.results()
    np.testing.assert_allclose(y, y_ref, atol=1e-4)
    np.testing.assert_allclose(dx, dx_ref, atol=1e-4)


def test_run_case_records_peers_per_op(monkeypatch):
    """Libraries run only the ops they implement; every record says its op."""
    monkeypatch.setattr(run, "CHECK_ELEMENTS", 200)  # one sample of 128 is checked
    case = bench.parse_cases("3x8x4x4")[0]
    libraries = [_library("fastnorm"), _library("numpy")]
    fake = bench.Library("fake", lambda c, i, t: "n/a (test)", None, ("group",))
    record = bench.run_case(case, [*libraries, fake], 1, 2, 1e-4, lambda message: None)
    assert record["op"] == "instance" and "fake" not in record["unavailable"]
    assert set(record["results"]) == {"floor", "parallel floor", "fastnorm", "numpy"}
    assert record["results"]["parallel floor"]["forward"]["ratio"] > 0
    assert record["vs_fastest_peer"] == {}  # NumPy and the parallel floor are no peers
    assert record["checked_samples"] == 1
    assert record["results"]["fastnorm"]["match"] and record["results"]["numpy"]["match"]
    # A wrong value in a checked sample is flagged.
    broken = bench.Library("broken", _broken_calls, None, ("instance",))
    record = bench.run_case(case, [broken], 1, 2, 1e-4, lambda message: None)
    assert not record["results"]["broken"]["match"]


def _broken_calls(case, inp, threads):
    """fastnorm's calls with the first sample of y shifted by 1."""
    calls = peers._fastnorm_calls(case, inp, threads)
    results = calls.results

    def shifted():
        y, dx = results()
        y[0] += 1
        return y, dx

    calls.results = shifted
    return calls


def test_missing_peers_are_skipped(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert bench.main([*QUICK, "--shapes", "2x4x8x8"]) == 0
    out = capsys.readouterr().out
    assert "skipped torch: not installed" in out
    assert "skipped torch-gn: not installed" in out
    assert "skipped onnxruntime: not installed" in out


def test_plot_writes_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "bench.png"
    assert bench.main([*QUICK, "--shapes", "2x4x8x8", "--plot", str(path)]) == 0
    assert f"plot: {path}" in capsys.readouterr().out
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_is_a_clear_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(SystemExit) as exc:
        bench.main([*QUICK, "--plot", str(tmp_path / "x.png")])
    assert exc.value.code == 2
    assert "pip install 'fastnorm[plot]'" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_models_delegates_the_remaining_arguments(monkeypatch):
    received = []
    fake = types.ModuleType("fastnorm.bench.models")
    fake.main = lambda argv=None: received.append(argv) or 7
    monkeypatch.setitem(sys.modules, "fastnorm.bench.models", fake)
    assert bench.main(["--models", "--quick", "--json", "m.json"]) == 7
    assert received == [["--quick", "--json", "m.json"]]


def test_models_missing_or_misplaced_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "fastnorm.bench.models", None)
    with pytest.raises(SystemExit):
        bench.main(["--models"])
    assert "fastnorm.bench.models is not part of this installation" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--quick", "--models"])
    assert "--models must come first" in capsys.readouterr().err


def test_concurrency_quick(tmp_path, capsys):
    path = tmp_path / "c.json"
    assert bench.main(["--concurrency", "2", *QUICK, "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "concurrent / sequential" in out
    result = json.loads(path.read_text())["concurrency"]
    assert result["threads"] == 2 and result["identical"]
    assert result["sequential_calls_per_s"] > 0 and result["concurrent_calls_per_s"] > 0


def test_kernel_sets():
    sets = [bench.run.kernel_set(c) for c in bench.parse_cases("A,F,B64,U320,U320:-1,T768,CF")]
    assert sets == [
        ("float32", "rows"),
        ("float32", "columns"),
        ("float64", "rows"),
        ("float32", "rows"),  # group norm shares instance norm's kernels
        ("float32", "columns"),
        ("float32", "affine rows"),
        ("float32", "affine columns"),
    ]


def test_compile_ahead_splits_kernel_sets_between_processes(monkeypatch):
    cases = bench.parse_cases("2x8x16x16,2x8x8x16:-1,2x8x16x16@float64,4x8x16x16")
    groups = bench.compile_ahead(cases, processes=2)
    if not groups:
        pytest.skip("kernels are not cached here, or a single core")
    assert sorted(key for group in groups for key in group) == [
        ("float32", "columns"),
        ("float32", "rows"),
        ("float64", "rows"),
    ]
    # The costly channels-last set gets a worker of its own.
    assert [("float32", "columns")] in groups

    from fastnorm import runtime

    monkeypatch.setattr(runtime, "cache_dir", lambda: None)
    assert bench.compile_ahead(cases, processes=2) == []


def test_warm_takes_the_specs_compile_ahead_passes():
    """A compile worker rebuilds each case from its JSON spec and runs its calls."""
    _needs("layer")
    cases = bench.parse_cases("2x8x4x4,2x4x4x16:-1@float64", op="group", groups=4)
    cases += bench.parse_cases("6x24,2x8x4x4:1", op="layer") + bench.parse_cases("C")
    specs = json.loads(json.dumps([run.case_spec(case) for case in cases]))
    assert [run.case_from_spec(spec) for spec in specs] == cases
    run.warm(specs[:-1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [0, 1, 7, 4099])
def test_parallel_floor_copies_and_adds(dtype, size):
    rng = np.random.default_rng(size)
    x = rng.standard_normal(size).astype(dtype)
    dy = rng.standard_normal(size).astype(dtype)
    out = np.full(size, np.nan, dtype)
    forward, backward = bench.floors.parallel_floor_calls(x, dy, out, 2)
    forward()
    np.testing.assert_array_equal(out, x)
    backward()
    np.testing.assert_array_equal(out, dy + x)


def test_parallel_floor_only_for_contiguous_compiled_dtypes():
    x = np.zeros((4, 6), np.float32)
    assert bench.floors.parallel_floor_calls(x, x, np.empty_like(x), 2) is not None
    assert bench.floors.parallel_floor_calls(x.T, x.T, np.empty_like(x.T), 2) is None
    half = x.astype(np.float16)
    assert bench.floors.parallel_floor_calls(half, half, np.empty_like(half), 2) is None
