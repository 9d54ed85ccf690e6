"""MXNet's ``.params`` parameter files, read and written without MXNet.

MXNet (retired) stores parameters in one binary format, whether written by
``mx.nd.save``, Gluon's ``save_parameters`` / legacy ``save_params`` or
``HybridBlock.export``.  This module reads and writes that format with
NumPy alone, following MXNet 1.x's source (``src/ndarray/ndarray.cc``:
``NDArray::Save``/``Load`` and the list functions beside them;
``include/mxnet/tuple.h`` for shapes, ``include/mxnet/base.h`` for
contexts, ``mshadow/base.h`` for type flags; dmlc-core's serializer for
vectors and strings).  Every integer is little-endian.

File layout::

    uint64 0x112                  list magic (kMXAPINDArrayListMagic)
    uint64 0                      reserved
    uint64 n                      number of arrays, then n NDArray records
    uint64 k                      number of names: 0 (unnamed list) or n,
                                  each a uint64 length and that many bytes

NDArray record, as MXNet 1.x writes it::

    uint32 magic                  0xF993FAC9 (V2) or 0xF993FACA (V3, NumPy shapes)
    int32  storage type           0 dense; 1 row_sparse, 2 csr (not supported here)
    int32  ndim, int64 dims[ndim] shape (V3 allows ndim 0: a 0-d array)
    int32  dev_type, int32 dev_id context (1 = cpu, 2 = gpu, ...)
    int32  type flag              0 float32, 1 float64, 2 float16, 3 uint8,
                                  4 int32, 5 int8, 6 int64, 7 bool
    data                          prod(dims) * itemsize bytes, C order

Older records are read too: V1 (magic 0xF993FAC8, then the same shape) and
the first format, whose "magic" is the ndim followed by uint32 dims.

Files are untrusted input.  Any malformed content raises ``ValueError``
naming the file and the byte offset; nothing is unpickled, and every
declared count, ndim and shape is checked against the bytes that remain
before anything of that size is allocated.  The whole file is validated
before any array is created; a regular file is then read straight into the
arrays (memory: the arrays, not a second copy of the file), and
:func:`read_parameter_file` reads only the arrays its prefix selects.
``.npz`` files read by :func:`read_parameter_file` get the same checks
against their members' sizes (a deflated member may expand at most
1032-fold, deflate's limit).  Errors opening or reading the file itself
(missing file, permissions) stay ``OSError``.
"""

from __future__ import annotations

import io as _stdio
import math
import os
import stat
import struct
import zipfile
import zlib
from collections.abc import Mapping

import numpy as np

__all__ = [
    "load_mxnet_params",
    "read_parameter_file",
    "save_mxnet_params",
    "write_parameter_file",
]

# -- format constants (MXNet 1.x source) -----------------------------------------

_LIST_MAGIC = 0x112  # kMXAPINDArrayListMagic
_V1_MAGIC = 0xF993FAC8  # int64 TShape
_V2_MAGIC = 0xF993FAC9  # + storage type
_V3_MAGIC = 0xF993FACA  # + NumPy shape semantics (0-d arrays), mx.npx.save

# mshadow TypeFlag -> little-endian NumPy dtype.  Flags 0-7 are the ones MXNet
# 1.x reads and writes; 8-11 are defined by mshadow too (MXNet 2) and read
# here; 12 is bfloat16, which NumPy has no dtype for.
_TYPE_FLAGS = {
    0: np.dtype("<f4"),
    1: np.dtype("<f8"),
    2: np.dtype("<f2"),
    3: np.dtype("u1"),
    4: np.dtype("<i4"),
    5: np.dtype("i1"),
    6: np.dtype("<i8"),
    7: np.dtype("?"),
    8: np.dtype("<i2"),
    9: np.dtype("<u2"),
    10: np.dtype("<u4"),
    11: np.dtype("<u8"),
}
# What this writer emits: exactly the dtypes MXNet 1.x can load.
_WRITE_FLAGS = {
    np.dtype(dt).newbyteorder("="): flag for flag, dt in _TYPE_FLAGS.items() if flag < 8
}
_SPARSE = {1: "row_sparse", 2: "csr"}
# Context::DeviceType: kCPU, kGPU, kCPUPinned, kCPUShared.
_DEV_TYPES = {1: "cpu", 2: "gpu", 3: "cpu_pinned", 5: "cpu_shared"}
# NumPy's limit on ndim; a larger declared ndim cannot become an array.
_MAX_NDIM = 64
# Smallest byte counts a record and a name can occupy, to reject absurd
# declared counts up front (the loops are bounded by the bytes anyway).
_MIN_RECORD_BYTES = 4
_MIN_NAME_BYTES = 8
# Deflate's maximum expansion (RFC 1951: 258 bytes from a ~2-bit code, ~1032:1).
_MAX_DEFLATE_RATIO = 1032

