"""What the capture itself did to the evidence: unfinished checksums (offload) and nodes' clocks that disagree."""

from __future__ import annotations

from collections import Counter
from typing import NamedTuple

import numpy as np
import polars as pl

from cniscope.findings.catalogue import say
from cniscope.findings.facts import ROLE_CODES, Facts
from cniscope.findings.found import Found
from cniscope.findings.losses import Losses
from cniscope.journeys import NO_ADDRESS
from cniscope.models import Role
from cniscope.models.evidence import code_names, named_counts
from cniscope.packets.schema import Direction, Tunnel
from cniscope.results import Evidence, Finding, FindingKind, Journey, Severity

CLOCK_SKEW_NS = 1_000_000  # offsets above 1 ms are worth saying


STALLED = ("unanswered", "handshake incomplete")


def checksum_offload(facts: Facts, losses: Losses) -> Found:
    """Bad TCP/UDP checksums: one finding for the capture, saying which packets were sent and which received; and a
    warning per tunnel device whose envelopes carry bad outer checksums while their conversation stalls."""
    t = facts.table
    early = facts.ahead(bad_checksums)
    inner, outer, per_iface = early.inner, early.outer, early.per_iface
    stalled = _outer(facts, outer)
    said = np.array([r for f in stalled for r in f.rows], dtype=np.int64)  # said by the warning
    bad_rows, journey_of, packets = inner, early.journeys, early.packets  # rows are table positions (the facts keep the table in row order)
    if len(outer):
        bad = np.zeros(t.height, dtype=bool)  # marked, not numpy's set operations (they hash: 0.7 s a call at 2M)
        bad[inner] = bad[outer] = True
        bad[said] = False
        bad_rows = np.flatnonzero(bad).astype(np.uint32)
        journey_of = _journeys(t, bad_rows)
        packets = _distinct(journey_of)
    if not len(bad_rows):
        return Found(stalled)
    # a packet counts as seen where it was sent unless it is materialised, its path then tells: only the bad sightings of
    # materialised journeys are judged one by one (whole-table arrays of each sighting's verdict were 0.3 s at 10M); their
    # arrays are as long as the materialised journeys' highest id, not the capture's (fresh pages: 0.04 s at 10M)
    places = facts.journey_places  # each judged journey's place in `facts.journeys`
    size = len(places)
    judged = _below(journey_of, size)
    judged = judged[places[journey_of[judged]] >= 0]
    judged_journeys = journey_of[judged]
    origin = np.full(size, -1, dtype=np.int32)  # journey -> first node
    arrived = np.zeros(size, dtype=bool)  # first seen coming in by a NIC: sent by another host
    # each judged journey's first hop in path order (`Facts.path`), found over the hops' columns
    walked = np.unique(judged_journeys)
    at = facts.path_firsts()[places[walked]]
    walked, at = walked[at >= 0], at[at >= 0]
    hops = facts.hop_columns("direction")[at]
    origin[walked] = facts.node_codes[hops["row"].to_numpy()]
    arrived[walked] = ((hops["direction"] == int(Direction.IN)) & (hops["role"] == ROLE_CODES[Role.NIC])).fill_null(False).to_numpy()
    judged_nodes = facts.node_codes[bad_rows[judged]]
    first = origin[judged_journeys]
    judged_sent = ((first < 0) | (first == judged_nodes)) & ~arrived[judged_journeys]

    def sent_received(everyone: int, here: np.ndarray | None = None) -> tuple[int, int]:
        """Of the `everyone` packets with a bad sighting (at the node whose judged sightings are `here`): how many
        were seen where they were sent, how many where they arrived."""
        sent_here = judged_sent if here is None else judged_sent & here
        received_here = ~judged_sent if here is None else ~judged_sent & here
        mine = _distinct(judged_journeys if here is None else judged_journeys[here], size)
        return everyone - mine + _distinct(judged_journeys[sent_here], size), _distinct(judged_journeys[received_here], size)

    sent, received = sent_received(packets)
    nodes = facts.node_codes[bad_rows] if len(facts.node_names) > 1 else None
    per_node = []
    for code in _in_order(nodes) if nodes is not None else [0]:
        s, r = (sent, received) if nodes is None else sent_received(_distinct(journey_of[nodes == code]), judged_nodes == code)
        parts = ([f"{s} it sent"] if s else []) + ([f"{r} that arrived from another node"] if r else [])
        per_node.append(f"{facts.named(facts.node_names[code]) or 'the capturing node'}: {' and '.join(parts)}")
    explanation = (f"{packets} packet(s) show a TCP/UDP checksum that was never filled in ({'; '.join(per_node)}). "
                   "Captured on the node that sent them, this is checksum offload: the kernel leaves the checksum to the "
                   "NIC (or to a veth or tunnel device, which never computes it) and tcpdump sees the packet first.")
    if received:
        explanation += (" Received ones travelled over veths or virtual links (containers, labs, most cloud NICs), which "
                        "pass the unfinished checksum on and trust it: expected there; a physical NIC would have "
                        "dropped them.")
    envelopes = outer[~np.isin(outer, said)]
    device = None
    if len(envelopes):
        row = int(envelopes[0])
        found = facts.journey_of(row)
        device = _tunnel_device(facts, facts.node(row), found, row) if found is not None else None
        explanation += (f" {len(envelopes)} of them are tunnel envelopes with an unfinished outer UDP checksum: "
                        f"{device or 'the tunnel device'} leaves it to the NIC (tx-checksum offload). Harmless while the "
                        "conversations inside go on; if they stall, it is the known VXLAN checksum-offload problem "
                        f"(ethtool -K {device or '<vxlan device>'} tx-checksum-ip-generic off).")
    unsaid = Counter(per_iface)
    unsaid.subtract(iface for r in said.tolist() if (iface := facts.text(r, "iface")) is not None)
    ifaces = sorted(iface for iface, n in unsaid.items() if n > 0)
    out = [Finding(
        kind=FindingKind.CHECKSUM_OFFLOAD, severity=Severity.INFO,
        title=f"{packets} packet(s) with unfinished TCP/UDP checksums ({sent} seen on the node that sent them, "
              f"{received} on a node they arrived at): checksum offload, not a fault",
        explanation=explanation,
        next_step=say("checksum_offload"), key="checksum_offload",
        node=facts.named(facts.node_names[0]) if nodes is None else
        facts.named(facts.node_names[nodes[0]]) if bool((nodes == nodes[0]).all()) else None,
        iface=ifaces[0] if len(ifaces) == 1 else None,
        journeys=tuple(int(x) for x in journey_of[:200] if int(x) in facts.by_id),
        rows=tuple(bad_rows[:50].tolist()),
        evidence=Evidence(packets=packets, sent=sent, received=received, interfaces=tuple(ifaces), device=device),
    )]
    return Found(stalled + out)


