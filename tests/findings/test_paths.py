"""drop and asymmetric_path on synthetic captures (kube-router-like two nodes, `-i any` on each)."""

from __future__ import annotations

from dataclasses import replace

import polars as pl
import pytest

from cniscope.findings import paths
from cniscope.findings.facts import Facts, build
from cniscope.findings.losses import find
from cniscope.models.roles import Mismatch
from cniscope.results import FindingKind, Severity
from tests.findings.two_nodes import (
    CLIENT,
    INTO_N1,
    INTO_N3,
    N1,
    N3,
    OUT_OF_N1,
    V3,
    WEB,
    conversation,
)
from tests.findings.wire import ACK, IN, OUT, SYN, Wire, alarms, arp, of_kind, tcp
from tests.paths import DATA, SEED


def test_a_clean_cross_node_exchange_raises_no_alarm() -> None:
    wire = Wire()
    conversation(wire, 0)
    conversation(wire, 500_000, sport=40001)
    report = wire.analyze()
    assert alarms(report) == []
    assert of_kind(report, FindingKind.RETRANSMISSION) == []


def test_syn_forwarded_nowhere_is_a_drop_at_the_nic_with_the_forward_chain_to_check() -> None:
    wire = Wire()
    conversation(wire, 0)  # node3 is captured and knows its pod
    for i, delay in enumerate((0, 1_000_000, 3_000_000)):  # the SYN and two re-sends, each lost after node3 eth0 In
        wire.path(tcp(CLIENT, 41000, WEB, 80, SYN, 5000, ip_id=10 + i), OUT_OF_N1 + INTO_N3[:1], 1_000_000 + delay)
    conversation(wire, 5_000_000, sport=40002)  # and the capture went on
    report = wire.analyze()
    drops = of_kind(report, FindingKind.DROP)
    assert len(drops) == 1
    drop = drops[0]
    assert (drop.node, drop.iface, drop.severity) == (N3, "eth0", Severity.ERROR)
    assert len(drop.journeys) == 3
    assert drop.key == "drop.forward"  # the FORWARD chain, routes, rp_filter
    unanswered = of_kind(report, FindingKind.UNANSWERED)
    assert len(unanswered) == 1 and unanswered[0].evidence.retries == 2


def test_packet_that_left_a_node_but_never_reached_the_captured_peer() -> None:
    wire = Wire()
    conversation(wire, 0)
    wire.path(tcp(CLIENT, 41000, WEB, 80, SYN, 5000, ip_id=10), OUT_OF_N1, 1_000_000)
    conversation(wire, 2_000_000, sport=40002)
    drop = of_kind(wire.analyze(), FindingKind.DROP)
    assert len(drop) == 1
    assert (drop[0].node, drop[0].iface) == (N1, "eth0")
    assert drop[0].evidence.peer == "node3"  # left node1, never reached node3
    # -i any records no destination MAC: the finding says so, and how to see it
    assert drop[0].evidence.mac is None and "mac_unrecorded" in drop[0].evidence.notes


def test_a_packet_delivered_to_the_node_itself_is_no_drop() -> None:
    wire = Wire()
    conversation(wire, 0)
    node3 = "192.168.200.13"
    wire.path(tcp(node3, 50000, CLIENT, 22, SYN, 1, ip_id=5), [(N3, "eth0", OUT)] + INTO_N1, 100_000)  # node3 sends: its address
    wire.path(tcp(CLIENT, 22, node3, 50000, SYN | ACK, 7, 2, ip_id=6), OUT_OF_N1 + [(N3, "eth0", IN)], 100_200)
    wire.path(tcp(node3, 50000, CLIENT, 22, ACK, 2, 8, ip_id=7), [(N3, "eth0", OUT)] + INTO_N1, 100_400)
    conversation(wire, 1_000_000, sport=40002)
    assert of_kind(wire.analyze(), FindingKind.DROP) == []


def _syns_to_node3_after_its_arp(spa: str, tpa: str, dst: str) -> Wire:
    """node3's only packet from an address is its ARP (sender `spa`, target `tpa`), then SYNs to `dst` arrive on
    its NIC and go no further: a short capture of a node that sends nothing else from that address."""
    wire = Wire()
    conversation(wire, 0)
    wire.see(arp(2, spa, tpa), N3, "eth0", OUT, 90_000)
    for i in range(3):
        wire.see(tcp(CLIENT, 50000, dst, 10250, SYN, 1, ip_id=5 + i), N3, "eth0", IN, 100_000 + i * 1_000_000)
    conversation(wire, 5_000_000, sport=40002)
    return wire


