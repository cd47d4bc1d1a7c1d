"""Real labs read back as text: tcpdump's terminal text of each node's capture raises the pcapng's alarms.

Users mostly paste `tcpdump -i any -nn` text taken on each node, not pcap files. For the lab faults of
test_lab.py (and two clean labs), every node's pcapng is printed by tcpdump itself in four flag sets,
inside the node's namespace (SLL2 frames name their interface by ifindex: only that namespace has the
names), and the text files, each tagged with its node, are analyzed with the same inventory as the
pcapngs. Every text must give the pcapng's packets and journeys, and the same alarms (warning or worse:
kind, severity, node, interface, catalogue key, evidence); each fault's own finding is checked on every report.

What the text cannot carry: without -v there are no IP ids, TTLs or IP lengths; TCP/UDP checksums need
-v/-vv (the checksum finding is information, never an alarm, so it is not compared); MACs and frame
lengths need -e. So plain `-nn` text has no packet sizes at all, only payload lengths: a black hole's
sizes are bounded by the headers there (note `sizes_bounded`) and not compared; all else is compared as is.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from cniscope.analyze import analyze
from cniscope.lab import state as lab_state
from cniscope.lab.cluster import Lab
from cniscope.lab.cluster_yaml import write_inventory
from cniscope.lab.record import NodeCapture, capture
from cniscope.lab.scenarios import record
from cniscope.lab.spec import Fault, default_spec
from cniscope.results import Evidence, Finding, FindingKind, Report
from cniscope.sources import InputSpec
from tests.findings.wire import alarms, of_kind
from tests.marks import needs_root

pytestmark = needs_root
FAULT_MODEL = "flannel-host-gw"
PCAPNG = "pcapng"
FLAG_SETS: tuple[tuple[str, ...], ...] = (("-nn",), ("-nn", "-v"), ("-nn", "-e"), ("-nn", "-v", "-e"))
Alarm = tuple[str, str, str | None, str | None, str, Evidence]
Reports = dict[str, Report]  # "pcapng", "tcpdump -nn", "tcpdump -nn -v" ...


@pytest.fixture(scope="module", autouse=True)
def reap_first() -> None:
    if os.geteuid() == 0:
        lab_state.reap()


def lab_name(what: str) -> str:
    return f"tt{os.getpid()}-{what}"


def describe(report: Report) -> str:
    return "\n".join(f"{f.severity.value} {f.kind.value} @ {f.node} {f.iface}: {f.title}" for f in report.findings)


def keys(report: Report, sizes_shown: bool = True) -> list[Alarm]:
    """The alarms as data; without sizes in the text (no -v, no -e), a black hole's sizes are left out."""
    def evidence(f: Finding) -> Evidence:
        if sizes_shown:
            return f.evidence
        return replace(f.evidence, size=None, passed=None, notes=tuple(n for n in f.evidence.notes if n != "sizes_bounded"))
    return sorted(((f.kind.value, f.severity.value, f.node, f.iface, f.key, evidence(f)) for f in alarms(report)), key=repr)


def as_text(lab: Lab, c: NodeCapture, flags: tuple[str, ...]) -> Path:
    """tcpdump's own text of a node's capture, printed in the node's namespace (interface names by ifindex)."""
    out = subprocess.run(["ip", "netns", "exec", lab.ns(c.node), "tcpdump", "-r", str(c.path), *flags],
                         capture_output=True, text=True, check=True, timeout=60)
    path = c.path.with_name(f"{c.node}{''.join(flags).replace('-', '_')}.txt")
    path.write_text(out.stdout)
    return path


def compared(lab: Lab, captures: list[NodeCapture], inventory: Path) -> Reports:
    """Analyze the pcapngs and each flag set's text (while the lab is up); assert the text's reports agree."""
    binary = analyze([InputSpec(str(c.path), node=c.node) for c in captures], cluster=str(inventory))
    assert binary.journeys, "nothing captured"
    reports = {PCAPNG: binary}
    for flags in FLAG_SETS:
        label = f"tcpdump {' '.join(flags)}"
        text = analyze([InputSpec(str(as_text(lab, c, flags)), node=c.node) for c in captures], cluster=str(inventory))
        assert [(i.format, i.unparsed_lines) for i in text.inputs] == [("text", 0)] * len(captures), \
            [str(w) for i in text.inputs for w in i.warnings]
        assert [i.packets for i in text.inputs] == [i.packets for i in binary.inputs], label
        assert len(text.journeys) == len(binary.journeys), label
        sizes_shown = "-v" in flags or "-e" in flags
        assert keys(text, sizes_shown) == keys(binary, sizes_shown), \
            f"{label}:\n--- text\n{describe(text)}\n--- pcapng\n{describe(binary)}"
        reports[label] = text
    return reports


