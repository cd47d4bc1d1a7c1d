"""A chunk of raw frames decoded into the packet table's columns, as Arrow arrays: numpy alone, no polars.

The C decoder (`_decode.c`, `decode_c`) reads each frame once, header after header, and writes the fields it finds
straight into the chunk's column arrays (values, and Arrow validity bitmaps: the arrays become the table's columns
without another pass), without the GIL. What C leaves as positions or codes becomes text here: IPv6 addresses (C's
`ipv6_column`: one `inet_ntop` a distinct address) and the error texts; the batch's own columns (frame, ts, node,
iface ...) and the reader's direction are put beside them. Where the C decoder was not built, every frame goes through
`fallback.decode_frame`, one by one, to the same rows.

`cniscope.packets.tags` puts ingest's tags on them; `cniscope.packets.decode` hands them to polars (`decode.table`),
`read --format parquet` to pyarrow (`report.parquet_out.arrow_table`); the walk ahead of the command's imports
(`cniscope.ahead`) decodes its first batches here before polars is imported (tests/test_ahead.py).
"""

from __future__ import annotations

import importlib
import mmap
import sys
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from types import ModuleType

import numpy as np

from cniscope.packets import arrow
from cniscope.packets.columns import ALL, ARROW_TYPE, NUMPY_TYPE, Columns
from cniscope.packets.frames import FrameBatch
from cniscope.packets.kinds import IFINDEX_PREFIX, LinkType
from cniscope.packets.ports import TunnelPorts

CHUNK = 262144  # rows a call of the C decoder: a batch of `ingest` (grown for a large input) is one
ZEROED_MAPPED = 1 << 16  # bytes from which a zeroed array is mapped on its own (`_zeroed`)
# columns C writes as the buffer position of 16 address bytes: text here
_IPV6 = frozenset({"src6", "dst6", "outer_src6", "outer_dst6"})

Arrays = dict[str, arrow.Array]  # one chunk's columns some row has, in schema order (`Columns.arrays`)


def _compiled() -> ModuleType | None:
    try:
        return importlib.import_module("cniscope.packets._decode")
    except ImportError:
        return None


_C = _compiled()  # the C decoder; None where it was not built


def built() -> bool:
    """Whether the C decoder was built (else every frame decodes in Python)."""
    return _C is not None


def decode(batch: FrameBatch, ports: TunnelPorts, unread: frozenset[str], scratch: dict[str, np.ndarray], kept: bool,
           compiled: bool = True) -> list[Arrays]:
    """The arrays of each chunk of `CHUNK` rows of `batch` (one for a batch of `ingest`); `compiled` False: through the
    fallback (`decode.decode_batch_reference`). `unread`, `scratch`, `kept` as `decoded` takes them."""
    kinds = port_kinds(ports)
    n = len(batch.offset)
    module = _C if compiled else None
    return [_decode_chunk(batch, start, min(start + CHUNK, n), ports, kinds, module, unread, scratch, kept)
            for start in range(0, n, CHUNK)]


NOT_BUILT = ("cniscope: the C frame decoder (cniscope.packets._decode) was not built (no C compiler at install?): "
             "decoding packet by packet in Python, many times slower")
_said: list[bool] = []  # whether NOT_BUILT was said


def decoded(batch: FrameBatch, ports: TunnelPorts, unread: Collection[str] = (), scratch: Scratch | None = None,
            kept: bool = False) -> list[Arrays]:
    """Each chunk's columns of `batch` as Arrow arrays (`decode`); where the C decoder was not built, said once.
    `unread`: columns the caller drops unread (`analyze`), left null: not built at all. `scratch`: working arrays to
    take again (the batches of one input), else made for this batch. `kept`: the caller keeps every batch's table
    (`ingest.read`): its columns in pages of their own (`_zeroed`)."""
    if not built() and len(batch.offset) and not _said:
        _said.append(True)
        print(NOT_BUILT, file=sys.stderr)
    with (scratch or Scratch()).held() as arrays:
        return decode(batch, ports, frozenset(unread), arrays, kept)


