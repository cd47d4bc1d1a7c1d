"""Path findings: packets lost between two hops (`drop`), paths the model does not have (`deviation`), and replies
that leave by another door (`asymmetric_path`).

`drops` and `model_paths` report the losses no other detector explained (`claimed`)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

import numpy as np
import polars as pl

from cniscope.findings.catalogue import note, say
from cniscope.findings.facts import ROLE_CODES, Facts, address_of
from cniscope.findings.found import Found
from cniscope.findings.losses import INGRESS, Loss, Losses, Next
from cniscope.models import Role
from cniscope.models.roles import Mismatch
from cniscope.packets.schema import Direction, ip4_expr, mac_text
from cniscope.results import Evidence, Finding, FindingKind, Hop, Journey, Severity


def drops(facts: Facts, losses: Losses, claimed: frozenset[int]) -> Found:
    """One finding per place and conversation where packets vanished, unless another finding already explains them."""
    groups: dict[tuple[object, ...], list[Loss]] = defaultdict(list)
    for loss in losses.found:
        if loss.journey.id in claimed:
            continue
        groups[(*loss.place, loss.journey.flow)].append(loss)
    out = []
    mine: set[int] = set()
    for group in groups.values():
        first = group[0]
        hop = first.last
        flow = facts.flow_by_id.get(first.journey.flow) if first.journey.flow is not None else None
        what = f"{flow.proto.upper()} {flow.client} <-> {flow.server}" if flow else first.journey.summary
        where = facts.where(hop)
        if first.peer is not None:
            title = f"{len(group)} packet(s) of {what} left {where} but never reached {first.peer}"
        else:
            title = f"{len(group)} packet(s) of {what} lost after {where}"
        severity, notes = Severity.ERROR, []
        filtered = first.expected is Next.ENCAPSULATED_NIC_OUT and _envelopes_filtered(facts, first.node)
        if filtered:
            notes.append("envelopes_filtered")
        if not _kind_ever_seen(facts, first):
            notes = notes or ["kind_never_seen"]
            severity = Severity.INFO if filtered else Severity.WARNING
        elif filtered:
            severity = Severity.WARNING
        examples = "; ".join(loss.journey.summary for loss in group[:3])
        ids = {loss.journey.id for loss in group}
        agree = next((m for m in losses.model if m.expected is not None and m.journey.id in ids), None)
        fields: dict[str, object] = {"path": _model_title(facts, agree) if agree is not None else ""}
        if agree is not None:
            notes.append("model_agrees")
        mine.update(ids)
        mac, owner, sent_to = _sent_to(facts, hop)
        if sent_to is not None:
            notes.append(sent_to)
            fields.update(mac=mac, owner=owner, iface=hop.iface)
        caveat = "".join(" " + note(k, **fields) for k in notes)
        out.append(Finding(
            kind=FindingKind.DROP, severity=severity, title=title,
            explanation=f"Last seen at {where}; the capture covered the next place but never shows {first.expected.value}"
                        f" (e.g. {examples}).{caveat}",
            next_step=first.next_step, key=first.check,
            node=facts.named(facts.node(hop)), iface=hop.iface,
            journeys=tuple(loss.journey.id for loss in group),
            flows=(flow.id,) if flow else (),
            rows=tuple(h.row for loss in group for h in loss.journey.hops),
            evidence=Evidence(packets=len(group), interfaces=(where,), device=hop.iface, mac=mac, mac_owner=owner,
                              peer=first.peer, notes=tuple(notes),
                              addresses=tuple(x for x in (facts.addr(hop, "src"), facts.addr(hop, "dst")) if x)),
        ))
    return Found(out, frozenset(mine))


def _sent_to(facts: Facts, hop: Hop) -> tuple[str | None, str | None, str | None]:
    """(destination MAC, its owner, the note saying so) of a packet last seen going out of a NIC; Nones elsewhere."""
    if hop.direction != "Out" or facts.role(hop.iface) is not Role.NIC or facts.number(hop, "tunnel"):
        return None, None, None
    mac = facts.number(hop, "eth_dst")
    if mac is None:
        return None, None, "mac_unrecorded"
    owner = facts.mac_owners.get(mac)
    return mac_text(mac), owner, "mac_owned" if owner else "mac_unowned"


def _envelopes_filtered(facts: Facts, node: str) -> bool:
    """Did packets arrive on the node's tunnel device with no envelope seen on the node before?"""
    for j in facts.journeys:
        hops = [h for h in facts.path(j) if facts.node(h) == node]
        if hops and hops[0].direction in ("In", "P") and facts.role(hops[0].iface) is Role.TUNNEL:
            return True
    return False


