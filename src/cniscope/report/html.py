"""`--html`: the report as one self-contained HTML page (inline CSS, JS and SVG; no fetches).

What it holds: the topology as seen (nodes, their capture points with the
model's roles, tunnels, services) with every observed path drawn on it; the
conversations, listed, one expanded at a time, each as a ladder (sequence)
diagram across capture points and nodes with the delay of every hop; a latency
waterfall for the selected packet; the findings linked to the packets that
prove them; the model with its evidence; clocks, inputs and warnings.

Theory of operation: `page_data()` turns the Report into plain data (pure, no
I/O): the topology is laid out here and drawn as a static SVG by the template;
conversations go into one embedded JSON document that the page's script draws
from on demand (a ladder for the expanded conversation, a waterfall for the
selected packet), so the file grows with the packets embedded, not with the
diagrams. What is embedded is capped (`Limits`) and the page says so.
Timestamps in the page are relative to the first sighting (ns), which keeps
them exact in JavaScript numbers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import jinja2

from cniscope import __version__
from cniscope.packets.schema import Clock
from cniscope.report.format import duration, flow_facts, timestamp
from cniscope.results import (
    ChangeKind,
    Endpoint,
    Finding,
    FindingKind,
    Flow,
    Journey,
    Report,
)

# hop role text (cniscope.models.roles writes "node NIC eth0, in", "veth vethab12cd34 to pod 10.244.2.10",
# "flannel.1 VTEP" ...) -> CSS class of its box; first match wins
ROLE_CLASSES = (
    (re.compile(r"^node NIC"), "nic"),
    (re.compile(r"^(pod bridge|datapath)"), "bridge"),
    (re.compile(r"^(pod )?veth\b"), "veth"),
    (re.compile(r"^pod interface"), "pod"),
    (re.compile(r"VTEP|tunnel device"), "tunnel"),
    (re.compile(r"^(gateway|service dummy)"), "gateway"),
)
# top to bottom inside a node: pods' side first, the node's NIC last, so paths between nodes leave from the bottom
CLASS_ROW = {"pod": 0, "veth": 1, "bridge": 2, "gateway": 3, "tunnel": 4, "nic": 5, "other": 6}
# change kind -> edge class in the topology (first match wins: a NAT edge that also routes is drawn as NAT)
EDGE_CLASS = (
    (ChangeKind.DNAT, "nat"), (ChangeKind.SNAT, "nat"), (ChangeKind.ENCAP, "tunnel"), (ChangeKind.DECAP, "tunnel"),
)

BOX_W, BOX_H, BOX_GAP = 150, 40, 18  # BOX_W: the narrowest box; boxes grow to their text
NODE_PAD, NODE_TITLE, NODE_GAP = 16, 28, 110
TOP = 10
# Box texts are set in a monospace font (the page's CSS), so their width is known here without a browser: at most
# MONO_EM of the font size per character (DejaVu Sans Mono and Menlo 0.602, Liberation Mono 0.600, Consolas 0.550).
MONO_EM = 0.62
LABEL_PX, ROLE_PX, NODE_PX, BOX_PAD = 12, 10, 13, 10


def text_width(text: str, px: float) -> float:
    """Width of `text` in the page's monospace font at `px` pixels, rounded up to cover every font of the stack."""
    return len(text) * px * MONO_EM


@dataclass(frozen=True)
class Limits:
    """What is embedded at most; the rest is counted and the page says how much was left out."""

    flows: int = 1000
    journeys_per_flow: int = 100
    journeys: int = 5000
    points: int = 200  # capture points drawn in the topology
    findings: int = 200  # the most severe first


@dataclass
class Box:
    key: str
    node: str
    label: str
    role: str | None
    cls: str
    x: int = 0
    y: int = 0
    packets: int = 0
    w: int = BOX_W

    @property
    def caption(self) -> str:
        """The box's second line: its role and how many sightings."""
        return f"{self.role or 'role unknown'} · {self.packets}"


@dataclass
class NodeBox:
    name: str
    x: int
    y: int
    w: int
    h: int


@dataclass
class Edge:
    a: str
    b: str
    packets: int = 0
    cls: str = "plain"
    flows: set[int] = field(default_factory=set)
    notes: set[str] = field(default_factory=set)
    path: str = ""
    label_x: float = 0
    label_y: float = 0
    label: str = ""