class BadChecksums(NamedTuple):
    """The rows (ascending) of TCP/UDP packets with a bad checksum, of envelopes with a bad outer UDP checksum, and
    how many of either each named interface shows; the journey of each `inner` row and how many packets they are."""

    inner: np.ndarray
    outer: np.ndarray
    per_iface: dict[str, int]
    journeys: np.ndarray
    packets: int


def bad_checksums(t: pl.DataFrame) -> BadChecksums:
    """The sightings with a bad TCP/UDP checksum, inner or outer (ICMP checksums are judged too, but no NIC offloads
    them: a wrong one is a wrong one): in C, one pass over the columns, or in polars."""
    if COMPILED and t.height < 1 << 32:
        return c_bad_checksums(t)
    return python_bad_checksums(t)


# the columns `_evidence.bad_checksums` reads, in its order
CHECKSUM_COLUMNS = ("l4_csum_bad", "proto", "outer_l4_csum_bad", "iface", "journey")


def c_bad_checksums(t: pl.DataFrame) -> BadChecksums:
    """`bad_checksums` in C (`_evidence.bad_checksums`: 10M sightings, 5M of them bad, 93 -> 37 ms of CPU): the
    rows written into arrays as long as the table, shrunk in place after (only the pages written are taken)."""
    columns = tuple(None if name not in t.columns or (s := t.get_column(name)).null_count() == s.len() > 0
                    else s.to_physical().__arrow_c_stream__() for name in CHECKSUM_COLUMNS)
    numbered = columns[-1] is not None  # else each row its own journey
    inner, outer = np.empty(t.height, dtype=np.uint32), np.empty(t.height, dtype=np.uint32)
    journeys = np.empty(t.height if numbered else 0, dtype=np.uint32)
    n_inner, n_outer, packets, counts = c_checksums(columns, t.height, inner, journeys, outer)
    for found, n in ((inner, n_inner), (outer, n_outer), (journeys, n_inner if numbered else 0)):
        found.resize(n, refcheck=False)
    per_iface = code_names(np.frombuffer(counts, dtype=np.int64), t.schema["iface"])
    return BadChecksums(inner, outer, per_iface, journeys if numbered else inner, packets)