_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_U64 = struct.Struct("<Q")
_I64 = struct.Struct("<q")

_ARG_AUX = ("arg:", "aux:")


# -- reading ------------------------------------------------------------------------


def _source_name(source) -> str:
    if isinstance(source, (str, bytes, os.PathLike)):
        return os.fsdecode(source)
    return str(getattr(source, "name", "<file object>"))


def _check_source(source) -> None:
    if not isinstance(source, (str, bytes, os.PathLike)) and not hasattr(source, "read"):
        raise TypeError(f"path must be a str, os.PathLike or binary file object, got {source!r}")


def _read_all(f) -> bytes:
    data = f.read()
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"file object {f!r} must be opened in binary mode")
    return bytes(data)


class _Reader:
    """Bounds-checked little-endian reads from a regular file or a bytes buffer.

    Every read is checked against the bytes that remain, so nothing larger
    than the source is ever requested.  A regular file is read where it
    lies (array data straight into the arrays, never a second copy of the
    file); anything else (pipes, file objects) is read into memory first.
    """

    def __init__(self, name: str, *, data: bytes | None = None, f=None, size: int = 0):
        self.name = name
        self.data = data
        self.f = f
        self.size = len(data) if data is not None else size
        self.pos = 0

    @property
    def remaining(self) -> int:
        return self.size - self.pos

    def error(self, msg: str, offset: int | None = None) -> ValueError:
        at = self.pos if offset is None else offset
        return ValueError(f"invalid MXNet parameter file {self.name!r} at byte offset {at}: {msg}")

    def need(self, nbytes: int, what: str) -> None:
        if nbytes > self.remaining:
            raise self.error(
                f"truncated: {what} needs {nbytes} bytes, but only {self.remaining} remain"
            )

    def take(self, nbytes: int, what: str) -> bytes:
        self.need(nbytes, what)
        start = self.pos
        if self.data is not None:
            raw = self.data[start : start + nbytes]
        else:
            raw = self.f.read(nbytes)
            if len(raw) != nbytes:  # the file shrank while being read
                raise self.error(f"truncated: {what} needs {nbytes} bytes, got {len(raw)}")
        self.pos += nbytes
        return raw

    def skip(self, nbytes: int, what: str) -> None:
        self.need(nbytes, what)
        self.pos += nbytes
        if self.f is not None:
            self.f.seek(self.pos)

    def unpack(self, fmt: struct.Struct, what: str) -> int:
        (value,) = fmt.unpack(self.take(fmt.size, what))
        return value

    def peek(self, nbytes: int) -> bytes:
        """Up to ``nbytes`` from the start, leaving the position there."""
        if self.data is not None:
            return self.data[:nbytes]
        self.f.seek(0)
        raw = self.f.read(nbytes)
        self.f.seek(0)
        return raw

    def read_all(self) -> bytes:
        """The whole content (for formats parsed in memory)."""
        if self.data is not None:
            return self.data
        self.f.seek(0)
        return self.f.read(self.size)

    def fill(self, out: np.ndarray, offset: int, what: str) -> None:
        """Fill the C-contiguous ``out`` with the bytes at ``offset`` (already bounds-checked)."""
        view = out.reshape(-1).view(np.uint8)
        if not view.size:
            return
        if self.data is not None:
            view[:] = np.frombuffer(self.data, np.uint8, count=view.size, offset=offset)
            return
        self.f.seek(offset)
        done = 0
        while done < view.size:
            n = self.f.readinto(view[done:])
            if not n:
                raise self.error(
                    f"truncated: {what} needs {view.size} bytes, got {done}", offset + done
                )
            done += n