def role_class(role: str | None) -> str:
    for pattern, cls in ROLE_CLASSES:
        if role and pattern.search(role):
            return cls
    return "other"


def _point_key(node: str | None, iface: str | None, point: str) -> tuple[str, str]:
    """(node, place): a capture point without its direction, so In and Out of one interface share a box."""
    if iface is not None:
        return node or "", iface
    place = point.removeprefix(node or "").strip() if node else point
    return node or "", place or "?"


def _key(node: str, place: str) -> str:
    return f"{node}\x1f{place}"


def topology(journeys: Iterable[Journey], limits: Limits = Limits()) -> dict[str, Any]:
    """Nodes, capture-point boxes and the observed edges between them, laid out for SVG."""
    boxes: dict[str, Box] = {}
    order: list[str] = []  # nodes in order of first appearance
    edges: dict[tuple[str, str], Edge] = {}
    tunnels: dict[str, int] = {}
    services: dict[str, int] = {}
    for journey in journeys:
        prev: str | None = None
        for hop in journey.hops:
            node, place = _point_key(hop.node, hop.iface, hop.point)
            key = _key(node, place)
            if key not in boxes:
                if len(boxes) >= limits.points:
                    prev = None
                    continue
                if node not in order:
                    order.append(node)
                boxes[key] = Box(key, node, place, None, "other")
            box = boxes[key]
            box.packets += 1
            if box.role is None and hop.role:
                box.role, box.cls = hop.role.split(", ")[0], role_class(hop.role)
            for change in hop.changes:
                if change.kind is ChangeKind.ENCAP:
                    tunnels[change.after] = tunnels.get(change.after, 0) + 1
                if change.kind is ChangeKind.DNAT:
                    services[f"{change.before} -> {change.after}"] = services.get(f"{change.before} -> {change.after}", 0) + 1
            if prev is not None and prev != key:
                edge = edges.setdefault((prev, key), Edge(prev, key))
                edge.packets += 1
                if journey.flow is not None:
                    edge.flows.add(journey.flow)
                kinds = {c.kind for c in hop.changes}
                for kind, cls in EDGE_CLASS:
                    if kind in kinds and edge.cls == "plain":
                        edge.cls = cls
                for change in hop.changes:
                    if change.kind is not ChangeKind.TTL:
                        edge.notes.add(str(change))
            prev = key
    nodes = _layout(order, boxes)
    for edge in edges.values():
        _route(edge, boxes[edge.a], boxes[edge.b])
    width = max((n.x + n.w for n in nodes), default=0) + 60
    height = max((n.y + n.h for n in nodes), default=0) + 20
    return {
        "nodes": nodes,
        "boxes": list(boxes.values()),
        "edges": sorted(edges.values(), key=lambda e: (e.cls != "plain", e.packets)),
        "tunnels": sorted(tunnels.items()),
        "services": sorted(services.items()),
        "width": width,
        "height": height,
    }


def _layout(order: list[str], boxes: dict[str, Box]) -> list[NodeBox]:
    """Nodes side by side, each a column of its capture points as wide as its longest text."""
    nodes: list[NodeBox] = []
    x = 40
    for name in order:
        title = name or "(node not named)"
        members = sorted((b for b in boxes.values() if b.node == name), key=lambda b: CLASS_ROW[b.cls])  # stable
        inner = max([BOX_W, text_width(title, NODE_PX) - 2 * NODE_PAD + 24,
                     *(max(text_width(b.label, LABEL_PX), text_width(b.caption, ROLE_PX)) + 2 * BOX_PAD for b in members)])
        width = int(inner + 0.999)
        for i, box in enumerate(members):
            box.x, box.w = x + NODE_PAD, width
            box.y = TOP + NODE_TITLE + NODE_PAD + i * (BOX_H + BOX_GAP)
        h = NODE_TITLE + 2 * NODE_PAD + len(members) * (BOX_H + BOX_GAP) - BOX_GAP
        nodes.append(NodeBox(title, x, TOP, width + 2 * NODE_PAD, h))
        x += width + 2 * NODE_PAD + NODE_GAP
    return nodes


