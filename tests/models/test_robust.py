"""Inference, roles and the path check take any table the readers can produce without raising."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cniscope.models.infer import infer
from cniscope.models.roles import compare, label
from cniscope.packets.schema import mac_value

from .helpers import journeys_of, table_of

IFACES = [None, "eth0", "cni0", "flannel.1", "kube-bridge", "cali0123456789a", "tunl0", "lxc0a1b2c3d4e5f", "weave", "any", "x"]
ADDRS = [None, 0x0AF40305, 0x0AF40306, 0xC0A8C815, 0xE0000016, 0xA9FE0101]
row = st.fixed_dictionaries({
    "ts": st.one_of(st.none(), st.integers(0, 5_000_000_000)),
    "node": st.sampled_from([None, "node1", "node2"]),
    "iface": st.sampled_from(IFACES),
    "direction": st.sampled_from([None, 0, 1, 2, 3, 4]),
    "ip_version": st.sampled_from([None, 4]),
    "src": st.sampled_from(ADDRS),
    "dst": st.sampled_from(ADDRS),
    "src6": st.sampled_from([None, "fd00:10:244:3::a", "fe80::1"]),
    "dst6": st.sampled_from([None, "fd00:10:244:3::b", "ff02::1"]),
    "proto": st.sampled_from([None, 1, 6, 17]),
    "sport": st.sampled_from([None, 80, 179, 6783, 40000]),
    "dport": st.sampled_from([None, 53, 80, 179, 8285, 30080]),
    "tcp_flags": st.sampled_from([None, 2, 18, 16]),
    "seq": st.sampled_from([None, 1, 2]),
    "mss": st.sampled_from([None, 1336, 1410, 1460]),
    "ttl": st.sampled_from([None, 63, 64]),
    "tunnel": st.sampled_from([None, 0, 1, 2, 3, 4]),
    "vni": st.sampled_from([None, 1, 4096, 27634]),
    "outer_dport": st.sampled_from([None, 4789, 6081, 8472]),
    "eth_src": st.sampled_from([None, mac_value("ee:ee:ee:ee:ee:ee"), mac_value("0a:58:0a:f4:01:05")]),
    "arp_tpa": st.sampled_from([None, 0xA9FE0101]),
})


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(row, min_size=0, max_size=12))
def test_any_table_gives_a_verdict_roles_and_findings(rows: list[dict]) -> None:
    table = table_of(rows)
    journeys = journeys_of(table)
    verdict = infer(table, journeys)
    assert 0.0 <= verdict.confidence <= 1.0
    labelled = label(journeys, table, verdict)
    assert all(h.role for j in labelled for h in j.hops)
    compare(labelled, table, verdict)