class _Record:
    """Where one NDArray's data lies, its shape and stored dtype."""

    __slots__ = ("dims", "dtype", "index", "offset")

    def __init__(self, index: int, dims: tuple, dtype: np.dtype, offset: int):
        self.index, self.dims, self.dtype, self.offset = index, dims, dtype, offset


def _read_shape(r: _Reader, what: str, dim_fmt: struct.Struct, ndim: int) -> tuple:
    """The ndim dims of a TShape (ndim already read)."""
    if ndim < -1 or ndim > _MAX_NDIM:
        raise r.error(f"{what} declares ndim {ndim}, expected -1 to {_MAX_NDIM}", r.pos - 4)
    if ndim <= 0:
        return ()
    raw = r.take(ndim * dim_fmt.size, f"{what} shape of ndim {ndim}")
    return struct.unpack(f"<{ndim}{dim_fmt.format[-1]}", raw)


def _read_record(r: _Reader, index: int, count: int) -> _Record:
    """One NDArray record's header, as NDArray::Load / LegacyLoad read it; skips its data."""
    what = f"NDArray {index} (of {count})"
    start = r.pos
    magic = r.unpack(_U32, f"{what} magic")
    if magic in (_V2_MAGIC, _V3_MAGIC):
        stype_at = r.pos
        stype = r.unpack(_I32, f"{what} storage type")
        if stype in _SPARSE:
            raise r.error(
                f"{what} uses {_SPARSE[stype]} (sparse) storage, which is not supported; "
                "convert it to dense in MXNet (arr.tostype('default')) and save again",
                stype_at,
            )
        if stype != 0:
            raise r.error(f"{what} has unknown storage type {stype}", stype_at)
        shape_at = r.pos
        ndim = r.unpack(_I32, f"{what} ndim")
        dims = _read_shape(r, what, _I64, ndim)
        # Legacy shape semantics (V2): ndim 0 marks an empty "none" NDArray.
        # NumPy semantics (V3): ndim 0 is a 0-d array.
        none = magic == _V2_MAGIC and ndim == 0
    elif magic == _V1_MAGIC:
        shape_at = r.pos
        ndim = r.unpack(_I32, f"{what} ndim")
        dims = _read_shape(r, what, _I64, ndim)
        none = False
    else:
        # The first format had no magic: these 4 bytes were the ndim, followed
        # by uint32 dims.  LegacyLoad (MXNet 1.9.1) reads ndim 0 as a 0-d array.
        if magic > _MAX_NDIM:
            raise r.error(
                f"{what} starts with unknown magic 0x{magic:08X} (expected 0x{_V2_MAGIC:08X} "
                f"or 0x{_V3_MAGIC:08X}, or a legacy ndim of at most {_MAX_NDIM})",
                start,
            )
        shape_at = start
        ndim = magic
        dims = _read_shape(r, what, _U32, ndim)
        none = False
    # -1 marks an unknown ndim or dimension (shape_is_known): a placeholder.
    if none or ndim == -1 or -1 in dims:
        raise r.error(
            f"{what} is an empty NDArray placeholder without data (shape ndim {ndim}, "
            f"dims {list(dims)}); it holds no values and is not supported",
            shape_at,
        )
    if any(d < 0 for d in dims):
        raise r.error(f"{what} has negative dimensions {list(dims)}", shape_at)
    ctx_at = r.pos
    dev_type = r.unpack(_I32, f"{what} context device type")
    r.unpack(_I32, f"{what} context device id")  # any device: data is loaded to the CPU
    if dev_type not in _DEV_TYPES:
        raise r.error(
            f"{what} has unknown context device type {dev_type} "
            f"(expected one of {sorted(_DEV_TYPES)})",
            ctx_at,
        )
    flag_at = r.pos
    flag = r.unpack(_I32, f"{what} type flag")
    dtype = _TYPE_FLAGS.get(flag)
    if dtype is None:
        detail = "bfloat16, which NumPy cannot represent" if flag == 12 else "unknown"
        raise r.error(f"{what} has type flag {flag} ({detail})", flag_at)
    offset = r.pos
    # Checked against the remaining bytes before anything is allocated: a
    # hostile shape fails here, at no cost.
    nbytes = math.prod(dims) * dtype.itemsize
    r.skip(nbytes, f"{what} data of shape {tuple(dims)} and dtype {dtype}")
    return _Record(index, tuple(dims), dtype, offset)


