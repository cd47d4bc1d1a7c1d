"""The classes of issue #16, each in a form users paste (tests/data/findings, see its README), asserted on the
findings' typed evidence; and precision: the healthy lab scenarios of every buildable model raise no alarm."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cniscope.analyze import analyze
from cniscope.lab.scenarios import SCENARIOS as SCENARIO_NAMES
from cniscope.report import html as html_report
from cniscope.report import pcapng_out
from cniscope.report import text as text_report
from cniscope.report.json_out import to_dict
from cniscope.results import FindingKind, Report, Severity
from cniscope.sources import InputSpec
from tests.findings.wire import alarms, of_kind
from tests.lab.helpers import BUILDABLE
from tests.paths import CORPUS, DATA, SEED

PASTED = DATA / "findings"
SCENARIOS = sorted(d for d in (DATA / "scenarios").glob("*/*") if d.is_dir())
INPUTS = [p for p in sorted(CORPUS.iterdir()) if not p.name.endswith(".md")] + sorted(PASTED.glob("*.txt")) + [SEED]


def pasted(name: str) -> Report:
    return analyze([InputSpec(str(PASTED / name))])


def test_a_resent_syn_gets_a_retransmission_finding_with_its_timer() -> None:
    report = pasted("syn-resent.txt")
    flow = next(f for f in report.flows if f.server.port == 80)
    assert flow.retransmissions == 2  # the first SYN carried ECN flags ([SEW]), the re-sends not: still re-sends
    found = of_kind(report, FindingKind.RETRANSMISSION)
    assert len(found) == 1 and found[0].flows == (flow.id,)
    evidence = found[0].evidence
    assert evidence.packets == flow.retransmissions  # the finding and its conversation count alike
    assert evidence.gaps_ms == (1030, 2080)  # 1 s, then doubled: the SYN timer
    assert evidence.interfaces == ("node1 ens192 Out",)  # where the originals were last seen
    assert (found[0].node, found[0].iface) == ("node1", "ens192")
    assert found[0].severity is Severity.WARNING  # the conversation never started
    unanswered = of_kind(report, FindingKind.UNANSWERED)
    assert [f.flows for f in unanswered] == [(flow.id,)]
    # the node's own ssh traffic (to the address it sends its IPIP envelopes from) is delivered, not dropped
    assert of_kind(report, FindingKind.DROP) == []


def test_a_resent_tail_is_a_retransmission_not_out_of_order() -> None:
    report = pasted("tail.txt")
    [flow] = report.flows
    assert (flow.retransmissions, flow.out_of_order) == (1, 0)
    [found] = of_kind(report, FindingKind.RETRANSMISSION)
    assert found.evidence.packets == 1 and found.evidence.gaps_ms == (209,)
    assert found.severity is Severity.INFO  # one re-send, and the conversation went on
    # the capture names neither node nor interface: the finding says so instead of "input 0" or "?"
    assert found.node is None and found.evidence.notes == ("unrecorded.node", "unrecorded.iface", "recovered")


def test_a_tunnel_seen_only_as_envelopes_is_one_finding_per_endpoint_pair() -> None:
    report = pasted("envelopes.txt")
    tunnels = of_kind(report, FindingKind.TUNNEL)
    assert sorted((f.evidence.addresses, f.evidence.packets, f.evidence.overhead) for f in tunnels) == [
        (("172.16.0.5", "172.16.0.4"), 4, 50), (("172.16.0.5", "172.16.0.6"), 2, 50)]
    assert alarms(report) == []


def test_weave_envelopes_that_tcpdump_prints_as_bfd_are_envelopes() -> None:
    """UDP 6784 is weave's VXLAN port and, to tcpdump without `-T vxlan`, BFD over LAG: still one tunnel per pair."""
    report = analyze([InputSpec(str(PASTED / "weave-bfd.txt"), node="node1")])
    tunnels = of_kind(report, FindingKind.TUNNEL)
    assert sorted((f.evidence.addresses, f.evidence.packets, f.evidence.overhead) for f in tunnels) == [
        (("192.168.200.11", "192.168.200.12"), 1, 50), (("192.168.200.11", "192.168.200.13"), 12, 50)]
    assert alarms(report) == []
    # each conversation is the envelopes' own: UDP between the nodes' ends, as tcpdump printed them
    first = report.flows[0]
    assert (first.proto, str(first.client), str(first.server)) == ("udp", "192.168.200.11:39484", "192.168.200.12:6784")
    assert all("?" not in str(f.client) + str(f.server) for f in report.flows)
    assert report.journeys[0].summary == "vxlan envelope 192.168.200.11:39484 > 192.168.200.12:6784, the packet inside not shown"


