"""What the capture itself did to the evidence: unfinished checksums (offload) and nodes' clocks that disagree."""

from __future__ import annotations

from collections import defaultdict

import polars as pl

from cniscope.findings.context import Context
from cniscope.results import Finding, FindingKind, Severity

CLOCK_SKEW_NS = 1_000_000  # offsets above 1 ms are worth saying


def checksum_offload(ctx: Context) -> list[Finding]:
    """Bad L4 checksums, per node, split by whether the node sent the packet or received it."""
    bad_rows = ctx.table.select("row", "l4_csum_bad").filter(pl.col("l4_csum_bad").fill_null(False))["row"].to_list()
    if not bad_rows:
        return []
    first_node: dict[int, str] = {}  # row -> node of the first sighting of its journey
    journey_of: dict[int, int] = {}
    for j in ctx.journeys:
        if j.hops:
            origin = ctx.node(j.hops[0])
            for h in j.hops:
                first_node[h.row] = origin
                journey_of[h.row] = j.id
    sent: dict[str, list[int]] = defaultdict(list)
    received: dict[str, list[int]] = defaultdict(list)
    for row in bad_rows:
        node = ctx.node(row)
        (sent if first_node.get(row, node) == node else received)[node].append(row)
    out = []
    for node in dict.fromkeys([*sent, *received]):
        s, r = sent.get(node, []), received.get(node, [])
        ifaces = sorted({str(ctx.value(x, "iface")) for x in s + r if ctx.value(x, "iface") is not None})
        explanation = ""
        if s:
            explanation += (f"{len(s)} packet(s) were captured on {node}, where they were sent, before their TCP/UDP checksum "
                            "was filled in: the kernel leaves it to the NIC (or to the veth/tunnel device, which never "
                            "computes it), and tcpdump sees the packet first. An artefact of checksum offload, not a fault. ")
        if r:
            explanation += (f"{len(r)} packet(s) that came from another node also show a bad checksum on {node}: across veths "
                            "and virtual links the unfinished checksum travels on and is trusted, so this is expected in "
                            "virtual networks; on a physical link the receiver would drop them.")
        out.append(Finding(
            kind=FindingKind.CHECKSUM_OFFLOAD, severity=Severity.INFO,
            title=f"{len(s) + len(r)} packet(s) with bad TCP/UDP checksums on {node}"
                  + (": an artefact of checksum offload, not a fault" if s and not r else ""),
            explanation=explanation.strip(),
            next_step="Nothing to fix for packets captured on their sender. To be sure, capture on the receiving node: the "
                      "same packets arrive with correct checksums. If received packets are bad and go unanswered, check "
                      "the offload settings of the tunnel device (ethtool -k; tx-checksumming).",
            node=node, iface=ifaces[0] if len(ifaces) == 1 else None,
            journeys=tuple(dict.fromkeys(journey_of[x] for x in (s + r)[:200] if x in journey_of)),
            rows=tuple((s + r)[:50]),
        ))
    return out


def clock_skew(ctx: Context) -> list[Finding]:
    out = []
    for c in ctx.clocks:
        if abs(c.offset_ns) >= max(CLOCK_SKEW_NS, 2 * c.uncertainty_ns):  # clearly more than the estimate's own doubt
            out.append(Finding(
                kind=FindingKind.CLOCK_SKEW, severity=Severity.INFO,
                title=f"clock of {c.node} differs from {c.reference} by {c.offset_ns / 1e9:+.6f} s",
                explanation=f"Estimated from the packets ({c.method}, {c.samples} samples, +/- {c.uncertainty_ns / 1e6:.3f} ms); "
                            "timestamps were corrected before hops were ordered. Not a network fault, but times read "
                            "across nodes in the raw captures are off by that much.",
                next_step="Check NTP/chrony on the nodes (chronyc tracking) and their time zones.",
                node=c.node,
            ))
    return out
