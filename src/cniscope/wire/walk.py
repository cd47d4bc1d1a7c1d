"""The sequential step of reading pcap and pcapng: where each record starts.

Each record's length says where the next one starts, so this walk is the one
part of reading numpy cannot do. `_walk.c` does it: finding the records of the
10M-packet reference pcap, checks included, takes 63 ns a record with it and 192
without (`benchmarks/walk.py`). `pip install` builds it (`make install` brings
the C compiler). Where it could not be built, the same walk
runs in Python (`python_pcap_records`, `python_pcap_packets`, `python_pcapng_packets`),
with the same results. They trust every length and use nothing past a bad record.
The readers' walks check each record or packet block as they go and write its
packet's fields (gathered again from the mapped file afterwards they took as long
as the walk; checked in a pass of their own, a quarter (pcap) to half (pcapng)
as long again: 10M packets).
"""

from __future__ import annotations

import struct

import numpy as np

EPB = 6  # the enhanced packet block's type (cniscope.wire.pcapng.EPB, which imports this module through wire.pcap)


def python_pcap_records(data: np.ndarray, pos: int, stop: int, end: int, limit: int, big: bool,
                        out: np.ndarray) -> tuple[int, int]:
    """Put in `out` the offsets of at most `limit` pcap records from `pos` while pos < stop, reading no
    byte at or past `end`; stop where fewer than 12 bytes (a record header up to its caplen) are left.
    Returns how many, and where the walk stopped."""
    caplen = struct.Struct((">" if big else "<") + "I").unpack_from
    view = data.data[:end]
    n = 0
    try:
        while n < limit and pos < stop:
            size = caplen(view, pos + 8)[0]
            out[n] = pos
            n += 1
            pos += size + 16
    except struct.error:  # fewer than 12 bytes left at pos
        pass
    return n, pos


def python_pcap_packets(data: np.ndarray, pos: int, stop: int, end: int, limit: int, big: bool, usec: bool,
                        max_caplen: int, offset: np.ndarray, caplen: np.ndarray, wirelen: np.ndarray,
                        ts: np.ndarray) -> tuple[int, int, int]:
    """Walk at most `limit` pcap records from `pos` while pos < stop, checking each (`_walk.pcap_packets`, which says
    what goes where), reading no byte at or past `end`; stop where fewer than 12 bytes are left. Returns how many,
    where the walk stopped and the first damaged row (-1: none)."""
    end = min(end, len(data))
    order = ">" if big else "<"
    head, last = struct.Struct(order + "3I").unpack_from, struct.Struct(order + "I").unpack_from
    view = data.data[:end]
    rows: list[tuple[int, ...]] = []  # a record's packet fields, put into the arrays at the end
    bad, scale = -1, 1000 if usec else 1
    try:
        while len(rows) < limit and pos < stop:
            sec, sub, cap = head(view, pos)
            wire = last(view, pos + 12)[0] if pos + 16 <= end else 0
            if bad < 0 and (pos + 16 > end or cap > max_caplen or pos + 16 + cap > end or wire == 0):
                bad = len(rows)
            rows.append((pos + 16, cap, wire, sec * 1_000_000_000 + sub * scale))
            pos += 16 + cap
    except struct.error:  # fewer than 12 bytes left at pos
        pass
    for k, column in enumerate((offset, caplen, wirelen, ts)):
        column[:len(rows)] = [row[k] for row in rows]
    return len(rows), pos, bad


def header_words(data: np.ndarray, pos: int, end: int, big: bool, row: np.ndarray) -> None:
    """The block at `pos`'s first 28 bytes as 7 words (zeros where they run past `end`) and its trailing length word
    (0 where the block runs past `end` or is shorter than 12 bytes) into `row` (8 uint32), in the host's byte order."""
    order = ">" if big else "<"
    view = data.data
    row[:7] = struct.unpack_from(order + "7I", view, pos) if pos + 28 <= end else (0,) * 7
    length = struct.unpack_from(order + "I", view, pos + 4)[0] if pos + 8 <= end else 0
    row[7] = struct.unpack_from(order + "I", view, pos + length - 4)[0] if length >= 12 and pos + length <= end else 0


def python_pcapng_packets(data: np.ndarray, pos: int, end: int, limit: int, big: bool, max_caplen: int,
                          offset: np.ndarray, caplen: np.ndarray, wirelen: np.ndarray, local: np.ndarray,
                          units: np.ndarray, options: np.ndarray, length: np.ndarray) -> tuple[int, int, int, int]:
    """Walk at most `limit` consecutive enhanced packet blocks from `pos`, checking each (`_walk.pcapng_packets`, which
    says what goes where): stop at a block of another type or where fewer than 8 bytes (type and length) are left
    before `end`. Returns how many, where the walk stopped, the first damaged row (-1: none) and the largest interface
    a row names (-1: none)."""
    end = min(end, len(data))
    order = ">" if big else "<"
    head, words, last = (struct.Struct(order + f).unpack_from for f in ("II", "5I", "I"))
    view = data.data[:end]
    rows: list[tuple[int, ...]] = []  # a block's packet fields, put into the arrays at the end (one by one: 3x slower)
    bad, top = -1, -1
    try:
        while len(rows) < limit:
            found, size = head(view, pos)
            if found != EPB:
                break
            iface, high, low, cap, wire = words(view, pos + 8) if pos + 28 <= end else (0,) * 5
            tail = last(view, pos + size - 4)[0] if size >= 12 and pos + size <= end else 0
            sound = pos + 28 <= end and size >= 32 and size & 3 == 0 and pos + size <= end
            if bad < 0 and not (sound and tail == size and cap <= max_caplen and 28 + cap + 4 <= size):
                bad = len(rows)
            top = max(top, iface)
            rows.append((pos + 28, cap, wire, iface, (high << 32) | low, size > 28 + ((cap + 3) & ~3) + 4, size))
            pos += size
    except struct.error:  # fewer than 8 bytes left at pos
        pass
    n = len(rows)
    for k, column in enumerate((offset, caplen, wirelen, local.view(np.uint32), units, options, length)):
        column[:n] = [row[k] for row in rows]
    return n, pos, bad, top


try:
    from cniscope.wire._walk import pcap_packets as pcap_packets
    from cniscope.wire._walk import pcap_records as pcap_records
    from cniscope.wire._walk import pcapng_packets as pcapng_packets
    COMPILED = True
except ImportError:  # built without a C compiler
    pcap_records, pcap_packets, pcapng_packets = python_pcap_records, python_pcap_packets, python_pcapng_packets
    COMPILED = False