class Scratch:
    """The C decoder's working arrays no table keeps (IPv6 addresses' buffer positions, booleans before they are packed
    into bits, validity words, interface indexes), taken again by the next batch: made afresh, each batch's pages were
    first touched again (2M pcap: 3 MB a batch of 256k). A set to each decode thread at a time (`held`)."""

    def __init__(self) -> None:
        self._free: list[dict[str, np.ndarray]] = []

    @contextmanager
    def held(self) -> Iterator[dict[str, np.ndarray]]:
        """A set of working arrays by name, the caller's alone until it gives it back."""
        try:
            arrays = self._free.pop()
        except IndexError:  # every set taken (or none made yet)
            arrays = {}
        try:
            yield arrays
        finally:
            self._free.append(arrays)


def _scratch(arrays: dict[str, np.ndarray], name: str, n: int, dtype: type[np.generic], zero: bool = False) -> np.ndarray:
    """`n` values of `dtype` from the working array `name` of `arrays` (grown when too short); zeros where `zero`,
    else what was left there."""
    have = arrays.get(name)
    if have is None or have.shape[0] < n or have.dtype != dtype:
        have = arrays[name] = np.empty(n, dtype=dtype)
    out = have[:n]
    if zero:
        out.fill(0)
    return out


def port_kinds(ports: TunnelPorts) -> np.ndarray:
    kinds = np.zeros(65536, dtype=np.uint8)
    for port, kind in ports.by_port.items():
        kinds[port] = kind
    return kinds


def _decode_chunk(
    batch: FrameBatch, start: int, stop: int, ports: TunnelPorts, port_kinds: np.ndarray, compiled: ModuleType | None,
    unread: frozenset[str], scratch: dict[str, np.ndarray], kept: bool,
) -> dict[str, arrow.Array]:
    n = stop - start
    cols = Columns(n)
    whole = n == len(batch.offset)  # the batch is one chunk: its arrays as they are (`Columns.put` copies a view's rows)
    caplen, linktype = (batch.caplen, batch.linktype) if whole else (batch.caplen[start:stop], batch.linktype[start:stop])
    if "frame" not in unread:
        cols.put("frame", ALL, np.arange(batch.first_frame + start, batch.first_frame + stop, dtype=np.uint32))
    cols.put("ts", ALL, batch.ts if whole else batch.ts[start:stop])
    cols.put("linktype", ALL, linktype)
    cols.put("caplen", ALL, caplen)
    cols.put("wirelen", ALL, batch.wirelen if whole else batch.wirelen[start:stop])
    cols.put_dictionary("node", batch.node[start:stop], batch.node_names)
    unnamed = _unnamed(batch, start, stop)
    ifindex = _scratch(scratch, "ifindex", n, np.int64) if unnamed is not None and compiled is not None else None
    base = batch.offset[start:stop].astype(np.int64, copy=False)
    if compiled is not None:
        _decode_c(compiled, batch.data, base, caplen, linktype, port_kinds, cols, unread, scratch, kept, ifindex)
    else:
        from cniscope.packets.fallback import decode_frame  # the frames one by one in Python (and polars, its schema's)

        data, end = batch.data, base + caplen
        rows = list(range(n))
        cols.put_rows(rows, [decode_frame(data[base[row] : end[row]].tobytes(), int(linktype[row]), ports) for row in rows])
    cols.put_dictionary("iface", *_sll2_ifindex(batch, start, stop, unnamed, ifindex))
    direction = batch.direction[start:stop]
    known = direction >= 0
    if known.any():
        cols.put_where("direction", ALL, direction.astype(np.uint8), known)
    arrays = cols.arrays()
    return {name: array for name, array in arrays.items() if name not in unread} if unread else arrays


