"""pcapng (draft-ietf-opsawg-pcapng): block types, option codes and epb_flags, read by `cniscope.sources.pcapng`
and written by `PcapngWriter`.

The writer writes little-endian sections, interfaces and packets with direction and comments. Conventions
cniscope's reader takes back:

- A section's node is stored as the SHB comment `node=<name>` (and in shb_hardware).
- An interface's node may also be in its if_description, `node=<name>` or `node=<name>; more text`: a file
  holding several nodes in one section (a merged capture) names each interface's node there.
- Interfaces always carry if_tsresol 9: timestamps are nanoseconds since the epoch.
- Direction goes into epb_flags: bits 0-1 inbound (1) / outbound (2), bits 2-4 the reception type (1 unicast,
  2 multicast, 3 broadcast, 4 promiscuous), so Linux packet types map one to one (`DIRECTION_FLAGS`).
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable
from typing import BinaryIO

import numpy as np

from cniscope.packets.kinds import Direction
from cniscope.wire import pcap
from cniscope.wire.magic import SHB as SHB
from cniscope.wire.magic import is_pcapng as is_pcapng

# block types (the section header's: `magic`)
IDB = 0x00000001
OPB = 0x00000002  # obsolete packet block, still written by old tools
SPB = 0x00000003
EPB = 0x00000006
BYTE_ORDER_MAGIC = 0x1A2B3C4D
MAX_CAPLEN = pcap.MAX_CAPLEN

# option codes: every block's, then the section header's, the interface's, the enhanced packet's
OPT_END, OPT_COMMENT = 0, 1
SHB_HARDWARE, SHB_OS, SHB_USERAPPL = 2, 3, 4
IF_NAME, IF_DESCRIPTION, IF_IPV4ADDR, IF_MACADDR, IF_TSRESOL, IF_TSOFFSET = 2, 3, 4, 6, 9, 14
EPB_FLAGS = 2

# epb_flags: direction (bits 0-1) and reception type (bits 2-4)
INBOUND, OUTBOUND = 1, 2
RX_UNICAST, RX_MULTICAST, RX_BROADCAST, RX_PROMISCUOUS = 1, 2, 3, 4
DIRECTION_FLAGS: dict[Direction, int] = {
    Direction.IN: INBOUND | RX_UNICAST << 2,
    Direction.BROADCAST: INBOUND | RX_BROADCAST << 2,
    Direction.MULTICAST: INBOUND | RX_MULTICAST << 2,
    Direction.OTHERHOST: INBOUND | RX_PROMISCUOUS << 2,
    Direction.OUT: OUTBOUND,
}
# reception type -> direction of an inbound packet: 0 (not said) and the types past promiscuous count as unicast
DIRECTION_OF_RECEPTION = np.array([Direction.IN, Direction.IN, Direction.MULTICAST, Direction.BROADCAST,
                                   Direction.OTHERHOST, Direction.IN, Direction.IN, Direction.IN], dtype=np.int16)


def _option(code: int, value: bytes) -> bytes:
    pad = (-len(value)) % 4
    return struct.pack("<HH", code, len(value)) + value + b"\0" * pad


def _options(options: Iterable[tuple[int, bytes]]) -> bytes:
    body = b"".join(_option(code, value) for code, value in options)
    return body + struct.pack("<HH", OPT_END, 0) if body else b""


def _block(block_type: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", block_type, length) + body + struct.pack("<I", length)


class PcapngWriter:
    """Write a pcapng file block by block.

    Call `section()` first (and again to start another section: interface ids
    restart at 0), then `interface()` for each interface, then `packet()`.
    """

    def __init__(self, target: str | BinaryIO) -> None:
        self.name = target if isinstance(target, str) else getattr(target, "name", "")
        if isinstance(target, str):
            self._file: BinaryIO = open(target, "wb", buffering=1 << 20)  # noqa: SIM115 - closed in close()
            self._owned = True
        else:
            self._file = target
            self._owned = False
        self._interfaces = 0
        self._in_section = False

    def __enter__(self) -> PcapngWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owned:
            self._file.close()
        else:
            self._file.flush()

    def section(
        self,
        node: str | None = None,
        hardware: str | None = None,
        os: str | None = None,
        userappl: str | None = "cniscope",
        comment: str | None = None,
    ) -> None:
        """Start a section. `node` becomes the comment `node=<name>`; `comment` adds another."""
        options: list[tuple[int, bytes]] = []
        if node is not None:
            options.append((OPT_COMMENT, f"node={node}".encode()))
        if comment is not None:
            options.append((OPT_COMMENT, comment.encode()))
        for code, text in ((SHB_HARDWARE, hardware), (SHB_OS, os), (SHB_USERAPPL, userappl)):
            if text is not None:
                options.append((code, text.encode()))
        body = struct.pack("<IHHq", BYTE_ORDER_MAGIC, 1, 0, -1) + _options(options)
        self._file.write(_block(SHB, body))
        self._interfaces = 0
        self._in_section = True

    @property
    def interfaces(self) -> int:
        """Interface blocks in the current section so far (the next one's id)."""
        return self._interfaces

    def interface(
        self,
        name: str | None,
        linktype: int,
        snaplen: int = 0,
        description: str | None = None,
        mac: str | None = None,
        ipv4: Iterable[str] = (),
        comment: str | None = None,
    ) -> int:
        """Add an interface block; returns its id for `packet()`. `ipv4` items are `a.b.c.d/len`."""
        if not self._in_section:
            raise ValueError("pcapng: interface() before section()")
        options: list[tuple[int, bytes]] = []
        if name is not None:
            options.append((IF_NAME, name.encode()))
        if description is not None:
            options.append((IF_DESCRIPTION, description.encode()))
        for cidr in ipv4:
            net = ipaddress.IPv4Interface(cidr)
            options.append((IF_IPV4ADDR, net.ip.packed + net.netmask.packed))
        if mac is not None:
            options.append((IF_MACADDR, bytes(int(part, 16) for part in mac.split(":"))))
        options.append((IF_TSRESOL, bytes([9])))
        if comment is not None:
            options.append((OPT_COMMENT, comment.encode()))
        body = struct.pack("<HHI", linktype, 0, snaplen) + _options(options)
        self._file.write(_block(IDB, body))
        self._interfaces += 1
        return self._interfaces - 1

    def packet(
        self,
        iface_id: int,
        ts_ns: int,
        data: bytes | memoryview,
        wirelen: int | None = None,
        direction: Direction | int | None = None,
        comment: str | None = None,
    ) -> None:
        """Add an enhanced packet block. `direction` is a Linux packet type (Direction)."""
        if not 0 <= iface_id < self._interfaces:
            raise ValueError(f"pcapng: no interface {iface_id} in this section")
        options: list[tuple[int, bytes]] = []
        if direction is not None:
            options.append((EPB_FLAGS, struct.pack("<I", DIRECTION_FLAGS[Direction(direction)])))
        if comment is not None:
            options.append((OPT_COMMENT, comment.encode()))
        self._file.write(_epb(iface_id, ts_ns, data, len(data) if wirelen is None else wirelen, _options(options)))

    def write_raw(self, blocks: bytes | memoryview) -> None:
        """Append enhanced packet blocks built elsewhere (the converter's array path)."""
        self._file.write(blocks)

    @property
    def position(self) -> int:
        """Bytes written so far: where the next block starts."""
        return self._file.tell()


EPB_HEADER = struct.Struct("<IIIIIII")
PADDING = (b"", b"\0\0\0", b"\0\0", b"\0")


def _epb(iface_id: int, ts_ns: int, data: bytes | memoryview, wirelen: int, opts: bytes) -> bytes:
    caplen = len(data)
    pad = PADDING[caplen & 3]
    length = 32 + caplen + len(pad) + len(opts)
    header = EPB_HEADER.pack(EPB, length, iface_id, ts_ns >> 32, ts_ns & 0xFFFFFFFF, caplen, wirelen)
    return b"".join((header, data, pad, opts, length.to_bytes(4, "little")))
