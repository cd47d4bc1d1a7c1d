"""The C heap: what glibc keeps of the memory numpy freed, handed back between stages; and numpy's huge pages."""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache


@cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None)


def give_back() -> None:
    """Hand the C heap's free pages back to the OS (glibc's `malloc_trim`; nothing elsewhere).

    numpy's arrays come from the C heap, and glibc keeps what they freed: the decoders' scratch arrays of every
    batch, freed on the decoding threads, sat between the batches' columns in those threads' heaps, never used
    again (at 2M sightings after reading, 25 B a sighting); so did each correlated partition's. A few
    milliseconds, between stages and partitions.
    """
    trim = getattr(_libc(), "malloc_trim", None)
    if trim is not None:
        trim(0)


@contextmanager
def small_pages() -> Iterator[None]:
    """numpy's arrays without transparent huge pages meanwhile (numpy asks for them for arrays of 4 MB and more); a
    context or a decorator: correlation, and the whole of `analyze`.

    The analysis's big arrays are fresh memory, and a huge page's fault zeroes 2 MB and, once the machine's memory is
    fragmented (the page cache holding the captures, hours of runs), waits for the kernel to compact memory (THP
    defrag on madvise, as Debian sets it): at 10M pcapng the correlate stage's system time was 0.96-1.66 s with
    them, 0.30-0.31 s without, for 3.5x the faults of 4 KB; `flows.number` stalled for 0.7 s of system time in one
    run of three; the whole command's system time with them 2.2-4.7 s, without 1.9-2.5 s (3 rounds alternating)."""
    import numpy as np  # here: `cniscope.commands.analyze` imports this before the command imports numpy

    core = getattr(np, "_core", None) or getattr(np, "core", None)  # numpy 2, numpy 1
    setter = getattr(getattr(core, "multiarray", None), "_set_madvise_hugepage", None)
    if setter is None:
        yield
        return
    was = setter(False)
    try:
        yield
    finally:
        setter(was)
