"""mtu, nat, tunnel, missing NAT, checksum offload on synthetic captures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from cniscope.findings import mtu, nat
from cniscope.packets.schema import ip4_text
from cniscope.results import FindingKind, Severity
from tests.findings.two_nodes import (
    CLIENT,
    INTO_N1,
    INTO_N3,
    N1,
    N3,
    OUT_OF_N1,
    OUT_OF_N3,
    V1,
    V3,
    WEB,
    conversation,
)
from tests.findings.wire import (
    ACK,
    IN,
    OUT,
    PSH,
    RST,
    SYN,
    Wire,
    alarms,
    icmp,
    of_kind,
    tcp,
    vxlan,
)


def test_large_packets_vanishing_after_a_hop_while_small_ones_pass_is_a_black_hole() -> None:
    wire = Wire()
    for i in range(4):
        wire.path(icmp(CLIENT, WEB, 8, seq=i, size=84, ip_id=i), OUT_OF_N1 + INTO_N3, i * 1_000_000)
        wire.path(icmp(WEB, CLIENT, 0, seq=i, size=84, ip_id=100 + i), OUT_OF_N3 + INTO_N1, i * 1_000_000 + 400)
        wire.path(icmp(CLIENT, WEB, 8, ident=8, seq=i, size=1428, ip_id=50 + i), OUT_OF_N1, i * 1_000_000 + 500_000)
    report = wire.analyze()
    mtu = of_kind(report, FindingKind.MTU)
    assert len(mtu) == 1
    assert (mtu[0].node, mtu[0].iface, mtu[0].severity) == (N1, "eth0", Severity.ERROR)
    assert (mtu[0].evidence.size, mtu[0].evidence.passed) == (1428, 84)
    assert of_kind(report, FindingKind.DROP) == []  # the same losses, explained once


def _payload_sizes_only(small: int, large: int, ip_len_shown: bool = False) -> Wire:
    """ICMP echoes as `tcpdump -nn` shows them: payload lengths, no IP length, no frame length."""
    wire = Wire()
    hide: dict[str, object] = {} if ip_len_shown else {"ip_len": None}
    for i in range(4):
        wire.path(icmp(CLIENT, WEB, 8, seq=i, size=small, ip_id=i), OUT_OF_N1 + INTO_N3, i * 1_000_000, **hide)
        wire.path(icmp(WEB, CLIENT, 0, seq=i, size=small, ip_id=100 + i), OUT_OF_N3 + INTO_N1, i * 1_000_000 + 400, **hide)
        wire.path(icmp(CLIENT, WEB, 8, ident=8, seq=i, size=large, ip_id=50 + i), OUT_OF_N1, i * 1_000_000 + 500_000, **hide)
    return wire


def test_black_hole_from_payload_lengths_is_bounded_by_the_headers() -> None:
    mtu = of_kind(_payload_sizes_only(84, 1428).analyze(), FindingKind.MTU)
    assert len(mtu) == 1 and (mtu[0].node, mtu[0].iface) == (N1, "eth0")
    # 1400 bytes of ICMP data: at least 1428 bytes of IP packet; 56 bytes: at most 56 + 8 + 60 (IPv4 options)
    assert (mtu[0].evidence.size, mtu[0].evidence.passed) == (1428, 124)  # bounded by the headers: at least, at most


def test_no_black_hole_when_unknown_headers_could_make_up_the_difference() -> None:
    assert of_kind(_payload_sizes_only(600, 640, ip_len_shown=True).analyze(), FindingKind.MTU)  # sizes known: a black hole
    report = _payload_sizes_only(600, 640).analyze()  # 600 passed, 640 lost: 40 bytes of IP options would even it out
    assert of_kind(report, FindingKind.MTU) == []
    assert of_kind(report, FindingKind.DROP), "the losses are still reported, as drops"


def test_frag_needed_names_the_mtu_and_the_quoted_conversation() -> None:
    wire = Wire()
    conversation(wire, 0)
    err = icmp("192.168.200.13", WEB, 3, icmp_code=4, size=576, icmp_mtu=1000, quoted_src=WEB, quoted_dst=CLIENT)
    wire.path(err, [(N3, "kube-bridge", OUT), (N3, V3, OUT)], 1_000_000)
    conversation(wire, 2_000_000, sport=40002)
    mtu = of_kind(wire.analyze(), FindingKind.MTU)
    assert len(mtu) == 1
    assert mtu[0].evidence.mtu == 1000 and mtu[0].evidence.addresses == ("192.168.200.13", "10.244.3.10", "10.244.1.11")


def test_ipv6_packet_too_big_names_the_router_that_sent_it() -> None:
    wire = Wire()
    too_big = dict(icmp(CLIENT, WEB, 2, size=1280, icmp_mtu=1280), ip_version=6, ethertype=0x86DD, proto=58, src=None, dst=None,
                   src6="fd00:10:244:3::1", dst6="fd00:10:244:1::11", ip_id=None)
    wire.see(too_big, N1, V1, OUT, 0)
    (mtu,) = of_kind(wire.analyze(), FindingKind.MTU)
    assert mtu.evidence.mtu == 1280 and mtu.evidence.addresses == ("fd00:10:244:3::1",)
    assert mtu.key == "mtu.frag_needed"


def _vxlan_conversation(wire: Wire, mss: int) -> None:
    n1, n3 = "192.168.200.11", "192.168.200.13"
    out1 = [(N1, V1, IN), (N1, "cni0", IN), (N1, "flannel.1", OUT)]
    in3 = [(N3, "cni0", OUT), (N3, V3, OUT)]
    syn = tcp(CLIENT, 40000, WEB, 80, SYN, 1, ip_id=1, mss=mss)
    wire.path(syn, out1, 0)
    wire.see(vxlan(n1, n3, syn), N1, "eth0", OUT, 20)
    wire.see(vxlan(n1, n3, syn), N3, "eth0", IN, 120)
    wire.path(syn, [(N3, "flannel.1", IN)] + in3, 125)
    synack = tcp(WEB, 80, CLIENT, 40000, SYN | ACK, 5, 2, ip_id=0, mss=mss)
    wire.path(synack, [(N3, V3, IN), (N3, "cni0", IN), (N3, "flannel.1", OUT)], 300)
    wire.see(vxlan(n3, n1, synack), N3, "eth0", OUT, 320)
    wire.see(vxlan(n3, n1, synack), N1, "eth0", IN, 420)
    wire.path(synack, [(N1, "flannel.1", IN), (N1, "cni0", OUT), (N1, V1, OUT)], 425)


def test_mss_larger_than_the_vxlan_mtu_allows() -> None:
    wire = Wire()
    _vxlan_conversation(wire, 1460)
    report = wire.analyze()
    mtu = of_kind(report, FindingKind.MTU)
    assert len(mtu) == 1  # its SYN seen on flannel.1 on both nodes: one finding
    assert (mtu[0].evidence.mss, mtu[0].evidence.mtu, mtu[0].evidence.overhead) == (1460, 1450, 50)
    assert mtu[0].key == "mtu.mss"  # lower the pods' MTU to evidence.mtu, or clamp the MSS
    assert of_kind(report, FindingKind.TUNNEL), "the tunnel itself is reported as information"


def test_mss_that_fits_the_tunnel_is_fine() -> None:
    wire = Wire()
    _vxlan_conversation(wire, 1410)
    report = wire.analyze()
    assert of_kind(report, FindingKind.MTU) == []
    assert alarms(report) == []


def test_one_byte_of_mss_above_the_tunnel_mtu_is_reported() -> None:
    """MSS 1411 makes 1451-byte packets: one more than flannel.1's 1450."""
    wire = Wire()
    _vxlan_conversation(wire, 1411)
    mtu = of_kind(wire.analyze(), FindingKind.MTU)
    assert [(f.evidence.mss, f.evidence.mtu, f.iface) for f in mtu] == [(1411, 1450, "flannel.1")]


