"""Classic pcap: find the records of a mapped file, in bounded batches.

Theory of operation: the file is mapped, never copied. `cniscope.wire.walk`
walks the 16-byte record headers, reading only each caplen (the one sequential
step, in C, and unchecked), into an int64 offset array for a window of at most
`batch_size` records, with their header words; the window's records are then
checked and their fields made in one pass (`walk.pcap_check`; by numpy where C was not built). Damage (a cut header or
packet, an absurd caplen, a wire length of 0) ends the walk: every record before it is yielded, and
a warning names the byte where it broke.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from cniscope.packets.frames import FrameBatch
from cniscope.packets.kinds import unsupported_linktype
from cniscope.sources import InputInfo
from cniscope.wire import walk
from cniscope.wire.pcap import HEADER_LEN, MAX_CAPLEN, RECORD_LEN, Header, is_pcap, parse_header

RECORD = np.dtype([("sec", "u4"), ("sub", "u4"), ("caplen", "u4"), ("wirelen", "u4")])  # a record header's words


def iter_batches(buf: memoryview, info: InputInfo, batch_size: int = 65536, *,
                 start: int = HEADER_LEN, stop: int | None = None, first: int = 0) -> Iterator[FrameBatch]:
    """Yield the records of a pcap file held in `buf` (usually a mapped file): all of them, or, for a part
    read on its own (`cniscope.parts`), those whose header starts in [start, stop), `start` being a
    record's and `first` its index."""
    end = len(buf)
    stop = end if stop is None else min(stop, end)
    header = parse_header(buf)
    if header is None:
        if end < HEADER_LEN and is_pcap(bytes(buf[:4])):
            info.warn("byte 0", f"pcap file header cut short: {end} of {HEADER_LEN} bytes")
        else:
            info.warn("byte 0", "not a pcap file (bad magic)")
        return
    why = unsupported_linktype(header.linktype)
    if why is not None:
        info.warn("byte 20", why, damaged=False)
    data = np.frombuffer(buf, dtype=np.uint8)
    walk_end = min(end, stop + RECORD_LEN + MAX_CAPLEN)  # a part's walk ends just past its last record
    offsets = np.empty(batch_size, dtype=np.int64)
    words = np.empty((batch_size, 4), dtype=np.uint32)  # the records' header words, as the walk read them
    pos = start
    same: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # `_same`'s arrays by batch length
    while pos < stop:
        # the walk trusts every caplen; the window is checked afterwards
        count, pos = walk.pcap_records(data, pos, stop, walk_end, batch_size, header.byteorder == ">", offsets, words)
        if not count:  # fewer than 12 bytes left at pos: a cut header
            info.warn(f"byte {pos}", f"record header cut short: {end - pos} of {RECORD_LEN} bytes; "
                                     f"kept the {first} packets before it")
            return
        good, damage, found = _records(offsets[:count], words[:count], end, header)
        if good:
            yield _batch(data, found, _same(good, header.linktype, same), first)
            first += good
        if damage:
            info.warn(f"byte {offsets[good]}", f"{damage}; kept the {first} packets before it")
            return


def _records(starts: np.ndarray, words: np.ndarray, end: int, header: Header) -> tuple[int, str, tuple[np.ndarray, ...]]:
    """How many of the walked records are sound, what is wrong with the next one ("" if none), and the sound ones'
    frame offsets, captured and wire lengths and times (ns): checked and made in C where built (`walk.pcap_check`, one
    pass where numpy's took as long as the walk), else by numpy (`_check`), which also says why a record is bad."""
    n = len(starts)
    if walk.pcap_check is None:
        good, damage, fields = _check(starts, words.view(RECORD).reshape(n), end)
        return good, damage, _fields(starts[:good], fields[:good], header)
    found = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.uint32), np.empty(n, dtype=np.uint32), np.empty(n, dtype=np.int64)
    good = walk.pcap_check(words, starts, end, header.ticks == 1_000_000, MAX_CAPLEN, *found)
    damage = "" if good == n else _check(starts[good:], words[good:].view(RECORD).reshape(n - good), end)[1]
    return good, damage, tuple(a if good == n else a[:good] for a in found)  # whole: kept as columns, not copied


def _check(starts: np.ndarray, headers: np.ndarray, end: int) -> tuple[int, str, np.ndarray]:
    """How many records of the window are sound, what is wrong with the next one ("" if none), and the record
    headers (`headers`, as the walk read them) of the whole ones."""
    n = len(starts)
    cut_header = int(starts[-1]) + RECORD_LEN > end
    whole = starts[:-1] if cut_header else starts
    fields = headers[: len(whole)]
    caplen = fields["caplen"].astype(np.int64)
    empty = fields["wirelen"] == 0
    bad = (caplen > MAX_CAPLEN) | (whole + RECORD_LEN + caplen > end) | empty
    if bad.any():
        k = int(np.argmax(bad))
        if caplen[k] > MAX_CAPLEN:
            return k, f"absurd captured length {caplen[k]} (more than {MAX_CAPLEN})", fields
        if empty[k]:  # no packet is 0 bytes long: zeros where records should be (padding, a bomb)
            return k, "a record of a packet 0 bytes long", fields
        return k, f"packet cut short: {end - int(whole[k]) - RECORD_LEN} of {caplen[k]} captured bytes", fields
    if cut_header:
        return n - 1, f"record header cut short: {end - int(starts[-1])} of {RECORD_LEN} bytes", fields
    return n, "", fields


def _fields(starts: np.ndarray, fields: np.ndarray, header: Header) -> tuple[np.ndarray, ...]:
    """The frame offsets, captured and wire lengths and times (ns) of the records at `starts`, whose header words are
    `fields` (`_check`'s)."""
    sub = fields["sub"].astype(np.int64)
    if header.ticks == 1_000_000:
        sub *= 1000
    return (starts + RECORD_LEN, fields["caplen"].astype(np.uint32), fields["wirelen"].astype(np.uint32),
            fields["sec"].astype(np.int64) * 1_000_000_000 + sub)


def _same(n: int, linktype: int, made: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, ...]:
    """What every record of a batch of `n` shares (the file's link type; no interface, node nor direction: -1), made
    once a batch length and read-only, for every batch of that length: as fresh arrays each batch's were 3 MB of
    page faults a 256k batch (2 ms)."""
    if n not in made:
        arrays = np.full(n, linktype, dtype=np.uint16), np.full(n, -1, dtype=np.int32), np.full(n, -1, dtype=np.int16)
        for array in arrays:
            array.flags.writeable = False
        made[n] = arrays
    return made[n]


def _batch(data: np.ndarray, found: tuple[np.ndarray, ...], same: tuple[np.ndarray, ...], first: int) -> FrameBatch:
    """The records `_records` found (their frame offsets, captured and wire lengths and times), with what they share."""
    offset, caplen, wirelen, ts = found
    linktype, unknown, direction = same
    return FrameBatch(data=data, offset=offset, caplen=caplen, wirelen=wirelen, ts=ts, linktype=linktype, iface=unknown,
                      iface_names=[], node=unknown, node_names=[], direction=direction, first_frame=first)
