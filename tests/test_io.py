"""fastnorm.io: MXNet .params files against files MXNet 1.9.1 wrote itself.

The golden files in ``tests/data/mxnet_params/`` (see ``tests/data/README.md``)
are the oracle: every array must come back with the exact values, dtype,
name and order ``expected.npz`` records, and writing what was read must
reproduce MXNet's bytes exactly.  Hand-built records below are encoded
here from the layout in ``fastnorm/io.py``'s docstring (MXNet's
``NDArray::Save``/``Load``), independently of the module's writer.
"""

from __future__ import annotations

import io
import os
import struct
import tempfile
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastnorm.io import (
    load_mxnet_params,
    read_parameter_file,
    save_mxnet_params,
    write_parameter_file,
)

DATA = Path(__file__).resolve().parent / "data" / "mxnet_params"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "golden" / "mxnet_params"
EXPECTED_FILE = DATA / "expected.npz"
PARAM_FILES = sorted(p.name for p in DATA.glob("*.params"))

V1, V2, V3 = 0xF993FAC8, 0xF993FAC9, 0xF993FACA
FLAGS = {
    np.float32: 0,
    np.float64: 1,
    np.float16: 2,
    np.uint8: 3,
    np.int32: 4,
    np.int8: 5,
    np.int64: 6,
    np.bool_: 7,
}
ALL_DTYPES = list(FLAGS)

