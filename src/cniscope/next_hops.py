"""Where a node sent a packet at the link layer: the destination MAC of a frame leaving its NIC, and who owns it.

A node routing a packet to another node addresses the frame to the next hop
its route chose. Who owns a MAC, the capture itself tells: a node's NIC sends
its frames from its own MACs; an ARP packet says which address uses a MAC
(the default gateway, another node). So a packet for node3's pods sent to
the gateway's MAC shows a missing route at a glance, in every hop view.
Only link types that keep the destination MAC show it: Ethernet (a capture
on the NIC, pcap or `tcpdump -e`); `-i any` keeps the source MAC only.
A capture on one NIC records no direction: the frames the host sent are those
from the MAC on one side of all its unicast frames (its own), named or not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from cniscope.journeys import at_rows, hop_arrays, one_capture_point
from cniscope.models import MODELS, Role
from cniscope.models.base import role_of
from cniscope.models.evidence import interface_sightings
from cniscope.packets.schema import Direction, ip4_text, mac_text
from cniscope.results import Hop, Journey

RoleOf = Callable[[str | None], Role | None]


@dataclass(frozen=True)
class MacSightings:
    """What `owners` reads of the whole table, by capture point (input, node, iface): gathered before the model is
    known, beside the report's Python stages (`findings.start`), so of the interfaces any model takes for a NIC."""

    nics: frozenset[str]  # the interfaces whose frames of no direction were counted
    sent: pl.DataFrame  # input, node, iface, mac: the source MACs of frames going out, in order of first sighting
    frames: pl.DataFrame  # input, node, iface, frames: the unicast frames of no direction (a one-NIC capture's) on `nics`
    sides: pl.DataFrame  # input, node, iface, mac, seen: of those, how many show each MAC on one side or the other
    arp: pl.DataFrame  # mac, spa: ARP senders' MACs and addresses, in order of first sighting


_POINT = ("input", "node", "iface")


def mac_sightings(table: pl.DataFrame, nics: Iterable[str] | None = None) -> MacSightings:
    """`MacSightings` of `table`, the frames of no direction on `nics` (default: every interface some model or none
    takes for a NIC), in one pass of polars' streaming engine (made distinct or counted as they go by)."""
    names = interface_sightings(table)
    nics = frozenset(nics if nics is not None else (name for name in names if _nic_somewhere(name)))
    sent = table.lazy().filter((pl.col("direction") == int(Direction.OUT)) & pl.col("eth_src").is_not_null()).select(
        *_POINT, mac=pl.col("eth_src")).unique(maintain_order=True)
    undirected = table.lazy().filter(pl.col("direction").is_null() & pl.col("iface").is_in(sorted(nics)))
    # of one capture point (one input, one node: the usual capture), grouped by interface and pair of MACs alone, the
    # point put beside the few groups (the input and node part of every row's key: `mac_sightings` at 10M pcapng 71-73
    # -> 55-56 ms of CPU)
    one = one_capture_point(table) and table.height > 0
    point = ("iface",) if one else _POINT
    unicast = _unicast(undirected.select(*point, src=pl.col("eth_src"), dst=pl.col("eth_dst")))
    # the ARP senders: the few rows with a sender's MAC taken by its null flags first, then those with an address
    # (both tested on every row in one filter: 10M pcapng 9.3 -> 4.1 ms of CPU)
    arp = table.select(mac="arp_sha", spa="arp_spa").filter(pl.col("mac").is_not_null())
    arp_macs = arp.filter(pl.col("spa").fill_null(0) != 0).unique(maintain_order=True)
    # the unicast frames counted by their capture point and pair of MACs (a few groups), and the frames and the sides
    # counted from those (the frames grouped by point, then each side of them by point and MAC: 10M sightings 0.19 ->
    # 0.08 s of CPU)
    sent_macs, pairs = pl.collect_all([sent, unicast.group_by(*point, "src", "dst").agg(n=pl.len())], engine="streaming")
    if one:
        given = table.select("input", "node").row(0)
        pairs = pairs.select(*(pl.lit(value, dtype=table.schema[name]).alias(name) for name, value in zip(("input", "node"), given)),
                             pl.all())
    frames = pairs.group_by(*_POINT).agg(frames=pl.col("n").sum())
    sides = pl.concat([pairs.select(*_POINT, mac="src", n="n"), pairs.filter(pl.col("dst") != pl.col("src")).select(*_POINT, mac="dst", n="n")])
    return MacSightings(nics, sent_macs, frames, sides.group_by(*_POINT, "mac").agg(seen=pl.col("n").sum()), arp_macs)


