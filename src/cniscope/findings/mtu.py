"""Packets too big for their path: frag-needed errors, MSS beyond a tunnel's MTU, and PMTU black holes.

- *frag-needed*: an ICMP "fragmentation needed" (IPv6 "packet too big")
  names the MTU of the next hop that refused a packet.
- *MSS*: a TCP connection whose packets cross a tunnel and whose MSS (the
  smaller of what both ends announced) plus 40 bytes of headers plus the
  envelope exceeds the underlay's MTU sends segments that cannot cross.
- *black hole*: at one place, every packet above some size vanishes while
  smaller ones of the same traffic pass: a link on the way has a smaller
  MTU and its "fragmentation needed" never reaches the sender.

Sizes are those of the IP packet on the wire (the envelope's when
tunnelled): the IP header's length (pcap, tcpdump `-v`), else the frame's
length less its link header (tcpdump `-e`). tcpdump's plain text shows
neither, only the TCP/UDP/ICMP payload's length: the size is then a range,
the payload plus the smallest and the largest headers the protocols allow,
and a black hole is claimed only if the largest packet that passed is
smaller than the smallest one that vanished, whatever the headers were.
"""

from __future__ import annotations

import re
from collections import defaultdict
from fnmatch import fnmatch
from functools import lru_cache, partial
from operator import attrgetter, eq
from typing import Any

import numpy as np
import polars as pl

from cniscope.findings.catalogue import note, say
from cniscope.findings.facts import Facts
from cniscope.findings.found import Found
from cniscope.findings.losses import Loss, Losses
from cniscope.models import MODELS, Role
from cniscope.models.base import Encap
from cniscope.models.evidence import interface_sightings
from cniscope.packets.schema import LinkType, Tunnel, address_text, ip4_text
from cniscope.results import Evidence, Finding, FindingKind, Hop, Severity

# Bytes an envelope adds in front of the inner IP packet.
TUNNEL_OVERHEAD: dict[Tunnel, int] = {
    Tunnel.VXLAN: 50,  # outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14
    Tunnel.GENEVE: 50,  # without options
    Tunnel.IPIP: 20,
    Tunnel.FLANNEL_UDP: 28,
}
# The most an envelope can add: outer IPv4 options (40), Geneve options (252).
TUNNEL_OVERHEAD_MAX: dict[Tunnel, int] = {kind: n + 40 + (252 if kind is Tunnel.GENEVE else 0) for kind, n in TUNNEL_OVERHEAD.items()}
LINK_HEADER: dict[int | None, int] = {int(LinkType.ETHERNET): 14, int(LinkType.LINUX_SLL): 16, int(LinkType.LINUX_SLL2): 20}
VLAN_TAG = 4
IP_HEADER: dict[int | None, tuple[int, int]] = {4: (20, 60), 6: (40, 40)}  # bytes without and with the most options (IPv6: extension headers show in text)
L4_HEADER: dict[int | None, tuple[int, int]] = {6: (20, 60), 17: (8, 8), 1: (8, 8), 58: (8, 8)}  # TCP options make its header 20-60 bytes
UNDERLAY_MTU = 1500  # assumed: a capture cannot tell (GSO/GRO show packets larger than the link on both ends)
TCP_IP_HEADERS = 40
MIN_BLACK_HOLE_SIZE = 576  # every IPv4 link carries 576 bytes: smaller losses are not about size
FRAG_NEEDED = ((3, 4), (2, 0))  # ICMP dest-unreachable/frag-needed, ICMPv6 packet-too-big


def frag_needed_sightings(table: pl.DataFrame) -> pl.DataFrame:
    """The ICMP errors that say a packet was too big, or name an MTU (read ahead: `findings.EARLY`)."""
    is_frag_needed = pl.lit(False)
    for icmp_type, icmp_code in FRAG_NEEDED:
        is_frag_needed = is_frag_needed | ((pl.col("icmp_type") == icmp_type) & (pl.col("icmp_code") == icmp_code)).fill_null(False)
    columns = ("row", "node", "iface", "icmp_type", "icmp_code", "icmp_mtu", "quoted_src", "quoted_dst")
    return table.lazy().filter(is_frag_needed | pl.col("icmp_mtu").is_not_null()).select(
        *columns, "src", "src6", "src_name").collect()  # lazy: the three columns read, not eleven filtered


