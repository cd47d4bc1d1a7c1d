"""Synthetic captures for detector tests: packets seen at named places, run through the real pipeline.

A `Wire` collects sightings (the packet table's columns) of packets at
(node, interface, direction, time) as `tcpdump -i any` would record them on
each node; `analyze()` hands them to `analyze_capture`, so journeys, flows,
model inference and the detectors are the real ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from cniscope.analyze import analyze_capture
from cniscope.ingest import Capture
from cniscope.packets.schema import Direction, LinkType, conform, ip4_value
from cniscope.results import Finding, FindingKind, Report
from cniscope.sources import InputInfo

IN, OUT = int(Direction.IN), int(Direction.OUT)
SYN, ACK, PSH, RST, FIN = 2, 16, 8, 4, 1


def tcp(src: str, sport: int, dst: str, dport: int, flags: int, seq: int, ack: int | None = None, *,
        ip_id: int = 1, length: int = 0, mss: int | None = None, ttl: int = 64) -> dict:
    return dict(ethertype=0x0800, ip_version=4, src=ip4_value(src), dst=ip4_value(dst), proto=6, sport=sport, dport=dport,
                tcp_flags=flags, seq=seq, ack=ack, ip_id=ip_id, ttl=ttl, ip_len=40 + length, payload_len=length, mss=mss,
                win=64000, df=True, mf=False, frag_offset=0)


def udp_dns(src: str, sport: int, dst: str, dns_id: int, answer: bool, *, ip_id: int = 1) -> dict:
    ports = (53, sport) if answer else (sport, 53)
    return dict(ethertype=0x0800, ip_version=4, src=ip4_value(src), dst=ip4_value(dst), proto=17, sport=ports[0],
                dport=ports[1], dns_id=dns_id, dns_qr=answer, ip_id=ip_id, ttl=64, ip_len=80, payload_len=52)


def icmp(src: str, dst: str, icmp_type: int, *, ident: int = 7, seq: int = 1, size: int = 84, ip_id: int = 1, **extra: object) -> dict:
    return dict(ethertype=0x0800, ip_version=4, src=ip4_value(src), dst=ip4_value(dst), proto=1, icmp_type=icmp_type,
                icmp_code=extra.pop("icmp_code", 0), icmp_id=ident, icmp_seq=seq, ip_id=ip_id, ttl=64, ip_len=size,
                payload_len=size - 28, df=True, **extra)


def arp(op: int, spa: str, tpa: str) -> dict:
    return dict(ethertype=0x0806, arp_op=op, arp_spa=ip4_value(spa), arp_tpa=ip4_value(tpa))


def vxlan(outer_src: str, outer_dst: str, inner: dict, vni: int = 1, port: int = 8472) -> dict:
    return dict(inner, tunnel=1, vni=vni, outer_src=ip4_value(outer_src), outer_dst=ip4_value(outer_dst),
                outer_sport=40000, outer_dport=port, outer_len=(inner.get("ip_len") or 0) + 50, outer_ttl=64)


@dataclass
class Wire:
    nodes: list[str] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)

    def see(self, packet: dict, node: str, iface: str, direction: int, ts_us: float, **changes: object) -> None:
        """`packet` seen on `node` at `iface` at `ts_us` microseconds; `changes` rewrite columns (NAT, TTL, csum)."""
        if node not in self.nodes:
            self.nodes.append(node)
        row = dict(packet, **changes)
        for key in ("src", "dst", "outer_src", "outer_dst", "arp_spa", "arp_tpa", "quoted_src", "quoted_dst"):
            if isinstance(row.get(key), str):
                row[key] = ip4_value(row[key])  # type: ignore[arg-type]
        row.update(input=self.nodes.index(node), node=node, iface=iface, direction=direction,
                   ts=1_700_000_000_000_000_000 + int(ts_us * 1000), linktype=int(LinkType.LINUX_SLL2),
                   caplen=(row.get("outer_len") or row.get("ip_len") or 28) + 20)
        self.rows.append(row)

    def path(self, packet: dict, hops: list[tuple[str, str, int]], ts_us: float, step_us: float = 5, **changes: object) -> None:
        """Sightings along `hops`: `step_us` apart on a node, 100 us on the wire between nodes; the TTL drops
        where a node routes the packet out (an Out that is not a bridge port)."""
        ttl = packet.get("ttl")
        t = ts_us
        for i, (node, iface, direction) in enumerate(hops):
            if i:
                t += step_us if hops[i - 1][0] == node else 100
            if ttl is not None and direction == OUT and not iface.startswith(("veth", "cali")):
                ttl -= 1
            extra = dict(changes, ttl=ttl) if ttl is not None else changes
            self.see(packet, node, iface, direction, t, **extra)

    def analyze(self, model: str | None = None, cluster: Path | None = None) -> Report:
        rows = sorted(self.rows, key=lambda r: (r["input"], r["ts"]))
        frame_of: dict[int, int] = {}
        for r in rows:
            r["frame"] = frame_of.get(r["input"], 0)
            frame_of[r["input"]] = r["frame"] + 1
        table = conform(pl.from_dicts(rows, infer_schema_length=None))
        inputs = [InputInfo(index=i, name=f"{node}.pcap", format="pcap", node=node, packets=frame_of.get(i, 0))
                  for i, node in enumerate(self.nodes)]
        return analyze_capture(Capture(table, inputs), model=model, cluster=str(cluster) if cluster else None)


def of_kind(report: Report, kind: FindingKind) -> list[Finding]:
    return [f for f in report.findings if f.kind is kind]


def alarms(report: Report) -> list[Finding]:
    """Findings of warning severity or worse."""
    return [f for f in report.findings if f.severity.rank >= 1]