def test_checksum_offload_is_one_finding_per_capture_saying_what_was_sent_and_received() -> None:
    report = analyze([InputSpec(str(DATA / "scenarios" / "flannel-vxlan" / "cross-node"))])
    [found] = of_kind(report, FindingKind.CHECKSUM_OFFLOAD)
    assert found.severity is Severity.INFO
    assert found.evidence.sent and found.evidence.received  # node1 sent some and received some, node3 likewise
    assert found.evidence.packets <= found.evidence.sent + found.evidence.received
    assert found.evidence.packets == len(set(found.journeys))


def test_one_node_alone_tells_the_packets_it_received_from_those_it_sent() -> None:
    """node3 alone (the seed's view): the client's packets come in by its NIC, nginx's replies leave from a pod."""
    capture = DATA / "scenarios" / "kube-router" / "cross-node" / "node3.pcapng"
    report = analyze([InputSpec(str(capture), node="node3")])
    [found] = of_kind(report, FindingKind.CHECKSUM_OFFLOAD)
    tcp = [j for j in report.journeys if "TCP" in j.summary]
    from_pod = [j for j in tcp if j.hops[0].iface.startswith("veth")]
    from_wire = [j for j in tcp if (j.hops[0].iface, j.hops[0].direction) == ("eth0", "In")]
    assert from_pod and from_wire and len(from_pod) + len(from_wire) == len(tcp) == found.evidence.packets
    assert (found.evidence.sent, found.evidence.received) == (len(from_pod), len(from_wire))


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[f"{d.parent.name}-{d.name}" for d in SCENARIOS])
def test_healthy_lab_scenarios_raise_no_alarm(scenario: Path) -> None:
    report = analyze([InputSpec(str(scenario))])
    assert [(f.kind.value, f.title) for f in alarms(report)] == []


def test_every_buildable_model_has_its_healthy_scenarios() -> None:
    assert {(d.parent.name, d.name) for d in SCENARIOS} == {(m, s) for m in BUILDABLE for s in SCENARIO_NAMES}


def test_dns_answered_from_the_endpoint_on_a_veth_is_a_missing_reverse_nat() -> None:
    report = pasted("dns-untranslated.txt")  # tcpdump -i <pod veth>: queries to the ClusterIP, answers from CoreDNS itself
    [found] = of_kind(report, FindingKind.MISSING_REVERSE_NAT)
    assert found.evidence.addresses == ("10.244.1.5", "10.96.0.10", "10.244.1.3")
    assert (found.evidence.sent, found.evidence.packets) == (4, 4)
    called = next(f for f in report.flows if f.server.addr == "10.96.0.10")
    answers = next(f for f in report.flows if f.server.addr == "10.244.1.3" and f.proto == "udp")
    assert found.flows == (called.id, answers.id)  # the two conversations, joined
    assert of_kind(report, FindingKind.UNANSWERED) == []  # answered, only not translated back
    assert found.iface == "veth6f2a1b3c"


def test_bad_outer_checksums_while_the_syn_is_resent_name_the_tunnel_device() -> None:
    report = pasted("vxlan-bad-outer-csum.txt")  # tcpdump -i eth0 -vv: flannel's envelopes, [bad udp cksum ...]
    [found] = of_kind(report, FindingKind.CHECKSUM_OFFLOAD)  # the envelopes' checksums are the warning, not noise
    assert found.severity is Severity.WARNING
    assert (found.node, found.evidence.device, found.evidence.packets) == ("node1", "flannel.1", 3)
    assert found.evidence.addresses == ("172.16.0.5", "172.16.0.4")
    assert found.key == "checksum_offload.tunnel"  # ethtool -K <evidence.device> tx-checksum-ip-generic off