def _route(edge: Edge, a: Box, b: Box) -> None:
    """An SVG path from a to b: an arc beside the column within a node, a curve between nodes."""
    if a.x == b.x:  # same node: downward paths on the right, upward ones on the left
        down = b.y > a.y
        side = a.x + a.w if down else a.x
        bulge = 46 if down else -46
        y1, y2 = a.y + BOX_H / 2 + (4 if down else -4), b.y + BOX_H / 2 + (-4 if down else 4)
        edge.path = f"M{side},{y1} C{side + bulge},{y1} {side + bulge},{y2} {side},{y2}"
        edge.label_x, edge.label_y = side + bulge * 0.8, (y1 + y2) / 2
    else:
        right = b.x > a.x
        x1 = a.x + a.w if right else a.x
        x2 = b.x if right else b.x + b.w
        shift = -5 if right else 5  # the two directions of one pair of boxes do not overlap
        y1, y2 = a.y + BOX_H / 2 + shift, b.y + BOX_H / 2 + shift
        mid = (x1 + x2) / 2
        edge.path = f"M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}"
        edge.label_x, edge.label_y = mid, (y1 + y2) / 2 + shift * 2
    if edge.cls == "nat":
        edge.label = "NAT"
    elif edge.cls == "tunnel":
        edge.label = "tunnel"


def _flow_facts(flow: Flow) -> list[str]:
    return flow_facts(flow) + list(flow.notes)


def _who(report: Report, endpoint: Endpoint) -> str:
    """What the cluster inventory says an address is ("pod default/web2 on node2"); "" without one."""
    if report.inventory is None or not endpoint.addr or endpoint.addr == "?":
        return ""
    return report.inventory.describe(endpoint.addr, endpoint.port) or ""


def page_data(report: Report, limits: Limits = Limits()) -> dict[str, Any]:
    """Everything the template needs, as plain data."""
    journeys = {j.id: j for j in report.journeys}
    flagged: dict[int, list[int]] = {}  # journey -> findings that cite it
    row_journey = {h.row: j.id for j in report.journeys for h in j.hops}
    findings = sorted(enumerate(report.findings), key=lambda item: -item[1].severity.rank)
    lost: set[int] = set()  # packets a drop finding says were lost after their last sighting
    for n, finding in findings:
        for jid in dict.fromkeys((*finding.journeys, *(row_journey[r] for r in finding.rows if r in row_journey))):
            flagged.setdefault(jid, []).append(n)
            if finding.kind is FindingKind.DROP:
                lost.add(jid)
    first_ts = min((h.ts for j in report.journeys for h in j.hops if h.ts is not None), default=None)
    base = first_ts or 0
    points: dict[str, int] = {}
    point_list: list[list[str | None]] = []
    flows_out: list[dict[str, Any]] = []
    embedded: list[dict[str, Any]] = []
    grouped: set[int] = set()
    for flow in report.flows:
        members = [journeys[j] for j in flow.journeys if j in journeys]
        grouped.update(j.id for j in members)
        if len(flows_out) >= limits.flows:
            continue
        room = max(0, min(limits.journeys_per_flow, limits.journeys - len(embedded)))
        shown = members[:room]
        flows_out.append({
            "id": flow.id, "proto": flow.proto, "client": str(flow.client), "server": str(flow.server),
            "client_who": _who(report, flow.client), "server_who": _who(report, flow.server), "state": flow.state,
            "legs": [f"{a} -> {b}" for a, b in flow.legs], "facts": _flow_facts(flow),
            "journeys": [j.id for j in shown], "total": len(flow.journeys),
            "flagged": any(j.id in flagged for j in members),
        })
        embedded.extend(_journey_data(j, points, point_list, base, flagged, lost) for j in shown)
    loose = [j for j in report.journeys if j.id not in grouped]
    if loose and len(flows_out) < limits.flows:  # packets no conversation claims (ARP, unparsed) still get a ladder
        room = max(0, min(limits.journeys_per_flow, limits.journeys - len(embedded)))
        flows_out.append({
            "id": -1, "proto": "other", "client": "", "server": "", "client_who": "", "server_who": "",
            "state": "not in a conversation", "legs": [],
            "facts": [f"{len(loose)} packets"], "journeys": [j.id for j in loose[:room]], "total": len(loose),
            "flagged": any(j.id in flagged for j in loose),
        })
        embedded.extend(_journey_data(j, points, point_list, base, flagged, lost) for j in loose[:room])
    topo = topology(report.journeys, limits)
    clocks = {i.index: i.clock for i in report.inputs}
    input_of = report.table["input"].to_list() if "input" in report.table.columns else []
    first_clock = clocks.get(input_of[0]) if input_of else None
    return {
        "version": __version__,
        "inputs": report.inputs,
        "sightings": report.table.height,
        "journeys_total": report.journeys_total,
        "conversations_total": report.flows_total,  # in the capture (the list holds the first ones)
        "conversations_listed": sum(1 for f in flows_out if f["id"] >= 0),
        "selection": report.selection,
        "model": report.model,
        "clocks": report.clocks,
        "warnings": report.warnings,
        "topology": topo,
        "services": [(text, n, _service_who(report, text)) for text, n in topo["services"]],
        "inventory": report.inventory,
        "findings": [_finding_data(n, f, journeys, row_journey) for n, f in findings[:limits.findings]],
        "findings_total": len(findings),
        "flows": flows_out,
        "embedded_journeys": len(embedded),
        "start": timestamp(first_ts, first_clock) if first_clock not in (None, Clock.NONE) else "-",
        "data": {"points": point_list, "flows": flows_out, "journeys": embedded, "aligned": report.aligned()},
    }