def frag_needed(facts: Facts, losses: Losses) -> Found:
    rows = facts.ahead(frag_needed_sightings)
    groups: dict[tuple[str | None, int | None, int | None, int | None], list[dict[str, Any]]] = defaultdict(list)
    for r in rows.iter_rows(named=True):
        reporter = address_text(r, "src")
        groups[(reporter, r["icmp_mtu"], r["quoted_src"], r["quoted_dst"])].append(r)
    out = []
    for (reporter, mtu, qsrc, qdst), rs in groups.items():
        first = rs[0]
        quoted = f"{ip4_text(qsrc)} -> {ip4_text(qdst)}" if qsrc is not None else "a packet"
        ipv6 = first["icmp_type"] == 2
        message = "ICMPv6 type 2 (packet too big)" if ipv6 else "ICMP type 3 code 4"
        unsplittable = "(IPv6 routers never fragment)" if ipv6 else "with Don't Fragment set"
        out.append(Finding(
            kind=FindingKind.MTU, severity=Severity.WARNING,
            title=f"fragmentation needed: {reporter} reports "
                  + (f"next-hop MTU {mtu}" if mtu is not None else "a next-hop MTU the capture does not show") + f" for {quoted}",
            explanation=f"{len(rs)} ICMP error(s) from {reporter}: {'a packet of ' + quoted if qsrc is not None else 'a packet'} "
                        f"{unsplittable} was "
                        f"larger than the MTU{f' ({mtu})' if mtu is not None else ''} of the link it had to take next. The "
                        "sender must lower its packet size (path MTU discovery); if these errors do not reach it, large "
                        "packets are lost for good."
                        + ("" if mtu is not None else " (pcap, or tcpdump -v, records the MTU the error names.)"),
            next_step=say("mtu.frag_needed", message=message), key="mtu.frag_needed",
            node=first["node"], iface=first["iface"],
            rows=tuple(r["row"] for r in rs[:50]),
            evidence=Evidence(packets=len(rs), mtu=mtu, addresses=tuple(
                a for a in (reporter, ip4_text(qsrc), ip4_text(qdst)) if a is not None)),
        ))
    return Found(out)


def mss(facts: Facts, losses: Losses) -> Found:
    """MSS too big for a tunnel: announced on a tunnel device, else agreed by a connection whose packets cross one."""
    on_devices = _mss_on_tunnel_devices(facts)
    said = {flow for f in on_devices for flow in f.flows}
    return Found(on_devices + _mss_through_envelopes(facts, said))


def _mss_through_envelopes(facts: Facts, said: set[int]) -> list[Finding]:
    underlay = UNDERLAY_MTU
    groups, where = _agreed_through_envelopes(facts, said, underlay)
    out = []
    for (kind, agreed), flows in groups.items():
        overhead = TUNNEL_OVERHEAD.get(kind, 0)
        at, place = where[(kind, agreed)]
        hop = facts.journeys[at].hops[place]
        out.append(Finding(
            kind=FindingKind.MTU, severity=Severity.WARNING,
            title=f"TCP MSS {agreed} through {kind.label}: full segments need {agreed + TCP_IP_HEADERS + overhead} bytes, "
                  f"the underlay carries {underlay}",
            explanation=f"{len(flows)} connection(s) agreed on MSS {agreed}, so full segments are {agreed + TCP_IP_HEADERS}-byte IP "
                        f"packets, and {kind.label} adds {overhead} bytes: {agreed + TCP_IP_HEADERS + overhead} on the wire. "
                        f"Through this tunnel the MSS should be at most {underlay - overhead - TCP_IP_HEADERS} (tunnel MTU "
                        f"{underlay - overhead}). Small requests work; bulk transfers stall unless path MTU discovery rescues "
                        f"them. (This assumes a {underlay}-byte underlay; on jumbo-frame networks it is fine.)",
            next_step=say("mtu.mss", mtu=underlay - overhead), key="mtu.mss",
            node=facts.named(facts.node(hop)), iface=hop.iface, flows=tuple(flows[:200]), rows=(hop.row,),
            evidence=Evidence(packets=len(flows), mss=agreed, mtu=underlay - overhead, overhead=overhead),
        ))
    return out


