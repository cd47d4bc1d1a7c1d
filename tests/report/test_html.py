"""`--html`: the page's data and layout (pure), the page itself (self-contained), and the page in Chromium.

The Chromium tests open the page in headless Chromium over the DevTools pipe
(tests/report/browser.py), fail on any console error or uncaught exception,
read the drawn diagrams back from the DOM, and keep a screenshot under
artifacts/report/ (git-ignored).
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cniscope.analyze import analyze
from cniscope.cli import cli
from cniscope.report import html
from cniscope.sources import InputSpec
from tests.marks import needs_root
from tests.paths import CORPUS, REPO, SEED
from tests.report import browser
from tests.report.build import receiver_stamps_first, service_call
from tests.report.schema_check import validate_report_json

ARTIFACTS = REPO / "artifacts" / "report"
needs_chromium = pytest.mark.skipif(not Path(browser.CHROMIUM).exists(), reason="needs chromium (Debian package chromium)")
SVG_NS = "http://www.w3.org/2000/svg"


def _embedded(page: str) -> dict:
    found = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S)
    assert found
    return json.loads(found.group(1))


def test_topology_has_every_capture_point_and_the_paths_between_them():
    topo = html.topology(service_call().journeys)
    assert [n.name for n in topo["nodes"]] == ["node1", "node3"]
    boxes = {(b.node, b.label): b for b in topo["boxes"]}
    assert set(boxes) == {("node1", "veth3f2a9c1d"), ("node1", "kube-bridge"), ("node1", "eth0"),
                          ("node3", "eth0"), ("node3", "kube-bridge"), ("node3", "vethc0ffee01")}
    edges = {(e.a.split("\x1f")[0] + " " + e.a.split("\x1f")[1], e.b.split("\x1f")[0] + " " + e.b.split("\x1f")[1]): e
             for e in topo["edges"]}
    # 4 client packets one way, 2 server packets the other way, on every link of the path
    assert edges[("node1 eth0", "node3 eth0")].packets == 4
    assert edges[("node3 eth0", "node1 eth0")].packets == 2
    assert edges[("node1 veth3f2a9c1d", "node1 kube-bridge")].cls == "nat"
    assert edges[("node3 eth0", "node3 kube-bridge")].cls == "plain"
    assert topo["services"] == [("10.96.0.10:80 -> 10.244.3.10:80", 4)]
    # node columns do not overlap, boxes sit inside their node
    first, second = topo["nodes"]
    assert first.x + first.w < second.x
    for box in topo["boxes"]:
        node = first if box.node == "node1" else second
        assert node.x <= box.x and box.x + box.w <= node.x + node.w and node.y <= box.y <= node.y + node.h


def test_page_embeds_each_conversation_with_its_hops_relative_to_the_first_sighting():
    report = service_call()
    data = _embedded(html.render(report))
    assert [f["id"] for f in data["flows"]] == [f.id for f in report.flows]
    journeys = {j["id"]: j for j in data["journeys"]}
    syn = report.journeys[0]
    drawn = journeys[syn.id]
    assert drawn["s"] == syn.summary
    assert [data["points"][h[0]][:3] for h in drawn["h"]] == [[h.node, h.iface, h.direction] for h in syn.hops]
    assert drawn["h"][0][1] == 0  # the first sighting of the report
    assert [h[2] for h in drawn["h"]] == [h.delay_ns for h in syn.hops]
    assert drawn["h"][1][3] == "dnat 10.96.0.10:80 -> 10.244.3.10:80"
    assert drawn["f"] == [0]  # cited by the NAT finding


def test_a_findings_packets_are_listed_in_numeric_order_with_those_of_its_sightings():
    """The packets a finding names and those of the sightings it cites, as one list in numeric order, each once."""
    report = service_call()
    last, first = report.journeys[-1], report.journeys[0]
    report.findings[0] = dataclasses.replace(report.findings[0], journeys=(last.id, report.journeys[2].id),
                                             rows=(first.hops[0].row, last.hops[0].row))
    page = html.render(report)
    listed = re.search(r'<div class="dim">packets: (.*?)</div>', page, re.S)
    assert listed
    numbers = [int(n) for n in re.findall(r'data-journey="(\d+)"', listed.group(1))]
    assert numbers == sorted({first.id, report.journeys[2].id, last.id}) and len(numbers) == 3


def test_page_is_self_contained():
    page = html.render(service_call())
    assert not re.search(r"<(link|img|iframe|object|embed)\b", page)
    assert not re.search(r"<script[^>]*\bsrc=", page)
    assert not re.search(r"url\((?!#)", page)  # CSS/SVG urls only point inside the page
    assert set(re.findall(r"https?://[^\s\"'<>)]+", page)) <= {SVG_NS}


def test_text_from_the_capture_cannot_break_out_of_the_page():
    report = service_call()
    evil = "</script><script>alert(1)</script><b>"
    report.journeys[0] = dataclasses.replace(report.journeys[0], summary=evil)
    report.findings[0] = dataclasses.replace(report.findings[0], title=evil)
    page = html.render(report)
    assert page.count("<script>alert(1)") == 0
    assert _embedded(page)["journeys"][0]["s"] == evil


def test_caps_say_what_was_left_out():
    limits = html.Limits(flows=1, journeys_per_flow=2, journeys=10, findings=0)
    page = html.render(service_call(), limits)
    assert "Findings (1)" in page and 'class="finding ' not in page
    assert "The 0 most severe shown; all 1 are in" in page
    data = _embedded(page)
    assert [len(f["journeys"]) for f in data["flows"]] == [2]
    assert data["flows"][0]["total"] == 6
    assert "2 of 6 packets embedded" in page


def test_cli_writes_html_next_to_json(tmp_path):
    out = tmp_path / "seed.html"
    result = CliRunner().invoke(cli, ["analyze", "--json", "--html", str(out), f"node3={SEED}"])
    assert result.exit_code == 0, result.output
    document = validate_report_json(result.stdout)
    data = _embedded(out.read_text())
    assert len(data["journeys"]) == len(document["journeys"])
    assert {p[0] for p in data["points"]} == {"node3"}


def _screenshot(name: str, png: bytes) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"{name}.png").write_bytes(png)
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


LADDER_POINTS = "[...document.querySelectorAll('#journey-{id} circle.hop')].map(c => c.dataset.point)"
TOPOLOGY_POINTS = "[...document.querySelectorAll('#topology-svg .box')].map(b => b.dataset.point)"
WATERFALL_ROWS = "[...document.querySelectorAll('#waterfall .wfrow')].map(r => r.dataset.point)"


@needs_chromium
def test_hand_built_page_in_chromium(tmp_path):
    report = service_call()
    page = tmp_path / "service.html"
    html.write(report, str(page))
    syn = report.journeys[0]
    reply = report.journeys[1]
    loaded = browser.load(page, {
        "open": "document.querySelector('tr.flow.open').dataset.flow",
        "syn": LADDER_POINTS.format(id=syn.id),
        "waterfall": WATERFALL_ROWS,
        "topology": TOPOLOGY_POINTS,
        "highlighted": "document.querySelectorAll('#topology-svg .edge.hl').length",
        # a finding's packet link expands the conversation and selects that packet
        "link": f"document.querySelector('#journey-{reply.id}').dispatchEvent(new MouseEvent('click', {{bubbles: true}}));"
                "document.querySelector('a.jl').click(); document.querySelector('.jr.sel').dataset.journey",
    })
    _screenshot("service-call", loaded.screenshot)
    assert loaded.errors == []
    assert loaded.values["open"] == str(report.flows[0].id)
    assert loaded.values["syn"] == [h.point for h in syn.hops]
    assert loaded.values["waterfall"] == [h.point for h in syn.hops]
    assert len(loaded.values["topology"]) == 6
    assert loaded.values["highlighted"] == 5 + 5  # both directions of the five links of the path
    assert loaded.values["link"] == str(syn.id)


@needs_chromium
@needs_root
def test_lab_capture_page_in_chromium(lab_capture, tmp_path):
    captures, inventory = lab_capture
    page = tmp_path / "lab.html"
    result = CliRunner().invoke(cli, ["analyze", "--json", "--html", str(page), "--cluster", str(inventory),
                                      *(f"{node}={path}" for node, path in captures.items())])
    assert result.exit_code == 0, result.output
    document = validate_report_json(result.stdout)
    syn = next(j for j in document["journeys"] if "[S]" in j["summary"] and ":80 " in j["summary"])
    flow = syn["flow"]
    loaded = browser.load(page, {
        "expand": f"document.querySelector('tr.flow[data-flow=\"{flow}\"]').click(); "
                  "document.querySelector('tr.flow.open').dataset.flow",
        "syn": LADDER_POINTS.format(id=syn["id"]),
        "select": f"document.querySelector('#journey-{syn['id']}').dispatchEvent(new MouseEvent('click')); 1",
        "waterfall": WATERFALL_ROWS,
        "topology": TOPOLOGY_POINTS,
        "names": "document.querySelector('tr.flow.open').innerText",
    })
    _screenshot("lab-kube-router-service", loaded.screenshot)
    assert loaded.errors == []
    assert loaded.values["expand"] == str(flow)
    points = loaded.values["syn"]
    # kube-router, pod to Service across nodes: client pod veth, kube-bridge, eth0 on node1; eth0, kube-bridge, web2's veth on node2
    assert [p.split()[0] for p in points] == ["node1"] * 3 + ["node2"] * 3, points
    ifaces = [p.split()[1] for p in points]
    assert ifaces[0].startswith("veth") and ifaces[5].startswith("veth") and ifaces[0] != ifaces[5], points
    assert ifaces[1:5] == ["kube-bridge", "eth0", "eth0", "kube-bridge"], points
    assert points == [h["point"] for h in syn["hops"]]
    assert loaded.values["waterfall"] == points
    assert {"node1 eth0", "node2 eth0", "node1 kube-bridge", "node2 kube-bridge"} <= set(loaded.values["topology"])
    assert "pod default/client1 on node1" in loaded.values["names"] and "service default/web" in loaded.values["names"]


INVENTORY = """
nodes:
  - {name: node1, addresses: [192.168.200.11], podCIDRs: [10.244.1.0/24]}
  - {name: node3, addresses: [192.168.200.13], podCIDRs: [10.244.3.0/24]}
