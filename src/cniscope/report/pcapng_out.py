"""`--pcapng`: the captured packets again, explained inside the capture, for Wireshark.

Every sighting of the report becomes one packet in the output, in input order,
in one section: an interface block per (node, interface) with the interface's
name and the node in its description (`node=<name>`, which cniscope's reader
takes as the interface's node), direction in epb_flags, and a comment on every
packet:

    journey 12, hop 2 of 3: node3 kube-bridge Out (pod bridge), +212 us; DNAT 10.96.0.10:80 -> 10.244.3.10:80; conversation 4

One section rather than one per node because Wireshark 4.0 gives the packets
of later sections the interfaces of the first (measured with tshark 4.0.17).

Binary inputs (pcap, pcapng, compressed or not) are read again through the
report's handle on its inputs (`Report.source`) and each frame is
copied byte for byte; the packet table's `input` and `frame` columns say
which row explains which frame. Standard input cannot be read twice: a binary
capture given as `-` is refused (`InputError`).

tcpdump text holds no bytes. Its packets are *rebuilt* from the decoded
fields (Ethernet when the text showed MACs, else zero MACs; IPv4/IPv6; TCP,
UDP or ICMP headers with the ports, flags, sequence numbers, window, ids the
text gave, 0 where it gave none, TTL 64 when unknown; payload zero-filled to
the length the text gave; TCP options left out; checksums of rebuilt headers
are computed, so a bad checksum in the text is not reproduced); ARP is
rebuilt as ARP. The section comment and every
packet's comment say so ("rebuilt from text line 17"). Each capture point gets
its own interface block, also when the text names no interface: the copies of
a packet are then told apart by their order (`copy 1`, `copy 2` ...), as the
terminal report shows them; on one interface Wireshark would flag them as TCP
retransmissions. (Wireshark 4.2 and later keep conversations apart per
interface with its conversation deinterlacing preference; 4.0 still flags
copies, whatever their interface.) A tunnelled sighting
is rebuilt as its inner packet, the envelope named in the comment.
Time-of-day and relative clocks end up near 1970-01-01 (the date is unknown).
"""

from __future__ import annotations

import ipaddress
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from cniscope.errors import InputError
from cniscope.packets.schema import LinkType, Tunnel, address_text
from cniscope.report.format import duration
from cniscope.results import Hop, InputHandle, Journey, Report
from cniscope.wire.pcapng import PcapngWriter

REBUILT_NOTE = ("frames rebuilt by cniscope from tcpdump text: headers from the decoded fields, payload zero-filled, "
                "TCP options left out")
UNNAMED_BY_LINKTYPE = {int(LinkType.LINUX_SLL): "any", int(LinkType.LINUX_SLL2): "any"}


@dataclass
class Written:
    packets: int = 0
    rebuilt: int = 0  # from text


def comments(report: Report) -> list[str]:
    """One comment per row of the packet table: where the packet is in its journey and what changed."""
    t = report.table
    cols = {c: t[c].to_list() if c in t.columns else [None] * t.height
            for c in ("journey", "hop", "hops", "delay", "flow", "iface", "node")}
    placed: dict[int, tuple[Journey, int]] = {h.row: (j, k) for j in report.journeys for k, h in enumerate(j.hops)}
    journeys = {j.id: j for j in report.journeys}
    cited: dict[int, list[str]] = {}
    for f in report.findings:
        rows = set(f.rows) | {h.row for jid in f.journeys if jid in journeys for h in journeys[jid].hops}
        for row in rows:
            cited.setdefault(row, []).append(f"{f.kind.value} ({f.severity.value})")
    out: list[str] = []
    for row in range(t.height):
        if row in placed:
            journey, k = placed[row]
            text = _hop_text(journey, k)
        elif cols["journey"][row] is not None:
            n, of = cols["hop"][row], cols["hops"][row]
            where = " ".join(x for x in (cols["node"][row], cols["iface"][row]) if x) or "capture point"
            text = f"journey {cols['journey'][row]}, hop {(n or 0) + 1} of {of}: {where}"
            if n:
                text += f", +{duration(cols['delay'][row])}"
            text += " (journey not detailed: beyond --max-journeys)"
        else:
            text = "not followed"
        if cols["flow"][row] is not None:
            text += f"; conversation {cols['flow'][row]}"
        if row in cited:
            text += "; finding: " + ", ".join(cited[row])
        out.append(text)
    return out


def _hop_text(journey: Journey, k: int) -> str:
    hop: Hop = journey.hops[k]
    text = f"journey {journey.id}, hop {k + 1} of {len(journey.hops)}: {hop.point}"
    if hop.role:
        text += f" ({hop.role})"
    if k:
        text += f", +{duration(hop.delay_ns)}"
    for change in hop.changes:
        text += f"; {change.kind.value.upper()} {change.before} -> {change.after}"
    if journey.retransmission_of is not None:
        text += f"; re-send of journey {journey.retransmission_of}"
    return text