def _service_who(report: Report, rewrite: str) -> str:
    """The inventory's name for the address a DNAT rewrote ("10.96.0.10:80 -> ...")."""
    before = rewrite.split(" -> ")[0]
    addr, _, port = before.rpartition(":")
    if not addr or not port.isdigit():
        addr, port = before, ""
    return _who(report, Endpoint(addr.strip("[]"), int(port) if port else None))


def _journey_data(journey: Journey, points: dict[str, int], point_list: list[list[str | None]], base: int,
                  flagged: dict[int, list[int]], lost: set[int]) -> dict[str, Any]:
    hops = []
    for hop in journey.hops:
        node, place = _point_key(hop.node, hop.iface, hop.point)
        label = f"{node}\x1f{place}\x1f{hop.direction or ''}\x1f{hop.role or ''}"
        if label not in points:
            points[label] = len(point_list)
            point_list.append([node, place, hop.direction, hop.role, _key(node, place)])
        hops.append([points[label], None if hop.ts is None else hop.ts - base, hop.delay_ns,
                     "; ".join([str(c) for c in hop.changes] + ([hop.sent_to_text()] if hop.mac_to else [])), hop.row])
    return {"id": journey.id, "flow": journey.flow, "s": journey.summary, "r": journey.retransmission_of,
            "f": flagged.get(journey.id, []), "x": journey.id in lost, "h": hops}


def _finding_data(n: int, finding: Finding, journeys: dict[int, Journey], row_journey: dict[int, int]) -> dict[str, Any]:
    cited = sorted({*finding.journeys, *(row_journey[r] for r in finding.rows if r in row_journey)})  # as Finding lists them
    return {
        "n": n, "kind": finding.kind.value, "severity": finding.severity.value, "title": finding.title,
        "explanation": finding.explanation, "next_step": finding.next_step,
        "where": " ".join(x for x in (finding.node, finding.iface) if x),
        "journeys": [(j, j in journeys) for j in cited[:50]], "more": max(0, len(cited) - 50),
        "rows": list(finding.rows[:50]),
    }


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("cniscope.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"], default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["duration"] = duration
    env.filters["pct"] = lambda x: f"{x:.0%}"
    return env


def render(report: Report, limits: Limits = Limits()) -> str:
    """The page, as text."""
    data = page_data(report, limits)
    # "<" (as in "</script>" or "<!--" in a capture's text) must not reach the HTML parser; \u003c is the same JSON
    script_data = json.dumps(data["data"], separators=(",", ":")).replace("<", "\\u003c")
    return _env().get_template("report.html.j2").render(page=data, script_data=script_data, limits=limits)


def write(report: Report, path: str, limits: Limits = Limits()) -> None:
    with open(path, "w", encoding="utf-8") as out:
        out.write(render(report, limits))