def _materialize(r: _Reader, rec: _Record) -> np.ndarray:
    """A fresh array (owning its data) with the record's values."""
    out = np.empty(rec.dims, dtype=rec.dtype)
    r.fill(out, rec.offset, f"NDArray {rec.index} data")
    if rec.dtype.kind == "b":
        # Normalize: any nonzero byte is True, as mshadow's bool reads it.
        return out.view(np.uint8) != 0
    if not rec.dtype.isnative:
        out = out.astype(rec.dtype.newbyteorder("="))
    return out


def _parse_mxnet(r: _Reader):
    """(records, names) of a complete MXNet list file; names is None when unnamed.

    The whole file is checked (every header, the name table, no trailing
    bytes) before any array is allocated.
    """
    header = r.unpack(_U64, "file header")
    if header != _LIST_MAGIC:
        raise r.error(
            f"not an MXNet NDArray file: header 0x{header:X}, expected 0x{_LIST_MAGIC:X}", 0
        )
    r.unpack(_U64, "reserved field")  # MXNet writes 0 and never checks it
    count_at = r.pos
    count = r.unpack(_U64, "array count")
    if count * _MIN_RECORD_BYTES > r.remaining:
        raise r.error(
            f"declares {count} arrays, more than the {r.remaining} remaining bytes can hold",
            count_at,
        )
    records = [_read_record(r, i, count) for i in range(count)]
    names_at = r.pos
    nnames = r.unpack(_U64, "name count")
    if nnames not in (0, count):
        raise r.error(
            f"declares {nnames} names for {count} arrays (expected 0 or {count})", names_at
        )
    if nnames * _MIN_NAME_BYTES > r.remaining:
        raise r.error(
            f"declares {nnames} names, more than the {r.remaining} remaining bytes can hold",
            names_at,
        )
    names = []
    seen = set()
    for i in range(nnames):
        at = r.pos
        length = r.unpack(_U64, f"length of name {i}")
        raw = r.take(length, f"name {i}")
        try:
            key = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise r.error(f"name {i} is not valid UTF-8 ({exc.reason})", at) from None
        if key in seen:
            raise r.error(f"name {key!r} appears twice", at)
        seen.add(key)
        names.append(key)
    if r.remaining:
        raise r.error(f"{r.remaining} unexpected bytes after the name table")
    return records, (names if nnames else None)


class _Source:
    """An open source as a :class:`_Reader` (context manager; OSErrors propagate)."""

    def __init__(self, source):
        _check_source(source)
        self.source = source
        self.name = _source_name(source)
        self.f = None

    def __enter__(self) -> _Reader:
        if not isinstance(self.source, (str, bytes, os.PathLike)):
            return _Reader(self.name, data=_read_all(self.source))
        self.f = open(self.source, "rb")
        try:
            st = os.fstat(self.f.fileno())
            if stat.S_ISREG(st.st_mode):
                return _Reader(self.name, f=self.f, size=st.st_size)
            return _Reader(self.name, data=_read_all(self.f))
        except BaseException:
            # __exit__ does not run when __enter__ raises.
            self.f.close()
            raise

    def __exit__(self, *exc):
        if self.f is not None:
            self.f.close()


def load_mxnet_params(path):
    """Read an MXNet ``.params`` / ``mx.nd.save`` file, as ``mx.nd.load`` does.

    Parameters
    ----------
    path : str, os.PathLike or binary file object
        A file written by ``mx.nd.save``, ``mx.npx.save``, Gluon's
        ``save_parameters`` / ``save_params`` or ``HybridBlock.export``.

    Returns
    -------
    dict or list of numpy.ndarray
        ``{name: array}`` in file order for a named file (names exactly as
        stored, e.g. ``'1.gamma'`` or ``'arg:hybridsequential0_conv0_weight'``);
        a list for an unnamed one.  Arrays are fresh, writable, C-ordered and
        in native byte order, with the stored dtype (float16/32/64, uint8,
        int8, int32, int64, bool; MXNet 2's int16/uint16/uint32/uint64 too).
        0-d arrays come from NumPy-semantics (``mx.npx.save``) records.

    Raises
    ------
    ValueError
        For anything but a well-formed file: wrong header, truncation,
        impossible counts or shapes, sparse storage (not supported), unknown
        type flags, duplicate names or trailing bytes.  The message names
        the file and the byte offset.  Records of either semantics (V2 and
        V3) may be mixed in one file.
    OSError
        When the file cannot be opened or read.

    Notes
    -----
    The whole file is validated before any array is allocated; a regular
    file is then read straight into the arrays, so memory use is the
    arrays' size (file objects and pipes are read into memory first).
    """
    with _Source(path) as r:
        records, names = _parse_mxnet(r)
        arrays = [_materialize(r, rec) for rec in records]
    if names is None:
        return arrays
    return dict(zip(names, arrays, strict=True))


