"""fastnorm.dask group_norm and layer_norm against the in-memory API.

Threads scheduler throughout (small arrays); one LocalCluster round trip
per op, marked slow.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest

import fastnorm

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")

import fastnorm.dask as fd  # noqa: E402  (after the importorskip guards)


def _data(shape, dtype=np.float32, offset=0.0, seed=0):
    rng = np.random.default_rng(seed)
    return (offset + rng.standard_normal(shape) * 2.0).astype(dtype)


def _param(shape, dtype=np.float32, seed=1):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _compute(*arrays):
    return dask.compute(*arrays, scheduler="threads")


def _assert_close(got, ref, rel=1e-6):
    """Within ``rel`` of the reference's scale (gradients summed over many
    elements are larger than 1; a float32 ulp of them is above 1e-6)."""
    assert got.shape == ref.shape and got.dtype == ref.dtype
    scale = max(1.0, float(np.max(np.abs(ref.astype(np.float64)), initial=0.0)))
    np.testing.assert_allclose(got, ref, rtol=0, atol=rel * scale)


def _graph_has(arr, word: str) -> bool:
    return any(word in str(k) for k in dict(arr.__dask_graph__()))


# ==========================================================================
# group norm

# (shape, axis, num_groups, chunks)
GROUP_CASES = {
    "nchw-whole": ((4, 12, 6, 7), 1, 4, (2, 6, 6, 7)),
    "nchw-tiles": ((2, 12, 9, 10), 1, 3, (1, 4, 4, 5)),
    "nchw-unaligned": ((2, 12, 6, 7), 1, 4, (2, 5, 6, 7)),
    "nchw-unaligned-tiles": ((3, 12, 9, 8), 1, 4, (2, 5, 4, 3)),
    "nhwc-tiles": ((2, 9, 10, 12), -1, 4, (1, 4, 5, 6)),
    "nhwc-unaligned": ((2, 9, 10, 12), -1, 3, (2, 9, 10, 5)),
    "nc": ((6, 16), 1, 4, (4, 6)),
    "one-group": ((2, 6, 8, 8), 1, 1, (1, 2, 4, 8)),
    "groups-of-one": ((2, 6, 8, 8), 1, 6, (1, 4, 4, 8)),
    "ncl-time": ((3, 8, 300), 1, 2, (2, 3, 64)),
    "ndchw-mid": ((2, 5, 6, 4, 9), 2, 2, (2, 2, 4, 4, 5)),
}


def _group_gamma(shape, axis, groups, per):
    C = shape[axis]
    n = groups if per == "group" else C
    return _param(n, seed=1), _param(n, seed=2)


@pytest.mark.parametrize("per", ["channel", "group"])
@pytest.mark.parametrize("name", list(GROUP_CASES))
def test_group_forward_matches_core(name, per):
    shape, axis, groups, chunks = GROUP_CASES[name]
    x = _data(shape, offset=1e4)
    g, b = _group_gamma(shape, axis, groups, per)
    X = da.from_array(x, chunks=chunks)
    y = fd.group_norm(X, groups, g, b, axis=axis)
    assert isinstance(y, da.Array) and y.shape == x.shape and y.dtype == x.dtype
    cg = shape[axis] // groups
    a = axis % x.ndim
    assert all(c > 0 and c % cg == 0 for c in y.chunks[a])  # whole groups per chunk
    assert y.chunks[:a] + y.chunks[a + 1 :] == X.chunks[:a] + X.chunks[a + 1 :]
    (got,) = _compute(y)
    _assert_close(got, fastnorm.group_norm(x, groups, g, b, axis=axis))


@pytest.mark.parametrize("per", ["channel", "group", "none"])
@pytest.mark.parametrize(
    "name", ["nchw-whole", "nchw-unaligned-tiles", "nhwc-tiles", "nc", "one-group", "ncl-time"]
)
def test_group_backward_matches_core(name, per):
    shape, axis, groups, chunks = GROUP_CASES[name]
    x = _data(shape, offset=1e4, seed=2)
    dy = _data(shape, seed=3)
    g = None if per == "none" else _group_gamma(shape, axis, groups, per)[0]
    dy_chunks = tuple(max(1, c // 2 + 1) for c in chunks)  # unlike x's
    dx, dg, db = fd.group_norm_backward(
        da.from_array(dy, chunks=dy_chunks), da.from_array(x, chunks=chunks), groups, g, axis=axis
    )
    ref = fastnorm.group_norm_backward(dy, x, groups, g, axis=axis)
    assert dg.shape == db.shape == ref[1].shape
    assert dx.chunks == fd.group_norm(da.from_array(x, chunks=chunks), groups, axis=axis).chunks
    for got, r in zip(_compute(dx, dg, db), ref, strict=True):
        _assert_close(got, r)


def test_group_norm_of_c_groups_is_instance_norm_bit_for_bit():
    x = _data((3, 6, 10, 11), offset=50.0)
    dy = _data(x.shape, seed=4)
    g, b = _param(6), _param(6, seed=3)
    for chunks in [(2, 6, 10, 11), (1, 4, 3, 5)]:
        X = da.from_array(x, chunks=chunks)
        got = _compute(fd.group_norm(X, 6, g, b), *fd.group_norm_backward(dy, X, 6, g))
        want = _compute(fd.instance_norm(X, g, b), *fd.instance_norm_backward(dy, X, g))
        for a, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(a, w)


def test_group_large_offset_float32_and_float64():
    x = _data((2, 8, 32, 32), offset=1e6, seed=5)
    g, b = _param(8), _param(8, seed=2)
    y = fd.group_norm(da.from_array(x, chunks=(1, 3, 10, 32)), 2, g, b)
    (got,) = _compute(y)
    _assert_close(got, fastnorm.group_norm(x, 2, g, b))
    assert abs(float(got.std()) - 1.0) < 1.0  # normalized, not flattened

    x64 = _data((3, 8, 20, 20), np.float64, offset=1e6, seed=7)
    dy = _data(x64.shape, np.float64, seed=8)
    X = da.from_array(x64, chunks=(2, 3, 7, 9))
    got = _compute(fd.group_norm(X, 4, eps=1e-3), *fd.group_norm_backward(dy, X, 4, eps=1e-3))
    ref = (
        fastnorm.group_norm(x64, 4, eps=1e-3),
        *fastnorm.group_norm_backward(dy, x64, 4, eps=1e-3),
    )
    for a, r in zip(got, ref, strict=True):
        np.testing.assert_allclose(a, r, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("chunks", [(1, 4, 12, 10), (1, 3, 5, 10)])
def test_group_float16(chunks):
    x = _data((2, 8, 12, 10), np.float16, offset=3.0)
    dy = _data(x.shape, np.float16, seed=3)
    g = _param(4, np.float16)
    X = da.from_array(x, chunks=chunks)
    got = _compute(fd.group_norm(X, 4, g, g), *fd.group_norm_backward(dy, X, 4, g))
    ref = (fastnorm.group_norm(x, 4, g, g), *fastnorm.group_norm_backward(dy, x, 4, g))
    for a, r in zip(got, ref, strict=True):
        assert a.dtype == np.float16
        _assert_close(a, r, rel=2e-3)


def test_group_channel_rechunk_snaps_to_nearest_group_boundary():
    X = da.zeros((2, 12, 4, 4), chunks=((2,), (5, 5, 2), (4,), (4,)))
    assert fd.group_norm(X, 4).chunks[1] == (6, 3, 3)  # boundaries 5, 10 -> 6, 9
    Z = da.zeros((2, 12, 4, 4), chunks=((2,), (6, 0, 6), (4,), (4,)))
    assert fd.group_norm(Z, 4).chunks[1] == (6, 6)  # zero-width chunks dropped
    aligned = da.zeros((2, 12, 4, 4), chunks=(1, 3, 2, 4))
    assert fd.group_norm(aligned, 4).chunks == aligned.chunks  # nothing to move
    # Instance norm keeps any channel chunking.
    assert fd.instance_norm(X).chunks == X.chunks


def test_group_dask_gamma_per_group_and_per_channel():
    x = _data((3, 12, 8, 9), offset=2.0)
    X = da.from_array(x, chunks=(2, 5, 4, 9))
    gg, bg = _param(3, np.float64), _param(3, np.float64, seed=4)
    gc = _param(12)
    y1 = fd.group_norm(X, 3, da.from_array(gg, chunks=2), da.from_array(bg, chunks=1))
    y2 = fd.group_norm(X, 3, da.from_array(gc, chunks=5), None)
    dx, dg, db = fd.group_norm_backward(X, X, 3, da.from_array(gg, chunks=2))
    got = _compute(y1, y2, dx, dg, db)
    _assert_close(got[0], fastnorm.group_norm(x, 3, gg, bg))
    _assert_close(got[1], fastnorm.group_norm(x, 3, gc))
    for a, r in zip(got[2:], fastnorm.group_norm_backward(x, x, 3, gg), strict=True):
        _assert_close(a, r)
    assert got[3].shape == (3,)


def test_group_whole_slices_run_one_task_per_block():
    X = da.from_array(_data((4, 8, 6, 6)), chunks=(1, 4, 6, 6))
    assert not _graph_has(fd.group_norm(X, 2), "moments")
    assert _graph_has(fd.group_norm(X.rechunk((1, 4, 3, 6)), 2), "moments")
    # The backward too: no statistics or gradient-sum reductions, x read once.
    dx, _, _ = fd.group_norm_backward(X, X, 2)
    assert not _graph_has(dx, "moments") and not _graph_has(dx, "grad-sums")
    dx, _, _ = fd.group_norm_backward(X, X.rechunk((1, 4, 3, 6)), 2)
    assert _graph_has(dx, "moments") and _graph_has(dx, "grad-sums")


def test_group_nan_stays_in_its_slice():
    x = _data((2, 8, 6, 6))
    x[1, 5, 2, 3] = np.nan  # sample 1, group 2 of 4 (channels 4..5)
    got = fd.group_norm(da.from_array(x, chunks=(1, 4, 3, 3)), 4).compute()
    nan = np.isnan(got)
    assert nan[1, 4:6].all() and nan.sum() == 2 * 36
    _assert_close(got[0], fastnorm.group_norm(x, 4)[0])


def test_overflowing_squares_give_beta_not_nan():
    # float64 squares of 1e200 overflow: the kernels give var inf -> beta.
    # A zero-length chunk must not turn the merge's inf * 0 into NaN.
    x = _data((2, 4, 8, 8), np.float64) * 1e200
    b = np.arange(4.0)
    ref = fastnorm.group_norm(x, 2, None, b)
    for chunks in [((2,), (4,), (2, 0, 6), (8,)), (1, 2, 3, 3)]:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # and no overflow warnings either
            got = fd.group_norm(da.from_array(x, chunks=chunks), 2, None, b).compute()
        np.testing.assert_array_equal(got, ref)
        np.testing.assert_array_equal(ref, np.broadcast_to(b[:, None, None], x.shape))


def test_group_constant_slice_gives_beta():
    x = np.full((2, 4, 8, 8), -3.5, np.float32)
    b = np.array([0.5, -1.0], np.float32)
    got = fd.group_norm(da.from_array(x, chunks=(1, 2, 3, 5)), 2, None, b).compute()
    np.testing.assert_array_equal(
        got, np.broadcast_to(np.repeat(b, 2)[None, :, None, None], x.shape)
    )


@pytest.mark.parametrize(
    "shape, chunks", [((2, 12, 0, 4), (1, 5, 1, 2)), ((0, 12, 3), (1, 6, 3)), ((2, 0, 5), 2)]
)
@pytest.mark.parametrize("per", ["channel", "group"])
def test_group_empty_inputs(shape, chunks, per):
    x = np.zeros(shape, np.float32)
    G = 3
    g = _param(G if per == "group" else shape[1])
    X = da.from_array(x, chunks=chunks)
    y = fd.group_norm(X, G, g, g)
    assert y.shape == shape and y.dtype == np.float32
    assert y.compute().shape == shape
    dx, dg, db = _compute(*fd.group_norm_backward(X, X, G, g))
    _, rdg, rdb = fastnorm.group_norm_backward(x, x, G, g)
    assert dx.shape == shape
    np.testing.assert_array_equal(dg, rdg)
    np.testing.assert_array_equal(db, rdb)


# --------------------------------------------------------------------------
# errors: same type and message as the in-memory API


def _core_error(fn, *args, **kwargs):
    with pytest.raises((TypeError, ValueError)) as info:
        fn(*args, **kwargs)
    return info.type, str(info.value)


def _to_dask(args):
    return tuple(da.from_array(a, chunks=2) if isinstance(a, np.ndarray) else a for a in args)


GOOD = _data((2, 6, 4, 5))
BAD_GROUP = {
    "groups-none": ((GOOD, None), {}),
    "groups-zero": ((GOOD, 0), {}),
    "groups-not-divisor": ((GOOD, 4), {}),
    "groups-str": ((GOOD, "2"), {}),
    "groups-bool": ((GOOD, True), {}),
    "groups-float": ((GOOD, 2.0), {}),
    "x-1d": ((GOOD[0, 0, 0], 1), {}),
    "x-int": ((GOOD.astype(np.int32), 2), {}),
    "axis-0": ((GOOD, 2), {"axis": 0}),
    "eps-neg": ((GOOD, 2), {"eps": -1.0}),
    "gamma-shape": ((GOOD, 2, np.ones(4)), {}),
    "gamma-dtype": ((GOOD, 2, np.array(["a", "b"])), {}),
    "beta-shape": ((GOOD, 3, None, np.ones((3, 1))), {}),
}


@pytest.mark.parametrize("case", list(BAD_GROUP))
def test_group_forward_errors_match_core(case):
    args, kwargs = BAD_GROUP[case]
    kind, message = _core_error(fastnorm.group_norm, *args, **kwargs)
    with pytest.raises(kind) as info:
        fd.group_norm(*_to_dask(args), **kwargs)
    assert str(info.value) == message


@pytest.mark.parametrize(
    "args",
    [
        (GOOD[:1], GOOD, 2),
        (GOOD.astype(np.int64), GOOD, 2),
        (GOOD, GOOD, 2, np.ones(4)),
        (GOOD, GOOD, None),
        (GOOD, GOOD, 5),
    ],
    ids=["dy-shape", "dy-int", "gamma-shape", "groups-none", "groups-not-divisor"],
)
def test_group_backward_errors_match_core(args):
    kind, message = _core_error(fastnorm.group_norm_backward, *args)
    with pytest.raises(kind) as info:
        fd.group_norm_backward(*_to_dask(args))
    assert str(info.value) == message


def test_group_dask_gamma_of_wrong_shape_rejected_before_compute():
    with pytest.raises(ValueError, match=r"gamma must have shape \(6,\).*or \(3,\)"):
        fd.group_norm(da.zeros((2, 6, 4, 4), chunks=1), 3, da.ones(4))


# ==========================================================================
# layer norm

# (shape, axis, chunks)
LAYER_CASES = {
    "rows-whole": ((64, 48), -1, (16, 48)),
    "rows-chunked": ((64, 48), -1, (16, 10)),
    "tokens-whole": ((4, 9, 32), -1, (1, 4, 32)),
    "trailing-whole": ((4, 9, 32), (-2, -1), (1, 9, 32)),
    "trailing-chunked": ((4, 9, 32), (-2, -1), (2, 4, 11)),
    "channels-first-whole": ((3, 8, 10, 12), 1, (2, 8, 5, 6)),
    "channels-first-chunked": ((3, 8, 10, 12), 1, (2, 3, 5, 12)),
    "leading-chunked": ((6, 5, 7), (0, 1), (4, 2, 3)),
    "vector-chunked": ((300,), 0, (64,)),
    "vector-whole": ((300,), -1, (300,)),
}


def _layer_params(x, axis, dtype=np.float32):
    shape = fastnorm.functional.affine_layout_of(x, axis).param_shape
    return _param(shape, dtype, seed=1), _param(shape, dtype, seed=2)


def _normalized(x, axis):
    lay = fastnorm.functional.affine_layout_of(x, axis)
    return range(lay.first, lay.last + 1)


@pytest.mark.parametrize("name", list(LAYER_CASES))
def test_layer_forward_matches_core(name):
    shape, axis, chunks = LAYER_CASES[name]
    x = _data(shape, offset=1e4)
    g, b = _layer_params(x, axis)
    X = da.from_array(x, chunks=chunks)
    y = fd.layer_norm(X, g, b, axis=axis)
    assert isinstance(y, da.Array) and y.chunks == X.chunks and y.dtype == x.dtype
    whole = all(len(X.chunks[i]) == 1 for i in _normalized(x, axis))
    assert _graph_has(y, "moments") != whole
    (got,) = _compute(y)
    _assert_close(got, fastnorm.layer_norm(x, g, b, axis=axis))


@pytest.mark.parametrize("gamma", ["given", "none"])
@pytest.mark.parametrize("name", list(LAYER_CASES))
def test_layer_backward_matches_core(name, gamma):
    shape, axis, chunks = LAYER_CASES[name]
    x = _data(shape, offset=1e4, seed=2)
    dy = _data(shape, seed=3)
    g = _layer_params(x, axis)[0] if gamma == "given" else None
    X = da.from_array(x, chunks=chunks)
    dy_chunks = tuple(max(1, c // 2 + 1) for c in chunks)  # unlike x's
    dx, dg, db = fd.layer_norm_backward(da.from_array(dy, chunks=dy_chunks), X, g, axis=axis)
    normalized = _normalized(x, axis)
    assert all(len(dx.chunks[i]) == 1 for i in normalized)  # whole slices per block
    if all(len(X.chunks[i]) == 1 for i in normalized):
        assert dx.chunks == X.chunks
    ref = fastnorm.layer_norm_backward(dy, x, g, axis=axis)
    for got, r in zip(_compute(dx, dg, db), ref, strict=True):
        _assert_close(got, r)


def test_layer_backward_rechunk_keeps_blocks_small():
    X = da.zeros((4096, 768), chunks=(4096, 128), dtype=np.float32)
    dx, _, _ = fd.layer_norm_backward(X, X)
    assert dx.chunks[1] == (768,)
    block = max(dx.chunks[0]) * 768 * 4
    assert block <= 4096 * 128 * 4  # not 6x the input's blocks


def test_layer_forward_and_backward_share_the_moments_reduction():
    X = da.from_array(_data((8, 40)), chunks=(4, 10))
    y = fd.layer_norm(X)
    dx, _, _ = fd.layer_norm_backward(X, X)
    moments = {k for k in dict(y.__dask_graph__()) if "moments" in str(k)}
    assert moments and moments <= set(dict(dx.__dask_graph__()))


def test_layer_large_offset_float32_and_float64():
    x = _data((16, 500), offset=1e6, seed=5)
    g, b = _layer_params(x, -1)
    (got,) = _compute(fd.layer_norm(da.from_array(x, chunks=(5, 64)), g, b))
    _assert_close(got, fastnorm.layer_norm(x, g, b))
    assert abs(float(got.std()) - 1.0) < 1.0

    x64 = _data((5, 6, 70), np.float64, offset=1e6, seed=7)
    dy = _data(x64.shape, np.float64, seed=8)
    X = da.from_array(x64, chunks=(2, 4, 16))
    ax = (1, 2)
    got = _compute(
        fd.layer_norm(X, axis=ax, eps=1e-3), *fd.layer_norm_backward(dy, X, axis=ax, eps=1e-3)
    )
    ref = (
        fastnorm.layer_norm(x64, axis=ax, eps=1e-3),
        *fastnorm.layer_norm_backward(dy, x64, axis=ax, eps=1e-3),
    )
    for a, r in zip(got, ref, strict=True):
        np.testing.assert_allclose(a, r, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("chunks", [(3, 40), (3, 9)])
def test_layer_float16(chunks):
    x = _data((12, 40), np.float16, offset=3.0)
    dy = _data(x.shape, np.float16, seed=3)
    g, b = _layer_params(x, -1, np.float16)
    X = da.from_array(x, chunks=chunks)
    got = _compute(fd.layer_norm(X, g, b), *fd.layer_norm_backward(dy, X, g))
    ref = (fastnorm.layer_norm(x, g, b), *fastnorm.layer_norm_backward(dy, x, g))
    for a, r in zip(got, ref, strict=True):
        assert a.dtype == np.float16
        _assert_close(a, r, rel=2e-3)
    np.testing.assert_array_equal(got[1], ref[1])  # dx: the same float32 math per slice


def test_layer_dask_gamma_with_other_chunks():
    x = _data((6, 9, 20), offset=2.0)
    X = da.from_array(x, chunks=(2, 4, 7))
    g, b = _layer_params(x, (1, 2), np.float64)
    G, B = da.from_array(g, chunks=(9, 5)), da.from_array(b, chunks=(2, 20))
    y = fd.layer_norm(X, G, B, axis=(1, 2))
    dx, dg, db = fd.layer_norm_backward(X, X, G, axis=(1, 2))
    assert y.chunks == X.chunks  # gamma/beta follow x, never the other way round
    got = _compute(y, dx, dg, db)
    _assert_close(got[0], fastnorm.layer_norm(x, g, b, axis=(1, 2)))
    for a, r in zip(got[1:], fastnorm.layer_norm_backward(x, x, g, axis=(1, 2)), strict=True):
        _assert_close(a, r)


def test_layer_constant_slice_gives_beta():
    x = np.full((4, 30), 1e4 + 0.25, np.float32)
    b = _param(30)
    got = fd.layer_norm(da.from_array(x, chunks=(3, 7)), None, b).compute()
    np.testing.assert_array_equal(got, np.broadcast_to(b, x.shape))


@pytest.mark.parametrize(
    "shape, axis, chunks",
    [((0, 8), -1, (1, 3)), ((4, 0), -1, (2, 1)), ((3, 0, 5), (1, 2), 2), ((0,), 0, 1)],
)
def test_layer_empty_inputs(shape, axis, chunks):
    x = np.zeros(shape, np.float32)
    X = da.from_array(x, chunks=chunks)
    y = fd.layer_norm(X, axis=axis)
    assert y.shape == shape and y.compute().shape == shape
    dx, dg, db = _compute(*fd.layer_norm_backward(X, X, axis=axis))
    _, rdg, rdb = fastnorm.layer_norm_backward(x, x, axis=axis)
    assert dx.shape == shape
    np.testing.assert_array_equal(dg, rdg)
    np.testing.assert_array_equal(db, rdb)


GOOD_L = _data((3, 4, 5))
BAD_LAYER = {
    "x-none": ((None,), {}),
    "x-0d": ((np.float32(1.0),), {}),
    "x-int": ((GOOD_L.astype(np.int16),), {}),
    "axis-range": ((GOOD_L,), {"axis": 3}),
    "axis-gap": ((GOOD_L,), {"axis": (0, 2)}),
    "axis-empty": ((GOOD_L,), {"axis": ()}),
    "axis-str": ((GOOD_L,), {"axis": "1"}),
    "axis-bool": ((GOOD_L,), {"axis": True}),
    "eps-nan": ((GOOD_L,), {"eps": float("nan")}),
    "gamma-shape": ((GOOD_L, np.ones(4)), {}),
    "gamma-tuple-shape": ((GOOD_L, np.ones(20)), {"axis": (1, 2)}),
    "beta-str": ((GOOD_L, None, "abc"), {}),
}


@pytest.mark.parametrize("case", list(BAD_LAYER))
def test_layer_forward_errors_match_core(case):
    args, kwargs = BAD_LAYER[case]
    kind, message = _core_error(fastnorm.layer_norm, *args, **kwargs)
    with pytest.raises(kind) as info:
        fd.layer_norm(*_to_dask(args), **kwargs)
    assert str(info.value) == message


@pytest.mark.parametrize(
    "args",
    [
        (GOOD_L[:1], GOOD_L),
        (GOOD_L.astype(np.int64), GOOD_L),
        (GOOD_L, GOOD_L, np.ones((4, 5))),
        (None, GOOD_L),
    ],
    ids=["dy-shape", "dy-int", "gamma-shape", "dy-none"],
)
def test_layer_backward_errors_match_core(args):
    kind, message = _core_error(fastnorm.layer_norm_backward, *args)
    with pytest.raises(kind) as info:
        fd.layer_norm_backward(*_to_dask(args))
    assert str(info.value) == message


def test_layer_dask_gamma_of_wrong_shape_rejected_before_compute():
    with pytest.raises(ValueError, match=r"gamma must have the shape of the normalized axes"):
        fd.layer_norm(da.zeros((4, 6), chunks=2), da.ones(5))


# ==========================================================================
# laziness: building a graph runs no block


_CALLS: list = []


def _counted(block):
    _CALLS.append(block.shape)
    return block


@pytest.mark.parametrize("op", ["group", "layer"])
@pytest.mark.parametrize("chunks", [(2, 8, 6, 6), (1, 3, 4, 6)])
def test_graph_construction_computes_nothing(op, chunks):
    _CALLS.clear()
    x = _data((2, 8, 6, 6))
    X = da.from_array(x, chunks=chunks).map_blocks(_counted, meta=np.empty((0,) * 4, np.float32))
    if op == "group":
        arrays = [fd.group_norm(X, 2, _param(8)), *fd.group_norm_backward(X, X, 2, _param(2))]
    else:
        arrays = [fd.layer_norm(X, axis=(2, 3)), *fd.layer_norm_backward(X, X, axis=(2, 3))]
    assert _CALLS == []
    _compute(*arrays)
    assert _CALLS  # the counter does see the blocks once computing


# ==========================================================================
# a real cluster (worker processes: pickling of the block functions)


@pytest.mark.slow
def test_group_and_layer_on_local_cluster():
    distributed = pytest.importorskip("distributed")
    x = _data((4, 12, 16, 10), offset=1e4)
    dy = _data(x.shape, seed=9)
    g = _param(4)
    gl, bl = _layer_params(x, (2, 3))
    X = da.from_array(x, chunks=(2, 5, 6, 10))
    lazy = [
        fd.group_norm(X, 4, g, g),
        *fd.group_norm_backward(dy, X, 4, g),
        fd.layer_norm(X, gl, bl, axis=(2, 3)),
        *fd.layer_norm_backward(dy, X, gl, axis=(2, 3)),
    ]
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        got = client.compute(lazy, sync=True)
    ref = [
        fastnorm.group_norm(x, 4, g, g),
        *fastnorm.group_norm_backward(dy, x, 4, g),
        fastnorm.layer_norm(x, gl, bl, axis=(2, 3)),
        *fastnorm.layer_norm_backward(dy, x, gl, axis=(2, 3)),
    ]
    for a, r in zip(got, ref, strict=True):
        _assert_close(a, r)
