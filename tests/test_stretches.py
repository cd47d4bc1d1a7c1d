"""Which node saw a packet first: TTL, the hand-over between like-named interfaces, direction; time only last."""

from __future__ import annotations

import polars as pl

from cniscope import stretches
from cniscope.packets.schema import Direction
from tests.findings.wire import IN, OUT, SYN, Wire, tcp

OUT_, IN_ = int(Direction.OUT), int(Direction.IN)


def frame(rows: list[tuple[int, int, int, int | None, int, str | None]]) -> pl.DataFrame:
    """(journey, node id, ts, ttl, direction, iface) per sighting."""
    return pl.DataFrame(
        [(j, n, ts, ttl, d, iface, row) for row, (j, n, ts, ttl, d, iface) in enumerate(rows)],
        schema={"journey": pl.UInt64, "_nid": pl.UInt32, "ts": pl.Int64, "ttl": pl.UInt8, "direction": pl.UInt8,
                "iface": pl.Utf8, "row": pl.UInt32},
        orient="row",
    )


def test_a_three_node_path_is_ordered_by_hand_overs_whatever_the_clocks_say():
    """External client node C -> NodePort on A -> pod on B; B's clock is behind, no TTL shown (text without -v)."""
    wire = Wire()
    syn = dict(tcp("192.168.0.9", 40000, "192.168.0.1", 30080, SYN, 1, ip_id=3), ttl=None)
    wire.see(syn, "nodeC", "eth0", OUT, 500)
    wire.see(syn, "nodeA", "eth0", IN, 520)
    wire.see(syn, "nodeA", "eth0", OUT, 530, dst="10.244.2.7", dport=80, src="192.168.0.1")  # DNAT + SNAT
    wire.see(syn, "nodeB", "eth0", IN, 100, dst="10.244.2.7", dport=80, src="192.168.0.1")
    wire.see(syn, "nodeB", "cni0", OUT, 105, dst="10.244.2.7", dport=80, src="192.168.0.1")
    report = wire.analyze()
    (journey,) = report.journeys
    assert [(h.node, h.iface, h.direction) for h in journey.hops] == [
        ("nodeC", "eth0", "Out"), ("nodeA", "eth0", "In"), ("nodeA", "eth0", "Out"), ("nodeB", "eth0", "In"), ("nodeB", "cni0", "Out")]


def test_sender_pairs_weigh_ttl_then_hand_over_then_direction():
    t = frame([
        # journey 1: TTL says node 0 first (64 > 63), though the hand-over is not shown (no interface names)
        (1, 0, 10, 64, IN_, None), (1, 0, 20, 63, OUT_, None), (1, 1, 5, 63, IN_, None),
        # journey 2: no TTL; node 1 hands over eth0 Out -> node 0 eth0 In
        (2, 1, 100, None, IN_, "veth1"), (2, 1, 110, None, OUT_, "eth0"), (2, 0, 90, None, IN_, "eth0"), (2, 0, 95, None, OUT_, "veth2"),
        # journey 3: no TTL, nothing named: node 0 only sent, node 1 only received
        (3, 0, 200, None, OUT_, None), (3, 1, 150, None, IN_, None),
        # journey 4: no evidence at all (both nodes In and Out on unnamed interfaces): left out
        (4, 0, 300, None, IN_, None), (4, 0, 301, None, OUT_, None), (4, 1, 302, None, IN_, None), (4, 1, 303, None, OUT_, None),
    ])
    pairs = stretches.sender_pairs(stretches.collect(t, "ts").stats).sort("gap")
    assert pairs.rows() == [(0, 1, -50), (1, 0, -20), (0, 1, -15)]


def test_a_hand_over_seen_both_ways_decides_nothing():
    """Both nodes leave and enter on eth0 (a packet bounced between them): the hand-over cannot tell."""
    t = frame([(1, 0, 10, None, IN_, "eth0"), (1, 0, 20, None, OUT_, "eth0"), (1, 1, 5, None, IN_, "eth0"), (1, 1, 8, None, OUT_, "eth0")])
    assert stretches.sender_pairs(stretches.collect(t, "ts").stats).is_empty()
    assert stretches.handover(stretches.collect(t, "ts").stats).height == 2
