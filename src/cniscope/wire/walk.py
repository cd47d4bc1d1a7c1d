"""The sequential step of reading pcap and pcapng: where each record starts.

Each record's length says where the next one starts, so this walk is the one
part of reading numpy cannot do. `_walk.c` does it: finding the records of the
10M-packet reference pcap, checks included, takes 63 ns a record with it and 192
without (`benchmarks/walk.py`). `pip install` builds it (`make install` brings
the C compiler). Where it could not be built, the same walk
runs in Python (`python_pcap_records`, `python_pcapng_packets`), with the same
results. Both trust every length: the readers check the records they get,
vectorized, and use nothing past a bad one.
"""

from __future__ import annotations

import struct

import numpy as np


def python_pcap_records(data: np.ndarray, pos: int, stop: int, end: int, limit: int, big: bool,
                        out: np.ndarray) -> tuple[int, int]:
    """Put in `out` the offsets of at most `limit` pcap records from `pos` while pos < stop, reading no
    byte at or past `end`; stop where fewer than 12 bytes (a record header up to its caplen) are left.
    Returns how many, and where the walk stopped."""
    caplen_at = struct.Struct((">" if big else "<") + "8xI").unpack_from
    view = data.data[:end]
    n = 0
    try:
        while n < limit and pos < stop:
            step = caplen_at(view, pos)[0] + 16
            out[n] = pos
            n += 1
            pos += step
    except struct.error:  # fewer than 12 bytes left at pos
        pass
    return n, pos


def python_pcapng_packets(data: np.ndarray, pos: int, end: int, limit: int, big: bool, kind: int,
                          out: np.ndarray) -> tuple[int, int]:
    """Put in `out` the offsets of at most `limit` consecutive pcapng blocks of type `kind` from `pos`;
    stop at a block of another type or where fewer than 8 bytes (type and length) are left before `end`.
    Returns how many, and where the walk stopped."""
    head = struct.Struct((">" if big else "<") + "II").unpack_from
    view = data.data[:end]
    n = 0
    try:
        while n < limit:
            found, length = head(view, pos)
            if found != kind:
                break
            out[n] = pos
            n += 1
            pos += length
    except struct.error:  # fewer than 8 bytes left at pos
        pass
    return n, pos


try:
    from cniscope.wire._walk import pcap_records as pcap_records
    from cniscope.wire._walk import pcapng_packets as pcapng_packets
    COMPILED = True
except ImportError:  # built without a C compiler
    pcap_records, pcapng_packets = python_pcap_records, python_pcapng_packets
    COMPILED = False