pods:
  - {name: client, ip: 10.244.1.10, node: node1}
  - {name: web, ip: 10.244.3.10, node: node3}
services:
  - {name: web, clusterIP: 10.96.0.10, ports: [{port: 80, targetPort: 80}]}
"""


def test_inventory_names_the_endpoints_and_services():
    from cniscope.inventory import parse

    report = service_call()
    report.inventory = parse(INVENTORY, "cluster.yaml")
    data = html.page_data(report)
    flow = data["flows"][0]
    assert (flow["client_who"], flow["server_who"]) == ("pod default/client on node1", "service default/web (10.96.0.10:80)")
    assert data["services"] == [("10.96.0.10:80 -> 10.244.3.10:80", 4, "service default/web (10.96.0.10:80)")]
    page = html.render(report)
    assert "pod default/client on node1" in page and "Cluster inventory cluster.yaml: 2 nodes, 2 pods, 1 services" in page
    assert "pod default/client" not in html.render(service_call())  # nothing invented without an inventory


def test_capture_without_timestamps_and_empty_capture(tmp_path):
    untimed = html.page_data(analyze([InputSpec(str(CORPUS / "06-plantegg-flannel-vxlan-nnetvv.txt"))]))
    assert untimed["start"] == "-"  # tcpdump -t: no clock, no invented midnight
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    report = analyze([InputSpec(str(empty))])
    page = html.render(report)
    assert "No packet was followed: nothing to draw." in page
    assert _embedded(page) == {"points": [], "flows": [], "journeys": [], "aligned": {}}


@pytest.mark.parametrize("role,cls", [
    ("node NIC eth0, in", "nic"), ("node NIC, out", "nic"), ("pod bridge kube-bridge, out", "bridge"),
    ("veth veth146d3146 to pod 10.244.2.10", "veth"), ("pod veth vethab, in (flooded)", "veth"),
    ("flannel.1 VTEP (decapsulated)", "tunnel"), ("tunnel device", "tunnel"), ("gateway cilium_host, in", "gateway"),
    ("single capture point", "other"), (None, "other"),
])
def test_boxes_are_coloured_by_role(role, cls):
    assert html.role_class(role) == cls


@pytest.mark.parametrize("option", ["--html", "--pcapng"])
def test_unwritable_output_is_an_output_error_not_a_traceback(option, tmp_path):
    target = tmp_path / "missing-dir" / "out"
    done = subprocess.run([sys.executable, "-m", "cniscope", "analyze", option, str(target), str(SEED)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 5, done.stderr  # an output that cannot be written, like read -o (README)
    assert "Traceback" not in done.stderr and str(target) in done.stderr and "No such file or directory" in done.stderr


@needs_root
def test_tunnel_of_a_flannel_lab_is_drawn(vxlan_capture):
    captures, _ = vxlan_capture
    report = analyze([InputSpec(str(path), node) for node, path in captures.items()])
    topo = html.topology(report.journeys)
    tunnels = dict(topo["tunnels"])
    assert set(tunnels) == {"vxlan vni 1 :8472 192.168.200.11 > 192.168.200.12", "vxlan vni 1 :8472 192.168.200.12 > 192.168.200.11"}
    tunnel_edges = {(e.a.replace("\x1f", " "), e.b.replace("\x1f", " ")) for e in topo["edges"] if e.cls == "tunnel"}
    # encapsulated between flannel.1 and eth0 on the way out, decapsulated between eth0 and flannel.1 on the way in
    assert tunnel_edges == {("node1 flannel.1", "node1 eth0"), ("node2 eth0", "node2 flannel.1"),
                            ("node2 flannel.1", "node2 eth0"), ("node1 eth0", "node1 flannel.1")}
    assert {b.cls for b in topo["boxes"] if b.label == "flannel.1"} == {"tunnel"}


@needs_chromium
def test_negative_delays_between_nodes_are_drawn_signed(tmp_path):
    """Each receiver stamps the packet 20 us before its sender did (clocks aligned only that well): the ladder and
    the waterfall say -20 us, not +-20 us, and every waterfall bar stays on the axis."""
    page = tmp_path / "skew.html"
    html.write(receiver_stamps_first(), str(page))
    loaded = browser.load(page, {
        "ladder": "[...document.querySelectorAll('#journey-0 text.delay')].map(t => t.textContent)",
        "waterfall": "[...document.querySelectorAll('#waterfall .wfrow text')].map(t => t.textContent).filter(t => /s$/.test(t))",
        "bars": "[...document.querySelectorAll('#waterfall rect.bar')].map(r => +r.getAttribute('x'))",
        "tooltips": "[...document.querySelectorAll('#journey-0 circle.hop title')].map(t => t.textContent)",
    })
    assert loaded.errors == []
    assert loaded.values["ladder"] == ["-20 us", "+9 us"]
    assert loaded.values["waterfall"] == ["-20 us \u00b120 us", "+9 us"]  # between nodes: the clocks' alignment
    assert loaded.values["tooltips"][1] == "hop 2 of 3: node2 eth0 In (node NIC eth0, in), -20 us (clocks +/- 20 us); ttl 64 -> 63"
    assert all(x >= 280 for x in loaded.values["bars"])  # the waterfall's axis starts at x=280