def test_a_node_that_only_answered_arp_for_its_address_receives_packets_to_it() -> None:
    node3 = "192.168.200.13"
    report = _syns_to_node3_after_its_arp(node3, CLIENT, node3).analyze()
    assert of_kind(report, FindingKind.DROP) == []  # delivered to a local socket: nothing to forward
    unanswered = of_kind(report, FindingKind.UNANSWERED)  # but the node never answered
    assert [(f.node, f.iface, f.evidence.retries) for f in unanswered] == [(N3, "eth0", 2)]


def test_gratuitous_arp_does_not_make_an_address_the_nodes() -> None:
    vip = "192.168.200.100"  # a virtual address a node announces (keepalived, MetalLB) may move to another host
    drops = of_kind(_syns_to_node3_after_its_arp(vip, vip, vip).analyze(), FindingKind.DROP)
    assert [(f.node, f.iface, f.key) for f in drops] == [(N3, "eth0", "drop.forward")]


def test_a_capture_on_one_interface_cannot_prove_a_drop_after_it() -> None:
    wire = Wire()
    for i in range(3):
        wire.see(tcp(CLIENT, 41000 + i, WEB, 80, SYN, 5000 + i, ip_id=10 + i), N3, "eth0", IN, i * 1_000_000)
    for row in wire.rows:
        row["linktype"] = 1  # Ethernet: `tcpdump -i eth0`
    assert of_kind(wire.analyze(), FindingKind.DROP) == []


def test_asymmetric_route_with_strict_rp_filter() -> None:
    wire = Wire()
    conversation(wire, 0)
    outsider = "10.244.1.50"
    for i in range(3):  # packets from the outsider arrive on eth0 and go no further
        wire.path(tcp(outsider, 42000, WEB, 80, SYN, 7000, ip_id=20 + i), [(N3, "eth0", IN)], 1_000_000 + i * 1_000_000)
    for i in range(2):  # node3's own packets to the outsider leave by eth1
        wire.see(tcp("192.168.201.13", 43000, outsider, 9100, SYN, 800 + i, ip_id=30 + i), N3, "eth1", OUT, 1_500_000 + i * 1_000_000)
    conversation(wire, 5_000_000, sport=40002)
    report = wire.analyze()
    asym = of_kind(report, FindingKind.ASYMMETRIC_PATH)
    assert len(asym) == 1
    assert (asym[0].node, asym[0].iface, asym[0].severity) == (N3, "eth0", Severity.ERROR)
    assert asym[0].evidence.interfaces == (f"{N3} eth0 In", f"{N3} eth1 Out") and asym[0].key == "asymmetric_path"
    assert of_kind(report, FindingKind.DROP) == []  # the same losses, explained once


def test_a_port_filtered_capture_that_never_shows_envelopes_claims_no_drop_after_the_tunnel() -> None:
    """`tcpdump -i any port 80` on a flannel node: the tunnel's UDP envelopes are filtered out, both ways."""
    wire = Wire()
    out3 = [(N3, V3, IN), (N3, "cni0", IN), (N3, "flannel.1", OUT)]
    in3 = [(N3, "flannel.1", IN), (N3, "cni0", OUT), (N3, V3, OUT)]
    for i in range(3):
        sport, c, s = 40000 + i, 1000 + i * 100, 9000 + i * 100
        t = i * 1_000_000
        wire.path(tcp(CLIENT, sport, WEB, 80, SYN, c, ip_id=1), in3, t)
        wire.path(tcp(WEB, 80, CLIENT, sport, SYN | ACK, s, c + 1, ip_id=0), out3, t + 100)
        wire.path(tcp(CLIENT, sport, WEB, 80, ACK, c + 1, s + 1, ip_id=2), in3, t + 300)
    report = wire.analyze()
    assert alarms(report) == []
    drops = of_kind(report, FindingKind.DROP)
    assert drops and {d.severity for d in drops} == {Severity.INFO}  # said, with the caveat, not alarmed
    assert all("envelopes_filtered" in d.evidence.notes for d in drops)


