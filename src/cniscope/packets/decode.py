"""Decode a batch of raw frames into rows of the packet table, vectorized.

Theory of operation
-------------------
A `FrameBatch` holds one buffer (usually the mapped capture file) and, per
frame, where its captured bytes start and how many there are. Decoding goes
over the batch in chunks of `CHUNK` rows. For each chunk:

1. Gather a fixed-size byte window per row with ONE fancy index over a
   `V<k>` view of the buffer (`_gather`): 104 bytes at the frame start hold
   the link header (with a VLAN tag, at most 24 bytes) and 80 bytes from the
   network header on (IPv4 20 + TCP with up to 40 bytes of options, or IPv6
   40 + TCP with up to 20); then 16 bytes at the payload start for the digest. Header fields are read
   out of the windows as big-endian strided views, as declared once in
   `headers.py`; splitting rows by protocol selects rows, it copies no window.
2. Link layer per link type (an explicit dispatch table, `_LINK`), then the
   network and transport layers for the rows of each family. Rows that
   arrive at a UDP tunnel port (`TunnelPorts`) or IP in IP (over IPv4 or
   IPv6) get their envelope written to the outer_* columns (with the
   envelope's UDP checksum verdict), their packet columns cleared, and the
   network layer runs again on the inner packet for those rows only (one
   level of encapsulation, as in the fallback).
3. Every row the vector path does not handle whole is marked *slow*: frames
   cut by the snap length, IPv4 options, IPv6 extension headers, QinQ, ICMP
   errors (quoted header), malformed TCP options, windows that would run past
   the end of the buffer, unknown link types. `fallback.decode_frame`
   decodes those rows one by one and overwrites them. On ordinary traffic
   that is almost no rows; tests hold the two paths to identical output.

Only TCP options that are not the Linux data-segment layout
(NOP NOP TS) go through a small vectorized option walker (one numpy pass per
option position, over the rows that still have options left).

TCP/UDP/ICMP checksums (`l4_csum_bad`) are verified for the innermost packet of
every row whose whole segment was captured: the transport layer notes each such
segment (where it starts, its length, its pseudo-header's sum), and at the end
of the chunk `checksum.segment_sums` sums all of them in one pass over the
buffer.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from cniscope.packets import headers as H
from cniscope.packets.checksum import Scratch, segment_sums
from cniscope.packets.columns import ALL, ARROW_SCHEMA, Columns
from cniscope.packets.digest import DIGEST_BYTES, digest_np
from cniscope.packets.fallback import DECODED, PACKET, decode_frame
from cniscope.packets.frames import FrameBatch
from cniscope.packets.ports import TunnelPorts
from cniscope.packets.schema import IFINDEX_PREFIX, LinkType, Tunnel

CHUNK = 65536
K_LINK = 24  # a link header and one VLAN tag: Ethernet (18), SLL (20), SLL2 (24)
K_NET = 80  # network header + transport header with options
TS_LAYOUT = 0x0101080A  # NOP NOP TS(10): the option layout of Linux data segments


def decode_batch(batch: FrameBatch, input_index: int, ports: TunnelPorts) -> pl.DataFrame:
    """The packet table rows of every frame in `batch` (schema order and types); `ports` names the UDP tunnels."""
    return narrow(_frame(pl.from_arrow(decode_batch_arrow(batch, input_index, ports), rechunk=False)))


def narrow(table: pl.DataFrame) -> pl.DataFrame:
    """Columns with no value at all in `table`, rebuilt as a typed null literal: same schema, no memory.

    Converted from Arrow, an all-null column still holds its values buffer (a text column a 16-byte view
    per row); a literal null stays one value through concat, filter, sort and joins. A capture that
    never fills a column (no VLAN, no quoted ICMP packets, no names) then costs nothing for it.
    """
    n = table.height
    empty = [name for name, series in table.to_dict().items() if series.null_count() == n]
    if not n or not empty:
        return table
    return table.with_columns(pl.lit(None, table.schema[name]).alias(name) for name in empty)


def decode_batch_arrow(batch: FrameBatch, input_index: int, ports: TunnelPorts) -> pa.Table:
    """As `decode_batch`, as an Arrow table (one record batch per chunk)."""
    return _decode(batch, input_index, ports, vector=True)


def decode_batch_reference(batch: FrameBatch, input_index: int, ports: TunnelPorts) -> pl.DataFrame:
    """Every row through the per-packet fallback: the reference the vector path is tested against."""
    return _frame(pl.from_arrow(_decode(batch, input_index, ports, vector=False)))


def _frame(table: pl.DataFrame | pl.Series) -> pl.DataFrame:
    """What polars makes of a record batch: a frame (`from_arrow` is typed for arrays too)."""
    if not isinstance(table, pl.DataFrame):
        raise TypeError(f"a record batch became a {type(table).__name__}")
    return table


def slow_rows(batch: FrameBatch, ports: TunnelPorts) -> np.ndarray:
    """Which rows the vector path leaves to the per-packet fallback (bool per frame): for tests and tuning."""
    kinds = _port_kinds(ports)
    parts = []
    scratch = Scratch()
    for start in range(0, len(batch.offset), CHUNK):
        stop = min(start + CHUNK, len(batch.offset))
        base = batch.offset[start:stop].astype(np.int64)
        cols = Columns(stop - start)
        vector = _Vector(batch.data, base, base + batch.caplen[start:stop], cols, kinds, scratch)
        parts.append(vector.run(batch.linktype[start:stop]))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.bool_)


def _port_kinds(ports: TunnelPorts) -> np.ndarray:
    kinds = np.zeros(65536, dtype=np.uint8)
    for port, kind in ports.by_port.items():
        kinds[port] = kind
    return kinds


def _decode(batch: FrameBatch, input_index: int, ports: TunnelPorts, vector: bool) -> pa.Table:
    port_kinds = _port_kinds(ports)
    n = len(batch.offset)
    scratch = Scratch()
    chunks = [
        _decode_chunk(batch, start, min(start + CHUNK, n), input_index, ports, port_kinds, vector, scratch)
        for start in range(0, n, CHUNK)
    ]
    return pa.Table.from_batches(chunks, schema=ARROW_SCHEMA)


def _decode_chunk(
    batch: FrameBatch, start: int, stop: int, input_index: int, ports: TunnelPorts, port_kinds: np.ndarray, vector: bool,
    scratch: Scratch,
) -> pa.RecordBatch:
    n = stop - start
    cols = Columns(n)
    caplen = batch.caplen[start:stop]
    linktype = batch.linktype[start:stop]
    cols.put("input", ALL, input_index)
    cols.put("frame", ALL, np.arange(batch.first_frame + start, batch.first_frame + stop, dtype=np.uint32))
    cols.put("ts", ALL, batch.ts[start:stop])
    cols.put("linktype", ALL, linktype)
    cols.put("caplen", ALL, caplen)
    cols.put("wirelen", ALL, batch.wirelen[start:stop])
    cols.put_dictionary("node", batch.node[start:stop], batch.node_names)
    iface, iface_names = _sll2_ifindex(batch, start, stop)
    cols.put_dictionary("iface", iface, iface_names)
    cols.put("truncated", ALL, False)
    cols.put("tunnel", ALL, int(Tunnel.NONE))
    base = batch.offset[start:stop].astype(np.int64)
    end = base + caplen
    slow = _Vector(batch.data, base, end, cols, port_kinds, scratch).run(linktype) if vector else np.ones(n, dtype=np.bool_)
    data = batch.data
    rows = np.flatnonzero(slow)
    if len(rows):
        found = [decode_frame(data[base[row] : end[row]].tobytes(), int(linktype[row]), ports) for row in rows.tolist()]
        cols.clear(DECODED, rows)
        cols.put_rows(rows.tolist(), found)
    direction = batch.direction[start:stop]
    known = direction >= 0
    if known.any():
        cols.put_where("direction", ALL, direction.astype(np.uint8), known)
    return cols.to_arrow()


def _sll2_ifindex(batch: FrameBatch, start: int, stop: int) -> tuple[np.ndarray, list[str | None]]:
    """Interface of each frame; a LINUX_SLL2 frame the file does not name (a pcap of `tcpdump -i any`) is named
    by the index its header carries, "ifindex 7" as `tcpdump -e` prints it (the name belongs to the capturing host)."""
    iface = batch.iface[start:stop]
    unnamed = (iface < 0) & (batch.linktype[start:stop] == LinkType.LINUX_SLL2) & (batch.caplen[start:stop] >= 8)
    if not unnamed.any():
        return iface, batch.iface_names
    pos = batch.offset[start:stop][unnamed].astype(np.int64) + 4
    window, ok = _gather(batch.data, pos, 4)
    index = np.where(ok, window.view(">u4").astype(np.int64), -1)
    known = np.unique(index[index >= 0])
    names = [*batch.iface_names, *(f"{IFINDEX_PREFIX}{i}" for i in known.tolist())]
    iface = iface.copy()
    iface[unnamed] = np.where(index >= 0, len(batch.iface_names) + np.searchsorted(known, index), -1)
    return iface, names


def _gather(data: np.ndarray, pos: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """A `V<k>` window at each position, and whether it lies inside the buffer (else garbage)."""
    limit = data.shape[0] - k
    if limit < 0:
        return np.zeros(pos.shape[0], dtype=f"V{k}"), np.zeros(pos.shape[0], dtype=np.bool_)
    view = np.ndarray(shape=(limit + 1,), dtype=f"V{k}", buffer=data, strides=(1,))
    ok = (pos <= limit) & (pos >= 0)
    if ok.all():
        return view[pos], ok
    return view[np.clip(pos, 0, limit)], ok


# rows of a chunk a decoder works on: all of them (a slice), or their positions
Picked = slice | np.ndarray
# a header length: one for every row (a scalar), or one each
Offset = np.ndarray | np.int64


def _take(a: np.ndarray, idx: Picked) -> np.ndarray:
    return a if isinstance(idx, slice) else a[idx]


def _pick(mask: np.ndarray) -> Picked:
    return ALL if mask.all() else np.flatnonzero(mask)


def _compose(rows: Picked, idx: Picked) -> Picked:
    if isinstance(idx, slice):
        return rows
    if isinstance(rows, slice):
        return idx
    return rows[idx]


@dataclass
class _Group:
    """Rows of the chunk that go through the same layer, with their windows at that layer.

    `sel` picks this group's rows out of `w` (None: all of them), so that splitting a group
    by protocol reads only the fields it needs instead of copying whole windows.
    """

    rows: Picked  # which chunk rows
    w: np.ndarray  # V<k> byte windows
    sel: np.ndarray | None  # this group's rows in `w`
    start: np.ndarray  # int64 buffer position of each row's network header
    avail: np.ndarray  # int64 captured bytes from `start` on
    head: int = 0  # where the network header starts in each window

    @property
    def n(self) -> int:
        return int(self.start.shape[0])

    @property
    def room(self) -> int:
        """Window bytes from the network header on."""
        return int(self.w.dtype.itemsize) - self.head

    def sub(self, idx: Picked) -> _Group:
        if isinstance(idx, slice):
            return self
        sel = idx if self.sel is None else self.sel[idx]
        return _Group(_compose(self.rows, idx), self.w, sel, self.start[idx], self.avail[idx], self.head)

    def reader(self, header: H.Header) -> Callable[..., np.ndarray]:
        """`read(name, at=0)`: the field of `header` starting `at` bytes after the network header."""
        return lambda name, at=0: header.column(self.w, name, self.head + at, self.sel)

    def raw(self) -> np.ndarray:
        """The windows as a byte matrix, column 0 at the network header."""
        raw = self.w.view(np.uint8).reshape(self.w.shape[0], self.w.dtype.itemsize)[:, self.head :]
        return raw if self.sel is None else raw[self.sel]


class _Vector:
    def __init__(self, data: np.ndarray, base: np.ndarray, end: np.ndarray, cols: Columns, port_kinds: np.ndarray,
                 scratch: Scratch) -> None:
        self.data, self.base, self.end, self.cols, self.port_kinds, self.scratch = data, base, end, cols, port_kinds, scratch
        self.slow = np.zeros(base.shape[0], dtype=np.bool_)
        # the TCP/UDP segments to checksum: the packet's, and a UDP envelope's (outer_l4_csum_bad)
        self.segments = {name: _Segments(base.shape[0]) for name in ("l4_csum_bad", "outer_l4_csum_bad")}

    def mark(self, rows: Picked, bad: np.ndarray) -> None:
        self.slow[rows] |= bad

    # -- link layer --------------------------------------------------------------
    def run(self, linktype: np.ndarray) -> np.ndarray:
        n = self.base.shape[0]
        kinds = [int(linktype[0])] if n and (linktype == linktype[0]).all() else np.unique(linktype).tolist()
        # one window covers the link header and the network header after it
        w, ok = _gather(self.data, self.base, K_LINK + K_NET)
        self.slow |= ~ok
        l3 = np.zeros(n, dtype=np.int64)
        ethertype = np.zeros(n, dtype=np.int64)
        for kind in kinds:
            rows = ALL if len(kinds) == 1 else np.flatnonzero(linktype == kind)
            handler = _LINK.get(kind)
            if handler is None:
                self.slow[rows] = True
                continue
            hdr, et, bad = handler(self, rows, _take(w, rows), _take(self.end - self.base, rows))
            l3[rows] = hdr
            ethertype[rows] = et
            self.mark(rows, bad)
        fast = ~self.slow
        if not fast.any():
            return self.slow
        heads = [int(l3[0])] if (l3 == l3[0]).all() else np.unique(l3[fast]).tolist()
        for head in heads:  # one network pass per link header length (a handful: 0, 14, 16, 18, 20 ...)
            rows = _pick(fast & (l3 == head))
            sel = None if isinstance(rows, slice) else rows
            self.network(rows, _take(self.base, rows) + head, _take(ethertype, rows), 0, link=(w, sel, head))
        self.checksums()
        return self.slow

    def ethernet(self, rows: Picked, w: np.ndarray, avail: np.ndarray) -> tuple[Offset, np.ndarray, np.ndarray]:
        self.cols.put("eth_dst", rows, H.ETHERNET.column(w, "dst"))
        self.cols.put("eth_src", rows, H.ETHERNET.column(w, "src"))
        return self._tagged(rows, w, H.ETHERNET.column(w, "type"), 14, avail)

    def _tagged(self, rows: Picked, w: np.ndarray, ethertype: np.ndarray, at: int, avail: np.ndarray) -> tuple[Offset, np.ndarray, np.ndarray]:
        """One 802.1Q tag may follow the link header (Ethernet, and SLL/SLL2 where libpcap puts it back)."""
        tagged = ethertype == H.ETH_VLAN
        bad = (ethertype == H.ETH_QINQ) | (avail < at)
        if not tagged.any():
            return np.int64(at), ethertype, bad
        inner = H.VLAN.column(w, "type", at)
        self.cols.put_where("vlan", rows, H.VLAN.column(w, "tci", at) & 0x0FFF, tagged)
        bad |= tagged & ((inner == H.ETH_VLAN) | (inner == H.ETH_QINQ) | (avail < at + 4))
        return np.where(tagged, at + 4, at), np.where(tagged, inner, ethertype), bad

    def _sll(self, rows: Picked, w: np.ndarray, header: H.Header) -> np.ndarray:
        pkttype = header.column(w, "pkttype")
        self.cols.put_where("direction", rows, pkttype.astype(np.uint8), pkttype <= 4)
        self.cols.put_where("eth_src", rows, header.column(w, "addr"), header.column(w, "halen") == 6)
        return header.column(w, "proto")

    def sll(self, rows: Picked, w: np.ndarray, avail: np.ndarray) -> tuple[Offset, np.ndarray, np.ndarray]:
        return self._tagged(rows, w, self._sll(rows, w, H.SLL), 16, avail)

    def sll2(self, rows: Picked, w: np.ndarray, avail: np.ndarray) -> tuple[Offset, np.ndarray, np.ndarray]:
        return self._tagged(rows, w, self._sll(rows, w, H.SLL2), 20, avail)

    def raw_ip(self, rows: Picked, w: np.ndarray, avail: np.ndarray) -> tuple[Offset, np.ndarray, np.ndarray]:
        version = H.IPV4.column(w, "vihl") >> 4
        et = np.where(version == 4, H.ETH_IPV4, np.where(version == 6, H.ETH_IPV6, 0))
        return np.int64(0), et, (et == 0) | (avail < 1)

    def null(self, rows: Picked, w: np.ndarray, avail: np.ndarray) -> tuple[Offset, np.ndarray, np.ndarray]:
        """BSD loopback: the family in the capturing host's byte order (little-endian hosts swapped back)."""
        family = H.LOOPBACK.column(w, "family").astype(np.int64)
        swapped = ((family & 0xFF) << 24) | (((family >> 8) & 0xFF) << 16) | (((family >> 16) & 0xFF) << 8) | (family >> 24)
        return self._family(np.where(family > 0xFFFF, swapped, family), avail)

    def loop(self, rows: Picked, w: np.ndarray, avail: np.ndarray) -> tuple[Offset, np.ndarray, np.ndarray]:
        return self._family(H.LOOPBACK.column(w, "family").astype(np.int64), avail)

    @staticmethod
    def _family(family: np.ndarray, avail: np.ndarray) -> tuple[Offset, np.ndarray, np.ndarray]:
        et = np.zeros(family.shape[0], dtype=np.int64)
        for value, ethertype in H.AF_ETHERTYPE.items():
            et[family == value] = ethertype
        return np.int64(4), et, (et == 0) | (avail < 4)

    def ipv4_link(self, rows: Picked, w: np.ndarray, avail: np.ndarray) -> tuple[Offset, np.ndarray, np.ndarray]:
        return np.int64(0), np.full(w.shape[0], H.ETH_IPV4), np.zeros(w.shape[0], dtype=np.bool_)

    def ipv6_link(self, rows: Picked, w: np.ndarray, avail: np.ndarray) -> tuple[Offset, np.ndarray, np.ndarray]:
        return np.int64(0), np.full(w.shape[0], H.ETH_IPV6), np.zeros(w.shape[0], dtype=np.bool_)

    # -- network layer -----------------------------------------------------------
    def network(self, rows: Picked, start: np.ndarray, ethertype: np.ndarray, depth: int,
                link: tuple[np.ndarray, np.ndarray | None, int] | None = None) -> None:
        """`link`: the link-layer windows already hold the network header (windows, their rows, offset)."""
        self.cols.put("ethertype", rows, ethertype)
        if link is None:
            w, ok = _gather(self.data, start, K_NET)
            self.mark(rows, ~ok)
            group = _Group(rows, w, None, start, _take(self.end, rows) - start)
        else:
            group = _Group(rows, link[0], link[1], start, _take(self.end, rows) - start, link[2])
        for value, handler in ((H.ETH_IPV4, self.ipv4), (H.ETH_IPV6, self.ipv6), (H.ETH_ARP, self.arp)):
            mask = ethertype == value
            if mask.any():
                handler(group.sub(_pick(mask)), depth)

    def ipv4(self, g: _Group, depth: int) -> None:
        col, cols, rows = g.reader(H.IPV4), self.cols, g.rows
        vihl, total, frag = col("vihl"), col("len").astype(np.int64), col("frag")
        src, dst, ttl, ip_id = col("src"), col("dst"), col("ttl"), col("id")
        proto = col("proto")
        cols.put("ip_version", rows, 4)
        cols.put("src", rows, src)
        cols.put("dst", rows, dst)
        cols.put("ip_id", rows, ip_id)
        cols.put("ttl", rows, ttl)
        cols.put("tos", rows, col("tos"))
        cols.put("ip_len", rows, total)
        cols.put("df", rows, (frag & 0x4000) != 0)
        cols.put("mf", rows, (frag & 0x2000) != 0)
        cols.put("frag_offset", rows, (frag & 0x1FFF) * 8)
        cols.put("proto", rows, proto)
        self.mark(rows, (vihl != 0x45) | (total < 20) | (g.avail < 20))
        first = (frag & 0x1FFF) == 0
        envelope = {"outer_src": src, "outer_dst": dst, "outer_ttl": ttl, "outer_ip_id": ip_id, "outer_len": total}
        addresses = (src >> 16).astype(np.int64) + (src & 0xFFFF) + (dst >> 16) + (dst & 0xFFFF)
        self.transport(g, 20, proto, total - 20, first, v4=True, depth=depth, envelope=envelope,
                       pseudo=(addresses, (frag & 0x2000) == 0))

    def ipv6(self, g: _Group, depth: int) -> None:
        col, cols, rows = g.reader(H.IPV6), self.cols, g.rows
        vtcfl, plen, nh = col("vtcfl"), col("plen").astype(np.int64), col("nh")
        cols.put("ip_version", rows, 6)
        raw = g.raw()
        envelope: dict[str, np.ndarray] = {"outer_ttl": col("hlim"), "outer_len": plen + 40}
        for name, offset in (("src6", 8), ("dst6", 24)):
            addr = np.ascontiguousarray(raw[:, offset : offset + 16]).view("V16").ravel()
            unique, inverse = np.unique(addr, return_inverse=True)
            text = np.array([socket.inet_ntop(socket.AF_INET6, a.tobytes()) for a in unique], dtype=object)
            envelope[f"outer_{name}"] = text[inverse]
            cols.put(name, rows, envelope[f"outer_{name}"])
        cols.put("ttl", rows, col("hlim"))
        cols.put("tos", rows, (vtcfl >> 20) & 0xFF)
        cols.put("ip_len", rows, plen + 40)
        cols.put("mf", rows, False)
        cols.put("frag_offset", rows, 0)
        cols.put("proto", rows, nh)
        extension = np.isin(nh, list(H.IPV6_EXTENSIONS))
        self.mark(rows, ((vtcfl >> 28) != 6) | (g.avail < 40) | extension)
        addresses = np.ascontiguousarray(raw[:, 8:40]).view(">u2").sum(axis=1, dtype=np.int64)
        self.transport(g, 40, nh, plen, ~extension, v4=False, depth=depth, envelope=envelope, pseudo=(addresses, ~extension))

    def arp(self, g: _Group, depth: int) -> None:
        col, cols, rows = g.reader(H.ARP), self.cols, g.rows
        cols.put("arp_op", rows, col("op"))
        cols.put("arp_sha", rows, col("sha"))
        cols.put("arp_spa", rows, col("spa"))
        cols.put("arp_tpa", rows, col("tpa"))
        self.mark(rows, (g.avail < 28) | (col("hlen") != 6) | (col("plen") != 4))

    # -- transport layer ---------------------------------------------------------
    def transport(
        self, g: _Group, at: int, proto: np.ndarray, length: np.ndarray, first: np.ndarray,
        v4: bool, depth: int, envelope: dict[str, np.ndarray], pseudo: tuple[np.ndarray, np.ndarray],
    ) -> None:
        """The transport header `at` bytes after the network header; `length`: its size as the IP header gives it.

        `pseudo`: the sum of the addresses' 16-bit words (for the checksum's pseudo-header), and which rows hold
        a whole segment as far as the IP header tells (not the first of several fragments).
        """
        n = g.n
        pay_pos = np.zeros(n, dtype=np.int64)
        pay_len = np.full(n, -1, dtype=np.int64)
        tunnel = np.zeros(n, dtype=np.uint8)
        icmp_proto = H.PROTO_ICMP if v4 else H.PROTO_ICMPV6
        l4avail = g.avail - at
        for value, handler in ((H.PROTO_TCP, self.tcp), (H.PROTO_UDP, self.udp), (icmp_proto, self.icmp)):
            mask = first & (proto == value)
            if not mask.any():
                continue
            idx = _pick(mask)
            sub = g.sub(idx)
            pos, size = handler(sub, at, _take(length, idx), _take(l4avail, idx), v4)
            pay_pos[idx] = sub.start + at + pos
            pay_len[idx] = size
            if value == H.PROTO_UDP and depth == 0:
                kind = self.port_kinds[self.cols.values["dport"][sub.rows]]
                tunnel[idx] = np.where(kind != 0, kind, self.port_kinds[self.cols.values["sport"][sub.rows]])
        if depth == 0:
            tunnel[first & np.isin(proto, list(H.IP_IN_IP))] = Tunnel.IPIP
        whole = first & pseudo[1]
        self.segment(g, at, proto, length, whole & (tunnel == 0), pseudo[0], v4, "l4_csum_bad")
        if depth == 0 and tunnel.any():
            self.segment(g, at, proto, length, whole & (tunnel != 0), pseudo[0], v4, "outer_l4_csum_bad")
        self.payload(g, pay_pos, np.where(tunnel != 0, -1, pay_len))  # an envelope's payload is the packet
        if depth == 0 and tunnel.any():
            self.envelope(g, at, tunnel, proto, envelope, l4avail)

    def segment(self, g: _Group, at: int, proto: np.ndarray, length: np.ndarray, whole: np.ndarray,
                addresses: np.ndarray, v4: bool, column: str) -> None:
        """Note the TCP/UDP/ICMP messages captured whole, for `checksums`; as in the fallback, a UDP length that
        disagrees with the IP header is not checked, nor a UDP checksum of 0 over IPv4 (none)."""
        tcp, udp = proto == H.PROTO_TCP, proto == H.PROTO_UDP
        icmp = proto == (H.PROTO_ICMP if v4 else H.PROTO_ICMPV6)
        start = g.start + at
        headed = (tcp & (length >= H.TCP.size)) | (udp & (length >= H.UDP.size)) | (icmp & (length >= H.ICMP.size))
        want = whole & headed & (start + length <= _take(self.end, g.rows))
        if udp.any():
            read = g.reader(H.UDP)
            want &= ~udp | ((read("len", at) == length) & ((read("csum", at) != 0) | (not v4)))
        if not want.any():
            return
        idx = _pick(want)
        rows = _compose(g.rows, idx)
        size = _take(length, idx).astype(np.int64)
        segments = self.segments[column]
        segments.start[rows] = _take(start, idx)
        segments.size[rows] = size
        pseudo = _take(addresses, idx) + _take(proto, idx) + size
        segments.pseudo[rows] = np.where(_take(icmp, idx), 0, pseudo) if v4 else pseudo  # ICMP: no pseudo-header

    def checksums(self) -> None:
        """Judge every noted segment at once (in row order, which is buffer order)."""
        for column, segments in self.segments.items():
            rows = _pick(segments.start >= 0)
            if not isinstance(rows, slice) and rows.shape[0] == 0:
                continue
            sums, done = segment_sums(self.data, _take(segments.start, rows), _take(segments.size, rows), self.scratch)
            self.cols.put_where(column, rows, (sums + _take(segments.pseudo, rows)) % 0xFFFF != 0, done)
            self.mark(rows, ~done)

    def payload(self, g: _Group, pos: np.ndarray, size: np.ndarray) -> None:
        has = size >= 0
        if not has.any():
            return
        self.cols.put_where("payload_len", g.rows, size.astype(np.uint32), has)
        take = np.minimum(size, DIGEST_BYTES)
        want = (size > 0) & (pos + take <= _take(self.end, g.rows))
        if not want.any():
            return
        idx = _pick(want)
        w, ok = _gather(self.data, _take(pos, idx), DIGEST_BYTES)
        rows = _compose(g.rows, idx)
        self.mark(rows, ~ok)
        self.cols.put("payload_digest", rows, digest_np(w, _take(size, idx)))

    def tcp(self, g: _Group, at: int, length: np.ndarray, l4avail: np.ndarray, v4: bool) -> tuple[Offset, np.ndarray]:
        col, cols, rows = g.reader(H.TCP), self.cols, g.rows
        flags = col("flags", at)
        doff = (col("doff", at) >> 4).astype(np.int64) * 4
        size = length - doff
        cols.put("sport", rows, col("sport", at))
        cols.put("dport", rows, col("dport", at))
        cols.put("tcp_flags", rows, flags)
        cols.put("seq", rows, col("seq", at))
        cols.put_where("ack", rows, col("ack", at), (flags & 16) != 0)
        cols.put("win", rows, col("win", at))
        cols.put("sack_ok", rows, False)
        # options the snap length cut are walked as far as they were captured (`option_walk`), as the fallback does
        bad = (l4avail < 20) | (doff < 20) | (doff > g.room - at) | (size < 0)
        self.mark(rows, bad)
        options = (doff > 20) & ~bad
        if options.any():
            self.tcp_options(g, at, doff, options, l4avail)
        return doff, size

    def tcp_options(self, g: _Group, at: int, doff: np.ndarray, options: np.ndarray, l4avail: np.ndarray) -> None:
        cols = self.cols
        linux = options & (doff == 32) & (l4avail >= 32) & (g.reader(H.TCP_TS)("layout", at + 20) == TS_LAYOUT)
        if linux.any():
            idx = _pick(linux)
            sub = g.sub(idx)
            read = sub.reader(H.TCP_TS)
            cols.put("tsval", sub.rows, read("tsval", at + 20))
            cols.put("tsecr", sub.rows, read("tsecr", at + 20))
        rest = options & ~linux
        if rest.any():
            idx = _pick(rest)
            self.option_walk(g.sub(idx), at, _take(doff, idx), _take(at + l4avail, idx))

    def option_walk(self, g: _Group, at: int, doff: np.ndarray, captured: np.ndarray) -> None:
        """Walk TCP options for all rows at once, one option position per pass; `captured`: where each row's
        captured bytes end (a window position). An option the snap length cut ends the walk with the fallback's
        error, the row truncated, and what came before it kept."""
        raw = g.raw()
        k = raw.shape[1]
        rows = np.arange(raw.shape[0])
        chunk_rows = rows if isinstance(g.rows, slice) else g.rows
        pos = np.full(raw.shape[0], at + 20, dtype=np.int64)
        end = at + doff
        active = pos < end
        cols = self.cols
        cut_rows: list[np.ndarray] = []
        cut_texts: list[str] = []
        while active.any():
            live = rows[active]
            p = pos[live]
            have = captured[live] - p
            short = have < 1  # not even the option's kind
            kind = raw[live, p]
            nop = (kind == 1) & ~short
            eol = (kind == 0) & ~short
            size = raw[live, np.minimum(p + 1, k - 1)].astype(np.int64)
            size[nop] = 1
            opt = ~nop & ~eol & ~short
            short_head = opt & (have < 2)  # the kind but not the length
            opt &= ~short_head
            bad = opt & ((p + 1 >= end[live]) | (size < 2) | (p + size > end[live]))
            self.mark(_take(chunk_rows, live[bad]), np.ones(int(bad.sum()), dtype=np.bool_))
            short_body = opt & ~bad & (have < size)
            good = opt & ~bad & ~short_body
            cut = short | short_head | short_body
            if cut.any():
                offset = _take(g.start, live[cut]) - _take(self.base, _take(chunk_rows, live[cut])) + p[cut]
                for what, need, at_, got in zip(
                        np.where(short_body, kind.astype(np.int64), -1)[cut].tolist(), np.where(short, 1, np.where(short_head, 2, size))[cut].tolist(),
                        offset.tolist(), np.maximum(have[cut], 0).tolist()):
                    option = "TCP option" if what < 0 else f"TCP option {what}"
                    cut_texts.append(f"truncated: {option} needs {need} bytes at offset {at_}, {got} captured")
                cut_rows.append(_take(chunk_rows, live[cut]))

            def byte(offset: int, sel: np.ndarray, live: np.ndarray = live, p: np.ndarray = p) -> np.ndarray:
                found: np.ndarray = raw[live[sel], np.minimum(p[sel] + offset, k - 1)].astype(np.uint32)
                return found

            for number, length, handler in _OPTIONS:
                sel = good & (kind == number) & (size == length)
                if sel.any():
                    handler(cols, _take(chunk_rows, live[sel]), byte, sel)
            pos[live] = p + size
            still = ~eol & ~bad & ~cut
            active[live] = still & (pos[live] < end[live])
        if cut_rows:
            truncated = np.concatenate(cut_rows)
            cols.put("truncated", truncated, True)
            cols.put("error", truncated, np.array(cut_texts, dtype=object))

    def udp(self, g: _Group, at: int, length: np.ndarray, l4avail: np.ndarray, v4: bool) -> tuple[Offset, np.ndarray]:
        col, cols, rows = g.reader(H.UDP), self.cols, g.rows
        sport, dport = col("sport", at), col("dport", at)
        cols.put("sport", rows, sport)
        cols.put("dport", rows, dport)
        size = length - 8
        self.mark(rows, (l4avail < 8) | (size < 0))
        dns = ((sport == 53) | (dport == 53)) & (size >= 4) & (l4avail >= 12)
        if dns.any():
            cols.put_where("dns_id", rows, g.reader(H.DNS)("id", at + 8), dns)
            cols.put_where("dns_qr", rows, (g.reader(H.DNS)("flags", at + 8) & 0x8000) != 0, dns)
        return np.int64(8), size

    def icmp(self, g: _Group, at: int, length: np.ndarray, l4avail: np.ndarray, v4: bool) -> tuple[Offset, np.ndarray]:
        col, cols, rows = g.reader(H.ICMP), self.cols, g.rows
        kind = col("type", at)
        cols.put("icmp_type", rows, kind)
        cols.put("icmp_code", rows, col("code", at))
        echo = (kind == 0) | (kind == 8) if v4 else (kind == 128) | (kind == 129)
        cols.put_where("icmp_id", rows, col("id", at), echo)
        cols.put_where("icmp_seq", rows, col("seq", at), echo)
        errors = np.isin(kind, list(H.ICMP4_ERRORS if v4 else H.ICMP6_ERRORS))
        size = length - 8
        self.mark(rows, (l4avail < 8) | (size < 0) | errors)
        return np.int64(8), size

    # -- tunnels -----------------------------------------------------------------
    def envelope(
        self, g: _Group, at: int, tunnel: np.ndarray, proto: np.ndarray, envelope: dict[str, np.ndarray],
        l4avail: np.ndarray,
    ) -> None:
        """Rows whose packet is an envelope: keep it in outer_*, decode what it carries."""
        idx = _pick((tunnel != 0) & ~_take(self.slow, g.rows))
        g = g.sub(idx)
        n = g.n
        if n == 0:
            return
        kind, l4avail, proto = _take(tunnel, idx), _take(l4avail, idx), _take(proto, idx)
        cols, rows = self.cols, g.rows
        vxlan_read, geneve_read, eth_read, ip_read = (g.reader(h) for h in (H.VXLAN, H.GENEVE, H.ETHERNET, H.IPV4))
        l4 = g.start + at
        start = np.zeros(n, dtype=np.int64)
        ethertype = np.zeros(n, dtype=np.int64)
        bad = np.zeros(n, dtype=np.bool_)
        udp = kind != Tunnel.IPIP
        if udp.any():
            cols.put_where("outer_sport", rows, cols.values["sport"][rows], udp)
            cols.put_where("outer_dport", rows, cols.values["dport"][rows], udp)
        vxlan, geneve, flannel = kind == Tunnel.VXLAN, kind == Tunnel.GENEVE, kind == Tunnel.FLANNEL_UDP
        ipip = kind == Tunnel.IPIP
        vni = vxlan_read("vni_res", at + 8) >> 8
        cols.put_where("vni", rows, vni, vxlan | geneve)
        if vxlan.any():
            eth_type = eth_read("type", at + 16)
            cols.put_where("inner_eth_dst", rows, eth_read("dst", at + 16), vxlan)
            cols.put_where("inner_eth_src", rows, eth_read("src", at + 16), vxlan)
            start = np.where(vxlan, l4 + 30, start)
            ethertype = np.where(vxlan, eth_type, ethertype)
            bad |= vxlan & ((l4avail < 30) | (eth_type == H.ETH_VLAN) | (eth_type == H.ETH_QINQ))
        if geneve.any():
            options = (geneve_read("verlen", at + 8) & 0x3F).astype(np.int64) * 4
            proto = geneve_read("proto", at + 8)
            teb = proto == H.ETH_TEB
            eth_at = np.minimum(at + 16 + options, g.room - 14)
            eth_type = eth_read("type", eth_at)
            bad |= geneve & ((l4avail < 16 + options + np.where(teb, 14, 0)) | (teb & (at + 16 + options + 14 > g.room)))
            bad |= geneve & teb & ((eth_type == H.ETH_VLAN) | (eth_type == H.ETH_QINQ))
            cols.put_where("inner_eth_dst", rows, eth_read("dst", eth_at), geneve & teb)
            cols.put_where("inner_eth_src", rows, eth_read("src", eth_at), geneve & teb)
            start = np.where(geneve, l4 + 16 + options + np.where(teb, 14, 0), start)
            ethertype = np.where(geneve, np.where(teb, eth_type, proto), ethertype)
        if flannel.any():
            version = ip_read("vihl", at + 8) >> 4
            et = np.where(version == 4, H.ETH_IPV4, np.where(version == 6, H.ETH_IPV6, 0))
            start = np.where(flannel, l4 + 8, start)
            ethertype = np.where(flannel, et, ethertype)
            bad |= flannel & ((l4avail < 9) | (et == 0))
        start = np.where(ipip, l4, start)
        ethertype = np.where(ipip, np.where(proto == H.PROTO_IPV6, H.ETH_IPV6, H.ETH_IPV4), ethertype)
        cols.put("tunnel", rows, kind)
        for name, values in envelope.items():
            cols.put(name, rows, _take(values, idx))
        self.mark(rows, bad)
        cols.clear(PACKET, rows)
        keep = _pick(~bad)
        if isinstance(keep, slice) or keep.shape[0]:
            self.network(_compose(rows, keep), _take(start, keep), _take(ethertype, keep), depth=1)


