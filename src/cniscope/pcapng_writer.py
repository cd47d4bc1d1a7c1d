"""A small pcapng writer: sections, interfaces, packets with direction and comments.

Block layouts follow the pcapng specification (draft-ietf-opsawg-pcapng), written
little-endian. Conventions other cniscope code reads back:

- A section's node is stored as the SHB comment `node=<name>` (and in
  shb_hardware), see `cniscope.sources.pcapng`.
- Interfaces always carry if_tsresol 9: timestamps are nanoseconds since the epoch.
- Direction goes into epb_flags: bits 0-1 inbound (1) / outbound (2), bits 2-4
  the reception type (1 unicast, 2 multicast, 3 broadcast, 4 promiscuous), so
  Linux packet types map one to one (`EPB_FLAGS`).

`sll2_pcap_to_pcapng` turns what `tcpdump -i any -w` wrote (LINUX_SLL2) into a
section whose interface blocks carry the node's real interface names.
"""

from __future__ import annotations

import ipaddress
import mmap
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

from cniscope.packets.schema import Direction, LinkType

SHB_TYPE = 0x0A0D0D0A
IDB_TYPE = 0x00000001
EPB_TYPE = 0x00000006
BYTE_ORDER_MAGIC = 0x1A2B3C4D

OPT_END = 0
OPT_COMMENT = 1
SHB_HARDWARE = 2
SHB_OS = 3
SHB_USERAPPL = 4
IF_NAME = 2
IF_DESCRIPTION = 3
IF_IPV4ADDR = 4
IF_MACADDR = 6
IF_TSRESOL = 9
EPB_FLAGS = 2

INBOUND, OUTBOUND = 1, 2
RX_UNICAST, RX_MULTICAST, RX_BROADCAST, RX_PROMISCUOUS = 1, 2, 3, 4
DIRECTION_FLAGS: dict[Direction, int] = {
    Direction.IN: INBOUND | RX_UNICAST << 2,
    Direction.BROADCAST: INBOUND | RX_BROADCAST << 2,
    Direction.MULTICAST: INBOUND | RX_MULTICAST << 2,
    Direction.OTHERHOST: INBOUND | RX_PROMISCUOUS << 2,
    Direction.OUT: OUTBOUND,
}


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
        self._file.write(_block(SHB_TYPE, body))
        self._interfaces = 0
        self._in_section = True

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
        self._file.write(_block(IDB_TYPE, body))
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
        caplen = len(data)
        options: list[tuple[int, bytes]] = []
        if direction is not None:
            options.append((EPB_FLAGS, struct.pack("<I", DIRECTION_FLAGS[Direction(direction)])))
        if comment is not None:
            options.append((OPT_COMMENT, comment.encode()))
        opts = _options(options)
        pad = (-caplen) % 4
        length = 32 + caplen + pad + len(opts)
        header = struct.pack(
            "<IIIIIII", EPB_TYPE, length, iface_id, (ts_ns >> 32) & 0xFFFFFFFF, ts_ns & 0xFFFFFFFF, caplen,
            caplen if wirelen is None else wirelen,
        )
        self._file.write(header)
        self._file.write(data)
        self._file.write(b"\0" * pad + opts + struct.pack("<I", length))


@dataclass(frozen=True)
class Interface:
    """One row of a node's interface table, as much as a pcapng interface block can hold."""

    index: int
    name: str
    kind: str | None = None  # veth, bridge, vxlan ... (ip -d link's info_kind); None for plain devices
    mac: str | None = None
    mtu: int | None = None
    ipv4: tuple[str, ...] = ()
    peer_index: int | None = None
    master: str | None = None

    def description(self) -> str:
        parts = [f"ifindex {self.index}"]
        if self.kind:
            parts.append(self.kind)
        if self.mtu is not None:
            parts.append(f"mtu {self.mtu}")
        if self.master:
            parts.append(f"master {self.master}")
        if self.peer_index is not None:
            parts.append(f"peer ifindex {self.peer_index}")
        return ", ".join(parts)


