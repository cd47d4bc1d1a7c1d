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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from cniscope.errors import InputError
from cniscope.packets import headers as H
from cniscope.packets.checksum import internet, pseudo_v4, pseudo_v6
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
    if hop.mac_to is not None:
        text += f"; {hop.sent_to_text()}"
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

ETH_UNKNOWN = 0x88B5  # IEEE local experimental: a row with no network layer to rebuild
MAX_PAYLOAD = 1 << 16


def _transport(row: Row, pseudo: Callable[[int, int], bytes]) -> tuple[int, bytes]:
    """(IP protocol, transport header + zero payload) from the row's fields; `pseudo(proto, length)` is the
    IP version's pseudo-header."""
    payload = b"\0" * min(row["payload_len"] or 0, MAX_PAYLOAD - 80)
    proto = row["proto"]
    if proto == H.PROTO_TCP:
        fields = dict(sport=row["sport"] or 0, dport=row["dport"] or 0, seq=row["seq"] or 0, ack=row["ack"] or 0,
                      doff=5 << 4, flags=row["tcp_flags"] or 0, win=row["win"] or 0)
        header = H.TCP.pack(**fields)
        csum = internet(pseudo(proto, len(header) + len(payload)) + header + payload)
        return proto, H.TCP.pack(**fields, csum=csum) + payload
    if proto == H.PROTO_UDP:
        fields = dict(sport=row["sport"] or 0, dport=row["dport"] or 0, len=H.UDP.size + len(payload))
        csum = internet(pseudo(proto, H.UDP.size + len(payload)) + H.UDP.pack(**fields) + payload) or 0xFFFF
        return proto, H.UDP.pack(**fields, csum=csum) + payload
    if proto in (H.PROTO_ICMP, H.PROTO_ICMPV6):
        fields = dict(type=row["icmp_type"] or 0, code=row["icmp_code"] or 0, id=row["icmp_id"] or 0,
                      seq=row["icmp_seq"] or 0)
        if row["icmp_mtu"] is not None:
            fields = dict(type=fields["type"], code=fields["code"])
            fields["mtu4" if proto == H.PROTO_ICMP else "mtu6"] = row["icmp_mtu"]
        body = H.ICMP.pack(**fields) + payload
        csum = internet((pseudo(proto, len(body)) if proto == H.PROTO_ICMPV6 else b"") + body)
        return proto, H.ICMP.pack(**fields, csum=csum) + payload
    return proto or 255, payload


def rebuild(row: Row) -> bytes:
    """An Ethernet frame carrying the packet a row of the table describes (see the module notes)."""
    tunnelled = bool(row["tunnel"])
    dst, src = (row["inner_eth_dst"], row["inner_eth_src"]) if tunnelled else (row["eth_dst"], row["eth_src"])

    def ethernet(ethertype: int) -> bytes:
        return H.ETHERNET.pack(dst=dst or 0, src=src or 0, type=ethertype)

    if row["arp_op"] is not None:
        return ethernet(H.ETH_ARP) + H.ARP.pack(htype=1, ptype=H.ETH_IPV4, hlen=6, plen=4, op=row["arp_op"],
                                                 sha=row["arp_sha"] or 0, spa=row["arp_spa"] or 0, tpa=row["arp_tpa"] or 0)
    ttl = row["ttl"] if row["ttl"] is not None else 64
    if row["ip_version"] == 4 and row["src"] is not None and row["dst"] is not None:
        src4, dst4 = row["src"].to_bytes(4, "big"), row["dst"].to_bytes(4, "big")
        proto, l4 = _transport(row, lambda proto, length: pseudo_v4(src4, dst4, proto, length))
        flags = (0x4000 if row["df"] else 0) | (0x2000 if row["mf"] else 0) | ((row["frag_offset"] or 0) // 8)
        fields = dict(vihl=0x45, tos=row["tos"] or 0, len=H.IPV4.size + len(l4), id=(row["ip_id"] or 0) & 0xFFFF,
                      frag=flags, ttl=ttl, proto=proto, src=row["src"], dst=row["dst"])
        return ethernet(H.ETH_IPV4) + H.IPV4.pack(**fields, csum=internet(H.IPV4.pack(**fields))) + l4
    if row["ip_version"] == 6 and row["src6"] and row["dst6"]:
        src6, dst6 = ipaddress.IPv6Address(row["src6"]).packed, ipaddress.IPv6Address(row["dst6"]).packed
        proto, l4 = _transport(row, lambda proto, length: pseudo_v6(src6, dst6, proto, length))
        return ethernet(H.ETH_IPV6) + H.IPV6.pack(vtcfl=6 << 28 | (row["tos"] or 0) << 20, plen=len(l4), nh=proto,
                                                  hlim=ttl, src=src6, dst=dst6) + l4
    return ethernet(ETH_UNKNOWN)
