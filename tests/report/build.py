"""Reports for renderer tests, built from packet tables by the real correlation code.

`service_call()` is a hand-written table of one HTTP exchange across two nodes
through a Service (DNAT on node1), as tcpdump -i any shows it on kube-router:
pod veth In, kube-bridge In, eth0 Out on node1; eth0 In, kube-bridge Out,
veth Out on node3. Journeys and flows come from cniscope.journeys and
cniscope.flows, the model verdict and the finding are written by hand (what
the renderers must show, not what inference would say).
"""

from __future__ import annotations

import polars as pl

from cniscope import flows as flows_mod
from cniscope import journeys as journeys_mod
from cniscope.packets.schema import Clock, Direction, conform, ip4_value
from cniscope.results import Finding, FindingKind, InputSummary, ModelVerdict, Point, Report, Severity

CLIENT = ("10.244.1.10", 41000)
SERVICE = ("10.96.0.10", 80)
SERVER = ("10.244.3.10", 80)
T0 = 1_700_000_000_000_000_000
# (node, iface, direction, delay after the previous sighting in ns)
REQUEST_PATH = [("node1", "veth3f2a9c1d", Direction.IN, 0), ("node1", "kube-bridge", Direction.IN, 4_000),
                ("node1", "eth0", Direction.OUT, 21_000), ("node3", "eth0", Direction.IN, 180_000),
                ("node3", "kube-bridge", Direction.OUT, 6_000), ("node3", "vethc0ffee01", Direction.OUT, 3_000)]
REPLY_PATH = [(n, i, Direction.OUT if d is Direction.IN else Direction.IN, t) for n, i, d, t in reversed(REQUEST_PATH)]
# (flags, seq, ack, payload, from client?, gap before it in ns)
PACKETS = [(0x02, 1000, None, 0, True, 0), (0x12, 5000, 1001, 0, False, 300_000), (0x10, 1001, 5001, 0, True, 300_000),
           (0x18, 1001, 5001, 75, True, 50_000), (0x18, 5001, 1076, 612, False, 900_000), (0x11, 1076, 5613, 0, True, 400_000)]


def _row(frame: int, node: str, iface: str, direction: Direction, ts: int, src: tuple[str, int], dst: tuple[str, int],
         flags: int, seq: int, ack: int | None, payload: int, ttl: int, input_index: int) -> dict:
    return {
        "input": input_index, "frame": frame, "node": node, "iface": iface, "direction": int(direction), "ts": ts,
        "linktype": 276, "ethertype": 0x0800, "tunnel": 0, "ip_version": 4, "src": ip4_value(src[0]),
        "dst": ip4_value(dst[0]), "ip_id": (seq * 7 + payload) % 65536, "ttl": ttl, "proto": 6, "sport": src[1],
        "dport": dst[1], "tcp_flags": flags, "seq": seq, "ack": ack, "win": 502, "payload_len": payload,
    }


def service_table() -> pl.DataFrame:
    """Sightings of a 6-packet HTTP exchange, rows in input order (node1's file, then node3's)."""
    rows: list[dict] = []
    t = T0
    for flags, seq, ack, payload, forward, gap in PACKETS:
        t += gap
        path = REQUEST_PATH if forward else REPLY_PATH
        ts = t
        for hop, (node, iface, direction, delay) in enumerate(path):
            ts += delay
            on_node1 = node == "node1"
            if forward:  # the client's SYN is for the Service; from kube-bridge on it is for the pod
                src, dst = CLIENT, SERVICE if hop == 0 else SERVER
            else:  # the reply is un-DNATed on node1 before it reaches the client pod
                src, dst = SERVICE if hop == len(path) - 1 else SERVER, CLIENT
            ttl = 64 - (hop >= 2) - (hop >= 4)  # routed once on each node
            rows.append(dict(_row(0, node, iface, direction, ts, src, dst, flags, seq, ack, payload, ttl,
                                  0 if on_node1 else 1), _order=(0 if on_node1 else 1, ts)))
    rows.sort(key=lambda r: r.pop("_order"))
    counters = {0: 0, 1: 0}
    for r in rows:
        r["frame"] = counters[r["input"]]
        counters[r["input"]] += 1
    return conform(pl.DataFrame(rows))


def report_from_table(table: pl.DataFrame, inputs: list[InputSummary], model: ModelVerdict,
                      findings: list[Finding] | None = None) -> Report:
    correlation = journeys_mod.correlate(table)
    table = flows_mod.number(correlation.table).table
    journeys = journeys_mod.materialise(table)
    flows, journeys = flows_mod.build(table, journeys)
    points = [Point(*row) for row in table.group_by("node", "iface").len().sort("node", "iface", nulls_last=True).iter_rows()]
    return Report(inputs=inputs, table=table, journeys=journeys, flows=flows, findings=findings or [],
                  model=model, clocks=correlation.clocks, journeys_total=len(journeys), flows_total=len(flows), points=points)


def service_call() -> Report:
    table = service_table()
    inputs = [InputSummary(index=0, name="node1.pcapng", format="pcapng", node="node1", clock=Clock.EPOCH,
                        packets=table.filter(pl.col("input") == 0).height),
              InputSummary(index=1, name="node3.pcapng", format="pcapng", node="node3", clock=Clock.EPOCH,
                        packets=table.filter(pl.col("input") == 1).height)]
    model = ModelVerdict(name="kube-router", confidence=0.87, evidence=("kube-bridge on every node", "no tunnel envelope"),
                         runner_up="flannel-host-gw", candidates=(("kube-router", 0.87), ("flannel-host-gw", 0.31)),
                         service_proxy="kube-proxy iptables")
    report = report_from_table(table, inputs, model)
    syn = next(j for j in report.journeys if "[S]" in j.summary)
    finding = Finding(FindingKind.NAT, Severity.INFO, "Service 10.96.0.10:80 is DNATed to 10.244.3.10:80 on node1",
                      "the SYN leaves the pod for 10.96.0.10:80 and reaches kube-bridge for 10.244.3.10:80",
                      "none: this is how Services work", node="node1", iface="kube-bridge",
                      journeys=(syn.id,), flows=(syn.flow,) if syn.flow is not None else (), rows=(syn.hops[1].row,))
    report.findings.append(finding)
    return report


def receiver_stamps_first() -> Report:
    """A DNS query node1 -> node2 and its answer, each receiver stamping the packet 20 us before its sender did:
    the two-way clock estimate keeps both clocks (offset 0 +/- 20 us) and the delays between nodes stay negative."""
    from tests.findings.wire import IN, OUT, Wire, udp_dns

    wire = Wire()
    query, answer = udp_dns("10.0.0.1", 5353, "10.0.0.2", 77, False), udp_dns("10.0.0.2", 5353, "10.0.0.1", 77, True, ip_id=2)
    wire.see(query, "node1", "eth0", OUT, 20)
    wire.see(dict(query, ttl=63), "node2", "eth0", IN, 0)
    wire.see(dict(query, ttl=62), "node2", "cni0", OUT, 9)
    wire.see(answer, "node2", "eth0", OUT, 1020)
    wire.see(dict(answer, ttl=63), "node1", "eth0", IN, 1000)
    return wire.analyze()