# -- writing ------------------------------------------------------------------------


def _as_saveable(key: str, value, np_shape: bool) -> tuple[np.ndarray, int]:
    if isinstance(value, np.ndarray):
        arr = value
    else:
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"array {key} must be array_like, got {value!r}: {exc}") from None
    flag = _WRITE_FLAGS.get(arr.dtype.newbyteorder("="))
    if flag is None:
        raise TypeError(
            f"array {key} has dtype {arr.dtype}; MXNet 1.x files hold float16, float32, "
            "float64, uint8, int8, int32, int64 or bool"
        )
    if arr.ndim == 0 and not np_shape:
        raise ValueError(
            f"array {key} is 0-d, which MXNet's legacy (mx.nd) format cannot store; "
            "pass np_shape=True to write NumPy-semantics records (read by mx.npx.load), "
            "or reshape it to (1,)"
        )
    if arr.ndim > _MAX_NDIM:
        raise ValueError(f"array {key} has {arr.ndim} dimensions, at most {_MAX_NDIM} allowed")
    return arr, flag


def _record_header(arr: np.ndarray, flag: int, magic: int) -> bytes:
    parts = [
        _U32.pack(magic),
        _I32.pack(0),  # dense storage
        _I32.pack(arr.ndim),
        struct.pack(f"<{arr.ndim}q", *arr.shape),
        _I32.pack(1),  # context: cpu(0), as MXNet writes arrays it copied to the CPU
        _I32.pack(0),
        _I32.pack(flag),
    ]
    return b"".join(parts)


def _data_bytes(arr: np.ndarray):
    """The C-order little-endian data, as a buffer (no copy when already so)."""
    if arr.dtype.kind == "b":
        return np.ascontiguousarray(arr).view(np.uint8)
    return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))


def save_mxnet_params(path, arrays, *, np_shape=False):
    """Write arrays in MXNet's ``.params`` format (``mx.nd.save``).

    Parameters
    ----------
    path : str, os.PathLike or binary file object
        Written to exactly this path (no extension is added).
    arrays : dict or list/tuple of array_like
        A mapping ``{name: array}`` (names are ``str``) gives a named file, as
        Gluon's ``save_parameters`` writes; a list or tuple an unnamed one.
        dtypes: float16, float32, float64, uint8, int8, int32, int64, bool.
    np_shape : bool, default False
        False writes V2 records (magic 0xF993FAC9), the format of ``mx.nd.save``
        and Gluon, read by MXNet 1.x's ``mx.nd.load`` and ``load_parameters``;
        these cannot hold 0-d arrays.  True writes V3 records (0xF993FACA),
        what ``mx.npx.save`` writes, read by ``mx.npx.load`` under
        ``npx.set_np()``; 0-d arrays allowed.

    Raises
    ------
    TypeError
        For an ``arrays`` that is neither a mapping nor a list/tuple, a
        non-``str`` name, or an unsupported dtype.
    ValueError
        For a 0-d array without ``np_shape=True``.  Everything is checked
        before the file is opened, so a bad argument writes nothing.
    """
    if not isinstance(np_shape, (bool, np.bool_)):
        raise TypeError(f"np_shape must be a bool, got {np_shape!r}")
    if isinstance(arrays, Mapping):
        items = list(arrays.items())
        for key, _ in items:
            if not isinstance(key, str):
                raise TypeError(f"array names must be str, got {key!r}")
        names = [key for key, _ in items]
        labels = [repr(key) for key in names]
        values = [v for _, v in items]
    elif isinstance(arrays, (list, tuple)):
        names, values = [], list(arrays)
        labels = [str(i) for i in range(len(values))]
    else:
        raise TypeError(
            f"arrays must be a dict of name -> array or a list of arrays, got {type(arrays)!r}"
        )
    checked = [_as_saveable(lab, v, bool(np_shape)) for lab, v in zip(labels, values, strict=True)]
    magic = _V3_MAGIC if np_shape else _V2_MAGIC
    chunks = [_U64.pack(_LIST_MAGIC), _U64.pack(0), _U64.pack(len(checked))]
    for arr, flag in checked:
        chunks.append(_record_header(arr, flag, magic))
        chunks.append(_data_bytes(arr))
    chunks.append(_U64.pack(len(names)))
    for key in names:
        raw = key.encode("utf-8")
        chunks.append(_U64.pack(len(raw)))
        chunks.append(raw)
    if hasattr(path, "write") and not isinstance(path, (str, os.PathLike)):
        for chunk in chunks:
            path.write(chunk)
        return
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"path must be a str, os.PathLike or binary file object, got {path!r}")
    with open(path, "wb") as f:
        for chunk in chunks:
            f.write(chunk)


