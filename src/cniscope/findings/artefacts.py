"""What the capture itself did to the evidence: unfinished checksums (offload) and nodes' clocks that disagree."""

from __future__ import annotations

import numpy as np
import polars as pl

from cniscope.findings.facts import Facts
from cniscope.findings.found import Found
from cniscope.findings.losses import Losses
from cniscope.results import Finding, FindingKind, Severity

CLOCK_SKEW_NS = 1_000_000  # offsets above 1 ms are worth saying


def checksum_offload(facts: Facts, losses: Losses) -> Found:
    """Bad L4 checksums, per node, split by whether the node sent the packet or received it."""
    bad = facts.table.select(pl.col("l4_csum_bad").fill_null(False)).to_series().to_numpy()
    bad_rows = np.flatnonzero(bad)  # rows are table positions (Facts keeps the table in row order)
    if not len(bad_rows):
        return Found([])
    journey_of: dict[int, int] = {}
    origin_of: dict[int, int] = {}  # row -> node code of the first sighting of its journey (materialised journeys)
    for j in facts.journeys:
        if j.hops:
            origin = int(facts.node_codes[j.hops[0].row])
            for h in j.hops:
                origin_of[h.row] = origin
                journey_of[h.row] = j.id
    nodes = facts.node_codes[bad_rows]
    origins = nodes.copy()
    if origin_of:
        known = np.array(sorted(origin_of), dtype=np.int64)
        at = np.clip(np.searchsorted(known, bad_rows), 0, len(known) - 1)
        hit = known[at] == bad_rows
        origins[hit] = np.array([origin_of[int(r)] for r in bad_rows[hit]], dtype=origins.dtype)
    was_sent = origins == nodes
    none = np.empty(0, dtype=bad_rows.dtype)
    sent = {code: bad_rows[(nodes == code) & was_sent] for code in _in_order(nodes[was_sent])}
    received = {code: bad_rows[(nodes == code) & ~was_sent] for code in _in_order(nodes[~was_sent])}
    iface = facts.table.get_column("iface")
    out = []
    for code in dict.fromkeys([*sent, *received]):
        node = facts.node_names[code]
        s, r = sent.get(code, none), received.get(code, none)
        both = np.concatenate([s, r])
        ifaces = sorted(iface.gather(both).drop_nulls().unique().to_list())
        explanation = ""
        if len(s):
            explanation += (f"{len(s)} packet(s) were captured on {node}, where they were sent, before their TCP/UDP checksum "
                            "was filled in: the kernel leaves it to the NIC (or to the veth/tunnel device, which never "
                            "computes it), and tcpdump sees the packet first. An artefact of checksum offload, not a fault. ")
        if len(r):
            explanation += (f"{len(r)} packet(s) that came from another node also show a bad checksum on {node}: across veths "
                            "and virtual links the unfinished checksum travels on and is trusted, so this is expected in "
                            "virtual networks; on a physical link the receiver would drop them.")
        out.append(Finding(
            kind=FindingKind.CHECKSUM_OFFLOAD, severity=Severity.INFO,
            title=f"{len(s) + len(r)} packet(s) with bad TCP/UDP checksums on {node}"
                  + (": an artefact of checksum offload, not a fault" if len(s) and not len(r) else ""),
            explanation=explanation.strip(),
            next_step="Nothing to fix for packets captured on their sender. To be sure, capture on the receiving node: the "
                      "same packets arrive with correct checksums. If received packets are bad and go unanswered, check "
                      "the offload settings of the tunnel device (ethtool -k; tx-checksumming).",
            node=node, iface=ifaces[0] if len(ifaces) == 1 else None,
            journeys=tuple(dict.fromkeys(journey_of[x] for x in both[:200].tolist() if x in journey_of)),
            rows=tuple(both[:50].tolist()),
        ))
    return Found(out)


def _in_order(codes: np.ndarray) -> list[int]:
    """Distinct values in order of first appearance."""
    values, first = np.unique(codes, return_index=True)
    return values[np.argsort(first)].tolist()


def clock_skew(facts: Facts, losses: Losses) -> Found:
    out = []
    for c in facts.clocks:
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
    return Found(out)
