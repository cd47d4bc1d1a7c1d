"""Detectors: typed findings with the evidence that proves them.

Each detector reads the correlated table, journeys, flows, the model verdict
and clocks (through one `Context`) and returns `Finding`s; none prints or
re-reads anything. They run in the order of `DETECTORS`: the ones that
explain a lost packet precisely (an MTU black hole, an asymmetric route)
run before `drop` and claim those packets, so one loss is reported once;
a journey the model comparison already reported as a drop is claimed too.
docs/findings.md describes every kind: what it means, how it is found,
what to check next.
"""

from __future__ import annotations

from collections.abc import Callable

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
    """The model comparison's findings (deviations, drops), then every detector's, most severe first."""
    ctx = Context(table, journeys, flows, verdict, clocks, inventory, list(model_findings or []))
    for finding in ctx.model_findings:
        if finding.kind is FindingKind.DROP:
            ctx.claimed.update(finding.journeys)
    ctx.losses = losses.find(ctx)
    found = list(ctx.model_findings) + [finding for detector in DETECTORS for finding in detector(ctx)]
    return sorted(found, key=lambda f: -f.severity.rank)