def _decode_c(compiled: ModuleType, data: np.ndarray, base: np.ndarray, caplen: np.ndarray, linktype: np.ndarray,
              port_kinds: np.ndarray, cols: Columns, unread: frozenset[str], scratch: dict[str, np.ndarray],
              kept: bool, ifindex: np.ndarray | None = None) -> None:
    """The C decoder's columns for one chunk, into `cols` as Arrow arrays (the values as C wrote them, its validity
    bitmaps); a column no row has stays out (all null), and so does an `unread` one (C leaves it unwritten). C also
    reads the LINUX_SLL2 frames' interface indexes into `ifindex` where given. What no table keeps comes from `scratch`."""
    n = base.shape[0]
    names: tuple[str, ...] = compiled.COLUMNS
    values = [_values(name, n, unread, scratch, kept) for name in names]
    valid = _scratch(scratch, "valid", len(names) * -(-n // 64), np.uint64).reshape(len(names), -1)  # per column a
    # bitmap, a word per 64 rows (C writes each word of a column it keeps)
    counts = np.empty(len(names), dtype=np.int64)  # per column the rows that have a value (C's count)
    errors: list[tuple[int, str]] = compiled.decode(data, base, np.ascontiguousarray(caplen, dtype=np.uint32),
                                                    np.ascontiguousarray(linktype, dtype=np.uint16), port_kinds, values,
                                                    valid, counts, ifindex, kept)
    for c, (name, value, count) in enumerate(zip(names, values, counts.tolist())):
        if not count:
            continue
        bitmap = None if count == n else valid[c].copy()  # a buffer of its own: the block of bitmaps goes
        if name in _IPV6:
            cols.ready[name] = _ipv6_column(compiled, data, value, bitmap, n - count)
            continue
        if name == "direction":  # merged with the reader's direction: numpy first
            ok = None if bitmap is None else np.unpackbits(bitmap.view(np.uint8), count=n, bitorder="little").view(np.bool_)
            cols.values[name], cols.valid[name] = value, ok
            continue
        data_buffer = np.packbits(value, bitorder="little") if value.dtype == np.bool_ else value
        cols.ready[name] = arrow.Array(ARROW_TYPE[name], n, n - count, (bitmap, data_buffer))
    if errors and "error" not in unread:
        rows, texts = zip(*errors)
        cols.put("error", np.array(rows, dtype=np.int64), np.array(texts, dtype=object))


def _values(name: str, n: int, unread: frozenset[str], scratch: dict[str, np.ndarray], kept: bool) -> np.ndarray:
    """The array C writes column `name` of a chunk of `n` rows into. A column of a table the caller keeps (`kept`):
    zeros in pages of its own (`_zeroed`), C told so, which leaves a block of 64 rows none of which has the column's
    value unwritten: a rare one's (ARP's, ICMP's) pages are never touched. A streaming writer's: as the heap has it
    (C puts zeros under the nulls of a column some row has; the others are dropped): calloc's zeroing of memory taken
    again was 3.6% of `read --format parquet`'s CPU at 10M. What is read once, from `scratch`: booleans (packed into
    bits next), IPv6 addresses' positions (read only where a row has one: left as they were, not zeroed)."""
    dtype = np.int64 if name in _IPV6 else NUMPY_TYPE[name]
    if name in unread:
        return np.empty(0, dtype=dtype)
    if name in _IPV6 or dtype is np.bool_:
        return _scratch(scratch, name, n, dtype, zero=dtype is np.bool_)
    return _zeroed(n, dtype) if kept else np.empty(n, dtype=dtype)


def _zeroed(n: int, dtype: type[np.generic]) -> np.ndarray:
    """`n` zeros of `dtype`; a large array in pages of its own, which the OS maps as they are first written (freed
    memory taken again would be zeroed first: calloc, or C writing zeros, touched every page). Not for a caller that
    frees each batch before the next (a streaming writer: `read --format`): its columns, mapped afresh every batch,
    were all fresh pages (10M pcapng: 104k -> 381k page faults, 0.8 s more of CPU), where the heap takes the batch
    before's pages again."""
    size = n * np.dtype(dtype).itemsize
    if size < ZEROED_MAPPED:
        return np.zeros(n, dtype=dtype)
    return np.frombuffer(mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE), dtype=dtype)


def _ipv6_column(compiled: ModuleType, data: np.ndarray, position: np.ndarray, bitmap: np.ndarray | None,
                 nulls: int) -> arrow.Array:
    """IPv6 addresses as a text column, from the buffer positions of their 16 bytes in the rows `bitmap` (C's validity
    words; None: every row) sets: each row's index into the distinct texts (0 under a null), those texts in text order
    (as a text column's are made: `Columns`), by C (`ipv6_column`: one inet_ntop a distinct address)."""
    n = position.shape[0]
    codes = np.zeros(n, dtype=np.int32)
    rows = np.full(-(-n // 64), np.iinfo(np.uint64).max, dtype=np.uint64) if bitmap is None else bitmap
    offsets, texts = compiled.ipv6_column(data, position, rows, codes)
    at = np.frombuffer(offsets, dtype=np.int32)
    dictionary = arrow.Array(b"u", at.shape[0] - 1, 0, (None, at, np.frombuffer(texts or b"\0", dtype=np.uint8)))
    return arrow.Array(b"i", n, nulls, (bitmap, codes), dictionary)


def _unnamed(batch: FrameBatch, start: int, stop: int) -> np.ndarray | None:
    """The LINUX_SLL2 frames the file does not name the interface of (a pcap of `tcpdump -i any`) that hold an index,
    as a mask; None when there are none."""
    iface = batch.iface[start:stop]
    if not iface.shape[0] or iface.min() >= 0:  # none in a pcapng (every packet names its interface): no mask
        return None
    unnamed = iface < 0
    unnamed &= (batch.linktype[start:stop] == LinkType.LINUX_SLL2) & (batch.caplen[start:stop] >= 8)
    return unnamed if unnamed.any() else None


def _sll2_ifindex(batch: FrameBatch, start: int, stop: int, unnamed: np.ndarray | None,
                  ifindex: np.ndarray | None = None) -> tuple[np.ndarray, list[str | None]]:
    """Interface of each frame; a LINUX_SLL2 frame the file does not name (`unnamed`) is named by the index its header
    carries, "ifindex 7" as `tcpdump -e` prints it (the name belongs to the capturing host). `ifindex`: those indexes
    as the C decoder read them (-1: none; a working array, changed here), else gathered here."""
    iface = batch.iface[start:stop]
    if unnamed is None:
        return iface, batch.iface_names
    rows = slice(None) if unnamed.all() else unnamed  # every frame of a pcap of `tcpdump -i any`: no mask to apply
    if ifindex is not None:
        index = ifindex[rows]
    else:
        pos = batch.offset[start:stop][rows].astype(np.int64) + 4
        window, ok = _gather(batch.data, pos, 4)
        index = np.where(ok, window.view(">u4").astype(np.int64), -1)
    shifted = index  # in place: the index + 1, -1 (cut before the index, or past the buffer: none in a sound file) -> 0
    shifted += 1
    if shifted.shape[0] and shifted.max() <= 1 << 20:  # interface indexes are small: count them instead of sorting them
        present = np.bincount(shifted) > 0
        present[0] = False  # no index: no name
        known = np.flatnonzero(present) - 1
        code = np.cumsum(present, dtype=np.int32) + np.int32(len(batch.iface_names) - 1)  # an index's name, by place
        code[0] = -1
        at = code.take(shifted)  # int32, in 4 passes over the rows where masks and casts took 8
    else:
        missing = shifted <= 0
        known = np.unique(shifted[~missing]) - 1
        at = (np.searchsorted(known, shifted - 1) + len(batch.iface_names)).astype(np.int32)
        at[missing] = -1
    names = [*batch.iface_names, *(f"{IFINDEX_PREFIX}{i}" for i in known.tolist())]
    if isinstance(rows, slice):  # every frame: `at` is the column
        return at, names
    iface = iface.copy()
    iface[rows] = at
    return iface, names


def _gather(data: np.ndarray, pos: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """A `V<k>` window at each position, and whether it lies inside the buffer (else garbage)."""
    limit = data.shape[0] - k
    if limit < 0:
        return np.zeros(pos.shape[0], dtype=f"V{k}"), np.zeros(pos.shape[0], dtype=np.bool_)
    view = np.ndarray(shape=(limit + 1,), dtype=f"V{k}", buffer=data, strides=(1,))
    ok = (pos <= limit) & (pos >= 0)
    if ok.all():
        return view[pos], ok
    return view[np.clip(pos, 0, limit)], ok
