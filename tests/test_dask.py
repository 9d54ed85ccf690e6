"""fastnorm.dask against the in-memory API, on a real cluster and on threads."""

from __future__ import annotations

import logging
import subprocess
import sys

import numpy as np
import pytest

import fastnorm

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import fastnorm.dask as fd  # noqa: E402  (after the importorskip guards)

ATOL = {np.float32: 1e-6, np.float64: 1e-12, np.float16: 1e-3}

# (shape, axis, chunks): samples, channels, tiles, time, volumes, mixed.
CASES = {
    "nchw-samples": ((6, 3, 16, 20), 1, (2, 3, 16, 20)),
    "nchw-channels": ((2, 8, 16, 20), 1, (2, 3, 16, 20)),
    "nchw-tiles": ((2, 3, 33, 40), 1, (2, 3, 10, 16)),
    "nchw-all": ((5, 7, 19, 23), 1, (2, 3, 7, 9)),
    "nhwc-tiles": ((3, 17, 21, 5), -1, (2, 6, 8, 2)),
    "nhwc-whole": ((4, 12, 10, 6), -1, (1, 12, 10, 3)),
    "ncl-time": ((3, 4, 1000), 1, (2, 4, 128)),
    "nlc-time": ((3, 1000, 4), 2, (3, 300, 4)),
    "ncdhw-depth": ((2, 3, 9, 10, 11), 1, (1, 2, 4, 10, 11)),
    "ndchw-mid": ((2, 5, 3, 8, 9), 2, (2, 2, 3, 4, 9)),
}


def _data(shape, dtype=np.float32, offset=0.0, seed=0):
    rng = np.random.default_rng(seed)
    return (offset + rng.standard_normal(shape) * 2.0).astype(dtype)


def _params(C, dtype=np.float32, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(C).astype(dtype), rng.standard_normal(C).astype(dtype)


@pytest.fixture(scope="module")
def client():
    # Worker processes start slowly: one cluster for the whole module.
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",  # any free port: other clusters may run
            silence_logs=logging.ERROR,
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


def _compute_on(where, client, *arrays):
    if where == "cluster":
        return client.compute(list(arrays), sync=True)
    return list(dask.compute(*arrays, scheduler="threads"))


# --------------------------------------------------------------------------
# forward


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("where", ["cluster", "threads"])
def test_forward_matches_core(name, where, client):
    shape, axis, chunks = CASES[name]
    x = _data(shape, offset=3.0)
    g, b = _params(shape[axis])
    y = fd.instance_norm(da.from_array(x, chunks=chunks), g, b, axis=axis)
    assert isinstance(y, da.Array)
    assert y.shape == x.shape and y.dtype == x.dtype and y.chunks == da.from_array(x, chunks).chunks
    (got,) = _compute_on(where, client, y)
    np.testing.assert_allclose(got, fastnorm.instance_norm(x, g, b, axis=axis), rtol=0, atol=1e-6)


@pytest.mark.parametrize("chunks", [(2, 3, 16, 16), (1, 2, 64, 8), (2, 3, 64, 64)])
def test_large_offset_float32(chunks, client):
    # 1e6 + randn: a naive sum/sum-of-squares merge in float32 loses all digits.
    x = _data((2, 3, 64, 64), offset=1e6, seed=5)
    g, b = _params(3)
    y = fd.instance_norm(da.from_array(x, chunks=chunks), g, b)
    (got,) = _compute_on("cluster", client, y)
    ref = fastnorm.instance_norm(x, g, b)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6)
    assert abs(float(got.std()) - 1.0) < 0.5  # really normalized, not flattened


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_other_dtypes(dtype):
    x = _data((3, 4, 20, 30), dtype=dtype, offset=1.0)
    g, b = _params(4, dtype=dtype)
    got = fd.instance_norm(da.from_array(x, chunks=(2, 3, 7, 11)), g, b).compute()
    assert got.dtype == dtype
    np.testing.assert_allclose(
        got.astype(np.float64), fastnorm.instance_norm(x, g, b), rtol=0, atol=ATOL[dtype]
    )


def test_gamma_beta_dask_with_mismatched_chunks(client):
    x = _data((3, 10, 12, 14))
    g, b = _params(10, dtype=np.float64)  # rounded through float32 like the core
    X = da.from_array(x, chunks=(2, 4, 5, 14))
    y = fd.instance_norm(X, da.from_array(g, chunks=3), da.from_array(b, chunks=(7, 3)))
    assert y.chunks == X.chunks  # gamma/beta follow x, never the other way round
    (got,) = _compute_on("cluster", client, y)
    np.testing.assert_allclose(got, fastnorm.instance_norm(x, g, b), rtol=0, atol=1e-6)


def test_unchunked_reduced_axes_is_one_task_per_block():
    X = da.from_array(_data((4, 6, 8, 8)), chunks=(1, 2, 8, 8))
    y = fd.instance_norm(X)
    graph = dict(y.__dask_graph__())
    assert not any("moments" in str(k) for k in graph)
    tiled = fd.instance_norm(X.rechunk((1, 2, 4, 8)))
    assert any("moments" in str(k) for k in dict(tiled.__dask_graph__()))


def test_numpy_input_and_list_gamma():
    x = _data((2, 3, 5, 6))
    got = fd.instance_norm(x, [1.0, 2.0, 3.0], None).compute()
    np.testing.assert_allclose(got, fastnorm.instance_norm(x, [1.0, 2.0, 3.0]), atol=1e-6)


