"""Journeys across real nodes: namespaces, a real HTTP request, tcpdump on two nodes at once."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from cniscope.analyze import analyze
from cniscope.results import Report
from cniscope.sources import InputSpec
from tests.marks import needs_root
from tests.netns import Topology, shift_pcap

pytestmark = needs_root()

SHIFT_NS = 7_300_000_000  # node n3's clock 7.3 s ahead


def _capture(topo: Topology, tmp: Path, action, bpf: str = "tcp port 80") -> dict[str, Path]:
    procs = {node: topo.start_capture(node, tmp / f"{node}.pcap", bpf) for node in ("n1", "n3")}
    result = action()
    for proc in procs.values():
        topo.stop_capture(proc)
    assert result.stdout == "200", result
    return {node: tmp / f"{node}.pcap" for node in procs}


@pytest.fixture(scope="module")
def clean_http(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("jny")
    topo = Topology("a").up()
    try:
        pcaps = _capture(topo, tmp, lambda: topo.curl("p1", "http://10.244.3.10/"))
        texts = {}
        for node in ("n1", "n3"):  # `tcpdump -i any -nn` as a user pastes it: interface names, no TTL (no -v)
            texts[f"{node}.txt"] = tmp / f"{node}.txt"
            pcap = tmp / f"{node}-for-text.pcap"
            pcap.write_bytes(shift_pcap(pcaps[node].read_bytes(), SHIFT_NS if node == "n3" else 0))
            texts[f"{node}.txt"].write_text(subprocess.run(["ip", "netns", "exec", topo.ns(node), "tcpdump", "-r", str(pcap), "-nn"],
                                                           capture_output=True, text=True, check=True, timeout=60).stdout)
        return {
            "n1": topo.to_pcapng("n1", pcaps["n1"], tmp / "n1.pcapng"),
            "n3": topo.to_pcapng("n3", pcaps["n3"], tmp / "n3.pcapng"),
            "n3-shifted": topo.to_pcapng("n3", pcaps["n3"], tmp / "n3-shifted.pcapng", shift_ns=SHIFT_NS),
            **texts,
        }
    finally:
        topo.down()


def _syn(report: Report):
    return next(j for j in report.journeys if "[S]" in j.summary)


def test_journeys_cross_both_nodes_in_hop_order(clean_http):
    report = analyze([InputSpec(str(clean_http["n1"]), "n1"), InputSpec(str(clean_http["n3"]), "n3")])
    syn = _syn(report)
    nodes = [h.node for h in syn.hops]
    # n1: pod veth In, kube-bridge In, eth0 Out; then n3: eth0 In, kube-bridge Out, pod veth Out
    assert nodes == ["n1"] * 3 + ["n3"] * 3, [h.point for h in syn.hops]
    assert [h.iface for h in syn.hops] == ["vethn1pod", "kube-bridge", "eth0", "eth0", "kube-bridge", "vethn3pod"]
    assert [h.direction for h in syn.hops] == ["In", "In", "Out", "In", "Out", "Out"]
    assert all(h.delay_ns is not None and h.delay_ns >= 0 for h in syn.hops[1:])
    ttl_changes = [c for h in syn.hops for c in h.changes if c.kind.value == "ttl"]
    assert [str(c) for c in ttl_changes] == ["ttl 64 -> 63", "ttl 63 -> 62"]
    # the reply goes back the other way
    synack = next(j for j in report.journeys if "[S.]" in j.summary)
    assert [h.node for h in synack.hops] == ["n3"] * 3 + ["n1"] * 3
    flow = report.flows[0]
    assert len(report.flows) == 1 and flow.state in ("established", "closed")
    assert flow.retransmissions == 0
    assert {c.node for c in report.clocks} == {"n3"}
    assert abs(report.clocks[0].offset_ns) < 100_000


def test_clock_offset_of_several_seconds_is_recovered(clean_http):
    report = analyze([InputSpec(str(clean_http["n1"]), "n1"), InputSpec(str(clean_http["n3-shifted"]), "n3")])
    (clock,) = report.clocks
    assert clock.method == "two-way"
    assert abs(clock.offset_ns - SHIFT_NS) < 100_000, clock
    assert clock.uncertainty_ns < 100_000
    # once corrected, the journeys are the same as with aligned clocks
    syn = _syn(report)
    assert [h.node for h in syn.hops] == ["n1"] * 3 + ["n3"] * 3
    assert any(f.kind.value == "clock_skew" and f.node == "n3" for f in report.findings)


def test_text_without_ttl_still_aligns_the_clocks_and_orders_the_nodes(clean_http):
    """No TTL in `-nn` text: the hand-over (n1's eth0 Out, then n3's eth0 In; and back) tells sender from receiver."""
    report = analyze([InputSpec(str(clean_http["n1.txt"]), "n1"), InputSpec(str(clean_http["n3.txt"]), "n3")])
    assert report.table["ttl"].null_count() == report.table.height
    (clock,) = report.clocks
    assert clock.method == "two-way" and abs(clock.offset_ns - SHIFT_NS) < 100_000, clock
    crossing = [j for j in report.journeys if len({h.node for h in j.hops}) == 2]
    assert len({j.summary.split(" > ")[0] for j in crossing}) == 2 and len(crossing) >= 5  # both ways
    for journey in crossing:
        expected = ["n1"] * 3 + ["n3"] * 3 if "10.244.1.10" in journey.summary.split(" > ")[0] else ["n3"] * 3 + ["n1"] * 3
        assert [h.node for h in journey.hops] == expected, journey.summary
        assert [h.iface for h in journey.hops][2:4] == ["eth0", "eth0"]


def test_a_dropped_syn_is_one_retransmission_not_copies(tmp_path):
    topo = Topology("b").up()
    try:
        # drop the first SYN forwarded to the pod on n3, let the re-sent one through
        subprocess.run(["ip", "netns", "exec", topo.ns("n3"), "iptables", "-I", "FORWARD", "-p", "tcp", "--syn",
                        "-d", "10.244.3.10", "-m", "statistic", "--mode", "nth", "--every", "2", "--packet", "0",
                        "-j", "DROP"], check=True)
        pcaps = _capture(topo, tmp_path, lambda: topo.curl("p1", "http://10.244.3.10/"))
        files = [topo.to_pcapng(n, pcaps[n], tmp_path / f"{n}.pcapng") for n in ("n1", "n3")]
    finally:
        topo.down()
    report = analyze([InputSpec(str(files[0]), "n1"), InputSpec(str(files[1]), "n3")])
    (flow,) = report.flows
    assert flow.retransmissions == 1
    syns = [j for j in report.journeys if "[S]" in j.summary]
    assert len(syns) == 2
    first, again = syns
    assert again.retransmission_of == first.id and first.retransmission_of is None
    # the first SYN stops at n3's NIC; the second reaches the pod's veth; every other packet was seen 6 times, not re-sent
    assert (first.hops[-1].node, first.hops[-1].iface) == ("n3", "eth0")
    assert (again.hops[-1].node, again.hops[-1].iface) == ("n3", "vethn3pod")
    others = [j for j in report.journeys if j not in syns]
    assert all(j.retransmission_of is None for j in others)
    assert sum(1 for f in report.findings if f.kind.value == "retransmission") == 1
