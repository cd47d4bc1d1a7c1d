"""Classic pcap: find the records of a mapped file, in bounded batches.

Theory of operation: the file is mapped, never copied. `cniscope.wire.walk`
walks the 16-byte record headers (the one sequential step, in C), checking each
record as it goes and writing its frame's offset, lengths and time into the
batch's arrays, for a window of at most `batch_size` records. Damage (a cut header or
packet, an absurd caplen, a wire length of 0) ends the walk: every record before it is yielded, and
a warning names the byte where it broke.
"""

from __future__ import annotations

import struct
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
    big, usec = header.byteorder == ">", header.ticks == 1_000_000
    pos = start
    same: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # `_same`'s arrays by batch length
    while pos < stop:
        # arrays of their own each batch: the decoder keeps the lengths and times as columns
        found = (np.empty(batch_size, dtype=np.int64), np.empty(batch_size, dtype=np.uint32),
                 np.empty(batch_size, dtype=np.uint32), np.empty(batch_size, dtype=np.int64))
        count, pos, bad = walk.pcap_packets(data, pos, stop, walk_end, batch_size, big, usec, MAX_CAPLEN, *found)
        if not count:  # fewer than 12 bytes left at pos: a cut header
            info.warn(f"byte {pos}", f"record header cut short: {end - pos} of {RECORD_LEN} bytes; "
                                     f"kept the {first} packets before it")
            return
        good = count if bad < 0 else bad
        damaged = int(found[0][good]) - RECORD_LEN if good < count else None
        if good < batch_size:  # arrays of the batch's length, as the decoder keeps them (it copies a view's rows)
            for array in found:
                array.resize(good, refcheck=False)  # realloc: in place, the rest handed back
        if good:
            yield _batch(data, found, _same(good, header.linktype, same), first)
            first += good
        if damaged is not None:
            info.warn(f"byte {damaged}", f"{_check(damaged, _words(buf, damaged, end, header), end)}; "
                                         f"kept the {first} packets before it")
            return


def _words(buf: memoryview, at: int, end: int, header: Header) -> np.ndarray:
    """The header words of the record at `at` (seconds, fraction, captured and wire lengths; the wire length 0 where
    it runs past `end`)."""
    words = np.zeros(1, dtype=RECORD)
    words[0] = struct.unpack_from(header.byteorder + "3I", buf, at) + (
        struct.unpack_from(header.byteorder + "I", buf, at + 12)[0] if at + RECORD_LEN <= end else 0,)
    return words


def _check(at: int, record: np.ndarray, end: int) -> str:
    """What is wrong with the record at `at`, whose header words are `record` (`_words`), which the walk found bad."""
    caplen = int(record["caplen"][0])
    if at + RECORD_LEN > end:
        return f"record header cut short: {end - at} of {RECORD_LEN} bytes"
    if caplen > MAX_CAPLEN:
        return f"absurd captured length {caplen} (more than {MAX_CAPLEN})"
    if record["wirelen"][0] == 0:  # no packet is 0 bytes long: zeros where records should be (padding, a bomb)
        return "a record of a packet 0 bytes long"
    return f"packet cut short: {end - at - RECORD_LEN} of {caplen} captured bytes"


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
    """The records the walk found (their frame offsets, captured and wire lengths and times), with what they share."""
    offset, caplen, wirelen, ts = found
    linktype, unknown, direction = same
    return FrameBatch(data=data, offset=offset, caplen=caplen, wirelen=wirelen, ts=ts, linktype=linktype, iface=unknown,
                      iface_names=[], node=unknown, node_names=[], direction=direction, first_frame=first)
