"""In-process tests of fastnorm.runtime: thread count, layer, call_parallel, memory."""

from __future__ import annotations

import gc
import threading
import weakref

import numpy as np
import pytest

import fastnorm
from fastnorm import _kernels as K
from fastnorm import runtime

PARALLEL_SHAPE = (2, 4, 96, 96)  # above functional.SERIAL_MAX_ELEMENTS


@pytest.fixture
def restore_threads():
    yield
    fastnorm.set_num_threads(None)


def test_public_names():
    for name in ("set_num_threads", "get_num_threads", "warmup", "threading_layer"):
        assert name in fastnorm.__all__
        assert callable(getattr(fastnorm, name))


def test_threading_layer_is_known():
    assert fastnorm.threading_layer() in ("omp", "tbb", "workqueue", None)


def test_kernels_release_the_gil():
    for name in K.__all__:
        kernel = getattr(K, name)
        if hasattr(kernel, "targetoptions"):
            assert kernel.targetoptions.get("nogil") is True, name


@pytest.mark.parametrize("axis, shape", [(1, PARALLEL_SHAPE), (-1, (2, 48, 48, 16))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_thread_count_gives_identical_bits(rng, restore_threads, axis, shape, dtype):
    x = (rng.standard_normal(shape) * 5 + 3).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    results = []
    for n in (1, 2):
        fastnorm.set_num_threads(n)
        assert fastnorm.get_num_threads() == n
        y = fastnorm.instance_norm(x, axis=axis)
        dx, dg, db = fastnorm.instance_norm_backward(dy, x, axis=axis)
        mean, invstd = fastnorm.instance_norm_stats(x, axis=axis)
        results.append((y, dx, dg, db, mean, invstd))
    for a, b in zip(*results, strict=True):
        np.testing.assert_array_equal(a, b)


def test_set_num_threads_is_process_wide(restore_threads):
    fastnorm.set_num_threads(1)
    seen = []
    t = threading.Thread(target=lambda: seen.append(fastnorm.get_num_threads()))
    t.start()
    t.join()
    assert seen == [1]


def test_set_num_threads_applies_in_every_thread(restore_threads, monkeypatch):
    import numba

    calls = []
    monkeypatch.setattr(numba, "set_num_threads", lambda n: calls.append(n))
    fastnorm.set_num_threads(2)
    x = np.ones(PARALLEL_SHAPE, np.float32)
    t = threading.Thread(target=lambda: fastnorm.instance_norm_stats(x))
    t.start()
    t.join()
    assert 2 in calls


@pytest.mark.parametrize("bad", [0, -1, 10**6])
def test_set_num_threads_rejects_out_of_range(bad):
    with pytest.raises(ValueError, match="NUMBA_NUM_THREADS"):
        fastnorm.set_num_threads(bad)


@pytest.mark.parametrize("bad", [1.5, "2", True])
def test_set_num_threads_rejects_non_int(bad):
    with pytest.raises(TypeError):
        fastnorm.set_num_threads(bad)


def test_busy_parallel_section_runs_serial_twin():
    calls = []
    with runtime._lock:  # another thread is in the parallel section
        out = runtime.call_parallel(lambda: calls.append("p"), lambda: calls.append("s"))
    assert calls == ["s"] and out is None
    runtime.call_parallel(lambda: calls.append("p"), lambda: calls.append("s"))
    assert calls == ["s", "p"]


@pytest.mark.parametrize(
    "shape, axis",
    [
        ((2, 8, 64, 64), 1),  # rows family, one part per slice
        ((64, 128, 4, 4), 1),  # rows family, groups of short slices
        ((1, 2, 300, 500), 1),  # rows family, slices split into parts
        ((2, 96, 96, 32), -1),  # columns family, samples split into parts
        ((2, 256, 256, 3), -1),  # columns family, rows folded, split into parts
    ],
)
@pytest.mark.parametrize("op", ["forward", "backward", "moments", "grad_sums"])
def test_serial_twin_matches_parallel_kernel(rng, shape, axis, op):
    # A busy or forked caller runs the twin: it must give the very same bits.
    F = fastnorm.functional
    x = (3.0 + rng.standard_normal(shape)).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    lay = F.layout_of(x, axis)
    xf, dyf = F.flat_view(x, x.dtype), F.flat_view(dy, dy.dtype)
    serial, parallel = lay.kernels[op]
    gamma, beta = np.full(lay.C, 1.5, np.float32), np.full(lay.C, 0.25, np.float32)
    results = []
    for kernel in (serial, parallel):
        stats = np.zeros((K.STATS_COLUMNS, lay.N * lay.C))
        out = np.empty(x.size, np.float32)
        dims = lay.dims
        if op == "forward":
            kernel(xf, out, *dims, gamma, beta, 1e-5, stats, 0)
        elif op == "backward":
            kernel(dyf, xf, out, *dims, gamma, 1e-5, stats, 0)
        elif op == "moments":
            kernel(xf, *dims, 1e-5, stats)
        else:
            stats[K.MEAN] = 3.0
            kernel(dyf, xf, *dims, stats)
        results.append((stats, out if op in ("forward", "backward") else None))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    if results[0][1] is not None:
        np.testing.assert_array_equal(results[0][1], results[1][1])


def _rss():
    psutil = pytest.importorskip("psutil")
    gc.collect()
    return psutil.Process().memory_info().rss


@pytest.mark.parametrize("shape", [(1, 4, 16, 16), PARALLEL_SHAPE])
def test_forward_with_out_does_not_grow_memory(rng, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    out = np.empty_like(x)
    g = np.ones(shape[1], np.float32)
    for _ in range(200):  # warm every allocator pool first
        fastnorm.instance_norm(x, g, g, out=out)
    before = _rss()
    calls = 2000
    for _ in range(calls):
        fastnorm.instance_norm(x, g, g, out=out)
    grown = _rss() - before
    # 100 bytes per call would be 10 MB per 100,000 calls
    assert grown < 256 * 1024 + 100 * calls, grown


def test_layer_in_inference_holds_no_arrays(rng):
    layer_mod = pytest.importorskip("fastnorm.layers")
    cls = getattr(layer_mod, "InstanceNorm", None)
    if cls is None:
        pytest.skip("fastnorm.layers has no InstanceNorm yet")
    layer = cls()
    if hasattr(layer, "initialize"):
        layer.initialize()
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    y = layer(x)
    refs = [weakref.ref(x), weakref.ref(y)]
    del x, y
    gc.collect()
    assert [r() for r in refs] == [None, None]


# --------------------------------------------------------------------------
# cache freshness


def test_cache_stamp_covers_every_kernel_source(tmp_path):
    # A kernel's cached code includes the helpers it calls from other files,
    # so every entry's stamp must change when any kernel source changes.
    import os
    import shutil

    from fastnorm._kernels import columns, common, rows, table

    kernels_dir = os.path.dirname(rows.__file__)
    want = runtime._kernel_sources_hash(kernels_dir)
    for kernel in (rows.rows_forward, columns.columns_backward, common.block_moments):
        if isinstance(kernel._cache, runtime.caching.NullCache):
            pytest.skip("kernels are not cached here")
        assert kernel._cache._cache_file._source_stamp[1] == want
    assert table.fill_given_stats._cache._cache_file._source_stamp[1] == want

    # The hash sees a change of content in any file, not only its own.
    copy = tmp_path / "_kernels"
    copy.mkdir()
    for name in os.listdir(kernels_dir):
        if name.endswith(".py"):
            shutil.copyfile(os.path.join(kernels_dir, name), copy / name)
    assert runtime._kernel_sources_hash(str(copy)) == want
    with open(copy / "common.py", "a") as f:
        f.write("\n# edited\n")
    assert runtime._kernel_sources_hash(str(copy)) != want


def test_read_only_parameters_compile_no_second_specialization():
    # Parameters reach the kernels as writable C arrays of the compute dtype:
    # a read-only gamma (a NumPy view of a torch tensor, np.frombuffer) would
    # otherwise compile every kernel it meets a second time.
    from fastnorm._kernels import affine, rows

    x = np.ones((4, 300), np.float32)
    g = np.ones(300, np.float32)
    g.flags.writeable = False
    c = np.ones(4, np.float32)
    c.flags.writeable = False
    fastnorm.layer_norm(x, g, g)
    fastnorm.layer_norm(x, np.ones(300, np.float32))
    fastnorm.instance_norm(x[None], c, c)
    fastnorm.instance_norm(x[None], np.ones(4, np.float32))
    # (kernel, position of gamma in its arguments)
    for kernel, at in ((affine.affine_rows_forward_serial, 4), (rows.rows_forward_serial, 7)):
        assert {sig[at].mutable for sig in kernel.signatures} == {True}, kernel.signatures


def test_statistics_kernel_called_by_forward_and_backward_compiles_once():
    # The forward and backward kernels call their family's statistics kernel
    # (NHWC: on a slice of x per wave of samples, through a wave table): one
    # specialization serves them and the *_stats functions, and the
    # statistics a forward returns are those of *_stats, bit for bit.
    from fastnorm._kernels import affine, columns, rows

    rng = np.random.default_rng(3)
    cases = (
        ((3, 700, 300, 4), -1, columns.columns_moments),  # several samples per wave, parts
        ((2, 4, 700, 300), 1, rows.rows_moments),  # slices in several parts
    )
    for shape, axis, kernel in cases:
        x = rng.standard_normal(shape).astype(np.float32) + 100
        y, mean, invstd = fastnorm.group_norm(x, 2, axis=axis, return_stats=True)
        want_mean, want_invstd = fastnorm.group_norm_stats(x, 2, axis=axis)
        assert np.array_equal(mean, want_mean) and np.array_equal(invstd, want_invstd)
        assert np.array_equal(y, fastnorm.group_norm(x, 2, axis=axis, out=np.empty_like(x)))
        fastnorm.group_norm_backward(x, x, 2, axis=axis)
        _one_specialization_per_dtype(kernel)
    x = rng.standard_normal((3, 200000)).astype(np.float32)  # long rows: layer norm by parts
    fastnorm.layer_norm(x)
    fastnorm.layer_norm_backward(x, x)
    fastnorm.layer_norm_stats(x)
    _one_specialization_per_dtype(rows.rows_moments)
    assert affine.affine_rows_forward.signatures


def _one_specialization_per_dtype(kernel):
    """Other tests of the session may have compiled other dtypes: one each."""
    dtypes = [sig[0].dtype for sig in kernel.signatures]
    assert np.dtype(np.float32) in [np.dtype(str(d)) for d in dtypes]
    assert len(dtypes) == len(set(dtypes)), kernel.signatures
