"""What an analysis's inputs need in memory, known from their sizes before anything heavy is imported.

`analyze` reads its inputs in memory unless the in-memory path's peak would exceed `--memory` (default: half of the
machine's), and then spills them to disk (`cniscope.spill`). The command asks before it imports polars, so that it
walks and decodes a capture ahead of the imports (`cniscope.ahead`) only when the input will be read in memory: a
spilled input is read again, batch by batch.
"""

from __future__ import annotations

import os

from cniscope.sources import InputSpec

PEAK_PER_BYTE = 4  # the in-memory path's peak per byte of uncompressed input (3.7 at 10M packets)
EXPANDS = 5  # what a compressed input's bytes become, about
COMPRESSED = (b"\x1f\x8b", b"\x28\xb5\x2f\xfd")  # gzip, zstd


def default_memory() -> int:
    """Half of the machine's memory: the share `analyze` plans its working memory for unless told (--memory)."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2


def input_bytes(specs: list[InputSpec]) -> int | None:
    """What the inputs come to uncompressed, about; None when unknown (standard input)."""
    total = 0
    for spec in specs:
        if spec.unreadable:
            continue
        if spec.path == "-":
            return None
        try:
            with open(spec.path, "rb") as handle:
                head = handle.read(4)
            size = os.path.getsize(spec.path)
        except OSError:
            continue  # said when it is read
        total += size * (EXPANDS if head.startswith(COMPRESSED) else 1)
    return total


def needed(specs: list[InputSpec], memory: int) -> bool:
    """Would the in-memory path's peak exceed `memory` bytes on these inputs (so that they are spilled)?"""
    size = input_bytes(specs)
    return size is not None and size * PEAK_PER_BYTE > memory