def _enveloped_syn(wire: Wire, mss: int, port: int, at: int) -> None:
    """A SYN and its answer seen on the pods' veths and bridges and in their VXLAN envelopes, never on flannel.1."""
    n1, n3 = "192.168.200.11", "192.168.200.13"
    syn = tcp(CLIENT, port, WEB, 80, SYN, 1, ip_id=port % 1000, mss=mss)
    wire.path(syn, [(N1, V1, IN), (N1, "cni0", IN)], at)
    wire.see(vxlan(n1, n3, syn), N1, "eth0", OUT, at + 20)
    wire.see(vxlan(n1, n3, syn), N3, "eth0", IN, at + 120)
    wire.path(syn, [(N3, "cni0", OUT), (N3, V3, OUT)], at + 125)
    synack = tcp(WEB, 80, CLIENT, port, SYN | ACK, 5, 2, ip_id=0, mss=mss)
    wire.path(synack, [(N3, V3, IN), (N3, "cni0", IN)], at + 300)
    wire.see(vxlan(n3, n1, synack), N3, "eth0", OUT, at + 320)
    wire.see(vxlan(n3, n1, synack), N1, "eth0", IN, at + 420)
    wire.path(synack, [(N1, "cni0", OUT), (N1, V1, OUT)], at + 425)


