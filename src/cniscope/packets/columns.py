"""Column arrays for one chunk of rows, each with a validity mask, turned into Arrow arrays (`arrow`) without copies.

Rows start null; decoders `put` values for a selection of rows (a slice, a
boolean mask or an index array). `arrays` gives the chunk's Arrow arrays of the
columns some row has, in schema order: the rest are null in every row, and the
decoder makes them typed null literals, which cost nothing to convert or hold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from cniscope.packets import arrow

Rows = slice | np.ndarray | int
ALL = slice(None)

# Each column's Arrow format (C data interface), in the schema's order (`schema.COLUMNS`, whose types tests hold these
# to): here without polars, for the decoding begun before polars is imported (`cniscope.ahead`). A categorical
# is int32 indices into a dictionary of strings.
ARROW_TYPE: dict[str, bytes] = {
    "input": b"S", "frame": b"I", "line": b"I", "node": b"i", "iface": b"i", "direction": b"C", "ts": b"l",
    "linktype": b"S", "caplen": b"I", "wirelen": b"I", "truncated": b"b", "eth_src": b"L", "eth_dst": b"L",
    "vlan": b"S", "ethertype": b"S", "tunnel": b"C", "vni": b"I", "outer_src": b"I", "outer_dst": b"I",
    "outer_src6": b"i", "outer_dst6": b"i", "outer_src_name": b"i", "outer_dst_name": b"i", "outer_sport": b"S",
    "outer_dport": b"S", "outer_ttl": b"C", "outer_ip_id": b"I", "outer_len": b"S", "outer_l4_csum_bad": b"b",
    "inner_eth_src": b"L", "inner_eth_dst": b"L", "ip_version": b"C", "src": b"I", "dst": b"I", "src6": b"i",
    "dst6": b"i", "src_name": b"i", "dst_name": b"i", "ip_id": b"I", "ttl": b"C", "tos": b"C", "ip_len": b"S",
    "df": b"b", "mf": b"b", "frag_offset": b"S", "proto": b"C", "sport": b"S", "dport": b"S", "tcp_flags": b"C",
    "seq": b"I", "ack": b"I", "win": b"S", "mss": b"S", "wscale": b"C", "sack_ok": b"b", "tsval": b"I", "tsecr": b"I",
    "l4_csum_bad": b"b", "icmp_type": b"C", "icmp_code": b"C", "icmp_id": b"S", "icmp_seq": b"S", "icmp_mtu": b"S",
    "quoted_src": b"I", "quoted_dst": b"I", "quoted_proto": b"C", "quoted_sport": b"S", "quoted_dport": b"S",
    "dns_id": b"S", "dns_qr": b"b", "arp_op": b"S", "arp_sha": b"L", "arp_spa": b"I", "arp_tpa": b"I",
    "payload_len": b"I", "payload_digest": b"L", "info": b"u", "error": b"i",
}
_NUMPY: dict[bytes, type[np.generic]] = {
    b"C": np.uint8, b"S": np.uint16, b"I": np.uint32, b"L": np.uint64, b"l": np.int64, b"b": np.bool_, b"u": np.object_,
    b"i": np.object_,
}
NUMPY_TYPE = {name: _NUMPY[fmt] for name, fmt in ARROW_TYPE.items()}


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
        found = {name: self._arrow(name) for name in ARROW_TYPE}
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