def write(report: Report, path: str) -> Written:
    """Write every sighting of `report` with its comment to pcapng file `path`."""
    for info in report.inputs:
        if info.name == "-" and info.format in ("pcap", "pcapng"):
            raise InputError("--pcapng: a binary capture from standard input cannot be read a second time; "
                             "give it as a file")
        if info.format in ("pcap", "pcapng") and report.source is None:
            raise InputError(f"--pcapng: {info.name} cannot be read again (the report was not read from its files)")
    notes = comments(report)
    written = Written()
    nodes = sorted({i.node for i in report.inputs if i.node} | set(report.table["node"].drop_nulls().unique().to_list()))
    text = any(i.format == "text" for i in report.inputs)
    with PcapngWriter(path) as writer:
        # one section: Wireshark 4.0 mixes up interfaces of later sections, so nodes go into interface descriptions
        writer.section(comment="annotated by cniscope; nodes: " + (", ".join(nodes) or "not named")
                       + (f"; {REBUILT_NOTE}" if text else ""))
        interfaces = _Interfaces(writer)
        for info in report.inputs:
            part = report.table.with_row_index("_row").filter(pl.col("input") == info.index)
            if not part.height:
                continue
            if info.format in ("pcap", "pcapng"):
                assert report.source is not None  # checked above
                _binary(writer, interfaces.of(info.index, info.name), report.source, info.index, part, notes, written)
            else:
                _rebuilt(writer, interfaces.of(info.index, info.name), part, notes, written)
    return written


class _Interfaces:
    """An interface block per (node, name, link type), the node in its description (`node=<name>`)."""

    def __init__(self, writer: PcapngWriter) -> None:
        self.writer = writer
        self.ids: dict[tuple[str | None, str, int], int] = {}
        self.index, self.name = 0, ""  # the input whose packets are being written

    def of(self, index: int, name: str) -> _Interfaces:
        self.index, self.name = index, name
        return self

    def get(self, node: str | None, name: str | None, linktype: int) -> int:
        label = name or UNNAMED_BY_LINKTYPE.get(linktype) or os.path.basename(self.name)
        key = (node, label, linktype)
        if key not in self.ids:
            self.ids[key] = self.writer.interface(label, linktype, 0, description=f"node={node}" if node else None,
                                                  comment=f"from input {self.index}: {self.name}")
        return self.ids[key]


def _binary(writer: PcapngWriter, interfaces: _Interfaces, source: InputHandle, index: int, part: pl.DataFrame,
            notes: list[str], written: Written) -> None:
    frames = part["frame"].to_numpy()
    lookup = np.full(int(frames.max()) + 1, -1, dtype=np.int64)
    lookup[frames] = np.arange(part.height)
    row_of_frame = lookup.tolist()
    rows = part["_row"].to_list()
    nodes, ifaces, directions = part["node"].to_list(), part["iface"].to_list(), part["direction"].to_list()
    for batch in source.frames(index):
        view = batch.data.data  # the frames' bytes, not copied
        columns = zip(batch.offset.tolist(), batch.caplen.tolist(), batch.wirelen.tolist(), batch.ts.tolist(),
                      batch.linktype.tolist(), batch.iface.tolist())
        for frame, (start, caplen, wirelen, ts, linktype, iface) in enumerate(columns, batch.first_frame):
            k = row_of_frame[frame] if frame < len(row_of_frame) else -1
            if k < 0:
                continue  # a frame the first reading did not keep (damage found earlier this time)
            name = ifaces[k] if ifaces[k] is not None or iface < 0 else batch.iface_names[iface]
            writer.packet(interfaces.get(nodes[k], name, linktype), max(ts, 0), view[start:start + caplen],
                          wirelen, directions[k], notes[rows[k]])
            written.packets += 1


Row = Mapping[str, Any]  # a row of the packet table by column name


def _copy(row: Row) -> str | None:
    """Text that names no interface still tells its capture points apart by order (`copy 2` of a packet seen three
    times): each gets its own interface block, or Wireshark takes the copies for re-sends on one interface."""
    if row["hops"] is None or row["hops"] < 2 or row["hop"] is None:
        return None
    return f"copy {row['hop'] + 1}"


