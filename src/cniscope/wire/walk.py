"""The sequential step of reading pcap and pcapng: where each record starts.

Each record's length says where the next one starts, so this walk is the one
part of reading numpy cannot do. `_walk.c` does it: finding the records of the
10M-packet reference pcap, checks included, takes 63 ns a record with it and 192
without (`benchmarks/walk.py`). `pip install` builds it (`make install` brings
the C compiler). Where it could not be built, the same walk
runs in Python (`python_pcap_records`, `python_pcapng_blocks`), with the same
results. Both trust every length: the readers check the records they get,
vectorized, and use nothing past a bad one. The pcapng walk also reads each block's
header words and trailing length while it is there: gathered again from the mapped
file afterwards, they took as long as the walk (10M pcapng).
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import numpy as np


def python_pcap_records(data: np.ndarray, pos: int, stop: int, end: int, limit: int, big: bool,
                        out: np.ndarray, fields: np.ndarray | None = None) -> tuple[int, int]:
    """Put in `out` the offsets of at most `limit` pcap records from `pos` while pos < stop, reading no
    byte at or past `end`; stop where fewer than 12 bytes (a record header up to its caplen) are left.
    `fields` (uint32, 4 a row, host byte order) gets each record's header words (0 for one past `end`).
    Returns how many, and where the walk stopped."""
    order = ">" if big else "<"
    head, last = struct.Struct(order + "3I").unpack_from, struct.Struct(order + "I").unpack_from
    view = data.data[:end]
    n = 0
    try:
        while n < limit and pos < stop:
            words = head(view, pos)
            if fields is not None:
                fields[n, :3] = words
                fields[n, 3] = last(view, pos + 12)[0] if pos + 16 <= len(view) else 0
            out[n] = pos
            n += 1
            pos += words[2] + 16
    except struct.error:  # fewer than 12 bytes left at pos
        pass
    return n, pos


def header_words(data: np.ndarray, pos: int, end: int, big: bool, row: np.ndarray) -> None:
    """`row` (8 uint32) of `python_pcapng_blocks` for the block at `pos`."""
    order = ">" if big else "<"
    view = data.data
    row[:7] = struct.unpack_from(order + "7I", view, pos) if pos + 28 <= end else (0,) * 7
    length = struct.unpack_from(order + "I", view, pos + 4)[0] if pos + 8 <= end else 0
    row[7] = struct.unpack_from(order + "I", view, pos + length - 4)[0] if length >= 12 and pos + length <= end else 0


def python_pcapng_blocks(data: np.ndarray, pos: int, end: int, limit: int, big: bool, kind: int, out: np.ndarray,
                         fields: np.ndarray) -> tuple[int, int]:
    """Put in `out` the offsets of at most `limit` consecutive pcapng blocks of type `kind` from `pos`;
    stop at a block of another type or where fewer than 8 bytes (type and length) are left before `end`.
    Each block's first 28 bytes go to its row of `fields` (uint32, 8 a row, host byte order) as 7 words (zeros
    where they run past `end`), and its trailing length word (0 where the block runs past `end` or is shorter than
    12 bytes). Returns how many, and where the walk stopped."""
    head = struct.Struct((">" if big else "<") + "II").unpack_from
    view = data.data[:end]
    n = 0
    try:
        while n < limit:
            found, length = head(view, pos)
            if found != kind:
                break
            out[n] = pos
            header_words(data, pos, min(end, len(data)), big, fields[n])
            n += 1
            pos += length
    except struct.error:  # fewer than 8 bytes left at pos
        pass
    return n, pos


try:
    from cniscope.wire._walk import pcap_check as _pcap_check
    from cniscope.wire._walk import pcap_records as pcap_records
    from cniscope.wire._walk import pcapng_blocks as pcapng_blocks
    from cniscope.wire._walk import pcapng_check as _pcapng_check
    COMPILED = True
    # the checks' numpy stand-ins are the readers' (sources.pcap, sources.pcapng)
    pcap_check: Callable[..., int] | None = _pcap_check
    pcapng_check: Callable[..., int] | None = _pcapng_check
except ImportError:  # built without a C compiler
    pcap_records, pcapng_blocks = python_pcap_records, python_pcapng_blocks
    pcap_check = pcapng_check = None
    COMPILED = False