# -- layer-facing helpers -------------------------------------------------------------


class _NpzError(ValueError):
    """A problem found while reading a .npz; re-raised as a plain ValueError."""


def _npz_error(name: str, msg: str) -> ValueError:
    return _NpzError(f"invalid NumPy .npz parameter file {name!r}: {msg}")


def _parse_npz(data: bytes, name: str) -> dict:
    """{name: array} of a .npz file, with the same allocation bound as MXNet files.

    ``np.load`` would allocate each member's declared shape before reading
    its data, so the headers are checked against the members' sizes first.
    """
    out = {}
    try:
        with zipfile.ZipFile(_stdio.BytesIO(data)) as zf:
            for info in zf.infolist():
                member = info.filename
                if not member.endswith(".npy"):
                    raise _npz_error(name, f"member {member!r} is not a .npy array")
                key = member[: -len(".npy")]
                if key in out:
                    raise _npz_error(name, f"array {key!r} appears twice")
                if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                    raise _npz_error(
                        name,
                        f"member {member!r} uses zip compression method {info.compress_type}; "
                        "NumPy writes only stored or deflated members",
                    )
                with zf.open(info) as fp:
                    version = np.lib.format.read_magic(fp)
                    # Version 3.0 differs from 2.0 only by allowing UTF-8 in the header.
                    read_header = (
                        np.lib.format.read_array_header_1_0
                        if version == (1, 0)
                        else np.lib.format.read_array_header_2_0
                    )
                    shape, fortran, dtype = read_header(fp)
                    if dtype.hasobject:
                        raise _npz_error(name, f"array {key!r} holds Python objects")
                    nbytes = math.prod(shape) * dtype.itemsize
                    available = info.file_size - fp.tell()
                    if info.compress_type == zipfile.ZIP_DEFLATED:
                        # Deflate expands at most 1032-fold: a larger declared size is
                        # a lie, and would let a tiny file claim a huge allocation.
                        available = min(available, _MAX_DEFLATE_RATIO * info.compress_size)
                    if nbytes > available:
                        raise _npz_error(
                            name,
                            f"array {key!r} declares shape {shape} of {dtype} ({nbytes} "
                            f"bytes), but its member holds only {available} bytes of data",
                        )
                    raw = fp.read(nbytes)
                    if len(raw) != nbytes:
                        raise _npz_error(name, f"array {key!r} is truncated")
                order = "F" if fortran else "C"
                out[key] = np.frombuffer(raw, dtype=dtype).reshape(shape, order=order).copy()
    except _NpzError as exc:
        raise ValueError(str(exc)) from None
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        zlib.error,
        EOFError,
        OSError,
        NotImplementedError,
        RuntimeError,
        KeyError,
        TypeError,
        ValueError,
    ) as exc:
        msg = f"invalid NumPy .npz parameter file {name!r}: {type(exc).__name__}: {exc}"
        raise ValueError(msg) from None
    return out


def _strip_tag(key: str) -> str:
    return key[4:] if key.startswith(_ARG_AUX) else key