def _kind_ever_seen(facts: Facts, loss: Loss) -> bool:
    """Does the capture show, at any time, the kind of sighting that is missing here?"""
    if loss.expected is Next.PEER_NODE_IN:
        return loss.peer in facts.coverage
    seen = facts.seen_on(loss.node)
    if loss.expected is Next.ENCAPSULATED_NIC_OUT:
        return "tunnel" in seen
    if loss.expected is Next.BRIDGE_PORT_OUT:
        return Role.HOST_VETH in seen
    if loss.expected is Next.DECAPSULATED_IN:
        return Role.TUNNEL in seen
    return True


def asymmetric(facts: Facts, losses: Losses) -> Found:
    """Per node and remote address: the ways packets from it come in vs. the ways packets to it leave.

    A way is a NIC or a tunnel device. Addresses are compared at both levels a tunnel has: the envelope's (node to
    node, by the NIC) and the packet's (by the tunnel device when it went through one). A node's ARP request for the
    address counts as leaving by that NIC: its route to the address points there.
    """
    if not _asymmetric_somewhere(facts):
        return Found([])
    ingress: dict[tuple[str, str], dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    egress: dict[tuple[str, str], dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    one_node = facts.node_names[0] if len(facts.node_names) == 1 else None  # one capture file, most often
    for j in _by_ways(facts):
        by_node: dict[str, list[Hop]] = defaultdict(list)
        if one_node is not None:
            by_node[one_node] = list(j.hops)
        else:
            for hop in j.hops:
                by_node[facts.node(hop)].append(hop)
        for node, hops in by_node.items():
            cov = facts.coverage.get(node)
            if cov is None or not cov.every_iface:
                continue
            for way, remote in _ways_in(facts, hops):
                if remote is not None and not facts.is_local(node, remote):
                    ingress[(node, remote)][way].append(j.id)
            for way, remote in _ways_out(facts, hops):
                if remote is not None:
                    egress[(node, remote)][way].append(j.id)
    if not ingress:
        return Found([])
    lost_after = {loss.journey.id for loss in losses.found if loss.expected is Next.FORWARDED_OUT}
    resent = {j.retransmission_of for j in facts.journeys if j.retransmission_of is not None}
    resent |= {j.id for j in facts.journeys if j.retransmission_of is not None}
    out = []
    claimed: set[int] = set()
    for (node, remote), ins in ingress.items():
        outs = egress.get((node, remote))
        if not outs or set(ins) & set(outs):
            continue
        in_names, out_names = sorted(ins), sorted(outs)
        in_journeys = list(dict.fromkeys(jid for ids in ins.values() for jid in ids))
        out_journeys = list(dict.fromkeys(jid for ids in outs.values() for jid in ids))
        dropped = [jid for jid in in_journeys if jid in lost_after]
        repeated = [jid for jid in in_journeys + out_journeys if jid in resent]
        explanation = (f"Packets from {remote} reach {node} on {', '.join(in_names)}, while packets to {remote} leave "
                       f"{node} by {', '.join(out_names)}: the node's route back to {remote} does not use the interface "
                       "its packets arrive on.")
        if dropped or repeated:
            explanation += (f" {len(dropped)} of the arriving packets were never delivered or forwarded, and "
                            f"{len(repeated)} packet(s) of these conversations were re-sent: strict reverse-path filtering "
                            f"(rp_filter=1 on {in_names[0]}) drops exactly the packets that arrive where the route back "
                            "does not leave.")
        out.append(Finding(
            kind=FindingKind.ASYMMETRIC_PATH, severity=Severity.ERROR if dropped or repeated else Severity.WARNING,
            title=f"asymmetric path on {node}: from {remote} in by {', '.join(in_names)}, to it out by {', '.join(out_names)}",
            explanation=explanation,
            next_step=say("asymmetric_path", remote=remote, node=node, iface=in_names[0]), key="asymmetric_path",
            node=facts.named(node), iface=in_names[0],
            journeys=tuple(in_journeys) + tuple(out_journeys),
            flows=tuple(dict.fromkeys(f for jid in in_journeys + out_journeys if (f := facts.by_id[jid].flow) is not None)),
            rows=tuple(h.row for jid in in_journeys[:20] for h in facts.by_id[jid].hops),
            evidence=Evidence(packets=len(in_journeys), received=len(in_journeys), sent=len(out_journeys),
                              retries=len(repeated), addresses=(remote,),
                              interfaces=tuple(f"{node} {name} In" for name in in_names)
                              + tuple(f"{node} {name} Out" for name in out_names)),
        ))
        claimed.update(dropped)
    return Found(out, frozenset(claimed))


def _asymmetric_somewhere(facts: Facts) -> bool:
    """Whether some node and remote address have ways in (`_ways_in`) and ways out (`_ways_out`) and none in common,
    over the hops as columns: the journeys are walked one by one (`asymmetric`) only then (a walk of 20,000 journeys
    that found none: 14 ms at 200k, most of the detector)."""
    ways = _ways(facts)
    ins: dict[tuple[int, str], set[object]] = defaultdict(set)
    outs: dict[tuple[int, str], set[object]] = defaultdict(set)
    for inbound, node, remote, way in ways.iter_rows():
        if not inbound:
            outs[(node, remote)].add(way)
        elif not facts.is_local(facts.node_names[node], remote):
            ins[(node, remote)].add(way)
    return any(outs.get(key) and not ways_in & outs[key] for key, ways_in in ins.items())


def _ways(facts: Facts) -> pl.DataFrame:
    """The distinct (inbound, node, remote address, way) of `_ways_in` and `_ways_out` of every materialised journey's
    hops on each node whose capture saw every interface: a way is the interface's code. Each hop's place among its
    journey's hops on its node found by numpy (polars' windows over 20,000 journeys: 0.04 s at 2M)."""
    addr = {side: address_of(side) for side in ("src", "dst", "outer_src", "outer_dst")}
    # the hops of the journeys with a way (a NIC or a tunnel device) on the nodes that saw every interface only
    journey, role = facts.hops.get_column("journey").to_numpy(), facts.hops.get_column("role").to_numpy()
    has_way = np.zeros(len(facts.journeys), dtype=bool)
    has_way[journey[(role == ROLE_CODES[Role.NIC]) | (role == ROLE_CODES[Role.TUNNEL])]] = True
    rows = np.flatnonzero(has_way[journey] & np.isin(facts.hops.get_column("node").to_numpy(), facts._every_iface_nodes()))
    if not len(rows):
        return pl.DataFrame(schema={"inbound": pl.Boolean, "node": pl.Int64, "remote": pl.String, "way": pl.UInt32})
    hops = facts.hop_columns("direction", "tunnel", "arp_op", "arp_tpa",
                             *(f"{side}{kind}" for side in addr for kind in ("", "6", "_name")))[rows]
    place, last, first = _places(hops.select(facts.journey_node()).to_series().to_numpy())
    direction = hops.get_column("direction").fill_null(-1).to_numpy()
    role = hops.get_column("role").to_numpy()
    inbound = (direction == int(Direction.IN)) | (direction == int(Direction.OTHERHOST))
    out, nic, tunnel = direction == int(Direction.OUT), role == ROLE_CODES[Role.NIC], role == ROLE_CODES[Role.TUNNEL]
    tunnelled = hops.get_column("tunnel").fill_null(0).to_numpy() != 0
    first_in = (place == 0) & inbound & nic  # into the node by a NIC ...
    then_tunnel = (place == 1) & inbound & tunnel & (first_in & tunnelled)[first]  # ... then a tunnel device
    last_out = last & out & nic
    kept = np.flatnonzero(first_in | then_tunnel | (out & tunnel) | last_out)
    # the remote addresses written as text for those hops only
    ways = hops[kept].with_columns(_first_in=first_in[kept], _then_tunnel=then_tunnel[kept], _last_out=last_out[kept])
    first_in, then_tunnel, last_out = pl.col("_first_in"), pl.col("_then_tunnel"), pl.col("_last_out")
    tunnelled = pl.col("tunnel").fill_null(0) != 0
    remote = (pl.when(first_in).then(pl.when(tunnelled).then(addr["outer_src"]).otherwise(addr["src"]))
              .when(then_tunnel).then(addr["src"])
              .when(last_out).then(pl.when(pl.col("arp_op") == 1).then(ip4_expr("arp_tpa"))
                                   .when(tunnelled).then(addr["outer_dst"]).otherwise(addr["dst"]))
              .otherwise(addr["dst"]))  # out by a tunnel device
    return ways.lazy().select(inbound=first_in | then_tunnel, node="node", remote=remote,
                              way=pl.col("iface").to_physical()).drop_nulls("remote").unique().collect()


def _places(key: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each row: its place among the rows of its key (in their order), whether it is their last, and the position
    of their first."""
    n = len(key)
    order = np.argsort(key, kind="stable")
    ordered = key[order]
    starts = np.r_[True, ordered[1:] != ordered[:-1]] if n else np.zeros(0, dtype=bool)
    start = np.maximum.accumulate(np.where(starts, np.arange(n), 0)) if n else np.zeros(0, dtype=np.int64)
    place, last, first = np.empty(n, dtype=np.int64), np.empty(n, dtype=bool), np.empty(n, dtype=np.int64)
    place[order] = np.arange(n) - start
    last[order] = np.r_[starts[1:], True] if n else starts
    first[order] = order[start]
    return place, last, first


def _by_ways(facts: Facts) -> list[Journey]:
    """The journeys with a sighting on a way (a NIC or a tunnel device): polars finds them, Python walks those only."""
    hops = facts.hops.filter(pl.col("role").is_in([ROLE_CODES[Role.NIC], ROLE_CODES[Role.TUNNEL]]))
    return [facts.journeys[at] for at in hops.get_column("journey").unique(maintain_order=True).to_list()]


def _ways_in(facts: Facts, hops: list[Hop]) -> list[tuple[str, str | None]]:
    """(way, remote address) a journey came into a node by: its NIC (envelope or plain), its tunnel device."""
    out: list[tuple[str, str | None]] = []
    first = hops[0]
    if first.iface is not None and first.direction in INGRESS and facts.role(first.iface) is Role.NIC:
        tunnelled = bool(facts.number(first, "tunnel"))
        out.append((first.iface, facts.addr(first, "outer_src" if tunnelled else "src")))
        if tunnelled:
            out += [(h.iface, facts.addr(h, "src")) for h in hops[1:2]
                    if h.iface is not None and h.direction in INGRESS and facts.role(h.iface) is Role.TUNNEL]
    return out


def _ways_out(facts: Facts, hops: list[Hop]) -> list[tuple[str, str | None]]:
    """(way, remote address) a journey left a node by: its tunnel device, its NIC (envelope, plain, ARP)."""
    out: list[tuple[str, str | None]] = []
    out += [(h.iface, facts.addr(h, "dst")) for h in hops
            if h.iface is not None and h.direction == "Out" and facts.role(h.iface) is Role.TUNNEL]
    last = hops[-1]
    if last.iface is not None and last.direction == "Out" and facts.role(last.iface) is Role.NIC:
        if facts.number(last, "arp_op") == 1:  # the node asks for the address on that link: its route points there
            remote = facts.addr(last, "arp_tpa")
        elif facts.number(last, "tunnel"):
            remote = facts.addr(last, "outer_dst")
        else:
            remote = facts.addr(last, "dst")
        out.append((last.iface, remote))
    return out


def model_paths(facts: Facts, losses: Losses, claimed: frozenset[int]) -> list[Finding]:
    """Paths the model does not have, and the model's missing next hops for packets no other finding explains
    (those that say the same about the same place gathered into one)."""
    out = [_deviation(facts, m) for m in losses.model if m.expected is None]
    drops = [_model_drop(facts, m) for m in losses.model if m.expected is not None and m.journey.id not in claimed]
    return out + _gathered(drops)


def _deviation(facts: Facts, m: Mismatch) -> Finding:
    return Finding(
        kind=FindingKind.DEVIATION, severity=Severity.WARNING,
        title=f"path on {m.node} differs from {m.model}'s expected paths",
        explanation=f"{m.journey.summary} went {' -> '.join(facts.where(h) for h in m.hops)}; "
                    f"no {m.model} path crosses these interfaces in this order",
        next_step=say("deviation"), key="deviation",
        node=facts.named(m.node), journeys=(m.journey.id,), rows=tuple(h.row for h in m.hops),
        evidence=Evidence(packets=1, interfaces=tuple(facts.where(h) for h in m.hops)),
    )


def _model_place(facts: Facts, m: Mismatch) -> str:
    """Where the model lost the packet: the named place, or the role its position gives it when nothing is named."""
    last = m.hops[-1]
    if last.iface is not None:
        return facts.where(last)
    where = facts.named(m.node) or "the capture's node"
    role = last.role if last.role and not last.role.startswith(("capture point", "single capture point")) else None
    return f"{where}, {role or 'an interface'} (copy {len(m.hops)} of {m.copies[0] if m.copies else len(m.hops)})"


def _model_title(facts: Facts, m: Mismatch) -> str:
    return f"last seen at {_model_place(facts, m)}; expected next: {m.expected}"


def _model_drop(facts: Facts, m: Mismatch) -> Finding:
    copies = f" (other packets between these addresses show {m.copies[0]} copies on this node, this one {m.copies[1]})" if m.copies else ""
    missing = facts.unrecorded([h.row for h in m.hops])
    return Finding(
        kind=FindingKind.DROP, severity=Severity.WARNING,
        title=_model_title(facts, m),
        explanation=f"{m.journey.summary}: {m.traffic} should continue to {m.expected} on this node, "
                    f"and the capture shows that point for other packets, but not for this one{copies}."
                    + facts.how_to_record(missing),
        next_step=say("drop.model"), key="drop.model",
        node=facts.named(m.node), iface=m.hops[-1].iface, journeys=(m.journey.id,), rows=tuple(h.row for h in m.hops),
        evidence=Evidence(packets=1, interfaces=(_model_place(facts, m),), notes=missing),
    )


def _gathered(drops: list[Finding]) -> list[Finding]:
    """Model drops that say the same thing about the same place, as one finding."""
    groups: dict[tuple[str | None, str | None, str, Severity], list[Finding]] = {}
    for f in drops:
        groups.setdefault((f.node, f.iface, f.title, f.severity), []).append(f)
    out = []
    for group in groups.values():
        first = group[0]
        if len(group) == 1:
            out.append(first)
            continue
        out.append(replace(
            first, title=f"{len(group)} packets: {first.title}", evidence=replace(first.evidence, packets=len(group)),
            journeys=tuple(j for f in group for j in f.journeys),
            flows=tuple(dict.fromkeys(x for f in group for x in f.flows)),
            rows=tuple(dict.fromkeys(r for f in group for r in f.rows)),
        ))
    return out