def _agreed_through_envelopes(facts: Facts, said: set[int], underlay: int) -> tuple[dict[tuple[Tunnel, int], list[int]],
                                                                                   dict[tuple[Tunnel, int], tuple[int, int]]]:
    """The TCP conversations (but `said`) whose least MSS that a journey's first sighting announces, through the
    envelope of their first journey in one, needs more than `underlay`: grouped by envelope and MSS in the order of the
    conversations, and each group's first hop in an envelope (its journey's place, the hop's). Over the journeys'
    columns and each conversation's journeys as arrays, not journey by journey."""
    journeys, flows = facts.journeys, facts.flows
    hops = facts.hop_columns("mss", "tunnel").select(
        "journey", "hop", pl.col("mss").fill_null(-1).cast(pl.Int64), pl.col("tunnel").fill_null(0).cast(pl.Int64))
    journey, hop, announced, tunnel = (hops.get_column(c).to_numpy() for c in ("journey", "hop", "mss", "tunnel"))
    mss = np.full(len(journeys), -1, dtype=np.int64)  # the MSS each journey's first sighting announces (-1: none)
    mss[journey[hop == 0]] = announced[hop == 0]
    # each journey's first hop in an envelope (-1: none), its kind: the first of each journey's run of such hops
    wrapped = np.flatnonzero(tunnel != 0)
    wrapped = wrapped[np.r_[True, journey[wrapped][1:] != journey[wrapped][:-1]]] if len(wrapped) else wrapped
    place = np.full(len(journeys), -1, dtype=np.int64)
    kind = np.zeros(len(journeys), dtype=np.int64)
    place[journey[wrapped]] = hop[wrapped]
    kind[journey[wrapped]] = tunnel[wrapped]
    at_id = facts.journey_places  # journey id -> its place (-1: not here)
    counts, members = facts.flow_journeys
    flow_ids = facts.flow_ids
    tcp = np.fromiter(map(partial(eq, "tcp"), map(attrgetter("proto"), flows)), dtype=bool, count=len(flows))
    wanted = tcp & ~np.isin(flow_ids, list(said))
    of_flow = np.repeat(np.arange(len(flows)), counts)
    here = members < len(at_id)
    here[here] = at_id[members[here]] >= 0
    here &= wanted[of_flow]
    per_flow = pl.DataFrame(_per_flow(of_flow[here], at_id[members[here]], mss, place, kind))
    overhead = {k: TUNNEL_OVERHEAD.get(Tunnel(k), 0) for k in per_flow["kind"].unique().to_list()}
    per_flow = per_flow.filter(
        pl.col("mss") + TCP_IP_HEADERS + pl.col("kind").replace_strict(list(overhead), list(overhead.values()), return_dtype=pl.Int64) > underlay)
    grouped = per_flow.with_columns(flow=pl.Series(flow_ids).gather(per_flow["flow"])).group_by(["kind", "mss"], maintain_order=True).agg(
        "flow", pl.col("at", "place").first())
    groups = {(Tunnel(k), m): f for k, m, f in zip(grouped["kind"].to_list(), grouped["mss"].to_list(), grouped["flow"].to_list())}
    where = {(Tunnel(k), m): (a, p) for k, m, a, p in grouped.select("kind", "mss", "at", "place").iter_rows()}
    return groups, where


