"""Classic pcap, as libpcap writes it: a 24-byte file header, then 16-byte record headers each followed by
its frame. Read by `cniscope.sources.pcap` (batches of frames) and `cniscope.wire.convert` (SLL2 -> pcapng);
`encode` writes one (tests, generated captures)."""

from __future__ import annotations

import mmap
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cniscope.wire import walk as records
from cniscope.wire.magic import MAGIC_NSEC as MAGIC_NSEC
from cniscope.wire.magic import MAGIC_USEC as MAGIC_USEC
from cniscope.wire.magic import MAGICS as MAGICS
from cniscope.wire.magic import is_pcap as is_pcap

Bytes = bytes | memoryview | mmap.mmap  # a whole file in memory, or mapped

HEADER_LEN = 24
RECORD_LEN = 16
MAX_CAPLEN = 256 * 1024  # libpcap's largest snaplen; a caplen above it is damage, not data


@dataclass(frozen=True)
class Header:
    byteorder: str  # "<" or ">"
    ticks: int  # sub-second units per second: 1e6 (usec magic) or 1e9 (nsec magic)
    snaplen: int
    linktype: int


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


def walk(buf: Bytes, header: Header, window: int = 65536) -> tuple[np.ndarray, np.ndarray, str | None]:
    """Offsets and captured lengths (int64) of every record, one after the other (each length gives the next
    record's place), and where the records stopped making sense ("byte N: ...", None when the file is whole).
    The readers' record walk (`cniscope.wire.walk`) finds them a window at a time; numpy checks each window."""
    data = np.frombuffer(buf, dtype=np.uint8)
    size, limit = len(data), max(header.snaplen, MAX_CAPLEN)
    caplen_type = np.dtype(header.byteorder + "u4")
    found: list[np.ndarray] = []
    lengths: list[np.ndarray] = []
    out = np.empty(window, dtype=np.int64)
    pos = HEADER_LEN
    damage: str | None = None
    while pos < size and damage is None:
        count, after = records.pcap_records(data, pos, size, size, window, header.byteorder == ">", out)
        if not count:  # fewer than 12 bytes left: not even the caplen
            damage = f"byte {pos}: record header cut short ({size - pos} of {RECORD_LEN} bytes)"
            break
        starts = out[:count].copy()
        caplen = _u32_at(data, starts + 8).view(caplen_type).astype(np.int64)
        cut = starts + RECORD_LEN > size
        bad = cut | (caplen > limit) | (starts + RECORD_LEN + caplen > size)
        good = int(np.argmax(bad)) if bad.any() else count
        found.append(starts[:good])
        lengths.append(caplen[:good])
        if good < count:
            at = int(starts[good])
            damage = (f"byte {at}: record header cut short ({size - at} of {RECORD_LEN} bytes)" if cut[good] else
                      f"byte {at}: record of {caplen[good]} bytes does not fit ({size - at - RECORD_LEN} left)")
        pos = after
    empty = np.empty(0, dtype=np.int64)
    return (np.concatenate(found) if found else empty), (np.concatenate(lengths) if lengths else empty), damage


def _u32_at(data: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The 4 bytes at each offset, one `V4` row each (one fancy index)."""
    view = np.ndarray(shape=(len(data) - 3,), dtype="V4", buffer=data, strides=(1,))
    gathered: np.ndarray = view[at]
    return gathered


def encode(frames: Sequence[bytes], ts_ns: Sequence[int], linktype: int, *, nanos: bool = False,
           byteorder: str = "<", snaplen: int = 262144) -> bytes:
    """A pcap file holding `frames` (for tests, generated captures, and a capture's node file of no packets;
    frames longer than snaplen are cut)."""
    magic = MAGIC_NSEC if nanos else MAGIC_USEC
    ticks = 1_000_000_000 if nanos else 1_000_000
    parts = [struct.pack(byteorder + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for frame, ts in zip(frames, ts_ns, strict=True):
        sec, ns = divmod(ts, 1_000_000_000)
        cut = frame[:snaplen]
        parts.append(struct.pack(byteorder + "IIII", sec, ns * ticks // 1_000_000_000, len(cut), len(frame)))
        parts.append(cut)
    return b"".join(parts)
