"""Detectors: typed findings with the evidence that proves them.

Each detector reads the correlated table, journeys, flows, the model verdict
and clocks, and returns `Finding`s; none prints or re-reads anything.
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from cniscope.results import ChangeKind, Finding, FindingKind, Flow, Journey, ModelVerdict, NodeClock, Severity

CLOCK_SKEW_NS = 1_000_000  # offsets above 1 ms are worth saying


def _retransmissions(ctx: _Context) -> list[Finding]:
    out = []
    for flow in ctx.flows:
        if flow.retransmissions:
            resent = [j.id for j in ctx.journeys if j.flow == flow.id and j.retransmission_of is not None]
            out.append(Finding(
                kind=FindingKind.RETRANSMISSION, severity=Severity.WARNING,
                title=f"{flow.retransmissions} retransmission(s) in {flow.proto.upper()} {flow.client} <-> {flow.server}",
                explanation="The sender re-sent sequence space it had already sent (a new packet, not another copy of the same one): "
                            "the first one was lost or its acknowledgement was.",
                next_step="Find where the original stopped: its last hop is where to look for a drop.",
                journeys=tuple(resent), flows=(flow.id,),
            ))
    return out


def _resets(ctx: _Context) -> list[Finding]:
    out = []
    for flow in ctx.flows:
        for jid in flow.resets:
            j = ctx.by_id.get(jid)
            who = j.summary.split(" ")[1] if j else "?"
            first = j.hops[0] if j and j.hops else None
            out.append(Finding(
                kind=FindingKind.RESET, severity=Severity.WARNING,
                title=f"connection reset by {who}",
                explanation=f"A RST ended {flow.client} <-> {flow.server}" + (f", first seen at {first.point}" if first else "") + ".",
                next_step="A RST from the client right after a reply from an unexpected address points at missing reverse NAT; "
                          "from the server: nothing listens on that port.",
                node=first.node if first else None, iface=first.iface if first else None,
                journeys=(jid,), flows=(flow.id,), rows=tuple(h.row for h in j.hops) if j else (),
            ))
    return out


def _nat_and_tunnels(ctx: _Context) -> list[Finding]:
    seen: dict[tuple, Finding] = {}
    for j in ctx.journeys:
        for hop in j.hops:
            for change in hop.changes:
                if change.kind in (ChangeKind.DNAT, ChangeKind.SNAT):
                    key = ("nat", j.flow, change.kind, change.before, change.after)
                    kind, title = FindingKind.NAT, f"{change.kind.value.upper()} {change.before} -> {change.after}"
                    explanation = f"Between two sightings the {'destination' if change.kind is ChangeKind.DNAT else 'source'} was rewritten (at {hop.point})."
                elif change.kind in (ChangeKind.ENCAP, ChangeKind.DECAP):
                    envelope = change.after if change.kind is ChangeKind.ENCAP else change.before
                    key = ("tunnel", envelope.split(" ")[0], j.flow)
                    kind, title = FindingKind.TUNNEL, f"tunnel {envelope}"
                    explanation = f"The packet was {'encapsulated' if change.kind is ChangeKind.ENCAP else 'decapsulated'} at {hop.point}."
                else:
                    continue
                if key not in seen:
                    seen[key] = Finding(kind=kind, severity=Severity.INFO, title=title, explanation=explanation, next_step="",
                                        node=hop.node, iface=hop.iface, journeys=(j.id,),
                                        flows=(j.flow,) if j.flow is not None else (), rows=(hop.row,))
    return list(seen.values())


def _checksums(ctx: _Context) -> list[Finding]:
    bad = ctx.table.filter(pl.col("l4_csum_bad").fill_null(False))
    if bad.is_empty():
        return []
    return [Finding(
        kind=FindingKind.CHECKSUM_OFFLOAD, severity=Severity.INFO,
        title=f"{bad.height} packet(s) with bad TCP/UDP checksums: an artefact of checksum offload, not a fault",
        explanation="Packets captured on the host that sends them carry no final checksum yet: the NIC (or the veth/tunnel "
                    "device) fills it in after the capture point.",
        next_step="Nothing to fix. To be sure, capture on the receiving side: the same packets arrive with correct checksums.",
        rows=tuple(bad["row"].head(50).to_list()),
    )]


def _clock_skew(ctx: _Context) -> list[Finding]:
    out = []
    for c in ctx.clocks:
        if abs(c.offset_ns) >= CLOCK_SKEW_NS:
            out.append(Finding(
                kind=FindingKind.CLOCK_SKEW, severity=Severity.INFO,
                title=f"clock of {c.node} differs from {c.reference} by {c.offset_ns / 1e9:+.6f} s",
                explanation=f"Estimated from the packets ({c.method}, {c.samples} samples, +/- {c.uncertainty_ns / 1e6:.3f} ms); "
                            "timestamps were corrected before hops were ordered.",
                next_step="Check NTP/chrony and the time zones of the nodes.",
                node=c.node,
            ))
    return out


def _unanswered(ctx: _Context) -> list[Finding]:
    out = []
    for flow in ctx.flows:
        if flow.state == "unanswered":
            last = ctx.by_id.get(flow.journeys[-1])
            hop = last.hops[-1] if last and last.hops else None
            out.append(Finding(
                kind=FindingKind.UNANSWERED, severity=Severity.ERROR,
                title=f"{flow.proto.upper()} {flow.client} -> {flow.server}: request(s) without any reply",
                explanation=f"{flow.packets} request packet(s), no reply anywhere in the capture"
                            + (f"; last seen at {hop.point}" if hop else "") + ".",
                next_step="Look for the request at the next hop the path should take; if it arrives, the reply is lost on the way back.",
                node=hop.node if hop else None, iface=hop.iface if hop else None,
                journeys=flow.journeys, flows=(flow.id,),
            ))
    return out


class _Context:
    def __init__(self, table: pl.DataFrame, journeys: list[Journey], flows: list[Flow], verdict: ModelVerdict,
                 clocks: list[NodeClock]) -> None:
        self.table, self.journeys, self.flows, self.verdict, self.clocks = table, journeys, flows, verdict, clocks
        self.by_id = {j.id: j for j in journeys}


DETECTORS: tuple[Callable[[_Context], list[Finding]], ...] = (
    _unanswered, _retransmissions, _resets, _nat_and_tunnels, _checksums, _clock_skew,
)


def detect(table: pl.DataFrame, journeys: list[Journey], flows: list[Flow], verdict: ModelVerdict,
           clocks: list[NodeClock], inventory: object | None = None,
           model_findings: list[Finding] | None = None) -> list[Finding]:
    """Every detector's findings, after those that compare journeys with the model's expected paths."""
    ctx = _Context(table, journeys, flows, verdict, clocks)
    return list(model_findings or []) + [finding for detector in DETECTORS for finding in detector(ctx)]
