"""Column arrays for one chunk of rows, each with a validity mask, turned into Arrow arrays (`arrow`) without copies.

Rows start null; decoders `put` values for a selection of rows (a slice, a
boolean mask or an index array). `arrays` gives the chunk's Arrow arrays of the
columns some row has, in schema order: the rest are null in every row, and the
decoder makes them typed null literals, which cost nothing to convert or hold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from cniscope.packets import arrow
from cniscope.packets.schema import COLUMNS

Rows = slice | np.ndarray | int
ALL = slice(None)

_NUMPY: dict[pl.DataType | type[pl.DataType], type[np.generic]] = {
    pl.UInt8: np.uint8, pl.UInt16: np.uint16, pl.UInt32: np.uint32, pl.UInt64: np.uint64,
    pl.Int64: np.int64, pl.Boolean: np.bool_, pl.Utf8: np.object_, pl.Categorical: np.object_,
}
# Arrow format strings (C data interface); a categorical is int32 indices into a dictionary of strings
_ARROW: dict[pl.DataType | type[pl.DataType], bytes] = {
    pl.UInt8: b"C", pl.UInt16: b"S", pl.UInt32: b"I", pl.UInt64: b"L", pl.Int64: b"l", pl.Boolean: b"b", pl.Utf8: b"u",
    pl.Categorical: b"i",
}
NUMPY_TYPE = {c.name: _NUMPY[c.dtype.base_type()] for c in COLUMNS}
ARROW_TYPE = {c.name: _ARROW[c.dtype.base_type()] for c in COLUMNS}


_VALUE_TYPES = {int, bool, str}


class Columns:
    """`valid[name]` is None while every row of the column is set (the usual case: no mask to build)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.values: dict[str, np.ndarray] = {}
        self.valid: dict[str, np.ndarray | None] = {}
        self.ready: dict[str, arrow.Array] = {}
        self.adopted: set[int] = set()  # ids of caller arrays kept as columns: never adopt one twice

    def _arrays(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        values = self.values.get(name)
        if values is None:
            values = self.values[name] = np.zeros(self.n, dtype=NUMPY_TYPE[name])
            self.valid[name] = np.zeros(self.n, dtype=np.bool_)
        valid = self.valid[name]
        if valid is None:
            valid = self.valid[name] = np.ones(self.n, dtype=np.bool_)
        return values, valid

    def put(self, name: str, rows: Rows, values: np.ndarray | int | bool | str) -> None:
        """Set `name` for `rows` (values broadcast to the selection)."""
        if (
            isinstance(rows, slice) and name not in self.values and isinstance(values, np.ndarray) and values.shape == (self.n,)
            and values.dtype == NUMPY_TYPE[name]
        ):  # a whole column, already in shape: kept as is, or as the array it views whole under another type (pcapng's
            # times: its timestamp units); a copy of another view (its base may be reused or large)
            whole = values if values.base is None else values.base
            own = isinstance(whole, np.ndarray) and whole.base is None and whole.nbytes == values.nbytes
            own = own and id(whole) not in self.adopted
            self.adopted.add(id(whole))
            self.values[name] = values if own else values.copy()
            self.valid[name] = None
            return
        target, valid = self._arrays(name)
        target[rows] = values
        valid[rows] = True

    def put_where(self, name: str, rows: Rows, values: np.ndarray, mask: np.ndarray) -> None:
        """Set `name` for the `rows` where `mask` holds (values and mask are aligned with `rows`)."""
        target, valid = self._arrays(name)
        if isinstance(rows, slice):
            np.copyto(target, values, where=mask, casting="unsafe")
            valid |= mask
        else:
            picked = np.asarray(rows)[mask]
            target[picked] = values[mask]
            valid[picked] = True

    def put_rows(self, rows: list[int], found: Sequence[Mapping[str, object]]) -> None:
        """Set each row's fields (`found[i]` for `rows[i]`; None values skipped): one assignment per column and kind
        of row, not one per field of every row (the fallback's rows: a twentieth of a snaplen-128 VXLAN capture's time)."""
        kinds: dict[tuple[str, ...], list[int]] = {}  # rows of one kind have the same fields
        for i, fields in enumerate(found):
            kinds.setdefault(tuple(fields), []).append(i)
        for names, members in kinds.items():
            group, placed = [found[i] for i in members], [rows[i] for i in members]
            for name in names:
                values, at = [fields[name] for fields in group], placed
                if None in values:
                    at, values = [r for r, v in zip(at, values) if v is not None], [v for v in values if v is not None]
                    if not values:
                        continue
                if not set(map(type, values)) <= _VALUE_TYPES:
                    wrong = next(v for v in values if type(v) not in _VALUE_TYPES)
                    raise TypeError(f"{name}: a {type(wrong).__name__} is no column value")
                target, valid = self._arrays(name)
                target[at] = values
                valid[at] = True

    def put_dictionary(self, name: str, indices: np.ndarray, names: list[str | None]) -> None:
        """A text column from per-row indices into `names` (-1: null); with no names every row is null: left out."""
        if names:
            self.ready[name] = arrow.dictionary(indices, names)

    @staticmethod
    def _dictionary(values: np.ndarray, valid: np.ndarray | None) -> arrow.Array:
        """A text column's values as indices into its distinct texts (the rows `valid` leaves out: null)."""
        texts, codes = np.unique(values if valid is None else values[valid], return_inverse=True)
        indices = np.full(len(values), -1, dtype=np.int32)
        indices[slice(None) if valid is None else valid] = codes
        return arrow.dictionary(indices, texts.tolist())

    def arrays(self) -> dict[str, arrow.Array]:
        """The columns some row has a value of, in schema order."""
        found = {c.name: self._arrow(c.name) for c in COLUMNS}
        return {name: a for name, a in found.items() if a is not None and a.null_count < self.n}

    def _arrow(self, name: str) -> arrow.Array | None:
        if name in self.ready:
            return self.ready[name]
        values = self.values.get(name)
        if values is None:
            return None
        valid = self.valid[name]
        if valid is not None and not valid.any():
            return None
        if values.dtype == np.object_:
            if ARROW_TYPE[name] == b"i":  # as `put_dictionary`
                return self._dictionary(values, valid)
            texts = values.tolist()
            return arrow.strings(texts if valid is None else [t if ok else None for t, ok in zip(texts, valid.tolist())])
        bitmap, nulls = (None, 0) if valid is None else arrow.validity(valid)
        return arrow.Array(ARROW_TYPE[name], self.n, nulls, (bitmap, _data(values)))


def _data(values: np.ndarray) -> np.ndarray:
    """A column's values buffer as Arrow lays it out (booleans: a bit a row)."""
    return np.packbits(values, bitorder="little") if values.dtype == np.bool_ else np.ascontiguousarray(values)