@dataclass
class ConvertResult:
    packets: int = 0
    unknown_ifindex: tuple[int, ...] = ()
    damage: str | None = None  # where the pcap stopped making sense ("byte 1234: ..."), None when whole


PCAP_MAGICS = {  # magic as read little-endian -> (byte order, ns resolution)
    0xA1B2C3D4: ("<", False),
    0xA1B23C4D: ("<", True),
    0xD4C3B2A1: (">", False),
    0x4D3CB2A1: (">", True),
}
SLL2_HEADER = 20


def sll2_pcap_to_pcapng(
    pcap: bytes | mmap.mmap,
    writer: PcapngWriter,
    node: str,
    interfaces: Iterable[Interface],
    hardware: str | None = None,
    os: str | None = None,
) -> ConvertResult:
    """Write one section for `node`: an interface block per entry of `interfaces`
    (the node's ifindex table) and every frame of `pcap` under the interface its
    SLL2 header names, with its direction in epb_flags.

    Frames keep link type LINUX_SLL2: rebuilding Ethernet would mean inventing
    the destination MAC, which SLL2 does not carry. Frames of another link type
    (a capture on one interface) go under one interface named after the first entry.
    An ifindex missing from the table (an interface created and deleted during the
    capture) gets an interface block named `ifindex<N>`.
    """
    result = ConvertResult()
    table = list(interfaces)
    writer.section(node=node, hardware=hardware, os=os)
    if len(pcap) < 24:
        result.damage = f"byte 0: pcap header needs 24 bytes, file has {len(pcap)}"
        for entry in table:
            _write_interface(writer, entry, int(LinkType.LINUX_SLL2), 0)
        return result
    magic = struct.unpack_from("<I", pcap, 0)[0]
    if magic not in PCAP_MAGICS:
        result.damage = f"byte 0: not a pcap file (magic {magic:#010x})"
        return result
    order, nanos = PCAP_MAGICS[magic]
    snaplen, linktype = struct.unpack_from(order + "II", pcap, 16)
    linktype &= 0xFFFF
    ids: dict[int, int] = {}
    if linktype == LinkType.LINUX_SLL2:
        for entry in table:
            ids[entry.index] = _write_interface(writer, entry, linktype, snaplen)
    else:
        single = table[0] if table else Interface(index=0, name="capture")
        ids[-1] = _write_interface(writer, single, linktype, snaplen)
    unknown: list[int] = []
    record = struct.Struct(order + "IIII")
    offset, size = 24, len(pcap)
    view = memoryview(pcap)
    scale = 1 if nanos else 1000
    while offset < size:
        if offset + 16 > size:
            result.damage = f"byte {offset}: record header cut short ({size - offset} of 16 bytes)"
            break
        sec, frac, caplen, wirelen = record.unpack_from(pcap, offset)
        start = offset + 16
        if caplen > max(snaplen, 262144) or start + caplen > size:
            result.damage = f"byte {offset}: record of {caplen} bytes does not fit ({size - start} left)"
            break
        data = view[start : start + caplen]
        direction: int | None = None
        if linktype == LinkType.LINUX_SLL2:
            ifindex = int.from_bytes(data[4:8], "big") if caplen >= SLL2_HEADER else 0
            if caplen >= SLL2_HEADER and data[10] in DIRECTION_FLAGS:
                direction = data[10]
            if ifindex not in ids:
                unknown.append(ifindex)
                ids[ifindex] = writer.interface(
                    f"ifindex{ifindex}", linktype, snaplen, description=f"ifindex {ifindex}, not in the node's interface table"
                )
            iface_id = ids[ifindex]
        else:
            iface_id = ids[-1]
        writer.packet(iface_id, sec * 1_000_000_000 + frac * scale, data, wirelen, direction)
        result.packets += 1
        offset = start + caplen
    result.unknown_ifindex = tuple(unknown)
    return result


def _write_interface(writer: PcapngWriter, entry: Interface, linktype: int, snaplen: int) -> int:
    return writer.interface(
        entry.name, linktype, snaplen, description=entry.description(), mac=entry.mac, ipv4=entry.ipv4
    )
