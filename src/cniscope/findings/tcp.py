"""TCP trouble: re-sent segments and resets, located where they happened.

A retransmission is a new packet re-sending sequence space already sent
(`flows` links it to the original journey); the copies of one packet on
several interfaces are one journey and never count. A reset is told by
who sent it and on which leg of a NAT it travelled.
"""

from __future__ import annotations

import itertools

import numpy as np

from cniscope.findings.catalogue import note, say
from cniscope.findings.facts import Facts
from cniscope.findings.found import Found
from cniscope.findings.losses import Losses
from cniscope.journeys import NO_ADDRESS
from cniscope.results import (
    Endpoint,
    Evidence,
    Finding,
    FindingKind,
    Flow,
    Journey,
    Severity,
)

FIN, SYN, ACK = 1, 2, 16
SYN_ACK = SYN | ACK
PERSISTENT = 3  # re-sends in one conversation that make a pattern rather than a mishap


def retransmissions(facts: Facts, losses: Losses) -> Found:
    """One finding per conversation with re-sends (unanswered SYNs too), with their timing and where the originals stopped."""
    out = []
    resent_in: dict[int, list[Journey]] = {}
    for j in facts.journeys:
        if j.retransmission_of is not None and j.flow is not None:
            resent_in.setdefault(j.flow, []).append(j)
    # the conversations with re-sends, in their order: found by numpy among every conversation's ids
    with_resent = np.flatnonzero(np.isin(facts.flow_ids, np.fromiter(resent_in, dtype=np.int64, count=len(resent_in))))
    for flow in map(facts.flows.__getitem__, with_resent.tolist()):
        resent = resent_in[flow.id]
        if not flow.retransmissions:
            continue
        chains: dict[int, list[Journey]] = {}
        for j in resent:
            if j.retransmission_of is not None:  # a re-send: always
                chains.setdefault(j.retransmission_of, []).append(j)
        originals = [facts.by_id[o] for o in chains if o in facts.by_id and facts.by_id[o].hops]
        longest = max(chains.items(), key=lambda c: len(c[1]))
        gaps = _gaps(facts.by_id.get(longest[0]), longest[1])
        last = facts.path(originals[-1])[-1] if originals else None
        stops = list(dict.fromkeys(facts.where(facts.path(o)[-1]) for o in originals))
        syn = bool(originals) and int(facts.number(originals[0].hops[0], "tcp_flags") or 0) & SYN_ACK == SYN
        what = "SYN" if syn else "segment"
        explanation = (f"{flow.client} <-> {flow.server}: {flow.retransmissions} re-send(s) of sequence space already sent "
                       "(new packets, not copies of one packet seen on several interfaces). ")
        if gaps:
            explanation += f"The {what} was re-sent after {_durations(gaps)}: {_pattern(gaps, syn)} "
        if stops:
            explanation += f"The original(s) were last seen at {', '.join(stops[:5])}. "
        explanation += _suggests(flow, syn)
        missing = facts.unrecorded([last.row]) if last is not None else ()
        explanation += facts.how_to_record(missing)
        recovered = flow.retransmissions < PERSISTENT and flow.state not in ("unanswered", "handshake incomplete", "reset") \
            and (not syn or "synack_to_ack_ns" in flow.handshake)
        if recovered:
            explanation += " " + note("recovered")
        out.append(Finding(
            kind=FindingKind.RETRANSMISSION, severity=Severity.INFO if recovered else Severity.WARNING,
            title=f"{flow.retransmissions} retransmission(s) in TCP {flow.client} <-> {flow.server}"
                  + (f", originals last seen at {stops[0]}" if len(stops) == 1 else ""),
            explanation=explanation.strip(),
            next_step=say("retransmission"), key="retransmission",
            node=facts.named(facts.node(last)) if last else None, iface=last.iface if last else None,
            journeys=tuple(j.id for j in resent), flows=(flow.id,),
            rows=tuple(h.row for j in (resent + originals)[:40] for h in j.hops),
            evidence=Evidence(packets=flow.retransmissions, retries=flow.retransmissions, gaps_ms=gaps,
                              interfaces=tuple(stops), addresses=(flow.client.addr, flow.server.addr),
                              notes=missing + (("recovered",) if recovered else ())),
        ))
    return Found(out)


def _gaps(original: Journey | None, resends: list[Journey]) -> tuple[int, ...]:
    """Milliseconds between successive sends of one packet (the original first)."""
    times = [j.hops[0].ts for j in ([original] if original else []) + resends if j.hops and j.hops[0].ts is not None]
    if original is None or len(times) < 2:
        return ()
    times.sort()
    return tuple(round((b - a) / 1e6) for a, b in itertools.pairwise(times))


def _durations(gaps: tuple[int, ...]) -> str:
    return ", then ".join(f"{g / 1000:g} s" if g >= 1000 else f"{g} ms" for g in gaps)