def python_bad_checksums(t: pl.DataFrame) -> BadChecksums:
    """`bad_checksums` in polars, where C was not built."""
    inner = pl.col("l4_csum_bad").fill_null(False) & pl.col("proto").is_in([6, 17]).fill_null(False)
    outer = pl.col("outer_l4_csum_bad").fill_null(False) if "outer_l4_csum_bad" in t.columns else pl.lit(False)
    def rows(bad: pl.Expr) -> np.ndarray:  # polars' 32-bit positions as they are (4M bad sightings at 10M: 16 MB, not 32)
        found: np.ndarray = t.lazy().select(pl.arg_where(bad)).collect().to_series().to_numpy()
        return found

    # the interfaces counted over their codes (grouped by name: 0.04 s of CPU at 10M, where 4.8M sightings are bad)
    per_iface = named_counts(t.lazy().select(pl.col("iface").filter(inner | outer)).collect().to_series())
    if "journey" in t.columns:  # the journey of each (what the detector reads of them when no envelope is bad) filtered
        # beside their positions, not gathered at them after (4.8M bad sightings at 10M: 0.071 -> 0.045 s of CPU)
        found = t.lazy().select(rows=pl.arg_where(inner), journey=pl.col("journey").filter(inner)).collect()
        inner_rows, journeys = found.get_column("rows").to_numpy(), found.get_column("journey").to_numpy()
    else:
        inner_rows = journeys = rows(inner)
    return BadChecksums(inner_rows, rows(outer), per_iface, journeys, _distinct(journeys))


def _journeys(t: pl.DataFrame, rows: np.ndarray) -> np.ndarray:
    """The journey of each row (the row itself when the table has no journeys)."""
    if "journey" not in t.columns:
        return rows
    found: np.ndarray = t.get_column("journey").gather(rows).to_numpy()
    return found


def _outer(facts: Facts, rows: np.ndarray) -> list[Finding]:
    """Envelopes with a bad outer UDP checksum whose inner conversation stalls: the tunnel device's checksum offload."""
    stalled: dict[tuple[str, str], list[int]] = {}
    for row in rows.tolist():
        j = facts.journey_of(row)
        flow = facts.flow_by_id.get(j.flow) if j is not None and j.flow is not None else None
        if j is None or flow is None or not (flow.state in STALLED or flow.retransmissions):
            continue
        node = facts.node(row)
        stalled.setdefault((node, _tunnel_device(facts, node, j, row)), []).append(row)
    out = []
    for (node, device), bad in stalled.items():
        jids = list(dict.fromkeys(jid for r in bad if (jid := facts.number(r, "journey")) is not None))
        flows = list(dict.fromkeys(f for jid in jids if (f := facts.by_id[jid].flow) is not None))
        talk = [facts.flow_by_id[f] for f in flows]
        kind = Tunnel(facts.number(bad[0], "tunnel") or 0).label
        ends = (facts.addr(bad[0], "outer_src") or NO_ADDRESS, facts.addr(bad[0], "outer_dst") or NO_ADDRESS)
        missing = facts.unrecorded(bad[:1])
        conversation = f"{talk[0].proto.upper()} {talk[0].client} -> {talk[0].server}"
        out.append(Finding(
            kind=FindingKind.CHECKSUM_OFFLOAD, severity=Severity.WARNING,
            title=f"{kind} envelopes from {ends[0]} to {ends[1]} carry bad outer UDP checksums while {conversation} "
                  f"stalls: checksum offload of {device} on {node}",
            explanation=f"{len(bad)} {kind} envelope(s) seen at {facts.where(bad[0])} have a wrong outer UDP checksum, and the "
                        f"conversation inside is re-sent or unanswered ({talk[0].state}, {talk[0].retransmissions} re-send(s)). "
                        "This is the known VXLAN checksum-offload problem of flannel and Calico: the kernel hands the "
                        "tunnel's outer checksum to a NIC (or a virtual NIC) that corrupts or drops it, so the receiving "
                        "node discards the envelopes." + facts.how_to_record(missing),
            next_step=say("checksum_offload.tunnel", node=node, device=device), key="checksum_offload.tunnel",
            node=facts.named(node), iface=facts.text(bad[0], "iface"),
            journeys=tuple(jids[:200]), flows=tuple(flows[:200]), rows=tuple(bad),
            evidence=Evidence(packets=len(jids), device=device, addresses=ends, notes=missing,
                              interfaces=tuple(dict.fromkeys(facts.where(r) for r in bad))),
        ))
    return out