# The layers of the golden model and their names in the three model files:
# (save_parameters prefix, legacy save_params prefix, export prefix without 'arg:').
MODEL_LAYERS = [
    ("0.", "conv0_", "hybridsequential0_conv0_"),
    ("1.", "instancenorm0_", "hybridsequential0_instancenorm0_"),
    ("3.", "conv1_", "hybridsequential0_conv1_"),
    ("4.", "instancenorm1_", "hybridsequential0_instancenorm1_"),
    ("5.", "groupnorm0_", "hybridsequential0_groupnorm0_"),
    ("6.", "conv2_", "hybridsequential0_conv2_"),
    ("7.", "layernorm0_", "hybridsequential0_layernorm0_"),
]

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def expected() -> dict:
    if not EXPECTED_FILE.is_file():
        pytest.skip(f"vendored MXNet parameter files not found at {DATA}")
    with np.load(EXPECTED_FILE, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def _expected_for(expected: dict, file: str) -> dict:
    """``{name or index: array}`` of one golden file, in the order MXNet wrote them."""
    return {k.split("::", 1)[1]: v for k, v in expected.items() if k.split("::", 1)[0] == file}


def _golden_bytes(file: str) -> bytes:
    return (DATA / file).read_bytes()


# -- hand-built records (encoded from MXNet's layout, not by fastnorm.io) -------------


def _file(records: list[bytes], names: list[str] | None = None) -> bytes:
    names = names or []
    out = struct.pack("<QQQ", 0x112, 0, len(records)) + b"".join(records)
    out += struct.pack("<Q", len(names))
    for n in names:
        raw = n.encode()
        out += struct.pack("<Q", len(raw)) + raw
    return out


def _v2(arr: np.ndarray, *, magic=V2, stype=0, dev=(1, 0), flag=None, shape=None) -> bytes:
    shape = arr.shape if shape is None else shape
    flag = FLAGS[arr.dtype.type] if flag is None else flag
    return (
        struct.pack("<Iii", magic, stype, len(shape))
        + struct.pack(f"<{len(shape)}q", *shape)
        + struct.pack("<iii", *dev, flag)
        + np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()
    )


def _load_bytes(data: bytes, name="mem.params"):
    """Load from memory: a file object, read whole (the in-memory reader)."""
    f = io.BytesIO(data)
    f.name = name
    return load_mxnet_params(f)


_SCRATCH = tempfile.TemporaryDirectory(prefix="fastnorm-test-io-")


def _load_file(data: bytes, name="mem.params"):
    """Load from a regular file (the reader that seeks and reads in place)."""
    path = Path(_SCRATCH.name) / name
    path.write_bytes(data)
    return load_mxnet_params(path)


LOADERS = {"bytes": _load_bytes, "file": _load_file}


# -- golden files ----------------------------------------------------------------------


def test_golden_files_present():
    assert set(PARAM_FILES) >= {
        "instancenorm.params",
        "instancenorm_float16.params",
        "instancenorm_float64.params",
        "model.params",
        "model_legacy.params",
        "model-0000.params",
        "list.params",
        "np_arrays.params",
    }


@pytest.mark.parametrize("file", PARAM_FILES)
def test_golden_values_dtypes_names(expected, file):
    want = _expected_for(expected, file)
    assert want, f"expected.npz has no entry for {file}"
    got = load_mxnet_params(DATA / file)
    if file == "list.params":
        assert isinstance(got, list)
        got = {str(i): v for i, v in enumerate(got)}
    else:
        assert isinstance(got, dict)
    assert list(got) == list(want)  # names and file order
    for key, value in got.items():
        assert value.dtype == want[key].dtype, key
        assert value.shape == want[key].shape, key
        np.testing.assert_array_equal(value, want[key], err_msg=key)
        assert value.flags.writeable and value.flags.c_contiguous and value.flags.owndata


def test_golden_dtypes_and_0d(expected):
    assert load_mxnet_params(DATA / "instancenorm_float16.params")["gamma"].dtype == np.float16
    assert load_mxnet_params(DATA / "instancenorm_float64.params")["beta"].dtype == np.float64
    np_arrays = load_mxnet_params(DATA / "np_arrays.params")
    assert np_arrays["scalar"].shape == ()
    assert np_arrays["scalar"] == expected["np_arrays.params::scalar"]


@pytest.mark.parametrize("file", PARAM_FILES)
def test_rewrite_reproduces_mxnet_bytes(file, tmp_path):
    """Saving what was read gives MXNet's own file, byte for byte."""
    out = tmp_path / file
    save_mxnet_params(out, load_mxnet_params(DATA / file), np_shape=file.startswith("np_"))
    assert out.read_bytes() == _golden_bytes(file)


def test_golden_record_magics():
    assert struct.unpack_from("<I", _golden_bytes("model.params"), 24)[0] == V2
    assert struct.unpack_from("<I", _golden_bytes("np_arrays.params"), 24)[0] == V3


def test_vendored_copy_matches_shared():
    if not SHARED.is_dir():
        pytest.skip(f"shared golden folder {SHARED} not present")
    shared = sorted(p.name for p in SHARED.iterdir() if p.is_file())
    assert shared, f"{SHARED} is empty"
    for name in shared:
        assert (DATA / name).is_file(), f"{name} is not vendored"
        assert (DATA / name).read_bytes() == (SHARED / name).read_bytes(), name


# -- prefix selection (read_parameter_file) ------------------------------------------------


@pytest.mark.parametrize("layer", MODEL_LAYERS, ids=[m[1] for m in MODEL_LAYERS])
def test_prefix_selects_one_layer_from_every_model_file(expected, layer):
    structural, legacy, exported = layer
    from_structural = read_parameter_file(DATA / "model.params", prefix=structural)
    from_legacy = read_parameter_file(DATA / "model_legacy.params", prefix=legacy)
    from_export = read_parameter_file(DATA / "model-0000.params", prefix="arg:" + exported)
    from_export_untagged = read_parameter_file(DATA / "model-0000.params", prefix=exported)
    names = ["weight", "bias"] if "conv" in legacy else ["gamma", "beta"]
    for got in (from_structural, from_legacy, from_export, from_export_untagged):
        assert list(got) == names
    for key in names:
        want = expected[f"model.params::{structural}{key}"]
        assert expected[f"model_legacy.params::{legacy}{key}"].tobytes() == want.tobytes()
        for got in (from_structural, from_legacy, from_export, from_export_untagged):
            assert got[key].dtype == want.dtype
            np.testing.assert_array_equal(got[key], want)


def test_prefix_does_not_match_longer_index():
    # '1.' must not select '10.gamma' (and does not here: only '1.' entries exist).
    got = read_parameter_file(DATA / "model.params", prefix="1.")
    assert set(got) == {"gamma", "beta"}


def test_empty_prefix_strips_export_tags(expected):
    got = read_parameter_file(DATA / "model-0000.params")
    want = _expected_for(expected, "model-0000.params")
    assert list(got) == [k[len("arg:") :] for k in want]
    plain = read_parameter_file(DATA / "instancenorm.params")
    assert list(plain) == ["gamma", "beta"]


def test_prefix_errors(tmp_path):
    with pytest.raises(ValueError, match=r"no entry .* starts with prefix '9\.'"):
        read_parameter_file(DATA / "model.params", prefix="9.")
    with pytest.raises(TypeError, match="prefix must be a str"):
        read_parameter_file(DATA / "model.params", prefix=1)
    with pytest.raises(ValueError, match="unnamed MXNet list"):
        read_parameter_file(DATA / "list.params")
    both = tmp_path / "both.params"
    save_mxnet_params(both, {"arg:x_gamma": np.ones(2), "aux:x_gamma": np.zeros(2)})
    with pytest.raises(ValueError, match="two entries become the name 'gamma'"):
        read_parameter_file(both, prefix="x_")
    # With the tag in the prefix the two are distinct again.
    assert list(read_parameter_file(both, prefix="aux:x_")) == ["gamma"]
    text = tmp_path / "not.params"
    text.write_text("gamma,beta\n")
    with pytest.raises(ValueError, match=r"not a NumPy \.npz archive or an MXNet parameter file"):
        read_parameter_file(text)
    with pytest.raises(FileNotFoundError):
        read_parameter_file(tmp_path / "missing.params")


def test_read_parameter_file_npz(tmp_path):
    path = tmp_path / "p.npz"
    gamma, beta = np.arange(3, dtype=np.float32), np.ones(3, dtype=np.float64)
    with open(path, "wb") as f:
        np.savez(f, **{"1.gamma": gamma, "1.beta": beta, "2.gamma": gamma[::-1]})
    got = read_parameter_file(path, prefix="1.")
    assert list(got) == ["gamma", "beta"]
    np.testing.assert_array_equal(got["gamma"], gamma)
    assert got["beta"].dtype == np.float64
    compressed = tmp_path / "c.npz"
    with open(compressed, "wb") as f:
        np.savez_compressed(f, gamma=np.asfortranarray(np.eye(3, dtype=np.float16)))
    got = read_parameter_file(compressed)
    np.testing.assert_array_equal(got["gamma"], np.eye(3, dtype=np.float16))


def test_npz_hostile_header_is_bounded(tmp_path):
    """A .npy member declaring a huge shape fails before anything of that size exists."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<f8", "fortran_order": False, "shape": (1 << 20, 1 << 20)}
    )
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("gamma.npy", buf.getvalue() + b"\0" * 64)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="declares shape"):
            read_parameter_file(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def _patch_u32(data: bytearray, signature: bytes, field: int, value: int) -> None:
    at = data.index(signature)
    struct.pack_into("<I", data, at + field, value)


def test_npz_lying_deflate_size_is_bounded(tmp_path):
    """A deflated member whose zip entry claims 2 GiB cannot back a 1 GiB array."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<f8", "fortran_order": False, "shape": (1 << 27,)}
    )
    good = tmp_path / "good.npz"
    with zipfile.ZipFile(good, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("gamma.npy", buf.getvalue() + b"\0" * 4096)
    data = bytearray(good.read_bytes())
    _patch_u32(data, b"PK\x03\x04", 22, 0x7FFFFFFF)  # local header: uncompressed size
    _patch_u32(data, b"PK\x01\x02", 24, 0x7FFFFFFF)  # central directory: the same
    bad = tmp_path / "bad.npz"
    bad.write_bytes(bytes(data))

    def load():
        with pytest.raises(ValueError, match="declares shape"):
            read_parameter_file(bad)

    assert _peak_bytes(load) < 1 << 20


def test_npz_errors(tmp_path):
    obj = tmp_path / "obj.npz"
    with open(obj, "wb") as f:
        np.savez(f, gamma=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="Python objects"):
        read_parameter_file(obj)
    bz = tmp_path / "bz.npz"
    with zipfile.ZipFile(bz, "w", compression=zipfile.ZIP_BZIP2) as zf:
        zf.writestr("gamma.npy", b"\x93NUMPY")
    with pytest.raises(ValueError, match="compression method 12"):
        read_parameter_file(bz)
    stray = tmp_path / "stray.npz"
    with zipfile.ZipFile(stray, "w") as zf:
        zf.writestr("notes.txt", b"hello")
    with pytest.raises(ValueError, match=r"'notes\.txt' is not a \.npy array"):
        read_parameter_file(stray)
    good = tmp_path / "good.npz"
    with open(good, "wb") as f:
        np.savez(f, gamma=np.arange(100.0))
    data = good.read_bytes()
    for cut in (len(data) // 2, len(data) - 30):
        bad = tmp_path / f"cut{cut}.npz"
        bad.write_bytes(data[:cut])
        with pytest.raises(ValueError, match=r"cut\d+\.npz"):
            read_parameter_file(bad)


def test_empty_and_bytes_paths(tmp_path):
    empty = tmp_path / "empty.params"
    save_mxnet_params(empty, {})  # what Gluon writes for a block without parameters
    assert load_mxnet_params(empty) == []  # mx.nd.load returns an empty list too
    assert read_parameter_file(empty) == {}
    with pytest.raises(ValueError, match="no entry"):
        read_parameter_file(empty, prefix="1.")
    as_bytes = os.fsencode(DATA / "instancenorm.params")
    assert list(read_parameter_file(as_bytes)) == ["gamma", "beta"]
    with open(DATA / "instancenorm.params", "rb") as f:
        assert list(read_parameter_file(f, prefix="g")) == ["amma"]


def test_write_parameter_file(tmp_path):
    path = tmp_path / "layer.params"
    params = {"gamma": np.arange(4, dtype=np.float32), "beta": np.zeros(4, np.float16)}
    write_parameter_file(path, params)
    got = load_mxnet_params(path)
    assert list(got) == ["gamma", "beta"]
    for k, v in params.items():
        assert got[k].dtype == v.dtype
        np.testing.assert_array_equal(got[k], v)
    # Same bytes as MXNet's own single-layer file when given the same arrays.
    mx = load_mxnet_params(DATA / "instancenorm.params")
    write_parameter_file(path, mx)
    assert path.read_bytes() == _golden_bytes("instancenorm.params")
    with pytest.raises(TypeError, match="params must be a dict"):
        write_parameter_file(path, [np.ones(2)])


# -- round trips ------------------------------------------------------------------------------


def _sample(dtype, shape, rng) -> np.ndarray:
    if dtype is np.bool_:
        return rng.random(shape) < 0.5
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    return (rng.standard_normal(shape) * 100).astype(dtype)


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("np_shape", [False, True])
def test_round_trip_every_dtype(dtype, np_shape, rng, tmp_path):
    shapes = [(5,), (2, 3), (1, 2, 3, 4), (0, 3), (3, 1, 1, 1, 1, 2)]
    if np_shape:
        shapes.append(())
    arrays = {f"a{i}": _sample(dtype, s, rng) for i, s in enumerate(shapes)}
    path = tmp_path / "rt.params"
    save_mxnet_params(path, arrays, np_shape=np_shape)
    got = load_mxnet_params(path)
    assert list(got) == list(arrays)
    for k, v in arrays.items():
        assert got[k].dtype == np.dtype(dtype) and got[k].shape == v.shape
        np.testing.assert_array_equal(got[k], v)
    as_list = list(arrays.values())
    save_mxnet_params(path, as_list, np_shape=np_shape)
    got = load_mxnet_params(path)
    assert isinstance(got, list) and len(got) == len(as_list)
    for g, v in zip(got, as_list, strict=True):
        assert g.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(g, v)
    magic = struct.unpack_from("<I", path.read_bytes(), 24)[0]
    assert magic == (V3 if np_shape else V2)


def test_round_trip_special_values_and_layouts(tmp_path):
    f32 = np.array([np.nan, np.inf, -np.inf, -0.0, 1e-45, 3.4e38], dtype=np.float32)
    base = np.arange(24, dtype=np.float64).reshape(2, 3, 4)
    arrays = {
        "special": f32,
        "big_endian": np.arange(6, dtype=">i4").reshape(2, 3),
        "strided": base[:, ::2, 1:],
        "fortran": np.asfortranarray(base),
        "tuple": (1, 2, 3),  # array_like: int64
        "empty_name_ok": np.ones(1, np.float16),
        "": np.zeros(2, np.uint8),
        "naïve ünïcode": np.ones(1, np.int8),
    }
    path = tmp_path / "layouts.params"
    save_mxnet_params(path, arrays)
    got = load_mxnet_params(path)
    assert list(got) == list(arrays)
    assert got["special"].tobytes() == f32.tobytes()  # NaN payload and -0.0 preserved
    assert got["big_endian"].dtype == np.dtype("=i4")
    np.testing.assert_array_equal(got["big_endian"], arrays["big_endian"])
    np.testing.assert_array_equal(got["strided"], base[:, ::2, 1:])
    np.testing.assert_array_equal(got["fortran"], base)
    assert got["tuple"].dtype == np.int64
    # Writing to a binary file object gives the same bytes.
    buf = io.BytesIO()
    save_mxnet_params(buf, arrays)
    assert buf.getvalue() == path.read_bytes()


def test_save_argument_errors(tmp_path):
    path = tmp_path / "never.params"
    with pytest.raises(ValueError, match=r"0-d.*np_shape=True"):
        save_mxnet_params(path, {"s": np.float32(1.0)})
    with pytest.raises(TypeError, match="dtype complex128"):
        save_mxnet_params(path, {"c": np.ones(2, complex)})
    with pytest.raises(TypeError, match="dtype int16"):
        save_mxnet_params(path, [np.ones(2, np.int16)])  # MXNet 1.x cannot load int16
    with pytest.raises(TypeError, match="dtype object"):
        save_mxnet_params(path, {"o": np.array([None])})
    with pytest.raises(TypeError, match="names must be str"):
        save_mxnet_params(path, {1: np.ones(2)})
    with pytest.raises(TypeError, match="arrays must be a dict"):
        save_mxnet_params(path, np.ones(2))
    with pytest.raises(TypeError, match="np_shape must be a bool"):
        save_mxnet_params(path, [np.ones(2)], np_shape=1)
    # A bad entry after good ones writes nothing at all.
    with pytest.raises(TypeError):
        save_mxnet_params(path, {"ok": np.ones(2), "bad": np.ones(2, complex)})
    assert not path.exists()


# -- format variants MXNet reads --------------------------------------------------------------


def test_legacy_v1_and_pre_v1_records():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    v1 = struct.pack("<Iiqq", V1, 2, 2, 3) + struct.pack("<iii", 1, 0, 0) + a.tobytes()
    # The first format: the 4 bytes before the shape are the ndim, dims are uint32.
    pre = struct.pack("<III", 2, 2, 3) + struct.pack("<iii", 1, 0, 0) + a.tobytes()
    got = _load_bytes(_file([v1, pre, _v2(a)], ["v1", "pre", "v2"]))
    for k in ("v1", "pre", "v2"):
        np.testing.assert_array_equal(got[k], a)
    # As MXNet 1.9.1's LegacyLoad reads them: ndim 0 is a 0-d array, a 0 dim an empty one.
    scalar = struct.pack("<I", 0) + struct.pack("<iii", 1, 0, 6) + struct.pack("<q", -7)
    empty = struct.pack("<III", 2, 0, 5) + struct.pack("<iii", 1, 0, 1)
    v1_scalar = struct.pack("<Ii", V1, 0) + struct.pack("<iii", 1, 0, 2) + b"\x00\x3c"
    s, e, h = _load_bytes(_file([scalar, empty, v1_scalar]))
    assert s.shape == () and s.dtype == np.int64 and s == -7
    assert e.shape == (0, 5) and e.dtype == np.float64
    assert h.shape == () and h.dtype == np.float16 and h == 1.0


def test_gpu_context_and_mxnet2_dtypes_are_read():
    a = np.arange(4, dtype=np.float32)
    got = _load_bytes(_file([_v2(a, dev=(2, 3))]))
    np.testing.assert_array_equal(got[0], a)
    for flag, dt in ((8, "<i2"), (9, "<u2"), (10, "<u4"), (11, "<u8")):
        b = np.arange(3).astype(dt)
        (out,) = _load_bytes(_file([_v2(b, flag=flag)]))
        assert out.dtype == np.dtype(dt) and list(out) == [0, 1, 2]


def test_bool_bytes_are_normalized():
    raw = np.array([0, 1, 2, 255], dtype=np.uint8)
    (out,) = _load_bytes(_file([_v2(raw, flag=7)]))
    assert out.dtype == np.bool_
    assert out.tolist() == [False, True, True, True]
    assert out.view(np.uint8).tolist() == [0, 1, 1, 1]


def test_mixed_v2_v3_records_are_read():
    got = _load_bytes(_file([_v2(np.ones(2, np.float32)), _v2(np.float32(3), magic=V3)]))
    assert got[0].shape == (2,) and got[1].shape == () and got[1] == 3


@pytest.mark.parametrize(
    ("record", "match"),
    [
        (_v2(np.ones(2, np.float32), stype=1), "row_sparse.*not supported"),
        (_v2(np.ones(2, np.float32), stype=2), "csr.*not supported"),
        (_v2(np.ones(2, np.float32), stype=-1), "unknown storage type -1"),
        (_v2(np.ones(2, np.float32), stype=1, magic=V3), "row_sparse.*not supported"),
        (_v2(np.ones(2, np.uint16), flag=12), "bfloat16"),
        (_v2(np.ones(2, np.float32), flag=13), "type flag 13 .unknown"),
        (_v2(np.ones(2, np.float32), dev=(4, 0)), "unknown context device type 4"),
        (_v2(np.float32(1), magic=V2), "empty NDArray"),  # 0-d is 'none' in V2
        (_v2(np.ones(2, np.float32), magic=V3, shape=(-1,)), "empty NDArray"),
        (_v2(np.ones(2, np.float32), shape=(1,) * 65), "ndim 65, expected -1 to 64"),
        (_v2(np.ones(2, np.float32), shape=(-2,)), "negative dimensions"),
        (struct.pack("<I", 0xDEADBEEF) + b"\0" * 40, "unknown magic 0xDEADBEEF"),
        (struct.pack("<Iiqq", V1, 2, 2, -1) + b"\0" * 20, "empty NDArray"),
    ],
    ids=[
        "row_sparse",
        "csr",
        "stype-undefined",
        "v3-row_sparse",
        "bfloat16",
        "flag-13",
        "device-4",
        "v2-ndim0-none",
        "v3-unknown-dim",
        "ndim-65",
        "dim-minus-2",
        "magic",
        "v1-unknown-dim",
    ],
)
def test_unsupported_or_invalid_records(record, match):
    with pytest.raises(ValueError, match=match) as info:
        _load_bytes(_file([record], ["x"]), name="bad.params")
    assert "'bad.params' at byte offset " in str(info.value)


def test_sparse_error_names_offset():
    data = _file([_v2(np.ones(2, np.float32)), _v2(np.ones(2, np.float32), stype=1)])
    second = 24 + len(_v2(np.ones(2, np.float32)))
    with pytest.raises(ValueError, match=rf"byte offset {second + 4}: NDArray 1 \(of 2\)"):
        _load_bytes(data)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", r"byte offset 0: truncated: file header needs 8 bytes"),
        (struct.pack("<QQQ", 0x113, 0, 0), "not an MXNet NDArray file: header 0x113"),
        (_file([_v2(np.ones(1, np.float32))], ["a", "b"]), "declares 2 names for 1 arrays"),
        (_file([_v2(np.ones(1, np.int8))] * 2, ["a", "a"]), "name 'a' appears twice"),
        (_file([_v2(np.ones(1, np.int8))], ["a"]) + b"\0", "1 unexpected bytes"),
        (_file([_v2(np.ones(1, np.int8))])[:-8] + struct.pack("<QQ", 1, 1) + b"\xff", "UTF-8"),
    ],
)
def test_invalid_files(data, match):
    with pytest.raises(ValueError, match=match):
        _load_bytes(data)


