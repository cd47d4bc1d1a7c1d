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
from cniscope.findings.facts import ROLE_CODES, Facts, address_of
from cniscope.findings.found import Found
from cniscope.findings.losses import Losses
from cniscope.models import Role
from cniscope.packets.schema import Direction, mac_text
from cniscope.results import Evidence, Finding, FindingKind, Hop, Journey, Severity


def wrong_next_hop(facts: Facts, losses: Losses) -> Found:
    groups: dict[tuple[str, str, int], list[tuple[Journey, Hop, str]]] = defaultdict(list)
    # the hops that can be: a NIC's plain frames with a destination MAC, going out or of no direction (in hop order);
    # judged once per distinct (node, sender, MAC, destination): a conversation's packets share them
    ends = [f"dst{kind}" for kind in ("", "6", "_name")]
    maybe = facts.hop_columns("tunnel", "eth_dst", "eth_src", "direction", *ends).lazy().filter(
        (pl.col("role") == ROLE_CODES[Role.NIC]) & (pl.col("tunnel").fill_null(0) == 0) & pl.col("eth_dst").is_not_null()
        & (pl.col("direction").is_null() | (pl.col("direction") == int(Direction.OUT)))
    ).select("journey", "hop", "node",
             pl.when(pl.col("direction").is_null()).then(pl.col("eth_src")).alias("sender"),  # a direction says it was sent
             "direction", "eth_dst", address_of("dst").alias("dst")).collect()  # lazy: only these columns filtered
    # -> the pod's node, when wrong: judged over the distinct ones first, the hops walked only when some is
    distinct = maybe.select("node", pl.col("direction").is_null(), "sender", "eth_dst", "dst").unique()
    judged = {key: _wrong_owner(facts, facts.node_names[key[0]], *key[1:]) for key in distinct.iter_rows()}
    if all(owner is None for owner in judged.values()):
        return Found([], frozenset())
    for at, place, code, sender, direction, mac, to in maybe.iter_rows():
        owner = judged[(code, direction is None, sender, mac, to)]
        if owner is not None:
            assert to is not None
            j = facts.journeys[at]
            groups[(facts.node_names[code], owner, mac)].append((j, j.hops[place], to))
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


def _wrong_owner(facts: Facts, node: str, undirected: bool, sender: int | None, mac: int, dst: str | None) -> str | None:
    """The node whose pods use `dst`, when `node` sent a frame for it (from its NIC, plain) to `mac`, not one of
    that node's MACs; None when it did not send it (no direction said, `sender` not its MAC) or the MAC is right."""
    if undirected and sender not in facts.macs_of(node):  # a one-interface capture records no direction
        return None
    owner = _pod_owner(facts, dst)
    if dst is None or owner is None or owner == node or facts.is_local(owner, dst):
        return None
    theirs = facts.macs_of(owner)
    if not theirs or mac in theirs:  # unknown, or the right next hop
        return None
    return owner


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
