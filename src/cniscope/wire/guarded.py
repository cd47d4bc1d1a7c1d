"""Mappings of capture files guarded against the file being cut while it is read (`_walk.guard`, where the why is).

No numpy here: `cniscope.ahead` maps and guards its file before numpy is imported.
"""

from __future__ import annotations

import contextlib
import mmap
import weakref
from collections.abc import Callable

try:
    from cniscope.wire._walk import cut, guard, unguard
except ImportError:  # built without a C compiler: a file cut while read ends the process (SIGBUS), as it would
    cut = guard = unguard = None  # type: ignore[assignment]


def guarded(mapped: mmap.mmap, fd: int) -> Callable[[], None]:
    """Guard `mapped`, the mapping of the open file `fd`, while it lives; its closer: the mapping closed unless
    something still points into it (it goes with its last reference, and its guard with it)."""
    if guard is None:
        return lambda: _close(mapped)
    drop = weakref.finalize(mapped, unguard, guard(mapped, fd))  # before the pages go: a slot names live pages only

    def close() -> None:
        if _close(mapped):
            drop()

    return close


def _close(mapped: mmap.mmap) -> bool:
    with contextlib.suppress(BufferError):  # numpy arrays still point into it
        mapped.close()
    return mapped.closed


def cut_at(buf: memoryview) -> int | None:
    """Where the file behind the guarded mapping `buf` ends, once another program cut it while it was read (the bytes
    from there on read as zeros); None while it is as long as it was mapped, or `buf` is not guarded."""
    if cut is None or not buf.nbytes:
        return None
    at = cut(buf)
    return None if at < 0 else at