def test_errors_name_the_file(tmp_path):
    path = tmp_path / "broken.params"
    path.write_bytes(_golden_bytes("model.params")[:100])
    with pytest.raises(ValueError, match=rf"{path.name}' at byte offset \d+: truncated"):
        load_mxnet_params(path)
    with pytest.raises(FileNotFoundError):
        load_mxnet_params(tmp_path / "missing.params")
    with pytest.raises(TypeError, match="path must be"):
        load_mxnet_params(12)


# -- hostile files: bounded memory ------------------------------------------------------------


def _peak_bytes(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_tracemalloc_sees_array_allocations():
    """Positive control: a legitimate 8 MiB array shows up in the traced peak."""
    data = _file([_v2(np.zeros(1 << 20, np.float64))])
    assert _peak_bytes(lambda: _load_bytes(data)) > 8 << 20


def test_regular_files_are_read_into_the_arrays_directly(tmp_path):
    """Loading a file costs the arrays' memory, not a second copy of the file."""
    path = tmp_path / "big.params"
    big = np.arange(1 << 20, dtype=np.float64)  # 8 MiB
    save_mxnet_params(path, {"0.weight": big, "1.gamma": np.ones(4, np.float32)})
    assert _peak_bytes(lambda: load_mxnet_params(path)) < (8 << 20) * 1.25
    # Selecting one small layer reads only its bytes.
    got = {}
    peak = _peak_bytes(lambda: got.update(read_parameter_file(path, prefix="1.")))
    assert peak < 1 << 20
    np.testing.assert_array_equal(got["gamma"], np.ones(4, np.float32))
    loaded = load_mxnet_params(path)
    np.testing.assert_array_equal(loaded["0.weight"], big)


@pytest.mark.parametrize(
    "data",
    [
        _file([_v2(np.ones(2, np.float64), shape=(1 << 22,))]),
        _file([_v2(np.ones(2, np.float64), shape=(1 << 30, 1 << 30))]),
        _file([_v2(np.ones(2, np.float64), shape=(1 << 62, 1 << 62, 1 << 62))]),
        struct.pack("<QQQ", 0x112, 0, 1 << 62) + _v2(np.ones(2, np.float32)),
        struct.pack("<QQQ", 0x112, 0, 1) + struct.pack("<Iii", V2, 0, 1 << 30) + b"\0" * 64,
        struct.pack("<QQQ", 0x112, 0, 1) + struct.pack("<I", 60) + b"\xff" * 240,
        _file([_v2(np.ones(1, np.int8))])[:-8] + struct.pack("<Q", 1 << 60) + b"\0" * 16,
        _file([_v2(np.ones(1, np.int8))])[:-8] + struct.pack("<QQ", 1, 1 << 60) + b"abc",
    ],
    ids=[
        "shape-32MiB",
        "shape-2^60",
        "shape-overflow",
        "count",
        "ndim",
        "legacy-dims",
        "names",
        "name-len",
    ],
)
@pytest.mark.parametrize("backend", sorted(LOADERS))
def test_hostile_declarations_allocate_nothing_large(data, backend):
    def load():
        with pytest.raises(ValueError, match="byte offset"):
            LOADERS[backend](data)

    assert _peak_bytes(load) < 256 << 10


# -- truncations and bit flips ----------------------------------------------------------------


@pytest.mark.parametrize("backend", sorted(LOADERS))
@pytest.mark.parametrize("file", PARAM_FILES)
def test_every_truncation_raises_value_error(file, backend):
    data = _golden_bytes(file)
    for cut in range(len(data)):
        with pytest.raises(ValueError, match=r"cut\.params' at byte offset \d+"):
            LOADERS[backend](data[:cut], name="cut.params")


def _load_or_value_error(data: bytes, backend: str = "bytes"):
    try:
        return LOADERS[backend](data)
    except ValueError as exc:
        assert "byte offset" in str(exc)
        return None


@FUZZ
@given(
    file=st.sampled_from(PARAM_FILES),
    flips=st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 7)), min_size=1, max_size=4),
    backend=st.sampled_from(sorted(LOADERS)),
)
def test_bit_flips_parse_or_raise_value_error(file, flips, backend):
    data = bytearray(_golden_bytes(file))
    for pos, bit in flips:
        data[pos % len(data)] ^= 1 << bit
    got = _load_or_value_error(bytes(data), backend)
    # Both readers agree on every input: same arrays, or both refuse.
    other = _load_or_value_error(bytes(data), "file" if backend == "bytes" else "bytes")
    assert (got is None) == (other is None)
    if got is not None:
        pairs = got.items() if isinstance(got, dict) else enumerate(got)
        for key, value in pairs:
            assert value.dtype == other[key].dtype
            np.testing.assert_array_equal(value, other[key])


