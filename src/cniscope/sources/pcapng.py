"""pcapng: find the packets of a mapped file, with their interface, node and direction.

Theory of operation: `cniscope.wire.walk` walks the enhanced packet blocks
(in C), checking each and writing its packet's fields (offset, lengths, interface, timestamp) into the window's
arrays, and Python reads the section and interface blocks between them as they come, for a window of at most
`batch_size` packets; the interfaces the packets name are held to those the section describes when the window is
flushed (an interface block may come after a packet that names it), and so are the rare simple and obsolete packet
blocks, in numpy. Options are
parsed in Python only for the packet blocks that carry any (their length says
so). A batch never spans two sections, so it has one byte order.

Blocks read: section header (SHB; each section has its own byte order and its
own interface numbering), interface description (IDB: link type, snaplen,
`if_name`, `if_description`, `if_tsresol` in both its base-10 and base-2 forms,
`if_tsoffset`), enhanced packet (EPB: `epb_flags` direction and reception type,
`opt_comment`), simple packet (SPB: interface 0, no timestamp, captured length
clipped to the snaplen), obsolete packet block (type 2). Name resolution,
statistics and every other block are skipped by their length.

Node convention (shared with `cniscope capture` and `cniscope.wire.pcapng`,
which write one section per node): the node a section was captured on is
named by a comment option (opt_comment, code 1) of its SHB holding
`node=<name>`. An interface's `if_description` may hold the
same `node=<name>` (or `node=<name>; more text`, as the one-section
`merged.pcapng` of a capture writes it) and then wins for that interface's
packets. Packets of a
section without it have no node (the input's `node=` tag fills it later).

Damage (a block whose length is not a multiple of 4 or runs past the end, a
trailing length that disagrees with the leading one, a captured length longer
than its block or above 256 KiB, a packet naming an interface never described,
a cut block, an interface whose if_tsresol or if_tsoffset no clock could have
written) ends the walk: every packet before it is yielded, and a warning names
the byte where it broke.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from cniscope.packets.frames import NO_TS, FrameBatch
from cniscope.packets.kinds import Direction, unsupported_linktype
from cniscope.sources import InputInfo
from cniscope.wire import walk
from cniscope.wire.pcapng import (
    BYTE_ORDER_MAGIC,
    DIRECTION_OF_RECEPTION,
    EPB_FLAGS,
    IDB,
    IF_DESCRIPTION,
    IF_NAME,
    IF_TSOFFSET,
    IF_TSRESOL,
    MAX_CAPLEN,
    OPB,
    OPT_COMMENT,
    OPT_END,
    SHB,
    SPB,
)

MAX_TSRESOL = {2: 63, 10: 19}  # exponents whose unit count still fits the 64-bit arithmetic of _to_ns
MAX_TSOFFSET_S = 1 << 32  # seconds: 136 years either way, far from int64 nanoseconds' 292


@dataclass
class Interface:
    linktype: int
    snaplen: int
    name: str | None = None
    node: str | None = None
    tsresol_num: int = 1  # ts unit = num / den seconds
    tsresol_den: int = 1_000_000
    tsoffset: int = 0  # seconds


@dataclass
class Section:
    byteorder: str
    node: str | None = None
    interfaces: list[Interface] = field(default_factory=list)
    iface_base: int = 0  # index of interface 0 of this section in the input's iface list


class _Damage(Exception):
    def __init__(self, pos: int, message: str) -> None:
        super().__init__(message)
        self.pos = pos
        self.message = message


def _options(buf: memoryview, start: int, stop: int, order: str) -> Iterator[tuple[int, bytes]]:
    """(code, value) of the options between start and stop; stops quietly at a malformed one."""
    pos = start
    while pos + 4 <= stop:
        code, length = struct.unpack_from(order + "HH", buf, pos)
        if code == OPT_END:
            return
        value_end = pos + 4 + length
        if value_end > stop:
            return
        yield code, bytes(buf[pos + 4:value_end])
        pos += 4 + ((length + 3) & ~3)


def _text(value: bytes) -> str:
    return value.rstrip(b"\0").decode("utf-8", errors="replace")


def _node_of(value: bytes) -> str | None:
    text = _text(value).strip()
    if text.startswith("node="):  # `node=<name>`, or `node=<name>; more` in a merged capture's interface descriptions
        return text[5:].split(";")[0].strip() or None
    return None


class Reader:
    """Walks one pcapng file: `batches()` yields its frames; `comments` gathers EPB comments by frame index."""

    def __init__(self, buf: memoryview, info: InputInfo, batch_size: int) -> None:
        self.buf = buf
        self.data = np.frombuffer(buf, dtype=np.uint8)
        self.info = info
        self.batch_size = batch_size
        self.end = len(buf)
        self.section: Section | None = None
        self.iface_names: list[str | None] = []
        self.iface_nodes: list[str | None] = []  # node of each global interface (section's or its own)
        self.node_names: list[str | None] = []
        self.first = 0
        self.comments: dict[int, str] = {}
        self.window: _Window | None = None  # the packet blocks walked, not yet flushed
        self.lengths = np.empty(batch_size, dtype=np.uint32)  # their blocks' lengths (read where a block has options)
        self.same: dict[tuple[int, int, str], np.ndarray] = {}  # `_lookup`'s arrays of one value, by value, length, type

    def batches(self) -> Iterator[FrameBatch]:
        pos = 0
        try:
            while pos < self.end:
                if pos + 12 > self.end:
                    raise _Damage(pos, f"block header cut short: {self.end - pos} of 12 bytes")
                if self.section is None or struct.unpack_from("<I", self.buf, pos)[0] == SHB:
                    yield from self._flush(self._take())
                    pos = self._section_header(pos)
                    continue
                pos = self._walk(pos)
                if self.window is not None and self.window.walked >= self.batch_size:
                    yield from self._flush(self._take())
            yield from self._flush(self._take())
        except _Damage as damage:
            first = damage
            try:  # the packets walked before the damage may hold an earlier one
                yield from self._flush(self._take())
            except _Damage as earlier:
                first = earlier
            self.info.warn(f"byte {first.pos}", f"{first.message}; kept the {self.first} packets before it")

    def _section_header(self, pos: int) -> int:
        """Read the SHB at pos; return the position after it."""
        if struct.unpack_from("<I", self.buf, pos)[0] != SHB:
            raise _Damage(pos, "expected a section header block")
        magic = struct.unpack_from("<I", self.buf, pos + 8)[0]
        if magic == BYTE_ORDER_MAGIC:
            order = "<"
        elif magic == 0x4D3C2B1A:
            order = ">"
        else:
            raise _Damage(pos, f"section header with unknown byte-order magic 0x{magic:08x}")
        length = self._block_length(pos, order)
        if length < 28:
            raise _Damage(pos, f"section header block of {length} bytes (at least 28 expected)")
        major = struct.unpack_from(order + "H", self.buf, pos + 12)[0]
        if major != 1:
            raise _Damage(pos, f"pcapng version {major} (only 1 is known)")
        node = None
        for code, value in _options(self.buf, pos + 24, pos + length - 4, order):
            if code == OPT_COMMENT:
                node = _node_of(value) or node
        self.section = Section(byteorder=order, node=node, iface_base=len(self.iface_names))
        return pos + length

    def _block_length(self, pos: int, order: str) -> int:
        length: int = struct.unpack_from(order + "I", self.buf, pos + 4)[0]
        if length < 12 or length & 3:
            raise _Damage(pos, f"block length {length} (a multiple of 4, at least 12 expected)")
        if pos + length > self.end:
            raise _Damage(pos, f"block of {length} bytes runs past the end of the file ({self.end - pos} left)")
        trailing = struct.unpack_from(order + "I", self.buf, pos + length - 4)[0]
        if trailing != length:
            raise _Damage(pos, f"block lengths disagree: {length} at the start, {trailing} at the end")
        return length

    def _take(self) -> _Window | None:
        """The packet blocks walked so far, leaving none (flushed once, even when damage follows)."""
        window, self.window = self.window, None
        return window

    def _walk(self, pos: int) -> int:
        """Walk the blocks of the current section from pos until the window is full or a section starts.

        The walk (`cniscope.wire.walk`) checks each enhanced packet block as it goes, all but its interface (which an
        interface block later in the batch may describe), and writes its packet's fields into the window's arrays;
        the rare simple and obsolete packet blocks are checked in `_flush`. Nothing from the first bad one on is used.
        """
        assert self.section is not None
        end, order = self.end, self.section.byteorder
        if self.window is None:
            self.window = _Window(self.batch_size)
        w = self.window
        while w.walked < self.batch_size:
            at = w.walked
            count, pos, bad, top = walk.pcapng_packets(
                self.data, pos, end, self.batch_size - at, order == ">", MAX_CAPLEN, w.offset[at:], w.caplen[at:],
                w.wirelen[at:], w.local[at:], w.units[at:], w.options[at:], self.lengths[at:])
            w.walked += count
            if bad >= 0 and w.bad is None:
                w.bad = at + bad
            w.top = max(w.top, top)
            if w.walked >= self.batch_size:
                return pos
            if pos + 8 > end:  # the end, or a cut block
                if pos < end:
                    raise _Damage(pos, f"block header cut short: {end - pos} of 12 bytes")
                return pos
            kind = struct.unpack_from(order + "I", self.buf, pos)[0]
            if kind == SHB:
                return pos
            length = self._block_length(pos, order)
            if kind in (OPB, SPB):
                w.others[w.walked] = pos
                w.walked += 1
            elif kind == IDB:
                self._interface(pos, length)
            pos += length
        return pos

    def _interface(self, pos: int, length: int) -> None:
        assert self.section is not None
        order = self.section.byteorder
        if length < 20:
            raise _Damage(pos, f"interface block of {length} bytes (at least 20 expected)")
        linktype, snaplen = struct.unpack_from(order + "HxxI", self.buf, pos + 8)
        iface = Interface(linktype=linktype, snaplen=snaplen)
        for code, value in _options(self.buf, pos + 16, pos + length - 4, order):
            if code == IF_NAME:
                iface.name = _text(value)
            elif code == IF_DESCRIPTION:
                iface.node = _node_of(value) or iface.node
            elif code == IF_TSRESOL and value:
                exponent = value[0] & 0x7F
                base = 2 if value[0] & 0x80 else 10
                if exponent > MAX_TSRESOL[base]:
                    raise _Damage(pos, f"interface block {len(self.section.interfaces)}: if_tsresol {base}^-{exponent} s "
                                       f"is finer than any clock (at most {base}^-{MAX_TSRESOL[base]})")
                iface.tsresol_num, iface.tsresol_den = 1, base**exponent
            elif code == IF_TSOFFSET and len(value) == 8:
                iface.tsoffset = struct.unpack_from(order + "q", value)[0]
                if abs(iface.tsoffset) > MAX_TSOFFSET_S:
                    raise _Damage(pos, f"interface block {len(self.section.interfaces)}: if_tsoffset {iface.tsoffset} s "
                                       f"is more than {MAX_TSOFFSET_S} s (a century) from 1970")
        why = unsupported_linktype(linktype)
        if why is not None:
            self.info.warn(f"byte {pos}", f"interface {iface.name or len(self.iface_names)}: {why}", damaged=False)
        self.section.interfaces.append(iface)
        self.iface_names.append(iface.name)
        self.iface_nodes.append(iface.node or self.section.node)

    def _flush(self, window: _Window | None) -> Iterator[FrameBatch]:
        """The packet blocks of `window` checked against the section's interfaces as they stand, and the simple and
        obsolete ones whole (`_check_numpy`); yield them up to the first damaged one, then raise."""
        if window is None or not window.walked:
            return
        assert self.section is not None
        section, big, end, n = self.section, self.section.byteorder == ">", self.end, window.walked
        interfaces, snap0 = len(section.interfaces), section.interfaces[0].snaplen if section.interfaces else 0
        good = n if window.bad is None else window.bad
        spb = np.zeros(0, dtype=np.int64)
        if window.others:
            rows, blocks = (np.array(list(keys), dtype=np.int64) for keys in (window.others, window.others.values()))
            fields = self._header_words(blocks)
            first, offset, caplen, wirelen, local, units, options, _ = _check_numpy(blocks, fields, end, interfaces, snap0,
                                                                                    big)
            for array, values in ((window.offset, offset), (window.caplen, caplen), (window.wirelen, wirelen),
                                  (window.local, local), (window.units, units), (window.options, options)):
                array[rows] = values
            self.lengths[rows] = fields[:, 1]
            spb = rows[fields[:, 0] == SPB]
            if first < len(rows):
                good = min(good, int(rows[first]))
        if window.top >= interfaces:  # a packet names an interface the section does not describe (by now)
            named = window.local[:good].view(np.uint32) >= interfaces
            if named.any():
                good = int(named.argmax())
        damaged = int(window.others.get(good, window.offset[good] - 28)) if good < n else None
        arrays = window.offset, window.local, window.caplen, window.wirelen, window.units, window.options
        if good < self.batch_size:  # arrays of the batch's length, as the decoder keeps them (it copies a view's rows)
            for array in arrays:
                array.resize(good, refcheck=False)  # realloc: in place, the rest handed back
        offset, local, caplen, wirelen, units, options = arrays
        yield from self._emit(offset, local, caplen, wirelen, units, options.view(np.bool_), spb[spb < good])
        if damaged is not None:
            facts = _check_numpy(np.array([damaged]), self._header_words(np.array([damaged])), end, interfaces, snap0,
                                 big)[-1]
            raise _Damage(damaged, self._reason(damaged, *facts))

    def _header_words(self, blocks: np.ndarray) -> np.ndarray:
        """The header words and trailing length of the blocks at `blocks` (`walk.header_words`), a row each."""
        assert self.section is not None
        fields = np.zeros((len(blocks), 8), dtype=np.uint32)
        for row, block in zip(fields, blocks.tolist()):
            walk.header_words(self.data, block, self.end, self.section.byteorder == ">", row)
        return fields

    def _reason(self, block: int, sound: bool, tail: int, local: int, caplen: int, header: int) -> str:
        assert self.section is not None
        left = self.end - block
        if left < header + 4:
            return f"packet block cut short: {left} bytes left"
        length = struct.unpack_from(self.section.byteorder + "I", self.buf, block + 4)[0]
        if not sound:
            if length & 3 or length < header + 4:
                return f"packet block length {length} (a multiple of 4, at least {header + 4} expected)"
            return f"block of {length} bytes runs past the end of the file ({left} left)"
        if tail != length:
            return f"block lengths disagree: {length} at the start, {tail} at the end"
        if local >= len(self.section.interfaces):
            return f"packet names interface {local}, but the section describes {len(self.section.interfaces)}"
        if caplen > MAX_CAPLEN:
            return f"absurd captured length {caplen} (more than {MAX_CAPLEN})"
        return f"captured length {caplen} does not fit its block of {length} bytes"

    def _packet_options(self, row: int, start: int, stop: int, direction: np.ndarray) -> None:
        """The options of one EPB, in Python: the uncommon layouts, and comments."""
        assert self.section is not None
        order = self.section.byteorder
        for code, value in _options(self.buf, start, stop, order):
            if code == EPB_FLAGS and len(value) == 4:
                direction[row] = _directions(np.array([struct.unpack_from(order + "I", value)[0]]))[0]
            elif code == OPT_COMMENT:
                self.comments[self.first + row] = _text(value)

    def _emit(self, offset: np.ndarray, local: np.ndarray, caplen: np.ndarray, wirelen: np.ndarray,
              ts_units: np.ndarray, options: np.ndarray, spb: np.ndarray) -> Iterator[FrameBatch]:
        """The checked packet blocks as a batch: their packets' `offset`, interface (`local` to the section), lengths,
        timestamp units, and whether each block carries options; `spb`: the rows of simple packet blocks."""
        n = len(offset)
        if n == 0:
            return
        section = self.section
        assert section is not None
        ifaces = section.interfaces
        linktypes = np.array([i.linktype for i in ifaces], dtype=np.uint16)
        is_epb = np.ones(n, dtype=np.bool_)  # an SPB has no timestamp
        is_epb[spb] = False
        clocks: dict[tuple[int, int, int], list[int]] = {}  # interfaces of one resolution and offset: usually all
        for k, iface in enumerate(ifaces):
            clocks.setdefault((iface.tsresol_num, iface.tsresol_den, iface.tsoffset), []).append(k)
        if len(clocks) == 1 and is_epb.all():  # the usual case: one clock, every block timed
            ts = _to_ns(ts_units, ifaces[0])
        else:
            ts = np.full(n, NO_TS, dtype=np.int64)
            for members in clocks.values():
                timed = (np.isin(local, members) if len(members) < len(ifaces) else np.ones(n, dtype=np.bool_)) & is_epb
                if timed.any():
                    ts[timed] = _to_ns(ts_units[timed], ifaces[members[0]])
        direction = np.full(n, -1, dtype=np.int16)
        rows = np.flatnonzero(options)
        if len(rows):
            # the usual case, epb_flags alone (cniscope capture writes it on every packet), vectorized
            at = offset[rows] + ((caplen[rows].astype(np.int64) + 3) & ~3)
            stop = offset[rows] - 28 + self.lengths[rows].astype(np.int64) - 4  # blocks with options have 28-byte headers
            o = section.byteorder
            first = _gather(self.data, at, 8).view(np.dtype([("code", o + "u2"), ("len", o + "u2"), ("value", o + "u4")]))
            flags = (first["code"] == EPB_FLAGS) & (first["len"] == 4)
            direction[rows[flags]] = _directions(first["value"][flags])
            only_flags = flags & (stop - at <= 12)  # flags (8) + end (4)
            for k in np.flatnonzero(~only_flags).tolist():
                self._packet_options(int(rows[k]), int(at[k]), int(stop[k]), direction)
        global_iface = np.add(local, section.iface_base, dtype=np.int32)
        node_index = {name: i for i, name in enumerate(self.node_names)}
        iface_node = np.full(len(self.iface_nodes), -1, dtype=np.int32)
        for g, name in enumerate(self.iface_nodes):
            if name is not None:
                if name not in node_index:
                    node_index[name] = len(self.node_names)
                    self.node_names.append(name)
                iface_node[g] = node_index[name]
        batch = FrameBatch(
            data=self.data,
            offset=offset,
            caplen=caplen.astype(np.uint32, copy=False),
            wirelen=wirelen.astype(np.uint32, copy=False),
            ts=ts,
            linktype=_lookup(linktypes, local, self.same),
            iface=global_iface,
            iface_names=list(self.iface_names),
            node=_lookup(iface_node, global_iface, self.same),
            node_names=list(self.node_names),
            direction=direction,
            first_frame=self.first,
        )
        self.first += n
        yield batch


class _Window:
    """The packet blocks of a batch as walked: their packets' fields (`walk.pcapng_packets`), the first row found
    damaged by the walk (`bad`), the largest interface named (`top`), and the simple and obsolete packet blocks among
    them (`others`: row -> block position), whose fields `Reader._flush` fills. Arrays of their own each batch: the
    decoder keeps the lengths and times as columns."""

    def __init__(self, size: int) -> None:
        self.offset = np.empty(size, dtype=np.int64)
        self.caplen, self.wirelen = np.empty(size, dtype=np.uint32), np.empty(size, dtype=np.uint32)
        self.local, self.units = np.empty(size, dtype=np.int32), np.empty(size, dtype=np.uint64)
        self.options = np.empty(size, dtype=np.uint8)
        self.walked = 0
        self.bad: int | None = None
        self.top = -1
        self.others: dict[int, int] = {}


def _check_numpy(block: np.ndarray, fields: np.ndarray, end: int, interfaces: int, snap0: int, big: bool) -> tuple[
        int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[bool, int, int, int, int]]:
    """The check of packet blocks in numpy (of the simple and obsolete ones, which `walk.pcapng_packets` leaves out;
    and to say why the first bad block is bad), `walk.pcapng_packets`' for an enhanced one, interfaces included: how many
    blocks are good, their packets' offsets, captured and wire lengths, interfaces, timestamp units and whether they
    carry options; and what `Reader._reason` needs of the first bad one (of row 0 when all are good)."""
    # rows whose 28-byte header would run past the end are bad anyway: their words are zeros
    kind = fields[:, 0]
    length = fields[:, 1].astype(np.int64)
    is_spb = kind == SPB
    header = np.where(is_spb, 12, 28)
    sound = (length >= header + 4) & (length & 3 == 0) & (block + length <= end) & (block + 28 <= end)
    tail = fields[:, 7].astype(np.int64)
    # the obsolete packet block has a 16-bit interface id and a 16-bit drop count
    iface = fields[:, 2].astype(np.int64)
    local = np.where(kind == OPB, iface >> 16 if big else iface & 0xFFFF, np.where(is_spb, 0, iface))
    # SPB: no interface id nor timestamp; its third word is the wire length
    wirelen = np.where(is_spb, iface, fields[:, 6]).astype(np.int64)
    caplen = fields[:, 5].astype(np.int64)
    if is_spb.any():
        clip = np.minimum(wirelen, length - 16)
        caplen = np.where(is_spb, np.minimum(clip, snap0) if snap0 else clip, caplen)
    units = (fields[:, 3].astype(np.uint64) << np.uint64(32)) | fields[:, 4].astype(np.uint64)
    bad = ~sound | (tail != length) | (local >= interfaces) | (caplen > MAX_CAPLEN) | (header + caplen + 4 > length)
    good = int(np.argmax(bad)) if bad.any() else len(block)
    options = ~is_spb & (length > header + ((caplen + 3) & ~3) + 4)
    k = good if good < len(block) else 0
    facts = (bool(sound[k]), int(tail[k]), int(local[k]), int(caplen[k]), int(header[k]))
    return (good, block + header, caplen.astype(np.uint32), wirelen.astype(np.uint32), local.astype(np.int32), units,
            options.astype(np.uint8), facts)


def _lookup(table: np.ndarray, index: np.ndarray, same: dict[tuple[int, int, str], np.ndarray]) -> np.ndarray:
    """`table[index]`, as one value where the table has one (a section's interfaces share a link type, a node):
    gathering took 0.2-0.3 ms a batch of 64k, filling a few us. Such an array is made once a value and length, and
    read-only, for every batch (`same`): the fresh pages of each batch's were 1.5 MB a batch of 256k."""
    if table.shape[0] and (table == table[0]).all():
        key = (int(table[0]), index.shape[0], table.dtype.str)
        if key not in same:
            same[key] = np.full(index.shape[0], table[0], dtype=table.dtype)
            same[key].flags.writeable = False
        return same[key]
    gathered: np.ndarray = table.take(index)
    return gathered


def _directions(flags: np.ndarray) -> np.ndarray:
    """epb_flags -> Direction values: bits 0-1 inbound (1) / outbound (2), bits 2-4 reception type."""
    inbound = DIRECTION_OF_RECEPTION[(flags >> 2) & 7]
    return np.where(flags & 3 == 2, int(Direction.OUT), np.where(flags & 3 == 1, inbound, -1)).astype(np.int16)


def _gather(data: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """The `width` bytes at each start, as one `V<width>` row each (one fancy index, no copy of data)."""
    view = np.ndarray(shape=(len(data) - width + 1,), dtype=f"V{width}", buffer=data, strides=(1,))
    gathered: np.ndarray = view[starts]
    return gathered


def _to_ns(units: np.ndarray, iface: Interface) -> np.ndarray:
    """Timestamp units of one interface -> ns since the epoch (exact integer arithmetic). `units` (uint64) is the
    caller's to spend: the result is made in its memory where it can, in one pass at most for the usual resolutions
    (none for nanoseconds; three new arrays a batch took 0.4 ms of the reader's 1.8 ms)."""
    num, den = iface.tsresol_num * 1_000_000_000, iface.tsresol_den
    if num % den == 0:
        ns = units.view(np.int64)
        if num // den != 1:
            ns *= num // den
    elif den % num == 0:
        ns = np.floor_divide(units, np.uint64(den // num), out=units).view(np.int64)
    else:  # base-2 resolutions: split to stay inside 64 bits
        whole, part = np.divmod(units, np.uint64(den))
        ns = whole.astype(np.int64) * 1_000_000_000 + ((part.astype(np.float64) * 1e9) / den).astype(np.int64)
    if iface.tsoffset:
        ns += iface.tsoffset * 1_000_000_000
    return ns


def iter_batches(buf: memoryview, info: InputInfo, batch_size: int = 65536) -> Iterator[FrameBatch]:
    """Yield the packets of a whole pcapng file held in `buf` (usually a mapped file).

    EPB comments are collected in `reader.comments` (frame index -> text); use
    `Reader` directly to get them.
    """
    yield from Reader(buf, info, batch_size).batches()
