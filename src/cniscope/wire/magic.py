"""What a capture file's first four bytes say: pcap's magics and pcapng's section header block, without numpy, which
the other `wire` modules import: `cniscope.ahead` looks at the file before the command has imported numpy."""

from __future__ import annotations

import struct

MAGIC_USEC, MAGIC_NSEC = 0xA1B2C3D4, 0xA1B23C4D

# pcap's magic as read little-endian -> (byte order, ticks per second of the sub-second field)
MAGICS: dict[int, tuple[str, int]] = {
    MAGIC_USEC: ("<", 1_000_000),
    MAGIC_NSEC: ("<", 1_000_000_000),
    0xD4C3B2A1: (">", 1_000_000),
    0x4D3CB2A1: (">", 1_000_000_000),
}
SHB = 0x0A0D0D0A  # pcapng's section header block: its type starts the file, the same in either byte order


def is_pcap(head: bytes) -> bool:
    return len(head) >= 4 and struct.unpack_from("<I", head)[0] in MAGICS


def is_pcapng(head: bytes) -> bool:
    return len(head) >= 4 and struct.unpack_from("<I", head)[0] == SHB