def read_parameter_file(path, prefix=""):
    """Named parameters from an MXNet ``.params`` or NumPy ``.npz`` file.

    The format is recognized by content: MXNet's list magic 0x112 or a zip
    archive (``.npz``), whatever the file's extension.

    Parameters
    ----------
    path : str, os.PathLike or binary file object
    prefix : str, default ''
        Selects the entries whose names start with ``prefix`` and removes it
        from their names, so that one layer's parameters can be taken out of
        a whole-model file: ``'1.'`` (Gluon ``save_parameters``, structural
        names), ``'instancenorm0_'`` (legacy ``save_params``) or
        ``'arg:hybridsequential0_instancenorm0_'`` (``export``).  As in
        Gluon's own loading, the ``'arg:'``/``'aux:'`` tags of exported files
        are ignored unless ``prefix`` itself starts with one: both
        ``'hybridsequential0_instancenorm0_'`` and
        ``'arg:hybridsequential0_instancenorm0_'`` select ``gamma`` and
        ``beta`` there, and with ``prefix=''`` an exported file's names come
        back without their tags.

    Returns
    -------
    dict
        ``{name: numpy.ndarray}`` of the selected entries, in file order,
        arrays in their stored dtype.

    Raises
    ------
    ValueError
        For a malformed file (naming the file and, for MXNet files, the byte
        offset), a file in neither format, an unnamed MXNet list, a
        ``prefix`` that selects nothing, or two entries that become the same
        name (``'arg:x'`` and ``'aux:x'``).
    TypeError
        For a ``prefix`` that is not a ``str``.
    OSError
        When the file cannot be opened or read.
    """
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a str, got {prefix!r}")
    with _Source(path) as r:
        head = r.peek(8)
        if head == _U64.pack(_LIST_MAGIC):
            records, names = _parse_mxnet(r)
            if names is None and records:
                raise ValueError(
                    f"{r.name!r} is an unnamed MXNet list of {len(records)} arrays (mx.nd.save "
                    "of a list), not named parameters; read it with fastnorm.io.load_mxnet_params"
                )
            # An empty file has no names either: Gluon's save_parameters of a
            # block without parameters writes one.
            chosen = _select(dict(zip(names or [], records, strict=True)), prefix, r.name)
            # Only the selected arrays are read (one layer out of a whole model).
            return {key: _materialize(r, rec) for key, rec in chosen.items()}
        if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
            return _select(_parse_npz(r.read_all(), r.name), prefix, r.name)
        raise ValueError(
            f"{r.name!r} is not a NumPy .npz archive or an MXNet parameter file "
            f"(header 0x112): it starts with {head!r}"
        )


def _select(entries: dict, prefix: str, name: str) -> dict:
    """The entries whose names start with ``prefix``, under the rest of their names."""
    tagged = prefix.startswith(_ARG_AUX)
    selected = {}
    for key, value in entries.items():
        candidate = key if tagged else _strip_tag(key)
        if not candidate.startswith(prefix):
            continue
        short = candidate[len(prefix) :]
        if short in selected:
            raise ValueError(
                f"{name!r}: two entries become the name {short!r} after removing "
                f"{prefix!r} and any 'arg:'/'aux:' tag (one is {key!r})"
            )
        selected[short] = value
    if prefix and not selected:
        sample = ", ".join(repr(k) for k in list(entries)[:6])
        raise ValueError(
            f"no entry of {name!r} starts with prefix {prefix!r}; its names are "
            f"{sample}{', ...' if len(entries) > 6 else ''}"
        )
    return selected


def write_parameter_file(path, params):
    """Write named parameters in MXNet's format, as Gluon's ``save_parameters``.

    Parameters
    ----------
    path : str, os.PathLike or binary file object
        Written to exactly this path (no extension is added).
    params : dict
        ``{name: array}``, e.g. ``{'gamma': ..., 'beta': ...}`` (the
        structural names Gluon writes for a single layer).  MXNet 1.x's
        ``mx.nd.load`` and Gluon's ``load_parameters`` read the file.

    Raises
    ------
    TypeError, ValueError
        As :func:`save_mxnet_params`; also TypeError when ``params`` is not a
        mapping.
    """
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a dict of name -> array, got {type(params)!r}")
    save_mxnet_params(path, params)