# the option bytes at an offset, of the selected rows
OptionByte = Callable[[int, np.ndarray], np.ndarray]


def _opt_mss(cols: Columns, rows: np.ndarray, byte: OptionByte, sel: np.ndarray) -> None:
    cols.put("mss", rows, (byte(2, sel) << 8) | byte(3, sel))


def _opt_wscale(cols: Columns, rows: np.ndarray, byte: OptionByte, sel: np.ndarray) -> None:
    cols.put("wscale", rows, byte(2, sel))


def _opt_sack_ok(cols: Columns, rows: np.ndarray, byte: OptionByte, sel: np.ndarray) -> None:
    cols.put("sack_ok", rows, True)


def _opt_timestamp(cols: Columns, rows: np.ndarray, byte: OptionByte, sel: np.ndarray) -> None:
    cols.put("tsval", rows, (byte(2, sel) << 24) | (byte(3, sel) << 16) | (byte(4, sel) << 8) | byte(5, sel))
    cols.put("tsecr", rows, (byte(6, sel) << 24) | (byte(7, sel) << 16) | (byte(8, sel) << 8) | byte(9, sel))


# TCP option kind, length -> what it sets (other options are skipped by length).
_OPTIONS = ((2, 4, _opt_mss), (3, 3, _opt_wscale), (4, 2, _opt_sack_ok), (8, 10, _opt_timestamp))

