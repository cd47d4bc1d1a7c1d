"""Classic pcap, as libpcap writes it: a 24-byte file header, then 16-byte record headers each followed by
its frame. Read by `cniscope.sources.pcap` (batches of frames) and `cniscope.wire.convert` (SLL2 -> pcapng);
`encode` writes one (tests, generated captures)."""

from __future__ import annotations

import mmap
import struct
from collections.abc import Sequence
from dataclasses import dataclass

Bytes = bytes | memoryview | mmap.mmap  # a whole file in memory, or mapped

HEADER_LEN = 24
RECORD_LEN = 16
MAX_CAPLEN = 256 * 1024  # libpcap's largest snaplen; a caplen above it is damage, not data
MAGIC_USEC, MAGIC_NSEC = 0xA1B2C3D4, 0xA1B23C4D

# magic as read little-endian -> (byte order, ticks per second of the sub-second field)
MAGICS: dict[int, tuple[str, int]] = {
    MAGIC_USEC: ("<", 1_000_000),
    MAGIC_NSEC: ("<", 1_000_000_000),
    0xD4C3B2A1: (">", 1_000_000),
    0x4D3CB2A1: (">", 1_000_000_000),
}


@dataclass(frozen=True)
class Header:
    byteorder: str  # "<" or ">"
    ticks: int  # sub-second units per second: 1e6 (usec magic) or 1e9 (nsec magic)
    snaplen: int
    linktype: int


def is_pcap(head: bytes) -> bool:
    return len(head) >= 4 and struct.unpack_from("<I", head)[0] in MAGICS


def parse_header(buf: Bytes) -> Header | None:
    """The file header, or None when `buf` is too short or the magic is not pcap's."""
    if len(buf) < HEADER_LEN:
        return None
    magic = struct.unpack_from("<I", buf)[0]
    if magic not in MAGICS:
        return None
    order, ticks = MAGICS[magic]
    snaplen, network = struct.unpack_from(order + "II", buf, 16)
    # the top bits of the link-type field carry FCS information, not the type
    return Header(byteorder=order, ticks=ticks, snaplen=snaplen, linktype=network & 0xFFFF)


def walk(buf: Bytes, header: Header) -> tuple[list[int], list[int], str | None]:
    """Offsets and captured lengths of every record, one after the other (each length gives the next record's
    place), and where the records stopped making sense ("byte N: ...", None when the file is whole)."""
    unpack = struct.Struct(header.byteorder + "I").unpack_from
    offsets: list[int] = []
    caplens: list[int] = []
    offset, size, limit = HEADER_LEN, len(buf), max(header.snaplen, MAX_CAPLEN)
    while offset < size:
        if offset + RECORD_LEN > size:
            return offsets, caplens, f"byte {offset}: record header cut short ({size - offset} of {RECORD_LEN} bytes)"
        caplen = unpack(buf, offset + 8)[0]
        if caplen > limit or offset + RECORD_LEN + caplen > size:
            return offsets, caplens, (f"byte {offset}: record of {caplen} bytes does not fit "
                                      f"({size - offset - RECORD_LEN} left)")
        offsets.append(offset)
        caplens.append(caplen)
        offset += RECORD_LEN + caplen
    return offsets, caplens, None


def encode(frames: Sequence[bytes], ts_ns: Sequence[int], linktype: int, *, nanos: bool = False,
           byteorder: str = "<", snaplen: int = 262144) -> bytes:
    """A pcap file holding `frames` (for tests and generated captures; frames longer than snaplen are cut)."""
    magic = MAGIC_NSEC if nanos else MAGIC_USEC
    ticks = 1_000_000_000 if nanos else 1_000_000
    parts = [struct.pack(byteorder + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for frame, ts in zip(frames, ts_ns, strict=True):
        sec, ns = divmod(ts, 1_000_000_000)
        cut = frame[:snaplen]
        parts.append(struct.pack(byteorder + "IIII", sec, ns * ticks // 1_000_000_000, len(cut), len(frame)))
        parts.append(cut)
    return b"".join(parts)