def _per_flow(flow: np.ndarray, at: np.ndarray, mss: np.ndarray, place: np.ndarray, kind: np.ndarray) -> dict[str, np.ndarray]:
    """Per conversation (`flow`: each journey's, ascending), of its journeys (`at`: their places): the least MSS
    announced, and the first journey in an envelope (its place, the hop's, the envelope's kind); the conversations
    with both only. Over runs of the arrays (polars' grouping of them: 3 ms at 20,000 conversations)."""
    if not len(flow):
        return {name: np.zeros(0, dtype=np.int64) for name in ("flow", "mss", "at", "place", "kind")}
    starts = np.flatnonzero(np.r_[True, flow[1:] != flow[:-1]])
    ends = np.r_[starts[1:], len(flow)]
    announced = mss[at]
    least = np.minimum.reduceat(np.where(announced >= 0, announced, np.iinfo(np.int64).max), starts)
    wrapped = np.flatnonzero(place[at] >= 0)
    first = np.searchsorted(wrapped, starts)  # each conversation's first journey in an envelope, if before its end
    inside = first < len(wrapped)
    inside[inside] = wrapped[first[inside]] < ends[inside]
    kept = inside & (least != np.iinfo(np.int64).max)
    chosen = at[wrapped[first[kept]]]
    return {"flow": flow[starts[kept]], "mss": least[kept], "at": chosen, "place": place[chosen], "kind": kind[chosen]}


def syns_announcing(table: pl.DataFrame) -> pl.DataFrame:
    """The SYNs on tunnel devices that announce an MSS: their interfaces (as text), MSS and rows, grouped by the two in
    the order of their first sightings (read ahead: `findings.EARLY`, 8 ms of the report's wall time at 2M; the table
    not read when no interface is a tunnel device). Lazy: four columns read, not the whole table filtered; the groups'
    interface names written as text, not every sighting's (10M names as text: 0.3 s); the SYNs on other interfaces
    left out before the grouping, not after it (10M pcapng: 32-33 -> 19 ms of CPU)."""
    devices = [name for name in interface_sightings(table) if tunnel_device(name) is not None]
    if not devices:
        return pl.DataFrame(schema={"iface": pl.String, "mss": table.schema["mss"], "row": pl.List(table.schema["row"])})
    return table.lazy().filter(pl.col("iface").is_in(devices) & pl.col("mss").is_not_null() & (
        (pl.col("tcp_flags").fill_null(0) & 2) == 2)).group_by("iface", "mss", maintain_order=True).agg("row").with_columns(
        pl.col("iface").cast(pl.String)).collect()


def _mss_on_tunnel_devices(facts: Facts) -> list[Finding]:
    """SYNs seen on a tunnel device announcing an MSS its MTU (the underlay's less the envelope) cannot carry."""
    # the largest MSS each tunnel device carries, once per interface name the capture shows (its coverage lists them);
    # then the SYNs above it, of those on tunnel devices (`syns_announcing`)
    names = sorted({iface for cov in facts.coverage.values() for iface in cov.ifaces})
    largest = {iface: UNDERLAY_MTU - device.overhead - TCP_IP_HEADERS for iface in names if (device := tunnel_device(iface)) is not None}
    if not largest:
        return []
    named = pl.col("iface")
    above = facts.ahead(syns_announcing).filter(
        named.is_in(list(largest)) & (pl.col("mss").cast(pl.Int64) > named.replace_strict(largest, default=None, return_dtype=pl.Int64)))
    out = []
    for iface, mss, rows in above.iter_rows():
        node = facts.node(rows[0])
        device = tunnel_device(iface)
        assert device is not None
        mtu = UNDERLAY_MTU - device.overhead
        flows = tuple(dict.fromkeys(j.flow for r in rows if (j := facts.journey_of(r)) and j.flow is not None))
        out.append(Finding(
            kind=FindingKind.MTU, severity=Severity.WARNING,
            title=f"SYN on {facts.where(rows[0])} announces MSS {mss}, above what {iface} carries: its MTU is {mtu} "
                  f"({UNDERLAY_MTU} less {device.overhead} bytes of {device.kind.label}), so at most MSS {mtu - TCP_IP_HEADERS}",
            explanation=f"{len(rows)} SYN(s) through {iface} announce MSS {mss}: full segments of {mss + TCP_IP_HEADERS} bytes "
                        f"(TCP and IP headers {TCP_IP_HEADERS}), but {iface} wraps every packet in a {device.kind.label} envelope "
                        f"of {device.overhead} bytes for a {UNDERLAY_MTU}-byte underlay, so it takes at most {mtu}. The pod's "
                        f"MTU is larger than the tunnel's: small requests work, full-size segments are dropped or fragmented "
                        f"(This assumes a {UNDERLAY_MTU}-byte underlay.)",
            next_step=say("mtu.mss", mtu=mtu), key="mtu.mss",
            node=facts.named(node), iface=iface, flows=flows[:200], rows=tuple(rows[:50]),
            evidence=Evidence(packets=len(rows), mss=mss, mtu=mtu, overhead=device.overhead, device=iface,
                              interfaces=tuple(dict.fromkeys(facts.where(r) for r in rows))),
        ))
    return out