def test_bad_outer_checksums_of_a_conversation_that_goes_on_are_information() -> None:
    report = analyze([InputSpec(str(DATA / "corpus" / "06-plantegg-flannel-vxlan-nnetvv.txt"))])
    [found] = of_kind(report, FindingKind.CHECKSUM_OFFLOAD)
    assert found.severity is Severity.INFO and found.evidence.device == "flannel.1"  # the tunnel device, named


def test_a_packet_too_big_for_the_tunnel_device_is_mtu_with_sizes_and_overhead() -> None:
    report = pasted("ipip-too-big.txt")  # -i any -v: 1500 bytes into tunl0, never on ens192; a 1052-byte re-send passes
    mtu = of_kind(report, FindingKind.MTU)
    [hole] = [f for f in mtu if f.evidence.size is not None]
    assert hole.severity is Severity.ERROR and (hole.node, hole.iface) == ("virtnest-rook-ceph-1", "tunl0")
    e = hole.evidence
    assert (e.size, e.passed, e.mtu, e.overhead, e.device) == (1500, 1052, 1480, 20, "tunl0")
    assert of_kind(report, FindingKind.DROP) == []  # the loss is said once, as mtu


def test_a_syn_on_a_tunnel_device_announcing_too_big_an_mss_is_mtu() -> None:
    report = pasted("ipip-too-big.txt")  # its only SYN, on tunl0, announces MSS 1460
    [syn] = [f for f in of_kind(report, FindingKind.MTU) if f.evidence.mss is not None]
    assert (syn.evidence.mss, syn.evidence.mtu, syn.evidence.overhead, syn.evidence.device) == (1460, 1480, 20, "tunl0")
    assert syn.severity is Severity.WARNING


def test_replies_in_by_the_tunnel_requests_out_by_the_nic_is_an_asymmetric_path() -> None:
    report = pasted("asymmetric-tunl0.txt")  # -i any: SYNs leave by ens192, SYN-ACKs come back IPIP on tunl0
    [found] = of_kind(report, FindingKind.ASYMMETRIC_PATH)
    assert found.severity is Severity.ERROR and (found.node, found.iface) == ("node1", "tunl0")
    assert found.evidence.addresses == ("10.233.109.178",)
    assert found.evidence.interfaces == ("node1 tunl0 In", "node1 ens192 Out")
    assert of_kind(report, FindingKind.DROP) == [] and of_kind(report, FindingKind.UNANSWERED) == []


def test_clocks_of_pasted_segments_of_two_nodes_are_a_clock_skew() -> None:
    """Corpus 14 as published: Node01's and Node02's segments pasted one after the other, clocks 12 h apart."""
    report = analyze([InputSpec(str(DATA / "corpus" / "14-cilium-vxlan-otv-vv.txt"))])
    [skew] = of_kind(report, FindingKind.CLOCK_SKEW)
    assert skew.evidence.offset_ns is not None and abs(abs(skew.evidence.offset_ns) - 12 * 3600 * 10**9) < 10**9
    assert skew.node is None or not skew.node.startswith("input ")


def test_places_are_named_or_say_what_was_not_recorded(tmp_path: Path) -> None:
    """The seed (old `tcpdump -i any` text: no interface names, no node) with one copy of the ACK taken out."""
    lines = SEED.read_text().splitlines(keepends=True)
    pasted_copy = tmp_path / "seed.txt"
    pasted_copy.write_text("".join(lines[:6] + lines[7:]))  # the ACK's third copy (the pod veth) is gone
    report = analyze([InputSpec(str(pasted_copy))])
    [drop] = of_kind(report, FindingKind.DROP)
    assert drop.evidence.interfaces == ("the capture's node, pod bridge kube-bridge, out (copy 2 of 3)",)
    assert drop.evidence.notes == ("unrecorded.node", "unrecorded.iface")  # said, with how to record them
    assert all(f.node is None for f in report.findings)


