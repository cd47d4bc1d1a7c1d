"""Real labs: every fault injected and diagnosed at the right hop with the right kind; clean labs raise no alarm.

Each test builds its own lab (names start with tf<pid>), captures with real tcpdump on the nodes while real
curl/ping run, and analyzes the pcapng files; labs are taken down by their context manager, leftovers of killed
runs by the reaper.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cniscope.analyze import analyze
from cniscope.lab import state as lab_state
from cniscope.lab.cluster import Lab
from cniscope.lab.cluster_yaml import write_inventory
from cniscope.lab.naming import veth_name
from cniscope.lab.record import capture
from cniscope.lab.scenarios import SCENARIOS, record
from cniscope.lab.spec import Fault, default_spec
from cniscope.results import Finding, FindingKind, Report
from cniscope.sources import InputSpec
from tests.findings.wire import alarms, of_kind
from tests.lab.helpers import BUILDABLE, conntrack_flushed_mid_connection
from tests.marks import needs_root

pytestmark = needs_root
FAULT_MODEL = "flannel-host-gw"  # a bridge and plain routes, no BGP to wait for


@pytest.fixture(scope="module", autouse=True)
def reap_first() -> None:
    if os.geteuid() == 0:
        lab_state.reap()


def lab_name(what: str) -> str:
    return f"tf{os.getpid()}-{what}"


def observe(lab: Lab, tmp: Path, action: Callable[[], object], nodes: tuple[str, ...] = ("node1", "node2")) -> Report:
    captures, _ = capture(lab, list(nodes), tmp, action)
    inventory = write_inventory(lab.spec, tmp / "cluster.yaml")
    return analyze([InputSpec(str(c.path), node=c.node) for c in captures], cluster=str(inventory))


def describe(report: Report) -> str:
    return "\n".join(f"{f.severity.value} {f.kind.value} @ {f.node} {f.iface}: {f.title}" for f in report.findings)


def only(report: Report, kind: FindingKind) -> Finding:
    found = of_kind(report, kind)
    assert len(found) == 1, describe(report)
    return found[0]


@pytest.fixture
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    with Lab.up(default_spec(FAULT_MODEL, nodes=2, name=lab_name(request.node.name[5:17].replace("_", "-").strip("-")))) as built:
        yield built


@pytest.mark.parametrize("model", BUILDABLE)
def test_clean_lab_raises_no_alarm(model: str, tmp_path: Path) -> None:
    with Lab.up(default_spec(model, nodes=2, name=lab_name(model))) as lab:
        for scenario in SCENARIOS:
            recorded = record(lab, scenario, tmp_path)
            assert recorded.ok, f"{model} {scenario}: the request failed in a clean lab"
            report = analyze([InputSpec(str(c.path), node=c.node) for c in recorded.captures], cluster=str(recorded.inventory))
            assert report.journeys, f"{model} {scenario}: nothing captured"
            assert alarms(report) == [], f"{model} {scenario}:\n{describe(report)}"


def test_drop_at_a_hop(lab: Lab, tmp_path: Path) -> None:
    lab.fault(Fault("drop", {"node": "node2", "iface": "cni0", "dir": "out"}))
    report = observe(lab, tmp_path, lambda: lab.curl("client1", "web2", max_time=1.5))
    drop = only(report, FindingKind.DROP)
    assert (drop.node, drop.iface) == ("node2", "eth0")  # arrived on the NIC, never forwarded to cni0
    assert drop.key == "drop.forward"
    assert of_kind(report, FindingKind.UNANSWERED), describe(report)


def test_mtu_lowered_on_a_link(lab: Lab, tmp_path: Path) -> None:
    lab.fault(Fault("mtu", {"node": "node2", "iface": "eth0", "mtu": "1400"}))
    report = observe(lab, tmp_path, lambda: lab.curl("client1", "web2", "/big", max_time=3))
    mtu = [f for f in of_kind(report, FindingKind.MTU) if f.evidence.mtu is not None and f.evidence.size is f.evidence.mss is None]
    assert len(mtu) == 1, describe(report)
    assert mtu[0].node == "node2" and mtu[0].evidence.mtu == 1400


def test_mtu_black_hole(lab: Lab, tmp_path: Path) -> None:
    lab.fault(Fault("mtu", {"node": "node2", "iface": "eth0", "mtu": "1400", "blackhole": "yes"}))
    report = observe(lab, tmp_path, lambda: lab.curl("client1", "web2", "/big", max_time=2))
    hole = only(report, FindingKind.MTU)
    assert hole.node == "node2" and hole.key == "mtu.black_hole", describe(report)
    assert hole.evidence.passed is not None and hole.evidence.passed < hole.evidence.size  # smaller packets passed
    assert of_kind(report, FindingKind.DROP) == [], describe(report)


def test_strict_rp_filter_with_asymmetric_route(lab: Lab, tmp_path: Path) -> None:
    lab.fault(Fault("rp-filter", {"node": "node2", "source": "10.244.1.11/32"}))

    def both_ways() -> None:
        lab.curl("client1", "web2", max_time=1.5)  # client1 -> web2 arrives on node2's eth0 ...
        lab.curl("web2", "client1", max_time=1)  # ... while the way back to it is eth1

    report = observe(lab, tmp_path, both_ways)
    asym = only(report, FindingKind.ASYMMETRIC_PATH)
    assert (asym.node, asym.iface) == ("node2", "eth0") and "node2 eth1 Out" in asym.evidence.interfaces
    assert asym.severity.value == "error"  # the arriving packets were dropped or re-sent: strict rp_filter


def test_missing_route(lab: Lab, tmp_path: Path) -> None:
    """node1 loses its route to node2's pods: the packets leave for the default gateway's MAC, which the text of
    `tcpdump -i eth0 -e -nn` on node1 (the form users paste) shows, beside node2's own capture."""
    lab.fault(Fault("missing-route", {"node": "node1", "prefix": "10.244.2.0/24"}))
    text = tmp_path / "node1-eth0.txt"

    def lost_then_other_traffic() -> None:
        lab.curl("node1", "192.168.200.1", max_time=0.5)  # the gateway's ARP, the way a node learns its MAC
        lab.curl("client1", "web2", max_time=1.5)  # leaves node1 by its default route
        lab.curl("node1", "node2:30080", max_time=2)  # node2's capture was running (a capture showing nothing proves nothing)

    captures, _ = capture(lab, ["node2"], tmp_path, lambda: printed(lab, "node1", "eth0", text, lost_then_other_traffic, "-e"))
    inventory = write_inventory(lab.spec, tmp_path / "cluster.yaml")
    report = analyze([InputSpec(str(text), node="node1"), InputSpec(str(captures[0].path), node="node2")],
                     cluster=str(inventory))
    route = only(report, FindingKind.ROUTE)  # it explains the loss: no separate drop
    assert (route.node, route.iface) == ("node1", "eth0") and of_kind(report, FindingKind.DROP) == [], describe(report)
    assert route.evidence.mac is not None and route.evidence.mac_owner != "node2"
    assert route.evidence.addresses[0].startswith("10.244.2.")


