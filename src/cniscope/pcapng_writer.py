"""A small pcapng writer: sections, interfaces, packets with direction and comments.

Block layouts follow the pcapng specification (draft-ietf-opsawg-pcapng), written
little-endian. Conventions other cniscope code reads back:

- A section's node is stored as the SHB comment `node=<name>` (and in
  shb_hardware), see `cniscope.sources.pcapng`.
- Interfaces always carry if_tsresol 9: timestamps are nanoseconds since the epoch.
- Direction goes into epb_flags: bits 0-1 inbound (1) / outbound (2), bits 2-4
  the reception type (1 unicast, 2 multicast, 3 broadcast, 4 promiscuous), so
  Linux packet types map one to one (`EPB_FLAGS`).

- An interface's node may also be in its if_description, `node=<name>` or
  `node=<name>; more text`: a file holding several nodes in one section (a
  merged capture) names each interface's node there.

`sll2_pcap_to_pcapng` turns what `tcpdump -i any -w` wrote (LINUX_SLL2) into a
section whose interface blocks carry the node's real interface names, and
declares them to a `MergedCapture`, which then writes every node's packets
into one section in time order, as mergecap would.
"""

from __future__ import annotations

import ipaddress
import mmap
import struct
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

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
        self._file.write(_block(SHB_TYPE, body))
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


class MergedCapture:
    """Several nodes' packets in one section, in time order (ties: node order), like mergecap's merge.

    One section, because Wireshark 4.0 gives the packets of a file's later
    sections the interfaces of the first. Each interface block is written as a
    node's conversion declares it, its description starting `node=<name>; `
    (which cniscope's reader takes as the packet's node); the conversion also
    notes where each packet block went in the node's own file, and `finish()`
    copies them from there, sorted, with interface ids renumbered.
    """

    CHUNK_BLOCKS = 65536

    def __init__(self, path: str, comment: str) -> None:
        self.writer = PcapngWriter(path)
        self.writer.section(comment=comment)
        self.files: list[str] = []
        self.bases: list[int] = []  # per node file: its interface 0 in the merged section
        self.index: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []  # file, offset, length, ts

    def node(self, path: str) -> None:
        """Start a node whose packets go to the file `path`; its interface ids here start after the previous nodes'."""
        self.files.append(path)
        self.bases.append(self.writer.interfaces)

    def interface(self, node: str, name: str, linktype: int, snaplen: int, description: str, mac: str | None,
                  ipv4: Iterable[str]) -> None:
        self.writer.interface(name, linktype, snaplen, description=f"node={node}; {description}", mac=mac, ipv4=ipv4)

    def blocks(self, offsets: np.ndarray, lengths: np.ndarray, ts: np.ndarray) -> None:
        """Packet blocks of the current node: where they start in its file, their lengths, their timestamps."""
        self.index.append((np.full(len(offsets), len(self.files) - 1, dtype=np.int32), offsets.astype(np.int64),
                           lengths.astype(np.int64), ts.astype(np.uint64)))

    def finish(self) -> None:
        """Copy every indexed block, in time order, from the (closed) node files; close the merged file."""
        try:
            if self.index:
                part, offset, length, ts = (np.concatenate(column) for column in zip(*self.index, strict=True))
                order = np.lexsort((part, ts))
                with ExitStack() as stack:
                    maps = [self._map(stack, path) for path in self.files]
                    bases = np.array(self.bases, dtype=np.uint32)
                    for first in range(0, len(order), self.CHUNK_BLOCKS):
                        chosen = order[first:first + self.CHUNK_BLOCKS]
                        self._copy(maps, part[chosen], offset[chosen], length[chosen], bases)
        finally:
            self.writer.close()

    @staticmethod
    def _map(stack: ExitStack, path: str) -> mmap.mmap:
        handle = stack.enter_context(open(path, "rb"))  # noqa: SIM115 - closed by the stack
        return stack.enter_context(mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ))

    def _copy(self, maps: list[mmap.mmap], part: np.ndarray, offset: np.ndarray, length: np.ndarray, bases: np.ndarray) -> None:
        out = np.frombuffer(bytearray(b"".join(maps[p][o:o + n] for p, o, n in zip(part.tolist(), offset.tolist(), length.tolist()))),
                            dtype=np.uint8)
        iface_at = (np.cumsum(length) - length)[:, None] + np.arange(8, 12)  # EPB: type, length, then the interface id
        ids = out[iface_at].copy().view("<u4").ravel() + bases[part]
        out[iface_at] = ids.astype("<u4").view(np.uint8).reshape(-1, 4)
        self.writer.write_raw(memoryview(out))