@dataclass
class _Segments:
    """Per chunk row, a TCP/UDP segment to checksum (start -1: none): buffer position, length, pseudo-header sum."""

    start: np.ndarray
    size: np.ndarray
    pseudo: np.ndarray

    def __init__(self, n: int) -> None:
        self.start = np.full(n, -1, dtype=np.int64)
        self.size = np.zeros(n, dtype=np.int64)
        self.pseudo = np.zeros(n, dtype=np.int64)


# Link type -> link-layer handler: (network header offset, ethertype, rows to leave to the fallback).
_LINK: dict[int, Callable[[_Vector, Picked, np.ndarray, np.ndarray], tuple[Offset, np.ndarray, np.ndarray]]] = {
    LinkType.ETHERNET: _Vector.ethernet,
    LinkType.LINUX_SLL: _Vector.sll,
    LinkType.LINUX_SLL2: _Vector.sll2,
    LinkType.RAW: _Vector.raw_ip,
    LinkType.IPV4: _Vector.ipv4_link,
    LinkType.IPV6: _Vector.ipv6_link,
    LinkType.NULL: _Vector.null,
    LinkType.LOOP: _Vector.loop,
    LinkType.RAW_BSD: _Vector.raw_ip,
    LinkType.RAW_OPENBSD: _Vector.raw_ip,
}  # the other LinkTypes (PPP, NFLOG, PKTAP ...) are rare: the per-packet fallback decodes them
