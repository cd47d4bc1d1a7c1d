"""Where a node sends packets for another node's pods: the next hop's MAC must be that node's.

A packet for a pod address leaving a node's NIC unencapsulated (host-gw,
BGP, kube-router routing) is addressed, at the link layer, to the next hop
the node's route chose. When that MAC is not one of the node owning the pod's
address (its NIC's frames show its MACs; ARP shows who else owns a MAC), the
route points elsewhere: typically the default gateway, because the route to
the pod CIDR is missing. Needs link-layer headers: pcap/pcapng, or tcpdump -e.
"""

from __future__ import annotations

from collections import defaultdict

import polars as pl

from cniscope.findings.catalogue import say
from cniscope.findings.facts import ROLE_CODES, Facts
from cniscope.findings.found import Found
from cniscope.findings.losses import Losses
from cniscope.models import Role
from cniscope.packets.schema import Direction, mac_text
from cniscope.results import Evidence, Finding, FindingKind, Hop, Journey, Severity


def wrong_next_hop(facts: Facts, losses: Losses) -> Found:
    groups: dict[tuple[str, str, int], list[tuple[Journey, Hop, str]]] = defaultdict(list)
    # the hops that can be: a NIC's plain frames with a destination MAC, going out or of no direction (in hop order)
    maybe = facts.hop_columns("tunnel", "eth_dst", "direction").filter(
        (pl.col("role") == ROLE_CODES[Role.NIC]) & (pl.col("tunnel").fill_null(0) == 0) & pl.col("eth_dst").is_not_null()
        & (pl.col("direction").is_null() | (pl.col("direction") == int(Direction.OUT))))
    for at, place in maybe.select("journey", "hop").iter_rows():
        j = facts.journeys[at]
        hop = j.hops[place]
        node = facts.node(hop)
        if facts.role(hop.iface) is not Role.NIC or facts.number(hop, "tunnel") or not _sent(facts, node, hop):
            continue
        mac, dst = facts.number(hop, "eth_dst"), facts.addr(hop, "dst")
        owner = _pod_owner(facts, dst)
        if mac is None or dst is None or owner is None or owner == node or facts.is_local(owner, dst):
            continue
        theirs = facts.macs_of(owner)
        if not theirs or mac in theirs:  # unknown, or the right next hop
            continue
        groups[(node, owner, mac)].append((j, hop, dst))
    out, claimed = [], set()
    lost = {loss.journey.id for loss in losses.found}
    for (node, owner, mac), seen in groups.items():
        j, hop, dst = seen[0]
        held = facts.mac_owners.get(mac)
        who = f"{held}'s" if held and held != owner else "a MAC that is not " + owner + "'s"
        dropped = [x.id for x, _, _ in seen if x.id in lost]
        claimed.update(dropped)
        out.append(Finding(
            kind=FindingKind.ROUTE, severity=Severity.ERROR,
            title=f"{node} sends packets for {owner}'s pods ({dst}) to {mac_text(mac)} ({held or 'not ' + owner}), not to {owner}",
            explanation=f"{len(seen)} packet(s) for pod addresses on {owner} left {facts.where(hop)} addressed to {mac_text(mac)}, "
                        f"{who} ({owner}'s NIC sends from {', '.join(sorted(t for m in facts.macs_of(owner) if (t := mac_text(m))))}). "
                        f"The route {node} uses for {dst} does not lead to {owner}: typically the pod CIDR's route is missing "
                        f"and the default gateway took the packets" + (f"; {len(dropped)} of them never arrived." if dropped else "."),
            next_step=say("route", node=node, dst=dst, owner=owner), key="route",
            node=node, iface=hop.iface, journeys=tuple(x.id for x, _, _ in seen[:200]),
            flows=tuple(dict.fromkeys(x.flow for x, _, _ in seen if x.flow is not None)),
            rows=tuple(h.row for _, h, _ in seen[:50]),
            evidence=Evidence(packets=len(seen), mac=mac_text(mac), mac_owner=held, device=hop.iface, peer=owner,
                              addresses=(dst, *sorted(facts.local.get(owner, ()))), interfaces=(facts.where(hop),)),
        ))
    return Found(out, frozenset(claimed))


def _sent(facts: Facts, node: str, hop: Hop) -> bool:
    """Going out (a one-interface capture records no direction: then its source MAC must be the node's)."""
    if hop.direction is not None:
        return hop.direction == "Out"
    return facts.number(hop, "eth_src") in facts.macs_of(node)


def _pod_owner(facts: Facts, dst: str | None) -> str | None:
    """The node whose pods use `dst` (seen on its veths, or its pod CIDR in the inventory)."""
    if dst is None:
        return None
    for node, pods in facts.pods_on.items():
        if dst in pods:
            return node
    if facts.inventory is not None:
        found = facts.inventory.node_of_pod_address(dst)
        return found.name if found is not None else None
    return None