def test_mss_agreed_through_envelopes_is_reported_per_mss() -> None:
    """Conversations whose SYNs are seen in their envelopes only: one finding per agreed MSS too big for VXLAN, naming
    the conversations and the first hop in an envelope of the first of them; one that fits is not named."""
    wire = Wire()
    for n, (mss, port) in enumerate([(1460, 40001), (1400, 40002), (1460, 40003), (1420, 40004)]):
        _enveloped_syn(wire, mss, port, n * 1_000_000)
    report = wire.analyze()
    mtu = sorted(of_kind(report, FindingKind.MTU), key=lambda f: f.evidence.mss)
    assert [(f.evidence.mss, f.evidence.mtu, f.evidence.packets, f.node, f.iface, f.key) for f in mtu] == [
        (1420, 1450, 1, N1, "eth0", "mtu.mss"), (1460, 1450, 2, N1, "eth0", "mtu.mss")]
    flows = {f.id: f for f in report.flows}
    assert [sorted(flows[i].client.port for i in f.flows) for f in mtu] == [[40004], [40001, 40003]]


def test_reply_that_missed_its_reverse_nat_is_answered_by_rst() -> None:
    """Client and endpoint on one bridge with br_netfilter off: the reply is bridged back untranslated."""
    wire = Wire()
    svc, other_v = "10.96.0.11", "veth55aa66bb"
    endpoint = "10.244.1.10"
    syn = tcp(CLIENT, 40000, svc, 80, SYN, 1, ip_id=1)
    wire.path(syn, [(N1, V1, IN), (N1, "kube-bridge", IN)], 0)
    wire.path(syn, [(N1, "kube-bridge", OUT), (N1, other_v, OUT)], 10, dst=endpoint)
    wire.path(tcp(endpoint, 80, CLIENT, 40000, SYN | ACK, 7, 2, ip_id=0), [(N1, other_v, IN), (N1, V1, OUT)], 100)
    wire.path(tcp(CLIENT, 40000, endpoint, 80, RST, 2, ip_id=2), [(N1, V1, IN), (N1, other_v, OUT)], 150)
    conversation(wire, 1_000_000)
    report = wire.analyze()
    missing = of_kind(report, FindingKind.MISSING_REVERSE_NAT)
    assert len(missing) == 1
    m = missing[0]
    assert (m.node, m.iface, m.severity) == (N1, V1, Severity.ERROR)
    assert m.evidence.addresses[:2] == ("10.244.1.11", "10.96.0.11") and m.evidence.retries == 1  # one reset
    assert m.key == "missing_reverse_nat"
    resets = of_kind(report, FindingKind.RESET)
    assert len(resets) == 1 and resets[0].evidence.addresses[0] == "10.244.1.11"  # sent by the client
    assert [(f.evidence.rewrite, f.evidence.addresses) for f in of_kind(report, FindingKind.NAT)] == [
        ("dnat", ("10.96.0.11:80", "10.244.1.10:80"))]


