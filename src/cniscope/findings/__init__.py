"""Detectors: typed findings with the evidence that proves them.

Three stages, each pure: the facts every detector reads, computed once
(`facts.build`: coverage, local addresses, roles); where packets vanished
(`losses.find`: by what each interface is for, and against the model's
expected paths); then every detector, `(facts, losses) -> Found`, in any
order. A detector that explains a lost packet precisely (an MTU black hole,
an asymmetric route) claims it; `detect` gathers the claims and only then
reports the unclaimed losses as `drop`, so one loss is reported once.
docs/findings.md describes every kind: what it means, how it is found,
what to check next.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import polars as pl

from cniscope import next_hops
from cniscope.findings import artefacts, mtu, nat, paths, requests, routes, tcp
from cniscope.findings import facts as facts_mod
from cniscope.findings import losses as losses_mod
from cniscope.findings.facts import Facts
from cniscope.findings.found import Found
from cniscope.findings.losses import Losses
from cniscope.results import Finding, Flow, Journey, ModelVerdict, NodeClock

if TYPE_CHECKING:  # (imported with --cluster or an inventory beside the capture)
    from cniscope.inventory import Inventory

Detector = Callable[[Facts, Losses], Found]
DETECTORS: tuple[Detector, ...] = (
    mtu.frag_needed,
    mtu.mss,
    mtu.black_holes,
    paths.asymmetric,
    routes.wrong_next_hop,
    requests.unanswered,
    tcp.retransmissions,
    tcp.resets,
    nat.missing_reverse_nat,
    nat.missing_snat,
    nat.rewrites,
    artefacts.checksum_offload,
    artefacts.clock_skew,
)


# table-wide work that needs the packet table alone: started as soon as the table is final (`start`)
EARLY = (facts_mod.in_row_order, facts_mod.node_codes, facts_mod.coverage, nat.envelopes, artefacts.bad_checksums,
         facts_mod.first_rows, facts_mod.one_input, requests.arp_sightings, requests.icmp_quoting,
         mtu.frag_needed_sightings, mtu.syns_announcing, next_hops.mac_sightings)


def start(table: pl.DataFrame, *more: Callable[[pl.DataFrame], object],
          known: Mapping[Callable[[pl.DataFrame], Any], Any] | None = None) -> facts_mod.Early:
    """`EARLY` (and `more`) on `table` on a thread of its own, beside the report's Python stages: for `facts.build`;
    `known`: results of some of them already made (`facts.start`).
    The MACs' sightings only where a sighting shows its destination MAC: their owners are asked of those only (none
    with `-i any`: 0.036 s of CPU at 2M not spent)."""
    shown = "eth_dst" in table.columns and table.get_column("eth_dst").null_count() < table.height
    return facts_mod.start(table, (*(work for work in EARLY if shown or work is not next_hops.mac_sightings), *more), known)


def detect(table: pl.DataFrame, journeys: list[Journey], flows: list[Flow], verdict: ModelVerdict,
           clocks: list[NodeClock], inventory: Inventory | None = None) -> list[Finding]:
    """Every detector's findings, then the losses none of them explained, most severe first."""
    return detect_in(facts_mod.build(table, journeys, flows, verdict, clocks, inventory))


def detect_in(facts: Facts) -> list[Finding]:
    """`detect`, on facts already built (the report also labels its hops from them: `next_hops`)."""
    with ThreadPoolExecutor(1, thread_name_prefix="requests") as pool:
        # the requests' polars queries (their Python too) on another core while the other detectors run here, first
        asked = pool.submit(requests.requests_unanswered, facts)
        losses = losses_mod.find(facts)
        by = {detector: detector(facts, losses) for detector in DETECTORS if detector is not requests.unanswered}
        by[requests.unanswered] = requests.unanswered(facts, losses, asked)
    found = [by[detector] for detector in DETECTORS]
    claimed = frozenset().union(*(f.claimed for f in found))
    dropped = paths.drops(facts, losses, claimed)
    found.append(dropped)
    rest = paths.model_paths(facts, losses, claimed | dropped.claimed)
    return sorted([f for part in found for f in part.findings] + rest, key=lambda f: -f.severity.rank)