def _nic_somewhere(iface: str) -> bool:
    """Does some model (or the names every node has) take `iface` for a NIC?"""
    return any((p := role_of(model, iface)) is not None and p.role is Role.NIC for model in (None, *MODELS.values()))


def owners(table: pl.DataFrame, node_names: Sequence[str], role: RoleOf, node_of_address: Callable[[str], str | None],
           seen: MacSightings | None = None) -> dict[int, str]:
    """MAC -> who owns it: the node whose NIC sends frames from it (or whose one-NIC capture shows it in every frame,
    `host_macs`), else the address an ARP packet gives it (as the node that owns that address when `node_of_address`
    knows it). Inputs that name no node (`input N`) own nothing. `seen`: `mac_sightings(table)`, when gathered."""
    nics = [iface for iface in interface_sightings(table) if role(iface) is Role.NIC]
    if seen is None or not seen.nics.issuperset(nics):  # (a role of the caller's own)
        seen = mac_sightings(table, nics)
    code = {name: n for n, name in enumerate(node_names)}
    out: dict[int, str] = {}
    for point_input, node, iface, mac in seen.sent.iter_rows():
        name = _node_name(point_input, node)
        if role(iface) is Role.NIC and not name.startswith("input "):
            out.setdefault(mac, name)
    nic = pl.col("iface").is_in(nics)

    def by_node(points: pl.DataFrame) -> pl.DataFrame:  # the few capture points' rows, each with its node's code
        return points.with_columns(pl.Series("node", [code[_node_name(*p)] for p in points.select("input", "node").iter_rows()],
                                             dtype=pl.Int64))

    frames = by_node(seen.frames.filter(nic)).group_by("node").agg(pl.col("frames").sum())
    sides = by_node(seen.sides.filter(nic)).group_by("node", "mac").agg(pl.col("seen").sum())
    for node, mac in _hosts(frames, sides).items():
        if not node_names[node].startswith("input "):
            out.setdefault(mac, node_names[node])
    for mac, spa in seen.arp.iter_rows():
        addr = ip4_text(spa)
        if mac not in out and addr is not None:
            out[mac] = node_of_address(addr) or addr
    return out


def _node_name(point_input: int, node: str | None) -> str:
    """A sighting's node as `journeys.node_column` names it."""
    return node if node is not None else f"input {point_input}"


def label(journeys: list[Journey], table: pl.DataFrame, node_names: Sequence[str], node_codes: np.ndarray, role: RoleOf,
          owners_of: Callable[[], dict[int, str]]) -> list[Journey]:
    """Every hop that shows a frame leaving a node's NIC with its `mac_to` and `mac_owner`.

    A sighting without a direction (a capture on the NIC itself) counts as leaving when its source MAC is the node's.
    `owners_of` gives the MACs' owners (`owners`), asked only when some hop shows a destination MAC (`-i any` keeps
    none: then no pass over the whole table for them).
    """
    if table["eth_dst"].null_count() == table.height:
        return journeys  # no sighting keeps its destination MAC (`-i any`): no walk over every hop
    # only the materialised hops are labelled (a hop's row is its position in the table): gathered, not the table filtered
    made = hop_arrays(journeys)
    rows = made.rows if made is not None else np.fromiter((h.row for j in journeys for h in j.hops), dtype=np.int64)
    t = at_rows(table.select(iface=pl.col("iface"), direction=pl.col("direction"), src=pl.col("eth_src"), dst=pl.col("eth_dst")), rows)
    t = t.with_columns(row=pl.Series(rows, dtype=pl.UInt32), node=pl.Series(node_codes[rows]))  # no row number for every row
    t = t.filter(pl.col("dst").is_not_null() & (pl.col("direction").is_null() | (pl.col("direction") == int(Direction.OUT))))
    nics = [iface for iface in t["iface"].unique().to_list() if role(iface) is Role.NIC]
    t = t.filter(pl.col("iface").is_in(nics)).select("row", "node", "direction", "src", "dst")
    if t.is_empty():
        return journeys
    mac_owners = owners_of()
    own = host_macs(t.lazy().filter(pl.col("direction").is_null()))
    # a frame of no direction counts when sent by its node: from a MAC the node owns, or its one-NIC capture's host MAC
    # (polars tells which, not a walk of every frame: 8 ms at 200k)
    code = {name: n for n, name in enumerate(node_names)}
    owned = {mac: code[owner] for mac, owner in mac_owners.items() if owner in code}
    node = pl.col("node").cast(pl.Int64)
    by_owner = pl.col("src").replace_strict(list(owned), list(owned.values()), default=None, return_dtype=pl.Int64) == node \
        if owned else pl.lit(False)
    by_host = node.replace_strict(list(own), list(own.values()), default=None, return_dtype=pl.UInt64) if own else pl.lit(None, pl.UInt64)
    sent_by_node = pl.col("direction").is_not_null() | by_owner.fill_null(False) | by_host.eq_missing(pl.col("src").cast(pl.UInt64))
    said: dict[int, tuple[str, str | None]] = {}  # each destination MAC's words, once
    sent = {row: said.get(dst) or said.setdefault(dst, (mac_text(dst) or "", mac_owners.get(dst) or _group(dst)))
            for row, dst in t.filter(sent_by_node).select("row", "dst").iter_rows()}
    if not sent:
        return journeys
    if made is not None:  # the journeys with a hop sent, by numpy (every materialised journey has a hop)
        hit = np.isin(rows, np.fromiter(sent, dtype=np.int64, count=len(sent)))
        touched = np.logical_or.reduceat(hit, np.cumsum(made.lengths) - made.lengths).tolist()
    else:
        touched = [any(h.row in sent for h in j.hops) for j in journeys]
    return [Journey(j.id, j.flow, j.summary, j.retransmission_of, tuple(_sent(h, sent) for h in j.hops)) if hit else j
            for j, hit in zip(journeys, touched)]