def observe(lab: Lab, tmp: Path, action: Callable[[], object], nodes: tuple[str, ...] = ("node1", "node2")) -> Reports:
    captures, _ = capture(lab, list(nodes), tmp, action)
    return compared(lab, captures, write_inventory(lab.spec, tmp / "cluster.yaml"))


def only(label: str, report: Report, kind: FindingKind) -> Finding:
    found = of_kind(report, kind)
    assert len(found) == 1, f"{label}:\n{describe(report)}"
    return found[0]


def fault_lab(what: str) -> Lab:
    return Lab.up(default_spec(FAULT_MODEL, nodes=2, name=lab_name(what)))


@pytest.mark.parametrize("model", ["kube-router", "flannel-vxlan"])
def test_clean_lab_text_raises_no_alarm(model: str, tmp_path: Path) -> None:
    with Lab.up(default_spec(model, nodes=2, name=lab_name(model[:8]))) as lab:
        for scenario in ("cross-node", "node-port"):
            recorded = record(lab, scenario, tmp_path)
            assert recorded.ok, f"{model} {scenario}: the request failed in a clean lab"
            for label, report in compared(lab, recorded.captures, recorded.inventory).items():
                assert alarms(report) == [], f"{model} {scenario} {label}:\n{describe(report)}"


def test_drop_at_a_hop(tmp_path: Path) -> None:
    with fault_lab("drop") as lab:
        lab.fault(Fault("drop", {"node": "node2", "iface": "cni0", "dir": "out"}))
        reports = observe(lab, tmp_path, lambda: lab.curl("client1", "web2", max_time=1.5))
    for label, report in reports.items():
        drop = only(label, report, FindingKind.DROP)
        assert (drop.node, drop.iface) == ("node2", "eth0") and drop.key == "drop.forward", label
        assert of_kind(report, FindingKind.UNANSWERED), f"{label}:\n{describe(report)}"


def test_missing_route(tmp_path: Path) -> None:
    with fault_lab("route") as lab:
        lab.fault(Fault("missing-route", {"node": "node1", "prefix": "10.244.2.0/24"}))

        def lost_then_other_traffic() -> None:
            lab.curl("client1", "web2", max_time=1.5)  # leaves node1 by its default route
            lab.curl("node1", "node2:30080", max_time=2)  # node2's capture was running

        reports = observe(lab, tmp_path, lost_then_other_traffic)
    for label, report in reports.items():
        drop = only(label, report, FindingKind.DROP)
        assert (drop.node, drop.iface, drop.evidence.peer) == ("node1", "eth0", "node2"), label


def test_mtu_black_hole(tmp_path: Path) -> None:
    with fault_lab("mtu") as lab:
        lab.fault(Fault("mtu", {"node": "node2", "iface": "eth0", "mtu": "1400", "blackhole": "yes"}))
        reports = observe(lab, tmp_path, lambda: lab.curl("client1", "web2", "/big", max_time=2))
    for label, report in reports.items():
        hole = only(label, report, FindingKind.MTU)
        assert hole.node == "node2" and hole.key == "mtu.black_hole", f"{label}:\n{describe(report)}"
        assert of_kind(report, FindingKind.DROP) == [], f"{label}:\n{describe(report)}"
    # plain text shows payload lengths only: sizes bounded by the headers (with -v or -e: the pcapng's sizes)
    plain = only("tcpdump -nn", reports["tcpdump -nn"], FindingKind.MTU)
    assert "sizes_bounded" in plain.evidence.notes and plain.evidence.passed < plain.evidence.size, plain.evidence
    assert reports[PCAPNG].findings and "sizes_bounded" not in only(PCAPNG, reports[PCAPNG], FindingKind.MTU).evidence.notes


def test_br_netfilter_off(tmp_path: Path) -> None:
    with fault_lab("brnf") as lab:
        lab.fault(Fault("br-netfilter-off", {"node": "node1"}))
        reports = observe(lab, tmp_path, lambda: lab.curl("client1", "web-local", max_time=1.5), nodes=("node1",))
    for label, report in reports.items():
        missing = only(label, report, FindingKind.MISSING_REVERSE_NAT)
        assert missing.node == "node1" and missing.evidence.addresses[1] == "10.96.0.11", label
        assert missing.key == "missing_reverse_nat", label


def test_hairpin_off(tmp_path: Path) -> None:
    with fault_lab("hairpin") as lab:
        lab.fault(Fault("hairpin-off", {"node": "node1", "pod": "web1"}))
        reports = observe(lab, tmp_path, lambda: lab.curl("web1", "web-local", max_time=1.5), nodes=("node1",))
    for label, report in reports.items():
        drop = only(label, report, FindingKind.DROP)
        assert drop.node == "node1" and drop.key == "drop.hairpin", f"{label}:\n{describe(report)}"