def test_a_packet_for_a_pod_cidr_sent_to_the_gateway_is_a_route_and_every_view_says_where_it_was_sent() -> None:
    """node1 lost its route to node2's pods: `tcpdump -i eth0 -e` shows the SYNs addressed to the gateway's MAC."""
    where = PASTED / "missing-route"
    report = analyze([InputSpec(str(where / "node1-eth0.txt"), node="node1"), InputSpec(str(where / "node2.pcapng"), node="node2")],
                     cluster=str(where / "cluster.yaml"))
    [route] = of_kind(report, FindingKind.ROUTE)
    e = route.evidence
    assert (route.node, route.iface, e.peer, e.mac_owner, e.packets) == ("node1", "eth0", "node2", "192.168.200.1", 2)
    assert e.addresses[0] == "10.244.2.10" and of_kind(report, FindingKind.DROP) == []  # the loss, said once
    # each hop leaving node1's NIC names the MAC it was sent to and its owner (the gateway, by its ARP reply)
    sent = [h for j in report.journeys if j.id in route.journeys for h in j.hops if h.mac_to is not None]
    assert len(sent) == 2 and {(h.mac_to, h.mac_owner) for h in sent} == {(e.mac, "192.168.200.1")}
    hops = [h for j in to_dict(report)["journeys"] if j["id"] in route.journeys for h in j["hops"]]
    assert {(h["mac_to"], h["mac_owner"]) for h in hops} == {(e.mac, "192.168.200.1")}
    shown = f"sent to {e.mac} (192.168.200.1)"
    assert shown in text_report.render(report) and shown in html_report.render(report)
    notes = pcapng_out.comments(report)  # and Wireshark's packet comments
    assert all(shown in notes[h.row] for h in sent)
    # before the fault, the same pod's request went to node2's MAC: no route finding for it
    before = [h for j in report.journeys if j.id not in route.journeys and j.summary.startswith("TCP 10.244.1.11")
              for h in j.hops if h.mac_to is not None]
    assert before and {h.mac_owner for h in before} == {"node2"}
    assert {h.mac_owner for j in report.journeys for h in j.hops if h.mac_to == "ff:ff:ff:ff:ff:ff"} == {"broadcast"}


def test_the_route_is_found_without_an_inventory_from_what_the_nic_capture_shows() -> None:
    """Without cluster.yaml, node1's MAC is the one in all of its NIC's unicast frames; node2's pods show on its veths."""
    where = PASTED / "missing-route"
    report = analyze([InputSpec(str(where / "node1-eth0.txt"), node="node1"), InputSpec(str(where / "node2.pcapng"), node="node2")])
    [route] = of_kind(report, FindingKind.ROUTE)
    assert (route.node, route.iface, route.evidence.peer, route.evidence.mac_owner) == ("node1", "eth0", "node2", "192.168.200.1")


UNACTIONABLE = re.compile(r"\bNone\b|\binput \d+\b|(?:^|\s)\?(?:\s|$|[,.;:)])|\bcopy \d+\b(?! of)")


@pytest.mark.parametrize("capture", INPUTS, ids=[p.name for p in INPUTS])
def test_no_finding_names_a_place_nobody_can_act_on(capture: Path) -> None:
    """Class 9 over every published capture and pasted form: no `?`, `None`, `input N` or bare `copy N` for a place;
    what was not recorded is said, as a catalogue note. Class 10: a finding counts its packets as they are counted."""
    report = analyze([InputSpec(str(capture))])
    for f in report.findings:
        words = " ".join((f.title, f.explanation, f.next_step, *f.evidence.interfaces))
        assert not UNACTIONABLE.search(words), (f.kind, UNACTIONABLE.search(words), words)
        assert f.node is None or not f.node.startswith("input ")
        if f.kind is FindingKind.RETRANSMISSION:
            [flow] = [x for x in report.flows if x.id in f.flows]
            assert f.evidence.packets == flow.retransmissions
        if f.kind is FindingKind.UNANSWERED and f.flows:
            assert f.evidence.packets == len(f.journeys) and f.evidence.sent >= f.evidence.packets
        if f.kind is FindingKind.CHECKSUM_OFFLOAD and f.severity is Severity.INFO:
            assert f.evidence.packets == f.evidence.sent + f.evidence.received