@lru_cache(maxsize=256)
def tunnel_device(iface: str | None) -> Encap | None:
    """The envelope a tunnel device of that name makes (tunl0: IPIP; flannel.1, vxlan.calico, cilium_vxlan: VXLAN)."""
    if iface is None:
        return None
    for model in MODELS.values():
        for encap in model.encaps:
            if fnmatch(iface, encap.device) or (encap.device == "flannel.1" and re.fullmatch(r"flannel\.[0-9]+", iface)):
                return encap
    return None


def black_holes(facts: Facts, losses: Losses) -> Found:
    """Sizes that vanish at a place while smaller packets pass it; claims those losses from `drop`."""
    lost_at: dict[tuple[str, str | None, str | None, str, str | None], list[Loss]] = defaultdict(list)
    for loss in losses.found:
        lost_at[loss.place].append(loss)
    out = []
    claimed: set[int] = set()
    for place, group in lost_at.items():
        node, iface, direction = place[0], place[1], place[2]
        sizes = [s for loss in group if (s := _size(facts, loss.last)) is not None]
        if not sizes:
            continue
        smallest = min(low for low, _ in sizes)  # every lost packet had at least this many bytes
        if smallest < MIN_BLACK_HOLE_SIZE:
            continue
        passed = _passed_sizes(facts, node, iface, direction, {loss.journey.id for loss in group})
        device = tunnel_device(iface) if direction == "Out" and facts.role(iface) is Role.TUNNEL else None
        tunnel_mtu = UNDERLAY_MTU - device.overhead if device is not None else None
        if not passed and (tunnel_mtu is None or smallest <= tunnel_mtu):
            continue  # nothing smaller passed, and nothing says the size was too big
        largest = max((high for _, high in passed), default=0)  # no packet that passed had more
        if largest >= smallest:
            continue
        exact = all(low == high for low, high in sizes + passed)
        biggest = max(high for _, high in sizes)
        mtu_low, mtu_high = max(low for low, _ in passed), min(high for _, high in sizes) - 1
        first = group[0]
        at = facts.where(first.last)
        onward = f" towards {first.peer}" if first.peer else ""
        if exact:
            title = f"packets of {smallest} bytes and more vanish, {largest} bytes pass"
            estimated = ""
        else:
            title = f"packets of at least {smallest} bytes vanish, packets of at most {largest} bytes pass"
            estimated = " " + note("sizes_bounded")
        if device is not None and tunnel_mtu is not None and smallest > tunnel_mtu:
            title = (f"{'' if exact else 'at least '}{smallest}-byte packets enter {iface} on {facts.named(node) or 'the node'} "
                     f"and never leave encapsulated: {iface} carries at most {tunnel_mtu} bytes ({UNDERLAY_MTU} less "
                     f"{device.overhead} of {device.kind.label})")
            explanation = (f"{len(group)} packet(s) of {smallest}-{biggest} bytes went into {at} and no {device.kind.label} "
                           f"envelope of them left the node: wrapped, they would need {smallest + device.overhead} bytes on a "
                           f"{UNDERLAY_MTU}-byte underlay. "
                           + (f"{len(passed)} smaller packet(s) (up to {largest} bytes) passed the same place"
                              + (", among them a re-send of the lost data. " if _resent_smaller(facts, group) else ". ")
                              if passed else "")
                           + f"The tunnel's MTU is the NIC's less the envelope, and the pod's MTU is above it.{estimated}")
        else:
            title = f"path MTU black hole after {at}{onward}: {title}"
            explanation = (f"{len(group)} packet(s) of {smallest}-{biggest} bytes were last seen at {at} "
                           f"and never at the next place ({first.expected.value}), while {len(passed)} packet(s) of up to "
                           f"{largest} bytes passed the same place. A link after it has an MTU between {mtu_low} and "
                           f"{mtu_high}, and no 'fragmentation needed' reached the sender.{estimated}")
        out.append(Finding(
            kind=FindingKind.MTU, severity=Severity.ERROR if passed else Severity.WARNING,
            title=title, explanation=explanation,
            next_step=say("mtu.black_hole"), key="mtu.black_hole",
            node=facts.named(node), iface=iface,
            journeys=tuple(loss.journey.id for loss in group),
            flows=tuple(dict.fromkeys(loss.journey.flow for loss in group if loss.journey.flow is not None)),
            rows=tuple(loss.last.row for loss in group[:50]),
            evidence=Evidence(packets=len(group), size=smallest, passed=largest or None, mtu=tunnel_mtu,
                              overhead=device.overhead if device else None, device=iface, interfaces=(at,), peer=first.peer,
                              notes=() if exact else ("sizes_bounded",)),
        ))
        claimed.update(loss.journey.id for loss in group)
    return Found(out, frozenset(claimed))


