"""Detectors: typed findings with the evidence that proves them.

Each detector reads the correlated table, journeys, flows, the model verdict
and clocks (through one `Context`) and returns `Finding`s; none prints or
re-reads anything. They run in the order of `DETECTORS`: the ones that
explain a lost packet precisely (an MTU black hole, an asymmetric route)
run before `drop` and claim those packets, so one loss is reported once;
`drop` claims the rest. The model comparison's per-journey drops for
claimed packets are folded into the detector's finding (which names the
place, the conversation and what to check); the others are kept.
docs/findings.md describes every kind: what it means, how it is found,
what to check next.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import polars as pl

from cniscope.findings import artefacts, losses, mtu, nat, paths, requests, tcp
from cniscope.findings.context import Context
from cniscope.inventory import Inventory
from cniscope.results import Finding, FindingKind, Flow, Journey, ModelVerdict, NodeClock

DETECTORS: tuple[Callable[[Context], list[Finding]], ...] = (
    mtu.frag_needed,
    mtu.mss_over_tunnel,
    mtu.black_holes,  # claims its losses
    paths.asymmetric,  # claims losses that strict rp_filter explains
    paths.drops,
    requests.unanswered,
    tcp.retransmissions,
    tcp.resets,
    nat.missing_reverse_nat,
    nat.missing_snat,
    nat.rewrites,
    artefacts.checksum_offload,
    artefacts.clock_skew,
)


def detect(table: pl.DataFrame, journeys: list[Journey], flows: list[Flow], verdict: ModelVerdict,
           clocks: list[NodeClock], inventory: Inventory | None = None,
           model_findings: list[Finding] | None = None) -> list[Finding]:
    """The model comparison's findings merged with every detector's, most severe first.

    A model DROP (one per journey) whose packets a detector also explains is folded into that detector's
    finding; the others are gathered per place and kept, as are the model's deviations.
    """
    ctx = Context(table, journeys, flows, verdict, clocks, inventory, list(model_findings or []))
    ctx.losses = losses.find(ctx)
    found = [finding for detector in DETECTORS for finding in detector(ctx)]
    kept = [f for f in ctx.model_findings if f.kind is not FindingKind.DROP]
    unexplained = [f for f in ctx.model_findings if f.kind is FindingKind.DROP and not set(f.journeys) <= ctx.claimed]
    return sorted(kept + _gathered(unexplained) + found, key=lambda f: -f.severity.rank)


def _gathered(drops: list[Finding]) -> list[Finding]:
    """Model drops that say the same thing about the same place, as one finding."""
    groups: dict[tuple, list[Finding]] = {}
    for f in drops:
        groups.setdefault((f.node, f.iface, f.title, f.severity), []).append(f)
    out = []
    for group in groups.values():
        first = group[0]
        if len(group) == 1:
            out.append(first)
            continue
        out.append(replace(
            first, title=f"{len(group)} packets: {first.title}",
            journeys=tuple(dict.fromkeys(j for f in group for j in f.journeys)),
            flows=tuple(dict.fromkeys(x for f in group for x in f.flows)),
            rows=tuple(dict.fromkeys(r for f in group for r in f.rows)),
        ))
    return out