def _rebuilt(writer: PcapngWriter, interfaces: _Interfaces, part: pl.DataFrame, notes: list[str], written: Written) -> None:
    for row in part.iter_rows(named=True):
        frame = rebuild(row)
        note = notes[row["_row"]] + "; rebuilt from text" + (f" line {row['line']}" if row["line"] is not None else "")
        if row["tunnel"]:
            ends = (address_text(row, side) or "(no address)" for side in ("outer_src", "outer_dst"))
            envelope = f"{Tunnel(row['tunnel']).label} {' > '.join(ends)}"
            note += f"; tunnel envelope {envelope} not rebuilt"
        iface = interfaces.get(row["node"], row["iface"] or _copy(row), int(LinkType.ETHERNET))
        writer.packet(iface, max(row["ts"] or 0, 0), frame, None, row["direction"], note)
        written.packets += 1
        written.rebuilt += 1


# ---- rebuilding frames from decoded fields (text inputs) ----------------------------------------

ETH_IPV4, ETH_IPV6, ETH_ARP, ETH_UNKNOWN = 0x0800, 0x86DD, 0x0806, 0x88B5  # 0x88b5: IEEE local experimental
MAX_PAYLOAD = 1 << 16


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _mac(value: int | None) -> bytes:
    return (value or 0).to_bytes(6, "big")


def _transport(row: Row, pseudo: bytes) -> tuple[int, bytes]:
    """(IP protocol, transport header + zero payload) from the row's fields."""
    payload = b"\0" * min(row["payload_len"] or 0, MAX_PAYLOAD - 80)
    proto = row["proto"]
    if proto == 6:
        flags = row["tcp_flags"] or 0
        header = struct.pack("!HHIIBBHHH", row["sport"] or 0, row["dport"] or 0, row["seq"] or 0, row["ack"] or 0,
                             5 << 4, flags, row["win"] or 0, 0, 0)
        csum = _checksum(pseudo + struct.pack("!BBH", 0, 6, len(header) + len(payload)) + header + payload)
        return 6, header[:16] + struct.pack("!H", csum) + header[18:] + payload
    if proto == 17:
        length = 8 + len(payload)
        header = struct.pack("!HHHH", row["sport"] or 0, row["dport"] or 0, length, 0)
        csum = _checksum(pseudo + struct.pack("!BBH", 0, 17, length) + header + payload) or 0xFFFF
        return 17, header[:6] + struct.pack("!H", csum) + payload
    if proto in (1, 58):
        rest = struct.pack("!HH", row["icmp_id"] or 0, row["icmp_seq"] or 0)
        if row["icmp_mtu"] is not None:
            rest = struct.pack("!HH", 0, row["icmp_mtu"])
        body = struct.pack("!BBH", row["icmp_type"] or 0, row["icmp_code"] or 0, 0) + rest + payload
        extra = pseudo + struct.pack("!IxxxB", len(body), 58) if proto == 58 else b""
        csum = _checksum(extra + body)
        return proto, body[:2] + struct.pack("!H", csum) + body[4:]
    return proto or 255, payload


def rebuild(row: Row) -> bytes:
    """An Ethernet frame carrying the packet a row of the table describes (see the module notes)."""
    eth = _mac(row["eth_dst"] if not row["tunnel"] else row["inner_eth_dst"]) + \
        _mac(row["eth_src"] if not row["tunnel"] else row["inner_eth_src"])
    if row["arp_op"] is not None:
        body = struct.pack("!HHBBH", 1, ETH_IPV4, 6, 4, row["arp_op"]) + _mac(row["arp_sha"]) + \
            struct.pack("!I", row["arp_spa"] or 0) + _mac(None) + struct.pack("!I", row["arp_tpa"] or 0)
        return eth + struct.pack("!H", ETH_ARP) + body
    if row["ip_version"] == 4 and row["src"] is not None and row["dst"] is not None:
        addrs = struct.pack("!II", row["src"], row["dst"])
        proto, l4 = _transport(row, addrs)
        flags = (0x4000 if row["df"] else 0) | (0x2000 if row["mf"] else 0) | ((row["frag_offset"] or 0) // 8)
        header = struct.pack("!BBHHHBBH", 0x45, row["tos"] or 0, 20 + len(l4), (row["ip_id"] or 0) & 0xFFFF, flags,
                             row["ttl"] if row["ttl"] is not None else 64, proto, 0) + addrs
        header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
        return eth + struct.pack("!H", ETH_IPV4) + header + l4
    if row["ip_version"] == 6 and row["src6"] and row["dst6"]:
        addrs = ipaddress.IPv6Address(row["src6"]).packed + ipaddress.IPv6Address(row["dst6"]).packed
        proto, l4 = _transport(row, addrs)
        header = struct.pack("!IHBB", 6 << 28 | (row["tos"] or 0) << 20, len(l4), proto,
                             row["ttl"] if row["ttl"] is not None else 64) + addrs
        return eth + struct.pack("!H", ETH_IPV6) + header + l4
    return eth + struct.pack("!H", ETH_UNKNOWN)