EPB_HEADER = struct.Struct("<IIIIIII")
PADDING = (b"", b"\0\0\0", b"\0\0", b"\0")


def _epb(iface_id: int, ts_ns: int, data: bytes | memoryview, wirelen: int, opts: bytes) -> bytes:
    caplen = len(data)
    pad = PADDING[caplen & 3]
    length = 32 + caplen + len(pad) + len(opts)
    header = EPB_HEADER.pack(EPB_TYPE, length, iface_id, ts_ns >> 32, ts_ns & 0xFFFFFFFF, caplen, wirelen)
    return b"".join((header, data, pad, opts, length.to_bytes(4, "little")))


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
    merged: MergedCapture | None = None,
) -> ConvertResult:
    """Write one section for `node`: an interface block per entry of `interfaces`
    (the node's ifindex table) and every frame of `pcap` under the interface its
    SLL2 header names, with its direction in epb_flags.

    With `merged`, the same interface blocks are declared there and each
    packet block's place noted (see `MergedCapture`): `writer` must write to a
    file, which `merged.finish()` reads back once it is closed.

    Frames keep link type LINUX_SLL2: rebuilding Ethernet would mean inventing
    the destination MAC, which SLL2 does not carry. Frames of another link type
    (a capture on one interface) go under one interface named after the first entry.
    An ifindex missing from the table (an interface created and deleted during the
    capture) gets an interface block named `ifindex<N>`.
    """
    result = ConvertResult()
    table = list(interfaces)
    writer.section(node=node, hardware=hardware, os=os)
    if merged is not None:
        merged.node(writer.name)

    def add(name: str, linktype: int, snaplen: int, description: str, mac: str | None = None, ipv4: Iterable[str] = ()) -> int:
        if merged is not None:
            merged.interface(node, name, linktype, snaplen, description, mac, ipv4)
        return writer.interface(name, linktype, snaplen, description=description, mac=mac, ipv4=ipv4)

    def add_entry(entry: Interface, linktype: int, snaplen: int) -> int:
        return add(entry.name, linktype, snaplen, entry.description(), entry.mac, entry.ipv4)

    if len(pcap) < 24:
        result.damage = f"byte 0: pcap header needs 24 bytes, file has {len(pcap)}"
        for entry in table:
            add_entry(entry, int(LinkType.LINUX_SLL2), 0)
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
            ids[entry.index] = add_entry(entry, linktype, snaplen)
    else:
        single = table[0] if table else Interface(index=0, name="capture")
        ids[-1] = add_entry(single, linktype, snaplen)
    offsets, caplens, result.damage = _walk(pcap, order, snaplen)
    buf = np.frombuffer(pcap, dtype=np.uint8)
    unknown: list[int] = []
    ends = np.cumsum(caplens + 16)
    first = 0
    while first < len(offsets):
        before = int(ends[first - 1]) if first else 0
        last = max(int(np.searchsorted(ends, before + CHUNK_BYTES, "right")), first + 1)
        rec = offsets[first:last]
        if linktype == LinkType.LINUX_SLL2:
            ifindex, pkttype = _sll2_fields(buf, rec, caplens[first:last])
            for index in np.unique(ifindex).tolist():
                if index not in ids:
                    unknown.append(index)
                    ids[index] = add(f"ifindex{index}", linktype, snaplen, f"ifindex {index}, not in the node's interface table")
            keys = np.array(sorted(ids), dtype=np.int64)
            values = np.array([ids[k] for k in sorted(ids)], dtype=np.uint32)
            iface = values[np.searchsorted(keys, ifindex)]
        else:
            pkttype = np.full(len(rec), 255, dtype=np.uint8)
            iface = np.full(len(rec), ids[-1], dtype=np.uint32)
        blocks, at, ts = _epbs(buf, rec, order, 1 if nanos else 1000, iface, pkttype)
        if merged is not None:
            merged.blocks(writer.position + at, np.diff(np.append(at, len(blocks))), ts)
        writer.write_raw(memoryview(blocks))
        result.packets += len(rec)
        first = last
    result.unknown_ifindex = tuple(unknown)
    return result


CHUNK_BYTES = 4 << 20  # input bytes converted at once (bounds the index arrays to a few tens of MB)


