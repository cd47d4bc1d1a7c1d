"""results: hops, journeys and flows made as their dataclasses would make them."""

from __future__ import annotations

import dataclasses

import pytest

from cniscope.results import (
    Change,
    ChangeKind,
    Endpoint,
    Finding,
    FindingKind,
    Flow,
    FlowState,
    Hop,
    HopDirection,
    Journey,
    Proto,
    Severity,
    made,
    make_endpoint,
    make_flow,
)


def test_made_is_what_the_dataclass_makes() -> None:
    client, server = Endpoint("10.0.0.1", 40000), Endpoint("10.96.0.10", 53)
    values = (7, "1:key", Proto.UDP, client, server, ((client, server),), (3, 4), 2, 20, 1, 2, FlowState.ANSWERED,
              {"syn_to_synack_ns": 5}, 1, 0, 0, (), ("DNS: 1 queries, 1 answered",))
    flow, init = made(Flow, *values), Flow(*values)
    fields = [f.name for f in dataclasses.fields(Flow)]
    assert make_flow(*values) == flow and flow == init
    assert tuple(getattr(flow, name) for name in fields) == tuple(getattr(init, name) for name in fields) == values  # (in slots)
    hop = (3, "node1", "eth0", HopDirection.OUT, 10, None, "node1 eth0 Out", None, (Change(ChangeKind.TTL, "64", "63"),), None, None)
    assert made(Hop, *hop) == Hop(*hop) and tuple(getattr(made(Hop, *hop), f.name) for f in dataclasses.fields(Hop)) == hop  # (in slots)
    assert made(Hop, *hop).sent_to("aa:bb", "node2") == Hop(*hop[:-2], "aa:bb", "node2")
    assert made(Journey, 1, 7, "UDP", None, ()) == Journey(1, 7, "UDP", None, ())
    assert make_endpoint("fd00::1", 80) == Endpoint("fd00::1", 80) and (make_endpoint("a", None).addr, make_endpoint("a", None).port) == ("a", None)
    with pytest.raises(TypeError):
        made(Journey, 1, 7, "UDP", ())  # every field, or none (as the class itself says)
    with pytest.raises(TypeError):
        make_flow(*values, ())


def test_a_finding_lists_its_packets_in_numeric_order_each_once() -> None:
    """Whatever order a check met them in (a tunnel's envelopes, a NAT's requests then its replies), a finding's
    packets read 30, 33, 34, 37: journeys are numbered by their first sighting, so that is the order they were first seen."""
    finding = Finding(FindingKind.TUNNEL, Severity.INFO, "tunnel", "", "", journeys=(30, 34, 33, 37, 34), flows=(9, 2), rows=(8, 5))
    assert finding.journeys == (30, 33, 34, 37)
    assert (finding.flows, finding.rows) == ((9, 2), (8, 5))  # conversations and sightings keep their order
    assert dataclasses.replace(finding, journeys=(5, 1, 5)).journeys == (1, 5)