@FUZZ
@given(
    file=st.sampled_from(PARAM_FILES),
    pos=st.integers(0, 1 << 20),
    junk=st.binary(min_size=1, max_size=16),
    mode=st.sampled_from(["overwrite", "insert", "delete"]),
    backend=st.sampled_from(sorted(LOADERS)),
)
def test_byte_splices_parse_or_raise_value_error(file, pos, junk, mode, backend):
    data = _golden_bytes(file)
    pos %= len(data)
    if mode == "overwrite":
        data = data[:pos] + junk + data[pos + len(junk) :]
    elif mode == "insert":
        data = data[:pos] + junk + data[pos:]
    else:
        data = data[:pos] + data[pos + len(junk) :]
    _load_or_value_error(data, backend)


@FUZZ
@given(body=st.binary(max_size=200))
def test_random_bodies_after_a_valid_header(body):
    _load_or_value_error(struct.pack("<QQ", 0x112, 0) + body)


@FUZZ
@given(
    count=st.integers(0, 3),
    ndim=st.integers(-2, 70),
    dims=st.lists(st.integers(-2, 1 << 40), max_size=6),
    flag=st.integers(-1, 14),
    magic=st.sampled_from([V1, V2, V3, 0, 1, 3, 65]),
    tail=st.binary(max_size=64),
)
def test_random_record_headers(count, ndim, dims, flag, magic, tail):
    record = (
        struct.pack("<Iii", magic, 0, ndim)
        + struct.pack(f"<{len(dims)}q", *dims)
        + struct.pack("<iii", 1, 0, flag)
        + tail
    )
    data = struct.pack("<QQQ", 0x112, 0, count) + record * count + struct.pack("<Q", 0)
    tracemalloc.start()
    try:
        _load_or_value_error(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 256 << 10


def test_parse_results_are_independent_of_the_buffer():
    """Arrays are copies: mutating one never touches another load's result."""
    path = DATA / "instancenorm.params"
    a, b = load_mxnet_params(path), load_mxnet_params(path)
    a["gamma"][:] = 0
    assert not np.array_equal(a["gamma"], b["gamma"])
    assert os.path.getsize(path) == len(_golden_bytes("instancenorm.params"))


# -- layers: load_parameters / save_parameters on MXNet files --------------------------------


def _layer_kinds():
    """(factory, rows of MODEL_LAYERS it loads) for every layer class fastnorm has."""
    import fastnorm

    kinds = [
        pytest.param(lambda: fastnorm.InstanceNorm(scale=True), "instancenorm0_", id="in0"),
        pytest.param(lambda: fastnorm.InstanceNorm(scale=True), "instancenorm1_", id="in1"),
    ]
    if hasattr(fastnorm, "GroupNorm"):
        # MXNet 1.x's GroupNorm: gamma/beta per group, shape (num_groups,).
        kinds.append(pytest.param(lambda: fastnorm.GroupNorm(num_groups=2), "groupnorm0_", id="gn"))
    if hasattr(fastnorm, "LayerNorm"):
        kinds.append(pytest.param(lambda: fastnorm.LayerNorm(), "layernorm0_", id="ln"))
    return kinds


@pytest.mark.parametrize(("make", "legacy"), _layer_kinds())
def test_layers_load_one_layer_from_every_model_file(expected, make, legacy):
    structural, _, exported = next(m for m in MODEL_LAYERS if m[1] == legacy)
    gamma = expected[f"model.params::{structural}gamma"]
    beta = expected[f"model.params::{structural}beta"]
    sources = [
        ("model.params", structural),
        ("model_legacy.params", legacy),
        ("model-0000.params", "arg:" + exported),
        ("model-0000.params", exported),
    ]
    for file, prefix in sources:
        layer = make()
        layer.load_parameters(DATA / file, prefix=prefix)
        assert layer.gamma.shape == gamma.shape  # deferred shapes come from the file
        np.testing.assert_array_equal(layer.gamma.data(), gamma)
        np.testing.assert_array_equal(layer.beta.data(), beta)
        assert layer.gamma.data().dtype == np.float32


def test_layer_reads_and_writes_mxnet_single_layer_files(expected, tmp_path):
    import fastnorm

    layer = fastnorm.InstanceNorm(in_channels=4, scale=True)
    layer.initialize()
    layer.load_parameters(DATA / "instancenorm.params")
    np.testing.assert_array_equal(layer.gamma.data(), expected["instancenorm.params::gamma"])
    # save_parameters writes MXNet's own bytes (what Gluon's save_parameters wrote).
    out = tmp_path / "norm.params"
    layer.save_parameters(out)
    assert out.read_bytes() == _golden_bytes("instancenorm.params")
    # float16 and float64 files are cast to the layer's dtype.
    for dt in ("float16", "float64"):
        other = fastnorm.InstanceNorm(scale=True)
        other.load_parameters(DATA / f"instancenorm_{dt}.params")
        assert other.gamma.data().dtype == np.float32
        want = expected[f"instancenorm_{dt}.params::gamma"].astype(np.float32)
        np.testing.assert_array_equal(other.gamma.data(), want)
    # The legacy names match the layer's full names without a prefix argument.
    named = fastnorm.InstanceNorm(prefix="instancenorm0_")
    named.load_parameters(DATA / "model_legacy.params", ignore_extra=True)
    np.testing.assert_array_equal(
        named.beta.data(), expected["model_legacy.params::instancenorm0_beta"]
    )


def test_layer_load_errors_change_nothing(tmp_path):
    import fastnorm

    layer = fastnorm.InstanceNorm(in_channels=4, scale=True)
    layer.initialize()
    before = layer.gamma.data().copy()
    cut = tmp_path / "cut.params"
    cut.write_bytes(_golden_bytes("instancenorm.params")[:-20])
    with pytest.raises(ValueError, match=r"cut\.params' at byte offset \d+"):
        layer.load_parameters(cut)
    with pytest.raises(ValueError, match=r"ignore_extra"):
        layer.load_parameters(DATA / "model.params")  # the whole model: other layers' names
    with pytest.raises(ValueError, match=r"no entry .* prefix '2\.'"):
        layer.load_parameters(DATA / "model.params", prefix="2.")
    with pytest.raises(ValueError, match=r"shape \(8,\)"):
        layer.load_parameters(DATA / "model.params", prefix="4.")  # 8 channels, not 4
    with pytest.raises(ValueError, match="unnamed MXNet list"):
        layer.load_parameters(DATA / "list.params")
    np.testing.assert_array_equal(layer.gamma.data(), before)