def _resent_smaller(facts: Facts, group: list[Loss]) -> bool:
    """Was some lost packet's data re-sent in a smaller packet that got through?"""
    lost = {loss.journey.id for loss in group}
    return any(j.retransmission_of in lost and j.id not in lost for j in facts.journeys)


def _size(facts: Facts, hop: Hop) -> tuple[int, int] | None:
    """Bytes of the IP packet on the wire at that sighting (the envelope's when tunnelled), as (least, most).

    Exact from the IP header, or from the frame's length less its link header (Ethernet padding
    only makes a frame of under 60 bytes look larger); from a payload length, bounded by the headers.
    """
    v = facts.number
    tunnel = v(hop, "tunnel")
    kind = Tunnel(tunnel) if tunnel else None
    outer_len = v(hop, "outer_len")
    if kind is not None and outer_len is not None:
        return _exact(outer_len)
    ip_len = v(hop, "ip_len")
    if kind is None and ip_len is not None:
        return _exact(ip_len)
    version, wirelen, link = v(hop, "ip_version"), v(hop, "wirelen"), LINK_HEADER.get(v(hop, "linktype"))
    if version is not None and wirelen is not None and link is not None:
        return _exact(wirelen - link - (VLAN_TAG if v(hop, "vlan") is not None else 0))
    if ip_len is not None:
        low = high = ip_len
    else:
        payload, ip, l4 = v(hop, "payload_len"), IP_HEADER.get(version), L4_HEADER.get(v(hop, "proto"))
        if payload is None or ip is None or l4 is None:
            return None
        low, high = payload + ip[0] + l4[0], payload + ip[1] + l4[1]
    if kind is not None:
        low, high = low + TUNNEL_OVERHEAD.get(kind, 0), high + TUNNEL_OVERHEAD_MAX.get(kind, 0)
    return low, high


def _exact(size: int) -> tuple[int, int]:
    return size, size


def _passed_sizes(facts: Facts, node: str, iface: str | None, direction: str | None, lost: set[int]) -> list[tuple[int, int]]:
    out = []
    for j in facts.journeys:
        if j.id in lost:
            continue
        for hop in j.hops[:-1]:  # passed: seen there and somewhere after
            if hop.iface == iface and hop.direction == direction and facts.node(hop) == node:
                size = _size(facts, hop)
                if size is not None:
                    out.append(size)
                break
    return out