def test_nat_through_a_nodeport_with_its_reverse_on_the_reply() -> None:
    wire = Wire()
    client, node, bridge_ip = "192.168.200.50", "192.168.200.11", "10.244.1.1"
    syn = tcp(client, 5000, node, 30080, SYN, 1, ip_id=1)
    wire.see(syn, N1, "eth0", IN, 0)
    wire.path(syn, [(N1, "kube-bridge", OUT), (N1, V1, OUT)], 10, src=bridge_ip, dst=CLIENT, dport=80)
    synack = tcp(CLIENT, 80, bridge_ip, 5000, SYN | ACK, 9, 2, ip_id=0)
    wire.path(synack, [(N1, V1, IN), (N1, "kube-bridge", IN)], 100)
    wire.see(synack, N1, "eth0", OUT, 110, src=node, sport=30080, dst=client)
    report = wire.analyze()
    rewrites = sorted((f.evidence.rewrite, f.evidence.addresses, f.evidence.received) for f in of_kind(report, FindingKind.NAT))
    assert rewrites == [("dnat", ("192.168.200.11:30080", "10.244.1.11:80"), 1),  # the reply translated back
                        ("snat", ("192.168.200.50:5000", "10.244.1.1:5000"), 1)]
    assert all("translated_back" in f.evidence.notes for f in of_kind(report, FindingKind.NAT))
    assert of_kind(report, FindingKind.MISSING_REVERSE_NAT) == []


def test_pod_address_leaving_the_cluster_without_snat(tmp_path: Path) -> None:
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text("nodes:\n  - {name: node1, addresses: [192.168.200.11], podCIDR: 10.244.1.0/24}\n"
                       "  - {name: node3, addresses: [192.168.200.13], podCIDR: 10.244.3.0/24}\nserviceCIDR: 10.96.0.0/12\n")
    wire = Wire()
    outside = "198.51.100.7"
    for i in range(2):
        wire.path(tcp(CLIENT, 40000 + i, outside, 443, SYN, 10 + i, ip_id=i), [(N1, V1, IN), (N1, "cni0", IN), (N1, "eth0", OUT)],
                  i * 1_000_000)
    conversation(wire, 3_000_000)
    found = of_kind(wire.analyze(model="flannel-host-gw", cluster=cluster), FindingKind.MISSING_SNAT)
    assert len(found) == 1
    assert (found[0].node, found[0].iface) == (N1, "eth0")
    assert (found[0].evidence.addresses, found[0].evidence.packets) == ((CLIENT,), 2)
    assert of_kind(wire.analyze(model="flannel-host-gw"), FindingKind.MISSING_SNAT) == []  # cluster ranges unknown: silent


def test_bad_checksums_on_the_sender_are_an_offload_artefact() -> None:
    wire = Wire()
    pkt = tcp(CLIENT, 40000, WEB, 80, PSH | ACK, 1, 1, ip_id=9, length=100)
    wire.path(pkt, OUT_OF_N1, 0, l4_csum_bad=True)
    wire.path(pkt, INTO_N3, 110, l4_csum_bad=False)
    conversation(wire, 1_000_000)
    found = of_kind(wire.analyze(), FindingKind.CHECKSUM_OFFLOAD)
    assert len(found) == 1
    f = found[0]
    assert f.node == N1 and f.severity is Severity.INFO
    assert (f.evidence.packets, f.evidence.sent, f.evidence.received) == (1, 1, 0)
    assert len(f.rows) == 3