HOST_SHARE = 0.9  # of a one-NIC capture's unicast frames that must show one MAC for it to be the host's


def host_macs(frames: pl.LazyFrame) -> dict[int, int]:
    """Node code -> the MAC of the host whose one-NIC capture `frames` are (columns node, src, dst: frames of no
    direction, as `tcpdump -i eth0` records them).

    On a NIC every unicast frame is the host's, sent or received: one MAC is on one side of (nearly) all of them, and
    a frame from it was sent. Nothing when no single MAC is in `HOST_SHARE` of them and more than any other, as on a
    bridge's capture (the pods' frames between themselves) or with fewer than two frames.
    """
    unicast = _unicast(frames.select("node", "src", "dst"))
    totals = unicast.group_by("node").agg(frames=pl.len())
    sides = pl.concat([unicast.select("node", mac="src"), unicast.filter(pl.col("dst") != pl.col("src")).select("node", mac="dst")])
    return _hosts(*pl.collect_all([totals, sides.group_by("node", "mac").agg(seen=pl.len())], engine="streaming"))


def _unicast(frames: pl.LazyFrame) -> pl.LazyFrame:
    """The frames from one MAC to another that is not a group's (broadcast, multicast: the first octet's lowest bit; a
    mask, not a division and a remainder of each 64-bit MAC: 17 -> 12 ms of CPU over 10M sightings)."""
    return frames.filter(pl.col("src").is_not_null() & pl.col("dst").is_not_null() & ((pl.col("dst") & (1 << 40)) == 0))


def _hosts(totals: pl.DataFrame, counts: pl.DataFrame) -> dict[int, int]:
    """`host_macs` from each node's unicast frames (`totals`: node, frames) and how many show each MAC (`counts`:
    node, mac, seen)."""
    if counts.is_empty():
        return {}
    ranked = counts.join(totals, on="node").sort("node", "seen", "mac", descending=[False, True, False])
    out: dict[int, int] = {}
    for (node,), top in ranked.group_by("node", maintain_order=True):
        seen, frames_of_node = top["seen"].to_list(), int(top["frames"][0])
        if frames_of_node >= 2 and seen[0] >= HOST_SHARE * frames_of_node and (len(seen) == 1 or seen[0] > seen[1]):
            out[int(node)] = int(top["mac"][0])
    return out


def _group(mac: int) -> str | None:
    """`broadcast` or `multicast` for a group MAC (its first octet's lowest bit set), else None."""
    if mac == 0xFFFFFFFFFFFF:
        return "broadcast"
    return "multicast" if mac >> 40 & 1 else None


def _sent(hop: Hop, sent: dict[int, tuple[str, str | None]]) -> Hop:
    found = sent.get(hop.row)
    return hop if found is None else hop.sent_to(*found)