def test_empty_and_zero_length_chunks():
    x = _data((2, 3, 0, 4))
    got = fd.instance_norm(da.from_array(x, chunks=(1, 2, 1, 2))).compute()
    assert got.shape == x.shape
    x = _data((2, 3, 6, 4))
    X = da.from_array(x, chunks=((1, 1), (3,), (2, 0, 4), (4,)))
    np.testing.assert_allclose(X.compute(), x)
    np.testing.assert_allclose(
        fd.instance_norm(X).compute(), fastnorm.instance_norm(x), rtol=0, atol=1e-6
    )


def test_constant_slice_gives_beta():
    x = np.full((2, 2, 8, 8), 7.25, np.float32)
    b = np.array([0.5, -1.0], np.float32)
    got = fd.instance_norm(da.from_array(x, chunks=(1, 1, 3, 5)), None, b).compute()
    np.testing.assert_array_equal(got, np.broadcast_to(b[None, :, None, None], x.shape))


# --------------------------------------------------------------------------
# backward


@pytest.mark.parametrize("name", ["nchw-tiles", "nchw-all", "nhwc-tiles", "ncl-time", "nhwc-whole"])
@pytest.mark.parametrize("where", ["cluster", "threads"])
def test_backward_matches_core(name, where, client):
    shape, axis, chunks = CASES[name]
    x = _data(shape, offset=1e3, seed=2)
    dy = _data(shape, seed=3)
    g, _ = _params(shape[axis])
    # dy deliberately chunked differently from x.
    dy_chunks = tuple(max(1, c // 2 + 1) for c in chunks)
    dx, dg, db = fd.instance_norm_backward(
        da.from_array(dy, chunks=dy_chunks), da.from_array(x, chunks=chunks), g, axis=axis
    )
    assert dx.chunks == da.from_array(x, chunks=chunks).chunks
    assert dg.shape == db.shape == (shape[axis],) and dg.dtype == np.float32
    got_dx, got_dg, got_db = _compute_on(where, client, dx, dg, db)
    ref_dx, ref_dg, ref_db = fastnorm.instance_norm_backward(dy, x, g, axis=axis)
    np.testing.assert_allclose(got_dx, ref_dx, rtol=0, atol=1e-6)
    np.testing.assert_allclose(got_dg, ref_dg, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got_db, ref_db, rtol=1e-6, atol=1e-6)


def test_backward_large_offset_float64_and_no_gamma():
    x = _data((3, 4, 30, 30), dtype=np.float64, offset=1e6, seed=7)
    dy = _data((3, 4, 30, 30), dtype=np.float64, seed=8)
    X = da.from_array(x, chunks=(2, 3, 11, 13))
    got = dask.compute(*fd.instance_norm_backward(dy, X, eps=1e-3))
    ref = fastnorm.instance_norm_backward(dy, x, eps=1e-3)
    for a, r in zip(got, ref, strict=True):
        np.testing.assert_allclose(a, r, rtol=1e-8, atol=1e-10)


# --------------------------------------------------------------------------
# errors: same type and message as the in-memory API


def _core_error(fn, *args, **kwargs):
    with pytest.raises((TypeError, ValueError)) as info:
        fn(*args, **kwargs)
    return info.type, str(info.value)


GOOD = _data((2, 3, 4, 5))
BAD_FORWARD = {
    "x-none": ((None,), {}),
    "x-int": ((GOOD.astype(np.int32),), {}),
    "x-2d": ((GOOD[0, 0],), {}),
    "axis-0": ((GOOD,), {"axis": 0}),
    "axis-4": ((GOOD,), {"axis": 4}),
    "axis-str": ((GOOD,), {"axis": "1"}),
    "axis-bool": ((GOOD,), {"axis": True}),
    "eps-neg": ((GOOD,), {"eps": -1.0}),
    "eps-nan": ((GOOD,), {"eps": float("nan")}),
    "eps-str": ((GOOD,), {"eps": "1e-5"}),
    "gamma-shape": ((GOOD, np.ones(4)), {}),
    "gamma-dtype": ((GOOD, np.array(["a", "b", "c"])), {}),
    "beta-shape": ((GOOD, None, np.ones((3, 1))), {}),
    "beta-str": ((GOOD, None, "abc"), {}),
}


def _to_dask(args):
    return tuple(da.from_array(a, chunks=2) if isinstance(a, np.ndarray) else a for a in args)


@pytest.mark.parametrize("case", list(BAD_FORWARD))
def test_forward_errors_match_core(case):
    args, kwargs = BAD_FORWARD[case]
    kind, message = _core_error(fastnorm.instance_norm, *args, **kwargs)
    with pytest.raises(kind) as info:
        fd.instance_norm(*_to_dask(args), **kwargs)
    assert str(info.value) == message


@pytest.mark.parametrize(
    "args",
    [
        (GOOD[:1], GOOD),  # dy shape
        (GOOD.astype(np.int64), GOOD),  # dy dtype
        (GOOD, GOOD, np.ones(2)),  # gamma shape
        (None, GOOD),
    ],
    ids=["dy-shape", "dy-int", "gamma-shape", "dy-none"],
)
def test_backward_errors_match_core(args):
    kind, message = _core_error(fastnorm.instance_norm_backward, *args)
    with pytest.raises(kind) as info:
        fd.instance_norm_backward(*_to_dask(args))
    assert str(info.value) == message


def test_unknown_chunks_rejected():
    X = da.from_array(GOOD, chunks=1)
    X = X[X[:, 0, 0, 0] > -100]  # unknown number of samples
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        fd.instance_norm(X)


def test_errors_are_raised_before_compute():
    # Validation is eager: a bad graph never reaches the scheduler.
    with pytest.raises(ValueError, match="gamma"):
        fd.instance_norm(da.zeros((2, 3, 4, 4), chunks=1), da.ones(5))


def test_import_fastnorm_does_not_import_dask():
    code = "import sys, fastnorm; assert 'dask' not in sys.modules, 'dask imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