def _pattern(gaps: tuple[int, ...], syn: bool) -> str:
    """What the timing says about who gave up waiting."""
    doubling = len(gaps) > 1 and all(1.6 <= b / max(a, 1) <= 2.5 for a, b in itertools.pairwise(gaps))
    if syn and gaps[0] >= 800:
        return ("the kernel's SYN retransmission timer (1 s, doubling each time): no SYN-ACK (nor a reset) reached the "
                "client's stack.")
    if gaps[0] < 200:
        return ("sooner than any retransmission timeout (200 ms at least): a fast retransmit, the receiver signalled a gap "
                "with duplicate ACKs, so the path works and single packets were lost.")
    if len(gaps) == 1:
        return "a retransmission timeout (200 ms at least): no acknowledgement came back in time."
    if doubling:
        return "retransmission timeouts, each one doubling: no acknowledgement came back in time."
    return "irregular intervals."


def _suggests(flow: Flow, syn: bool) -> str:
    if syn and "syn_to_synack_ns" not in flow.handshake:
        return ("No SYN-ACK appears anywhere in the capture: either the SYN is lost after its last sighting, or the "
                "server's reply is lost before the first place captured on the way back; look at the server's node next.")
    if syn and "synack_to_ack_ns" not in flow.handshake:
        return ("SYN-ACKs were captured but never acknowledged: they are lost between their last sighting and the "
                "client (a drop, or strict reverse-path filtering on the interface they arrive on).")
    if syn:
        return "The handshake completed in the end: the first SYN(s) or their replies were lost."
    return "Segments or their ACKs are being lost on the path; a loss only of large segments points at the MTU."


def resets(facts: Facts, losses: Losses) -> Found:
    out = []
    rejected = set(facts.untranslated.values())  # the client resetting replies that missed their reverse NAT
    for flow in facts.flows:
        if flow.id in rejected:
            continue
        for jid in flow.resets:
            j = facts.by_id.get(jid)
            if j is None or not j.hops:
                continue
            out.append(_reset(facts, flow, j))
    return Found(out)


def _reset(facts: Facts, flow: Flow, j: Journey) -> Finding:
    first = j.hops[0]
    src = Endpoint(facts.addr(first, "src") or NO_ADDRESS, facts.number(first, "sport"))
    dst = Endpoint(facts.addr(first, "dst") or NO_ADDRESS, facts.number(first, "dport"))
    sender = _side(flow, src)
    leg = _leg(flow, src, dst)
    data_before = any(
        (facts.number(o.hops[0], "payload_len") or 0) > 0 or int(facts.number(o.hops[0], "tcp_flags") or 0) & FIN
        for o in (facts.by_id.get(x) for x in flow.journeys) if o is not None and o.hops and o.id != j.id
        and (o.hops[0].ts or 0) <= (first.ts or 0)
    )
    where = f"first seen at {facts.where(first)}"
    renewed = _renewed_translation(flow, leg)
    if renewed is not None:
        meaning = (f"The connection was translated anew half-way ({renewed}): the node doing the NAT lost its conntrack "
                   "entry (flushed, expired, or the packets took another node), so the far end got segments of a "
                   "connection it did not know and reset it.")
        check = "reset.renewed"
    elif sender == "server" and not data_before:
        meaning = "The server refused the connection: nothing listens on that port, or a firewall rejects with RST."
        check = "reset.refused"
    elif sender == "client" and leg is not None and leg > 0:
        meaning = ("The client reset a conversation on a translated leg: it received a packet from an address it never "
                   "called, which is what a reply that missed its reverse NAT looks like.")
        check = "reset.untranslated"
    else:
        meaning = "The connection was aborted." + (" It had carried data, so this may be an application closing abruptly."
                                                   if data_before else "")
        check = "reset.other"
    leg_text = ""
    if len(flow.legs) > 1 and leg is not None:
        leg_text = f" It travelled on leg {leg + 1} of {len(flow.legs)} ({flow.legs[leg][0]} <-> {flow.legs[leg][1]})."
    return Finding(
        kind=FindingKind.RESET,
        severity=Severity.INFO if data_before and leg in (0, None) else Severity.WARNING,
        title=f"TCP reset sent by the {sender} {src} to {dst}",
        explanation=f"A RST ended {flow.client} <-> {flow.server}, {where}.{leg_text} {meaning}".replace(" ,", ","),
        next_step=say(check, endpoint=src), key=check,
        node=facts.named(facts.node(first)), iface=first.iface, journeys=(j.id,), flows=(flow.id,),
        rows=tuple(h.row for h in j.hops),
        evidence=Evidence(packets=1, addresses=(src.addr, dst.addr), interfaces=(facts.where(first),)),  # the sender first
    )


def _renewed_translation(flow: Flow, leg: int | None) -> str | None:
    """Two translated legs to the same server endpoint from different client-side ports: NAT state was lost."""
    if leg is None or leg == 0:
        return None
    server_side = flow.legs[leg][1]
    others = [a for i, (a, b) in enumerate(flow.legs) if i > 0 and b == server_side and a != flow.legs[leg][0]]
    if not others:
        return None
    return f"{others[0]} became {flow.legs[leg][0]}"


def _side(flow: Flow, src: Endpoint) -> str:
    clients = {flow.client} | {leg[0] for leg in flow.legs}
    servers = {flow.server} | {leg[1] for leg in flow.legs}
    if src in clients:
        return "client"
    if src in servers:
        return "server"
    return "third party"  # neither end of the conversation (a firewall, a load balancer)


def _leg(flow: Flow, a: Endpoint, b: Endpoint) -> int | None:
    for i, (x, y) in enumerate(flow.legs):
        if (a, b) in ((x, y), (y, x)):
            return i
    return None