def test_br_netfilter_off(lab: Lab, tmp_path: Path) -> None:
    lab.fault(Fault("br-netfilter-off", {"node": "node1"}))
    veth = veth_name("client1")
    text = tmp_path / "client1-veth.txt"
    report = observe(lab, tmp_path, lambda: printed(lab, "node1", veth, text,
                                                    lambda: lab.curl("client1", "web-local", max_time=1.5)), nodes=("node1",))
    missing = only(report, FindingKind.MISSING_REVERSE_NAT)
    assert missing.node == "node1" and missing.evidence.addresses[1] == "10.96.0.11"
    assert missing.key == "missing_reverse_nat"
    # the same, from `tcpdump -i <the client's veth>` alone, as pasted: two conversations, joined
    alone = analyze([InputSpec(str(text), node="node1")])
    joined = only(alone, FindingKind.MISSING_REVERSE_NAT)
    assert joined.evidence.addresses[1] == "10.96.0.11" and len(joined.flows) == 2 and joined.iface == veth
    assert joined.evidence.retries == joined.evidence.packets  # the client reset every SYN-ACK: said here, not as resets
    assert of_kind(alone, FindingKind.UNANSWERED) == of_kind(alone, FindingKind.RESET) == [], describe(alone)


def printed(lab: Lab, node: str, iface: str, text: Path, action: Callable[[], object], *flags: str) -> None:
    """`action` while tcpdump -nn prints what `iface` of `node` sees into `text`, banner first (a paste shows it)."""
    out = text.with_suffix(".out")
    with out.open("w") as sink, subprocess.Popen(
        ["ip", "netns", "exec", lab.ns(node), "tcpdump", "-i", iface, "-nn", *flags, "-l", "-c", "500"],
        stdout=sink, stderr=subprocess.PIPE, text=True,
    ) as tcpdump:
        assert tcpdump.stderr is not None
        banner = ""
        for line in tcpdump.stderr:  # up to "listening on ...": capturing from here on
            banner += line
            if line.startswith("listening on"):
                break
        action()
        tcpdump.terminate()
    text.write_text(banner + out.read_text())


def test_hairpin_off(lab: Lab, tmp_path: Path) -> None:
    lab.fault(Fault("hairpin-off", {"node": "node1", "pod": "web1"}))
    report = observe(lab, tmp_path, lambda: lab.curl("web1", "web-local", max_time=1.5), nodes=("node1",))
    drop = only(report, FindingKind.DROP)
    assert drop.node == "node1" and drop.key == "drop.hairpin", describe(report)


def test_conntrack_flushed_mid_connection(lab: Lab, tmp_path: Path) -> None:
    report = observe(lab, tmp_path, lambda: conntrack_flushed_mid_connection(lab))
    resets = [f for f in of_kind(report, FindingKind.RESET) if f.key == "reset.renewed"]
    assert len(resets) == 1, describe(report)
    assert resets[0].node == "node2"


def test_drop_after_a_tunnel_device(tmp_path: Path) -> None:
    """flannel-vxlan: forwarded packets coming out of flannel.1 on node2 are dropped; the envelope did arrive."""
    with Lab.up(default_spec("flannel-vxlan", nodes=2, name=lab_name("vxlan-drop"))) as lab:
        lab.fault(Fault("drop", {"node": "node2", "iface": "flannel.1", "dir": "in"}))
        report = observe(lab, tmp_path, lambda: lab.curl("client1", "web2", max_time=1.5))
    drop = only(report, FindingKind.DROP)
    assert (drop.node, drop.iface) == ("node2", "flannel.1") and drop.severity.value == "error"
    assert of_kind(report, FindingKind.TUNNEL), describe(report)