def _tunnel_device(facts: Facts, node: str, journey: Journey, row: int) -> str:
    """The tunnel device on `node` that made these envelopes: seen in the journey, in the node's capture, or the model's."""
    for hop in journey.hops:
        if hop.iface is not None and facts.node(hop) == node and facts.role(hop.iface) is Role.TUNNEL:
            return hop.iface
    for iface, _ in sorted(facts._node_ifaces.get(node, set()), key=str):
        if iface is not None and facts.role(iface) is Role.TUNNEL:
            return iface
    kind = Tunnel(facts.number(row, "tunnel") or 0)
    named = [e.device for e in (facts.model.encaps if facts.model else ()) if e.kind is kind]
    return named[0] if named else f"<the {kind.label} device> (ip -d link show type {kind.label})"


def _below(values: np.ndarray, limit: int, block: int = 1 << 16) -> np.ndarray:
    """The positions of the values below `limit`, a block at a time: no boolean array as long as `values` (4.8M bad
    sightings at 10M), whose fresh pages cost more than the comparisons."""
    found = [np.flatnonzero(values[at:at + block] < limit) + at for at in range(0, len(values), block)]
    return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)


def _distinct(journeys: np.ndarray, size: int | None = None) -> int:
    """How many distinct journey ids (below `size`, default: the highest one's): marked in a dense array, no hashing
    nor sorting."""
    if size is None:
        size = int(journeys.max()) + 1 if len(journeys) else 0
    seen = np.zeros(size, dtype=bool)
    seen[journeys] = True
    return int(seen.sum())


def _in_order(codes: np.ndarray) -> list[int]:
    """Distinct values (node codes: a few) in order of first appearance, without sorting the positions of every one."""
    values: list[int] = np.unique(codes).tolist()
    return sorted(values, key=lambda v: int(np.argmax(codes == v)))


def clock_skew(facts: Facts, losses: Losses) -> Found:
    """Nodes' clocks (or pasted segments' clocks) that differ by more than their estimate's own doubt."""
    out = []
    for c in facts.clocks:
        if abs(c.offset_ns) >= max(CLOCK_SKEW_NS, 2 * c.uncertainty_ns):  # clearly more than the estimate's own doubt
            zone = _time_zone(c.offset_ns)
            out.append(Finding(
                kind=FindingKind.CLOCK_SKEW, severity=Severity.INFO,
                title=f"clock of {_clock_owner(c.node)} differs from {_clock_owner(c.reference)} by {c.offset_ns / 1e9:+.6f} s"
                      + (f" ({zone})" if zone else ""),
                explanation=f"Estimated from the packets ({c.method}, {c.samples} samples, +/- {c.uncertainty_ns / 1e6:.3f} ms); "
                            "timestamps were corrected before hops were ordered. Not a network fault, but times read "
                            "across nodes in the raw captures are off by that much."
                            + (f" A whole number of half hours apart: {zone}, tcpdump prints local time." if zone else ""),
                next_step=say("clock_skew"), key="clock_skew",
                node=c.node,
                evidence=Evidence(offset_ns=c.offset_ns, packets=c.samples),
            ))
    return Found(out)


def _clock_owner(name: str) -> str:
    """A node, or what the reader made of a paste without names: its first segment, a later one (`part 2`)."""
    if name.startswith("input "):
        return "the first pasted segment"
    if name.startswith("part "):
        return f"pasted segment {name[5:]}"
    return name


def _time_zone(offset_ns: int) -> str:
    """"time zones 12 h apart" when the offset is a whole number of half hours (to within 5 s)."""
    half_hours = round(offset_ns / 1.8e12)
    if half_hours == 0 or abs(offset_ns - half_hours * 1.8e12) > 5e9:
        return ""
    return f"time zones {abs(half_hours) / 2:g} h apart"


try:
    from cniscope._evidence import bad_checksums as c_checksums
    COMPILED = True
except ImportError:  # built without a C compiler
    COMPILED = False
