"""The C heap: what glibc keeps of the memory numpy freed, handed back between stages."""

from __future__ import annotations

import ctypes
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
