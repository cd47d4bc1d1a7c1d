"""Numpy buffers handed to polars as Arrow arrays through the Arrow C data interface, without pyarrow.

pyarrow took 60-140 ms to import on every run that decodes a frame, only to wrap buffers polars takes over anyway.
Here each column of a chunk is exported as an Arrow array that `pl.Series` imports through the PyCapsule interface
(`__arrow_c_array__`, `frame`): the C structs point at the numpy buffers, no copy; the release callback polars calls
when it drops the last of them lets the buffers go (`_alive` holds them until then).
"""

from __future__ import annotations

import ctypes
import itertools
from collections.abc import Callable, Sequence
from ctypes import POINTER, c_char_p, c_int64, c_void_p
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import polars as pl

NULLABLE = 2  # ARROW_FLAG_NULLABLE


def _compiled() -> Callable[[bytes, Array], tuple[object, object]] | None:
    try:
        from cniscope.packets._decode import export
    except ImportError:  # built without a C compiler: ctypes
        return None
    return export




class _Schema(ctypes.Structure):
    pass


class _Array(ctypes.Structure):
    pass


# the release callbacks take the struct's address (a pointer to it in C): no ctypes pointer object to make
_SchemaRelease = ctypes.CFUNCTYPE(None, c_void_p)
_ArrayRelease = ctypes.CFUNCTYPE(None, c_void_p)
_Schema._fields_ = [
    ("format", c_char_p), ("name", c_char_p), ("metadata", c_char_p), ("flags", c_int64), ("n_children", c_int64),
    ("children", POINTER(POINTER(_Schema))), ("dictionary", POINTER(_Schema)), ("release", _SchemaRelease),
    ("private_data", c_void_p),
]
_Array._fields_ = [
    ("length", c_int64), ("null_count", c_int64), ("offset", c_int64), ("n_buffers", c_int64), ("n_children", c_int64),
    ("buffers", POINTER(c_void_p)), ("children", POINTER(POINTER(_Array))), ("dictionary", POINTER(_Array)),
    ("release", _ArrayRelease), ("private_data", c_void_p),
]

# What an exported array's struct points at (buffers, their list, children, texts) until polars releases it, by the key
# in its private_data; the struct itself (`_structs`, by address) lives until its capsule goes: polars moves it out of
# the capsule's struct (which it leaves released) and may release it before the capsule goes.
_alive: dict[int, object] = {}
_structs: dict[int, object] = {}
_keys = itertools.count(1)


_SCHEMA_RELEASE, _SCHEMA_PRIVATE = _Schema.release.offset, _Schema.private_data.offset
_ARRAY_RELEASE, _ARRAY_PRIVATE = _Array.release.offset, _Array.private_data.offset


def _released(address: int, release: int, private: int) -> None:
    """Let go of what the struct at `address` points at (`_alive`) and mark it released (a NULL release callback)."""
    _alive.pop(c_void_p.from_address(address + private).value or 0, None)
    c_void_p.from_address(address + release).value = None


def _schema_released(address: int | None) -> None:
    _released(address or 0, _SCHEMA_RELEASE, _SCHEMA_PRIVATE)


def _array_released(address: int | None) -> None:
    _released(address or 0, _ARRAY_RELEASE, _ARRAY_PRIVATE)


_RELEASE_SCHEMA = _SchemaRelease(_schema_released)  # a child's or a dictionary's: its parent's holds its memory
_RELEASE_ARRAY = _ArrayRelease(_array_released)

_Destructor = ctypes.CFUNCTYPE(None, c_void_p)
_capsule_new = ctypes.pythonapi.PyCapsule_New
_capsule_new.restype = ctypes.py_object
_capsule_new.argtypes = [c_void_p, c_char_p, _Destructor]
_capsule_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_pointer.restype = c_void_p
_capsule_pointer.argtypes = [c_void_p, c_char_p]
_SCHEMA_CAPSULE = b"arrow_schema"  # the capsule keeps the pointer to its name: these live as long as the module
_ARRAY_CAPSULE = b"arrow_array"


def _schema_capsule_gone(capsule: int | None) -> None:
    """A capsule's struct polars did not take (it moves it out, leaving it released) is released with it."""
    address = _capsule_pointer(capsule, _SCHEMA_CAPSULE) or 0
    if c_void_p.from_address(address + _SCHEMA_RELEASE).value:
        _schema_released(address)
    _structs.pop(address, None)


def _array_capsule_gone(capsule: int | None) -> None:
    address = _capsule_pointer(capsule, _ARRAY_CAPSULE) or 0
    if c_void_p.from_address(address + _ARRAY_RELEASE).value:
        _array_released(address)
    _structs.pop(address, None)


_SCHEMA_GONE = _Destructor(_schema_capsule_gone)
_ARRAY_GONE = _Destructor(_array_capsule_gone)


@dataclass(frozen=True)
class Array:
    """One Arrow array: `fmt` its format string (C data interface), `buffers` as the format lays them out (None: an
    absent validity bitmap), `dictionary` the values a dictionary-encoded array's indices point at."""

    fmt: bytes
    length: int
    null_count: int
    buffers: tuple[np.ndarray | None, ...]
    dictionary: Array | None = None