def _walk(pcap: bytes | mmap.mmap, order: str, snaplen: int) -> tuple[np.ndarray, np.ndarray, str | None]:
    """Offsets and lengths of the records (sequential: each length gives the next record's place)."""
    unpack = struct.Struct(order + "I").unpack_from
    offsets: list[int] = []
    caplens: list[int] = []
    offset, size, limit = 24, len(pcap), max(snaplen, 262144)
    damage = None
    while offset < size:
        if offset + 16 > size:
            damage = f"byte {offset}: record header cut short ({size - offset} of 16 bytes)"
            break
        caplen = unpack(pcap, offset + 8)[0]
        if caplen > limit or offset + 16 + caplen > size:
            damage = f"byte {offset}: record of {caplen} bytes does not fit ({size - offset - 16} left)"
            break
        offsets.append(offset)
        caplens.append(caplen)
        offset += 16 + caplen
    return np.array(offsets, dtype=np.int64), np.array(caplens, dtype=np.int64), damage


def _gather(buf: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    return buf[starts[:, None] + np.arange(width)]


def _sll2_fields(buf: np.ndarray, rec: np.ndarray, caplen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Interface index and packet type of each SLL2 frame; ifindex 0 and type 255 when the frame is too short."""
    whole = caplen >= SLL2_HEADER
    base = np.where(whole, rec + 16, 0)
    ifindex = _gather(buf, base + 4, 4).copy().view(">u4").reshape(-1).astype(np.int64)
    pkttype = buf[base + 10]
    return np.where(whole, ifindex, 0), np.where(whole, pkttype, 255).astype(np.uint8)


FLAG_VALUES = np.array([DIRECTION_FLAGS[Direction(t)] for t in range(5)], dtype=np.uint32)


def _epbs(
    buf: np.ndarray, rec: np.ndarray, order: str, scale: int, iface: np.ndarray, pkttype: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Enhanced packet blocks for a run of pcap records, built with array operations (same bytes as `packet()`),
    where each block starts, and each packet's time (ns)."""
    fields = _gather(buf, rec, 16).copy().view(np.dtype(order + "u4")).reshape(-1, 4).astype(np.uint64)
    ts = fields[:, 0] * np.uint64(1_000_000_000) + fields[:, 1] * np.uint64(scale)
    caplen = fields[:, 2].astype(np.int64)
    has_flags = pkttype < 5
    pad = (-caplen) & 3
    length = 32 + caplen + pad + np.where(has_flags, 12, 0)
    out_off = np.concatenate(([0], np.cumsum(length)[:-1])).astype(np.int64)
    out = np.zeros(int(length.sum()), dtype=np.uint8)
    header = np.empty((len(rec), 7), dtype="<u4")
    header[:, 0] = EPB_TYPE
    header[:, 1] = length
    header[:, 2] = iface
    header[:, 3] = ts >> np.uint64(32)
    header[:, 4] = ts & np.uint64(0xFFFFFFFF)
    header[:, 5] = caplen
    header[:, 6] = fields[:, 3]
    out[out_off[:, None] + np.arange(28)] = header.view(np.uint8).reshape(-1, 28)
    # Frame bytes: drop the 16-byte record headers from the input run, place the rest
    # wherever the output is not block header or tail (masks, no per-byte indexes).
    source = buf[int(rec[0]) : int(rec[-1] + 16 + caplen[-1])]
    keep = np.ones(len(source), dtype=bool)
    keep[(rec - rec[0])[:, None] + np.arange(16)] = False
    data_at = np.ones(len(out), dtype=bool)
    data_at[out_off[:, None] + np.arange(28)] = False
    tail = length - 28 - caplen
    data_at[np.repeat(out_off + 28 + caplen, tail) + np.arange(int(tail.sum())) - np.repeat(np.cumsum(tail) - tail, tail)] = False
    out[data_at] = source[keep]
    if has_flags.any():
        option = np.zeros((int(has_flags.sum()), 3), dtype="<u4")
        option[:, 0] = EPB_FLAGS | 4 << 16  # code 2, length 4
        option[:, 1] = FLAG_VALUES[pkttype[has_flags]]
        where = (out_off + 28 + caplen + pad)[has_flags]
        out[where[:, None] + np.arange(12)] = option.view(np.uint8).reshape(-1, 12)
    trailer = out_off + length - 4
    out[trailer[:, None] + np.arange(4)] = length.astype("<u4").view(np.uint8).reshape(-1, 4)
    return out, out_off, ts