def test_positions_below_a_limit_a_block_at_a_time() -> None:
    """checksum_offload's `_below`: the positions of the values below the limit, in order, across blocks."""
    import numpy as np

    from cniscope.findings.artefacts import _below

    rng = np.random.default_rng(11)
    for n, block in [(0, 4), (1, 4), (17, 4), (64, 8), (1000, 1 << 16)]:
        values = rng.integers(0, 50, n).astype(np.uint32)
        for limit in (0, 10, 50):
            assert _below(values, limit, block).tolist() == np.flatnonzero(values < limit).tolist()


def test_each_conversations_least_mss_and_first_envelope_over_arrays_is_polars_grouping() -> None:
    """`mtu._per_flow` over runs of arrays gives what polars' grouping gives: per conversation the least MSS announced
    and the first journey in an envelope, the conversations without either left out; made-up arrays of every case."""
    rng = np.random.default_rng(5)
    for _ in range(50):
        n, journeys = int(rng.integers(0, 40)), int(rng.integers(1, 12))
        flow = np.sort(rng.integers(0, 8, n))
        at = rng.integers(0, journeys, n)
        mss, place = rng.choice([-1, 0, 1400, 1460], journeys), rng.choice([-1, -1, 0, 2], journeys)
        kind = rng.integers(1, 4, journeys)
        expected = pl.DataFrame({"flow": flow, "at": at, "mss": mss[at], "place": place[at], "kind": kind[at]}).group_by(
            "flow", maintain_order=True).agg(pl.col("mss").filter(pl.col("mss") >= 0).min(),
                                             *(pl.col(c).filter(pl.col("place") >= 0).first() for c in ("at", "place", "kind")))
        found = pl.DataFrame(mtu._per_flow(flow, at, mss, place, kind)).select(expected.columns)
        assert found.to_dicts() == expected.drop_nulls(["mss", "at"]).to_dicts()


def test_syns_announcing_groups_the_tunnel_devices_syns_by_first_sighting() -> None:
    """Read ahead for `mss`: the SYNs with an MSS on tunnel devices only, grouped by interface and MSS in the order of
    their first sightings, each group's rows in order; nothing read when no interface is a tunnel device."""
    table = pl.DataFrame({
        "row": pl.Series(range(8), dtype=pl.UInt32),
        "iface": pl.Series(["flannel.1", "eth0", "flannel.1", "tunl0", "flannel.1", "flannel.1", None, "tunl0"], dtype=pl.Categorical),
        "mss": pl.Series([1460, 1460, 1400, 1440, None, 1460, 1460, 1440], dtype=pl.UInt16),
        "tcp_flags": pl.Series([SYN, SYN, SYN | ACK, SYN, SYN, ACK, SYN, SYN], dtype=pl.UInt8),
    })
    assert mtu.syns_announcing(table).rows() == [("flannel.1", 1460, [0]), ("flannel.1", 1400, [2]), ("tunl0", 1440, [3, 7])]
    plain = table.with_columns(pl.Series("iface", ["eth0"] * 8, dtype=pl.Categorical))
    assert mtu.syns_announcing(plain).rows() == []