_export = _compiled()  # the C export of `_Column`; None where the decoder was not built


def validity(valid: np.ndarray) -> tuple[np.ndarray | None, int]:
    """A validity bitmap of a boolean mask (None where every row is valid), and the count of nulls."""
    nulls = valid.shape[0] - int(np.count_nonzero(valid))
    return (np.packbits(valid, bitorder="little") if nulls else None), nulls


def strings(texts: Sequence[str | None]) -> Array:
    """A UTF-8 string array of `texts` (None: null)."""
    encoded = [b"" if t is None else t.encode() for t in texts]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int32)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    data = np.frombuffer(b"".join(encoded) or b"\0", dtype=np.uint8)
    bitmap, nulls = validity(np.array([t is not None for t in texts], dtype=np.bool_))
    return Array(b"u", len(encoded), nulls, (bitmap, offsets, data))


def texts(a: Array) -> list[str | None]:
    """The values of a UTF-8 string array (`strings`), None where null."""
    bitmap, offsets, data = a.buffers
    assert offsets is not None and data is not None
    raw, at = data.tobytes(), offsets.tolist()
    valid = [True] * a.length if bitmap is None else np.unpackbits(bitmap.view(np.uint8), count=a.length,
                                                                   bitorder="little").astype(bool).tolist()
    return [raw[at[i]:at[i + 1]].decode() if ok else None for i, ok in enumerate(valid)]


def dictionary(indices: np.ndarray, texts: Sequence[str | None]) -> Array:
    """Text as int32 `indices` (negative: null) into `texts`: an Arrow dictionary array."""
    codes = np.ascontiguousarray(indices, dtype=np.int32)
    # no row null (a pcapng's interfaces): the minimum, without the mask and its count (a 256k batch: 11 against 56 us)
    bitmap, nulls = (None, 0) if not codes.shape[0] or codes.min() >= 0 else validity(codes >= 0)
    return Array(b"i", codes.shape[0], nulls, (bitmap, codes), strings(texts))


def _address(buffer: np.ndarray | None) -> int | None:
    if buffer is None:
        return None
    if buffer.flags.writeable and buffer.nbytes:  # a quarter of the time of asking numpy's array interface
        return ctypes.addressof(ctypes.c_char.from_buffer(buffer.data))
    return int(buffer.__array_interface__["data"][0])


def frame(arrays: dict[str, Array]) -> pl.DataFrame:
    """The named arrays (of one length) as a polars table that takes them over without a copy.

    Each column is exported on its own, as pyarrow's record batch let go of each buffer on its own: polars lets go of
    a column's buffers when it drops that column (the indices of a text column as soon as it recoded them), not when
    the chunk's last column goes. (One struct array of a chunk's plain columns: 0.6 ms a 64k chunk instead of 1.0, but
    analyze's peak at 10M 2.09-2.11 -> 2.32-2.39 GB.) Polars is imported here: the arrays are made without it, on
    a thread that may run while the command imports it (`cniscope.ahead`)."""
    import polars as pl

    return pl.DataFrame([pl.Series(_Column(name.encode(), a)) for name, a in arrays.items()])


class _Column:
    """One named array, exported through the PyCapsule interface (`pl.Series(_Column(...))`): by the C decoder's
    `export` where it was built (no Python callback a struct), else with ctypes."""

    def __init__(self, name: bytes, array: Array) -> None:
        self.name, self.array = name, array

    def __arrow_c_array__(self, requested_schema: object = None) -> tuple[object, object]:
        if _export is not None:
            return _export(self.name, self.array)
        keep: list[object] = []
        schema, array = _schema(self.name, self.array, keep), _array(self.array, keep)
        schema_key, array_key = next(_keys), next(_keys)
        schema.private_data, array.private_data = schema_key, array_key
        _alive[schema_key] = _alive[array_key] = keep
        _structs[ctypes.addressof(schema)], _structs[ctypes.addressof(array)] = schema, array
        return (_capsule_new(ctypes.addressof(schema), _SCHEMA_CAPSULE, _SCHEMA_GONE),
                _capsule_new(ctypes.addressof(array), _ARRAY_CAPSULE, _ARRAY_GONE))


def _schema(name: bytes, a: Array, keep: list[object]) -> _Schema:
    """The struct of `a`'s type; `keep` gets what it points at."""
    keep.extend((name, a.fmt))
    s = _Schema(format=a.fmt, name=name, flags=NULLABLE, n_children=0, release=_RELEASE_SCHEMA)
    if a.dictionary is not None:
        d = _schema(b"", a.dictionary, keep)
        keep.append(d)
        s.dictionary = ctypes.pointer(d)
    return s


def _array(a: Array, keep: list[object]) -> _Array:
    """The struct of `a`'s buffers; `keep` gets what it points at."""
    buffers = (c_void_p * len(a.buffers))(*map(_address, a.buffers))
    keep.extend((a, buffers))
    out = _Array(length=a.length, null_count=a.null_count, offset=0, n_buffers=len(a.buffers), n_children=0,
                 buffers=buffers, release=_RELEASE_ARRAY)
    if a.dictionary is not None:
        d = _array(a.dictionary, keep)
        keep.append(d)
        out.dictionary = ctypes.pointer(d)
    return out
