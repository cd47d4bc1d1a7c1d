"""Where packets vanish: the last sighting of a journey, and the place it should have shown up next.

What comes after a sighting follows from what the interface is for, whatever
the model calls it (`NEXT`): a packet going out of a tunnel device must show
up encapsulated on a NIC of the same node; one coming in from a pod, a NIC
or a tunnel must leave again unless it was for the node itself; one going
out of a bridge device must go out of a bridge port (a pod's veth); one
leaving a NIC towards a node that was also captured must arrive there. A
packet going out of a pod's veth has arrived.

A missing next sighting is a loss only when the capture could have seen it:
the place was covered (see `Coverage`) and the node was still capturing a
little after the packet.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import polars as pl

from cniscope.findings.catalogue import say
from cniscope.findings.facts import ROLE_CODES, Coverage, Facts, group_address
from cniscope.models import Role, roles
from cniscope.packets.schema import Direction
from cniscope.results import Hop, Journey

SAME_NODE_MARGIN_NS = 1_000_000  # the next hop on one node follows within microseconds
CROSS_NODE_MARGIN_NS = 50_000_000  # leaves room for clock-offset uncertainty between nodes
INGRESS = ("In", "P")


class Next(StrEnum):
    """What should follow a last sighting."""

    ENCAPSULATED_NIC_OUT = "the encapsulated packet going out of the node's NIC"
    FORWARDED_OUT = "the packet going out of another interface of the node (forwarded)"
    BRIDGE_PORT_OUT = "the packet going out of a bridge port (the pod's veth)"
    DECAPSULATED_IN = "the decapsulated packet coming in on the tunnel device"
    PEER_NODE_IN = "the packet arriving on the destination node"


# (role, direction group) -> what follows; None: nothing more to see (delivered, or left the capture)
NEXT: dict[tuple[Role, str], Next] = {
    (Role.TUNNEL, "Out"): Next.ENCAPSULATED_NIC_OUT,
    (Role.POD_BRIDGE, "Out"): Next.BRIDGE_PORT_OUT,
    (Role.HOST_VETH, "In"): Next.FORWARDED_OUT,
    (Role.POD_BRIDGE, "In"): Next.FORWARDED_OUT,
    (Role.TUNNEL, "In"): Next.FORWARDED_OUT,
    (Role.GATEWAY, "In"): Next.FORWARDED_OUT,
    (Role.NIC, "In"): Next.FORWARDED_OUT,
    (Role.NIC, "Out"): Next.PEER_NODE_IN,
}

# What to check when a packet vanishes after (role, direction): the catalogue's next steps.
CHECKS: dict[tuple[Role, str], str] = {
    (Role.TUNNEL, "Out"): "drop.tunnel_out",
    (Role.POD_BRIDGE, "Out"): "drop.bridge_out",
    (Role.NIC, "Out"): "drop.nic_out",
}


@dataclass(frozen=True)
class Loss:
    """A packet whose next sighting is missing where the capture would have shown it."""

    journey: Journey
    last: Hop  # the last sighting
    node: str  # where it vanished (the node of the last sighting)
    expected: Next
    peer: str | None  # the destination node when the packet was lost between nodes
    check: str  # the catalogue key of what to check next
    next_step: str  # its words, for this place
    confirmed: bool  # the capture went on long enough after it; an unconfirmed loss counts only beside confirmed ones

    @property
    def place(self) -> tuple[str, str | None, str | None, str, str | None]:
        return (self.node, self.last.iface, self.last.direction, self.expected.value, self.peer)


@dataclass(frozen=True)
class Losses:
    """Where packets vanished, found once for every detector."""

    found: tuple[Loss, ...]  # by what each interface is for (`NEXT`)
    model: tuple[roles.Mismatch, ...]  # against the inferred model's expected paths (and paths it does not have)


def find(facts: Facts) -> Losses:
    return Losses(_found(facts), tuple(roles.compare(list(facts.journeys), facts.table, facts.verdict, facts.inventory)))


def _found(facts: Facts) -> tuple[Loss, ...]:
    """Every journey whose next sighting is missing where the capture would have shown it.

    A packet near the end of a node's capture (`confirmed` false) counts only when packets of the same
    conversation were confirmed lost at the same place: a re-send that met the same fate.
    """
    out = []
    for at in _may_be_lost(facts):
        loss = _loss(facts, facts.journeys[at])
        if loss is not None:
            out.append(loss)
    confirmed_at = {(loss.place, loss.journey.flow) for loss in out if loss.confirmed}
    return tuple(loss for loss in out if loss.confirmed or (loss.place, loss.journey.flow) in confirmed_at)


def _may_be_lost(facts: Facts) -> list[int]:
    """The journeys (places in `facts.journeys`, in order) whose last sighting in path order (`Facts.path`) is of an
    IP packet going a way after which `NEXT` expects more: found over the hops as columns, for `_loss` to judge.

    The last in path order is the last hop of the journey's last node in that order: the nodes that did not receive
    it from the wire (first seen coming in by a NIC or a tunnel device), then those that did, each in order of first
    sighting."""
    ingress, out = [int(Direction.IN), int(Direction.OTHERHOST)], int(Direction.OUT)
    # a hop's role and way as one number (a list a hop, compared as lists, took 5x the time)
    places = pl.col("role") * 2 + pl.when(pl.col("direction").is_in(ingress)).then(pl.lit(0)).otherwise(pl.lit(1))
    following = [ROLE_CODES[role] * 2 + (0 if group == "In" else 1) for role, group in NEXT]
    return last_in_path(facts, "direction", "ip_version").filter(
        pl.col("ip_version").is_not_null() & (pl.col("direction").is_in(ingress) | (pl.col("direction") == out))
        & places.is_in(following)
    ).get_column("journey").to_list()


def last_in_path(facts: Facts, *columns: str) -> pl.DataFrame:
    """`Facts.hops` (with these columns of the table) of each materialised journey's last hop in path order, by
    journey: the last hop of the journey's last node in `Facts.path`'s order of nodes."""
    hops = facts.hop_columns(*dict.fromkeys(("direction", *columns)))
    if len(facts.node_names) < 2:  # one node: the path is the hops' order, its last hop the journey's last
        journey = hops.get_column("journey").to_numpy()
        return hops[np.flatnonzero(journey != np.append(journey[1:], -1))]
    ingress = [int(Direction.IN), int(Direction.OTHERHOST)]
    first = ("journey", "node")
    received = (pl.col("direction").first().over(first).is_in(ingress)
                & pl.col("role").first().over(first).is_in([ROLE_CODES[Role.NIC], ROLE_CODES[Role.TUNNEL]])).fill_null(False)
    order = (received.cast(pl.Int64) * (1 << 42)) + (pl.col("hop").first().over(first) * (1 << 21)) + pl.col("hop")
    return hops.filter(order == order.max().over("journey")).sort("journey")


def _loss(facts: Facts, j: Journey) -> Loss | None:
    last = facts.path(j)[-1]
    if facts.number(last, "ip_version") is None or last.direction not in ("In", "P", "Out"):
        return None
    if group_address(facts.number(last, "dst")):
        return None  # multicast and broadcast go where listeners are, not along a path
    role = facts.role(last.iface)
    if role is None:
        return None
    group = "In" if last.direction in INGRESS else "Out"
    expected = NEXT.get((role, group))
    if expected is None:
        return None
    node = facts.node(last)
    cov = facts.coverage.get(node)
    tunnelled = bool(facts.number(last, "tunnel"))
    dst = facts.addr(last, "outer_dst" if tunnelled else "dst")
    if expected is Next.FORWARDED_OUT:
        if tunnelled and role is Role.NIC:
            expected = Next.DECAPSULATED_IN
        elif facts.is_local(node, dst):
            return None  # for the node itself: delivered
    if expected is Next.PEER_NODE_IN:
        peer = facts.node_of_address(dst)
        if peer is None or peer == node:
            return None
        peer_cov = facts.coverage.get(peer)
        if peer_cov is None or not _covers_role(facts, peer_cov, Role.NIC) or not peer_cov.started(last.ts):
            return None
        if any(facts.node(h) == peer for h in j.hops):
            return None  # reached it (and was seen there before the last sighting's clock said)
        check = CHECKS[(role, "Out")]
        return Loss(j, last, node, expected, peer, check, say(check, iface=last.iface), peer_cov.running(last.ts, CROSS_NODE_MARGIN_NS))
    if cov is None:
        return None
    needed = {Next.ENCAPSULATED_NIC_OUT: Role.NIC, Next.BRIDGE_PORT_OUT: Role.HOST_VETH, Next.DECAPSULATED_IN: Role.TUNNEL}
    if expected in needed and not _covers_role(facts, cov, needed[expected]):
        return None
    if expected is Next.FORWARDED_OUT and not cov.every_iface:
        return None  # a one-interface capture cannot see where else it went
    port = last.iface
    if expected in (Next.FORWARDED_OUT, Next.BRIDGE_PORT_OUT) and any(facts.addr(h, "src") == facts.addr(h, "dst") for h in j.hops):
        check = "drop.hairpin"  # a pod calling itself through a Service: back out of the port it came in by
        port = next((h.iface for h in j.hops if facts.role(h.iface) is Role.HOST_VETH), last.iface)
    elif expected is Next.FORWARDED_OUT:
        check = "drop.forward"
    elif expected is Next.DECAPSULATED_IN:
        check = "drop.decap"
    else:
        check = CHECKS[(role, group)]
    words = say(check, dst=facts.addr(last, "dst"), src=facts.addr(last, "src"), iface=port)
    return Loss(j, last, node, expected, None, check, words, cov.running(last.ts, SAME_NODE_MARGIN_NS))


def _covers_role(facts: Facts, cov: Coverage, role: Role) -> bool:
    return cov.every_iface or any(facts.role(name) is role for name in cov.ifaces)