def test_drops_the_model_comparison_also_reported_are_reported_once() -> None:
    wire = Wire()
    conversation(wire, 0)
    wire.path(tcp(CLIENT, 41000, WEB, 80, SYN, 5000, ip_id=10), OUT_OF_N1 + INTO_N3[:1], 1_000_000)
    conversation(wire, 2_000_000, sport=40002)
    report = wire.analyze()
    mine = of_kind(report, FindingKind.DROP)
    assert len(mine) == 1
    facts = build(report.table, report.journeys, report.flows, report.model, report.clocks)
    lost = find(facts)
    dropped = report.journeys[mine[0].journeys[0]]
    agrees = Mismatch(dropped, N3, dropped.hops, "pod veth, out", "pod to pod", "kube-router")
    hops = report.journeys[0].hops[:1]
    elsewhere = [Mismatch(report.journeys[jid], "node9", hops, "pod bridge cni0, out", "pod to pod", "kube-router")
                 for jid in (0, 1)]
    lost = replace(lost, model=(agrees, *elsewhere))
    drops = paths.drops(facts, lost, frozenset())
    assert [d.journeys for d in drops.findings] == [mine[0].journeys] and drops.claimed == set(mine[0].journeys)
    assert "model_agrees" in drops.findings[0].evidence.notes
    gathered = paths.model_paths(facts, lost, drops.claimed)
    assert [(d.node, d.journeys, d.evidence.packets) for d in gathered] == [("node9", (0, 1), 2)]


def _walked_ways(facts: Facts) -> set[tuple[bool, str, str, str]]:
    """(inbound, node, remote, way) as `asymmetric` walks the journeys (the ingress ones not the node's own)."""
    found = set()
    for j in facts.journeys:
        by_node: dict[str, list] = {}
        for hop in j.hops:
            by_node.setdefault(facts.node(hop), []).append(hop)
        for node, hops in by_node.items():
            cov = facts.coverage.get(node)
            if cov is None or not cov.every_iface:
                continue
            found |= {(True, node, remote, way) for way, remote in paths._ways_in(facts, hops)
                      if remote is not None and not facts.is_local(node, remote)}
            found |= {(False, node, remote, way) for way, remote in paths._ways_out(facts, hops) if remote is not None}
    return found


def _column_ways(facts: Facts) -> set[tuple[bool, str, str, str]]:
    names = dict(zip(facts.hops["iface"].to_physical().to_list(), facts.hops["iface"].cast(pl.String).to_list()))
    return {(inbound, facts.node_names[node], remote, names[way]) for inbound, node, remote, way in paths._ways(facts).iter_rows()
            if not inbound or not facts.is_local(facts.node_names[node], remote)}


@pytest.mark.parametrize("case", ["asymmetric", "seed", "two nodes", *(f"{m}/{s}" for m in ("flannel-vxlan", "calico-vxlan", "antrea-geneve")
                                                                      for s in ("cross-node", "node-port"))])
def test_the_ways_in_and_out_over_the_hops_as_columns_are_the_walks(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`paths._ways` finds the (node, remote address, way) in and out that `asymmetric` walks the journeys for, on one
    node and several, tunnels and ARP; and `asymmetric` says the same without it (walking every time)."""
    from cniscope.analyze import analyze
    from cniscope.sources import InputSpec

    if case == "asymmetric":
        wire = Wire()
        conversation(wire, 0)
        wire.path(tcp("10.244.1.50", 42000, WEB, 80, SYN, 7000, ip_id=20), [(N3, "eth0", IN)], 1_000_000)
        wire.see(tcp("192.168.201.13", 43000, "10.244.1.50", 9100, SYN, 800, ip_id=30), N3, "eth1", OUT, 1_500_000)
        wire.see(arp(1, "192.168.201.13", "192.168.201.99"), N3, "eth1", OUT, 1_600_000)
        report = wire.analyze()
    elif case == "two nodes":
        wire = Wire()
        conversation(wire, 0)
        report = wire.analyze()
    else:
        report = analyze([InputSpec(str(SEED if case == "seed" else DATA / "scenarios" / case))])
    facts = build(report.table, report.journeys, report.flows, report.model, report.clocks, report.inventory)
    walked = _walked_ways(facts)
    assert _column_ways(facts) == walked
    assert walked or case == "seed"
    found = paths.asymmetric(facts, find(facts))
    monkeypatch.setattr(paths, "_asymmetric_somewhere", lambda facts: True)
    assert paths.asymmetric(facts, find(facts)) == found
    assert bool(found.findings) is (case == "asymmetric")
