"""What `tcpdump -i any -w` wrote (LINUX_SLL2) -> pcapng with the node's interface names, and several nodes merged.

`sll2_pcap_to_pcapng` turns a node's pcap into a section whose interface blocks carry the node's real interface
names (its SLL2 headers name interfaces by index only), and declares them to a `MergedCapture`, which then
writes every node's packets into one section in time order, as mergecap would. Both build the packet blocks
with array operations, the same bytes as `PcapngWriter.packet()`.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np

from cniscope.packets.headers import SLL2
from cniscope.packets.schema import Direction, LinkType
from cniscope.wire import pcap
from cniscope.wire.pcapng import DIRECTION_FLAGS, EPB, EPB_FLAGS, PcapngWriter


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
        self.writer.write_raw(out.data)


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


def sll2_pcap_to_pcapng(
    data: bytes | mmap.mmap,
    writer: PcapngWriter,
    node: str,
    interfaces: Iterable[Interface],
    hardware: str | None = None,
    os: str | None = None,
    merged: MergedCapture | None = None,
) -> ConvertResult:
    """Write one section for `node`: an interface block per entry of `interfaces`
    (the node's ifindex table) and every frame of pcap file `data` under the interface its
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

    if len(data) < pcap.HEADER_LEN:
        result.damage = f"byte 0: pcap header needs {pcap.HEADER_LEN} bytes, file has {len(data)}"
        for entry in table:
            add_entry(entry, int(LinkType.LINUX_SLL2), 0)
        return result
    header = pcap.parse_header(data)
    if header is None:
        result.damage = f"byte 0: not a pcap file (magic {int.from_bytes(data[:4], 'little'):#010x})"
        return result
    order, snaplen, linktype = header.byteorder, header.snaplen, header.linktype
    ids: dict[int, int] = {}
    if linktype == LinkType.LINUX_SLL2:
        for entry in table:
            ids[entry.index] = add_entry(entry, linktype, snaplen)
    else:
        single = table[0] if table else Interface(index=0, name="capture")
        ids[-1] = add_entry(single, linktype, snaplen)
    offsets, caplens, result.damage = pcap.walk(data, header)
    buf = np.frombuffer(data, dtype=np.uint8)
    unknown: list[int] = []
    ends = np.cumsum(caplens + pcap.RECORD_LEN)
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
        blocks, at, ts = _epbs(buf, rec, order, 1_000_000_000 // header.ticks, iface, pkttype)
        if merged is not None:
            merged.blocks(writer.position + at, np.diff(np.append(at, len(blocks))), ts)
        writer.write_raw(blocks.data)
        result.packets += len(rec)
        first = last
    result.unknown_ifindex = tuple(unknown)
    return result


CHUNK_BYTES = 4 << 20  # input bytes converted at once (bounds the index arrays to a few tens of MB)


def _gather(buf: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    return buf[starts[:, None] + np.arange(width)]


def _sll2_fields(buf: np.ndarray, rec: np.ndarray, caplen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Interface index and packet type of each SLL2 frame; ifindex 0 and type 255 when the frame is too short."""
    whole = caplen >= SLL2.size
    headers = np.ascontiguousarray(_gather(buf, np.where(whole, rec + pcap.RECORD_LEN, 0), SLL2.size))
    windows = headers.view(f"V{SLL2.size}").reshape(-1)
    ifindex = SLL2.column(windows, "ifindex").astype(np.int64)
    pkttype = SLL2.column(windows, "pkttype")
    return np.where(whole, ifindex, 0), np.where(whole, pkttype, 255).astype(np.uint8)


FLAG_VALUES = np.array([DIRECTION_FLAGS[Direction(t)] for t in range(5)], dtype=np.uint32)


def _epbs(
    buf: np.ndarray, rec: np.ndarray, order: str, scale: int, iface: np.ndarray, pkttype: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Enhanced packet blocks for a run of pcap records, built with array operations (same bytes as `packet()`),
    where each block starts, and each packet's time (ns)."""
    fields = _gather(buf, rec, pcap.RECORD_LEN).copy().view(np.dtype(order + "u4")).reshape(-1, 4).astype(np.uint64)
    ts = fields[:, 0] * np.uint64(1_000_000_000) + fields[:, 1] * np.uint64(scale)
    caplen = fields[:, 2].astype(np.int64)
    has_flags = pkttype < 5
    pad = (-caplen) & 3
    length = 32 + caplen + pad + np.where(has_flags, 12, 0)
    out_off = np.concatenate(([0], np.cumsum(length)[:-1])).astype(np.int64)
    out = np.zeros(int(length.sum()), dtype=np.uint8)
    header = np.empty((len(rec), 7), dtype="<u4")
    header[:, 0] = EPB
    header[:, 1] = length
    header[:, 2] = iface
    header[:, 3] = ts >> np.uint64(32)
    header[:, 4] = ts & np.uint64(0xFFFFFFFF)
    header[:, 5] = caplen
    header[:, 6] = fields[:, 3]
    out[out_off[:, None] + np.arange(28)] = header.view(np.uint8).reshape(-1, 28)
    # Frame bytes: drop the 16-byte record headers from the input run, place the rest
    # wherever the output is not block header or tail (masks, no per-byte indexes).
    source = buf[int(rec[0]) : int(rec[-1] + pcap.RECORD_LEN + caplen[-1])]
    keep = np.ones(len(source), dtype=bool)
    keep[(rec - rec[0])[:, None] + np.arange(pcap.RECORD_LEN)] = False
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