def made_up_envelopes(rng: np.random.Generator, n: int, ends: int, named: bool) -> pl.DataFrame:
    """`nat.envelopes`' columns of `n` sightings, most of them envelopes (a kind, VNI and port or none) between `ends`
    IPv4 addresses (or, `named`, IPv6 addresses and names as well), journeys seen several times each."""
    v4 = rng.integers(1, 2**32, ends, dtype=np.uint64).tolist()
    pick = rng.integers(0, ends, (2, n))
    table = pl.DataFrame({
        "row": np.arange(n, dtype=np.uint32), "journey": np.sort(rng.integers(0, max(n // 3, 1), n)).astype(np.uint32),
        "tunnel": pl.Series(rng.choice([0, 1, 1, 1, 3], n), dtype=pl.UInt8),
        "vni": pl.Series([None if v == 0 else int(v) for v in rng.integers(0, 4, n)], dtype=pl.UInt32),
        "outer_dport": pl.Series([None if v == 0 else 4789 + int(v) for v in rng.integers(0, 3, n)], dtype=pl.UInt16),
        "outer_src": pl.Series([v4[k] for k in pick[0]], dtype=pl.UInt32), "outer_dst": pl.Series([v4[k] for k in pick[1]], dtype=pl.UInt32),
    })
    six = [None] * n
    for name in ("outer_src6", "outer_dst6", "outer_src_name", "outer_dst_name"):
        table = table.with_columns(pl.Series(name, six, dtype=pl.Categorical))
    if named:  # some ends an IPv6 address or a name instead of an IPv4 one
        other = rng.integers(0, 4, (2, n))
        for side, choice in zip(("outer_src", "outer_dst"), other):
            table = table.with_columns(
                pl.when(pl.Series(choice == 1)).then(None).otherwise(pl.col(side)).alias(side),
                pl.Series(f"{side}6", ["fd00::" + str(k % 3) if c == 1 else None for k, c in zip(pick[0], choice)], dtype=pl.Categorical),
                pl.Series(f"{side}_name", ["host" if c == 2 else None for c in choice], dtype=pl.Categorical))
    return table


def envelopes_by_hand(table: pl.DataFrame) -> tuple[list[str], list[tuple[object, ...]], list[tuple[object, ...]], list[tuple[object, ...]]]:
    """`nat.envelopes` row by row: the texts, ways, groups and each envelope's journey and pair."""
    rows = [r for r in table.iter_rows(named=True) if (r["tunnel"] or 0) > 0]

    def text(r: dict[str, object], side: str) -> str | None:
        v4, v6, name = r[side], r[f"{side}6"], r[f"{side}_name"]
        return ip4_text(v4) if isinstance(v4, int) else (v6 if v6 else name)  # type: ignore[return-value]

    texts = sorted({t for r in rows for side in ("outer_src", "outer_dst") if (t := text(r, side)) is not None})
    rank = {t: k for k, t in enumerate(texts)}
    ways: dict[tuple[object, ...], set[int]] = {}
    groups: dict[tuple[object, ...], list[dict[str, object]]] = {}
    pairs = []
    for r in rows:
        s, d = (None if (t := text(r, side)) is None else rank[t] for side in ("outer_src", "outer_dst"))
        if s is None or d is None:  # the lower and the higher of the ends that have a text
            a = b = s if d is None else d
        else:
            a, b = min(s, d), max(s, d)
        pair = (r["tunnel"], a, b)
        ways.setdefault((*pair, s), set()).add(r["journey"])
        groups.setdefault(pair, []).append({**r, "_s": s, "_d": d})
        pairs.append((r["journey"], *pair))
    way_rows = [(*key, len(j)) for key, j in ways.items()]
    group_rows = [(*pair, g[0]["row"], g[0]["_s"], g[0]["_d"], sorted({x["vni"] for x in g if x["vni"] is not None}),
                   sorted({x["outer_dport"] for x in g if x["outer_dport"] is not None}), len({x["journey"] for x in g}), len(g),
                   [x["journey"] for x in g][:nat.PROBE]) for pair, g in groups.items()]
    return texts, way_rows, group_rows, pairs


@pytest.mark.parametrize(("ends", "named"), [(3, False), (nat.FEW_ENDS + 5, False), (4, True)])
def test_envelopes_are_grouped_by_pair_of_ends_and_sender(ends: int, named: bool) -> None:
    """Each pair of ends (either way round) and kind: its first envelope, VNIs, ports, packets and journeys; each way
    of it its packets; the ends' texts ranked in order. IPv4 ends ranked among few or many, other ends as text."""
    rng = np.random.default_rng(ends)
    table = made_up_envelopes(rng, 3000, ends, named)
    texts, ways, groups, pairs = envelopes_by_hand(table)
    found = nat.envelopes(table)
    assert found.texts == texts
    assert found.ways.rows() == ways
    assert found.groups.rows() == groups
    assert found.table.rows() == pairs
