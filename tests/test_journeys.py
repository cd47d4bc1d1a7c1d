"""Journeys, clocks and conversations on the seed and the real captures of the corpus."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from cniscope import journeys as journeys_mod
from cniscope.analyze import analyze
from cniscope.ingest import read
from cniscope.journeys import (
    _first_distinct,
    _first_in_run,
    _rows_in,
    capture_points,
    correlate_partition,
    fingerprint,
    group,
    key_fields,
    nothing_inside,
    one_capture_point,
    one_node_partial,
    order_hops,
)
from cniscope.report import json_out
from cniscope.results import ChangeKind
from cniscope.sources import InputSpec
from tests.paths import CORPUS, SEED
from tests.paths import DATA as TESTS_DATA

DATA = Path(__file__).parent / "data" / "journeys"


def test_seed_is_five_packets_seen_three_times_each():
    report = analyze([InputSpec(str(SEED))])
    assert report.table.height == 15
    assert [len(j.hops) for j in report.journeys] == [3, 3, 3, 3, 3]
    assert [j.summary.split(" [")[1].split("]")[0] for j in report.journeys] == ["S", "S.", ".", "P.", "."]
    syn = report.journeys[0]
    assert [h.delay_ns for h in syn.hops] == [None, 212_000, 3_000]
    assert all(not h.changes for j in report.journeys for h in j.hops)
    (flow,) = report.flows
    assert {str(flow.client), str(flow.server)} == {"192.168.200.21:56888", "10.244.3.10:80"}
    assert str(flow.client) == "192.168.200.21:56888"
    assert flow.journeys == (0, 1, 2, 3, 4)
    assert flow.handshake == {"syn_to_synack_ns": 376_000, "synack_to_ack_ns": 4_424_000}
    assert flow.retransmissions == 0 and not any(j.retransmission_of is not None for j in report.journeys)
    assert flow.bytes == 75
    assert not [f for f in report.findings if f.kind.value == "retransmission"]


def test_nodeport_dnat_and_snat_are_one_conversation():
    report = analyze([InputSpec(str(CORPUS / "22-weave3014-nodeport-any-dnat-snat.txt"))])
    (flow,) = report.flows
    syn = report.journeys[0]
    changes = {(c.kind, c.before, c.after) for h in syn.hops for c in h.changes}
    assert (ChangeKind.DNAT, "10.128.0.5:30080", "10.32.0.3:80") in changes
    assert (ChangeKind.SNAT, "10.128.0.4:48036", "10.32.0.1:48036") in changes
    legs = {(str(a), str(b)) for a, b in flow.legs}
    assert ("10.128.0.4:48036", "10.128.0.5:30080") in legs and ("10.32.0.1:48036", "10.32.0.3:80") in legs
    assert set(flow.journeys) == {j.id for j in report.journeys}
    assert str(flow.client) == "10.128.0.4:48036" and str(flow.server) == "10.128.0.5:30080"


def test_vxlan_outer_packet_pairs_with_the_inner_packets_other_sightings():
    report = analyze([InputSpec(str(DATA / "flannel-vxlan-paired.txt"))])
    assert len(report.journeys) == 2
    request, reply = report.journeys
    assert [h.iface for h in request.hops] == ["flannel.1", "eth0"]
    encap = request.hops[1].changes
    assert [c.kind for c in encap] == [ChangeKind.ENCAP]
    assert "vxlan vni 1 :8472 172.16.0.5 > 172.16.0.4" in encap[0].after
    assert [h.iface for h in reply.hops] == ["eth0", "flannel.1"]
    assert [c.kind for c in reply.hops[1].changes] == [ChangeKind.DECAP]
    assert request.hops[1].delay_ns == 55_000


@pytest.mark.parametrize("name", ["04-msazure-flannel-vxlan-e.txt", "06-plantegg-flannel-vxlan-nnetvv.txt",
                                  "12-fluxop-flannel-any-inout-dns.txt", "14-cilium-vxlan-otv-vv.txt"])
def test_every_vxlan_sighting_joins_the_journey_of_its_inner_packet(name):
    report = analyze([InputSpec(str(CORPUS / name))])
    table = report.table
    tunnelled = table.filter(table["tunnel"] == 1)
    assert tunnelled.height > 0
    for row in tunnelled.iter_rows(named=True):
        journey = report.journeys[row["journey"]]
        # the journey is the inner packet's: every other sighting in it is the same packet (same fingerprint)
        assert row["row"] in [h.row for h in journey.hops]
        others = table.filter(table["journey"] == row["journey"])
        packet = ["proto", "tcp_flags", "seq", "ack", "tsval", "icmp_type", "icmp_id", "icmp_seq", "dns_id", "payload_len"]
        assert others.select(packet).n_unique() == 1
        assert journey.summary.startswith(("ICMP", "TCP", "UDP"))
        assert "8472" not in journey.summary  # the outer UDP is the envelope, not the packet


def test_two_nodes_with_clocks_twelve_hours_apart_are_aligned(tmp_path):
    lines = (CORPUS / "14-cilium-vxlan-otv-vv.txt").read_text().splitlines(keepends=True)
    node01, node02 = tmp_path / "node01.txt", tmp_path / "node02.txt"
    node01.write_text("".join(lines[:28]))  # Node01: cilium_vxlan, then eth0 (see the .meta.md)
    node02.write_text("".join(lines[28:]))  # Node02: eth0, then cilium_vxlan
    report = analyze([InputSpec(str(node01), "node01"), InputSpec(str(node02), "node02")])
    (clock,) = report.clocks
    assert clock.node == "node02" and clock.reference == "node01"
    twelve_hours = 12 * 3600 * 10**9
    assert abs(clock.offset_ns + twelve_hours) < 50_000_000, clock
    assert clock.uncertainty_ns < 100_000_000
    assert any(f.kind.value == "clock_skew" and f.node == "node02" for f in report.findings)


def test_one_paste_from_two_nodes_is_split_by_prompts_and_aligned(tmp_path):
    """14 as a user would paste it: the four captures one after the other, each after the prompt that ran it
    (they are separate runs: the ping's sequence numbers tie the clocks)."""
    lines = (CORPUS / "14-cilium-vxlan-otv-vv.txt").read_text().splitlines(keepends=True)
    paste = tmp_path / "paste.txt"
    paste.write_text("root@node01:~# tcpdump -i cilium_vxlan icmp -n -vv\n" + "".join(lines[:12])
                     + "^C\nroot@node01:~# tcpdump -i eth0 -n dst 192.168.66.221 and udp -vv\n" + "".join(lines[12:28])
                     + "[root@node02 ~]# tcpdump -i eth0 -n src 192.168.66.226 and udp -vv\n" + "".join(lines[28:45])
                     + "[root@node02 ~]# tcpdump -i cilium_vxlan -n dst 10.244.6.11 -vv\n" + "".join(lines[45:]))
    report = analyze([InputSpec(str(paste))])
    (clock,) = report.clocks
    assert (clock.node, clock.reference) == ("node02", "node01")
    assert abs(clock.offset_ns + 12 * 3600 * 10**9) < 50_000_000, clock
    # the same sightings as given in two files, one per node (the test above)
    node01, node02 = tmp_path / "node01.txt", tmp_path / "node02.txt"
    node01.write_text("".join(lines[:28]))
    node02.write_text("".join(lines[28:]))
    split = analyze([InputSpec(str(node01), "node01"), InputSpec(str(node02), "node02")])
    columns = ["node", "ts", "icmp_seq", "tunnel"]
    assert report.table.select(columns).equals(split.table.select(columns))
    # lines 13-28 have no banner: the prompt's `-i eth0` names their interface (the split file can only guess)
    assert report.table["iface"].to_list()[6:10] == ["eth0"] * 4
    assert [(c.node, c.offset_ns) for c in split.clocks] == [(clock.node, clock.offset_ns)]
    assert any(f.kind.value == "clock_skew" and f.node == "node02" for f in report.findings)


def test_a_node_with_no_packets_still_gives_a_report():
    report = analyze([InputSpec(str(SEED), "node3"), InputSpec(str(DATA / "banner-only.txt"), "node2")])
    assert len(report.journeys) == 5
    assert any("banner-only.txt" in w and "no packets" in w for w in report.warnings)


def test_a_damaged_file_keeps_what_was_read(tmp_path):
    good = CORPUS / "02-ysaied-pan-cn-calico-eth.pcap"
    cut = tmp_path / "cut.pcap"
    data = good.read_bytes()
    cut.write_bytes(data[: len(data) - 30])
    report = analyze([InputSpec(str(cut), "nodeA"), InputSpec(str(SEED), "node3")])
    assert report.inputs[0].damaged and report.inputs[0].packets == 13
    assert any("cut.pcap" in str(w) and "byte" in w.where for w in report.inputs[0].warnings)  # with its input, said once
    assert len(report.journeys) >= 5


def test_no_timestamps_still_groups_by_fingerprint():
    report = analyze([InputSpec(str(CORPUS / "06-plantegg-flannel-vxlan-nnetvv.txt"))])
    assert report.table["ts"].null_count() == report.table.height
    assert len(report.journeys) == report.table.height  # separate runs: every packet is different
    assert all(h.delay_ns is None for j in report.journeys for h in j.hops)


def test_a_nodes_sightings_stay_together_when_the_receiver_clock_runs_ahead_of_the_wire():
    """Corrected clocks are microseconds (lab) to milliseconds (NTP) apart, a hop between nodes takes
    microseconds: here each receiver stamps the packet 30 us *before* its sender did, in both directions,
    which no clock offset can explain away. The order comes from the packet (TTL) and the directions."""
    from tests.findings.wire import ACK, IN, OUT, SYN, Wire, tcp, vxlan

    wire = Wire()
    syn = tcp("10.244.1.2", 40000, "10.244.2.3", 80, SYN, 1, ip_id=7, ttl=64)
    synack = tcp("10.244.2.3", 80, "10.244.1.2", 40000, SYN | ACK, 500, 2, ip_id=9, ttl=64)
    for at, packet, (a, b), (a_ip, b_ip) in ((0, syn, ("node1", "node2"), ("192.168.0.1", "192.168.0.2")),
                                             (1000, synack, ("node2", "node1"), ("192.168.0.2", "192.168.0.1"))):
        wire.see(packet, a, "veth-a", IN, at)
        wire.see(packet, a, "cni0", OUT, at + 5)
        wire.see(dict(packet, ttl=63), a, "flannel.1", OUT, at + 10)
        wire.see(vxlan(a_ip, b_ip, dict(packet, ttl=63)), a, "eth0", OUT, at + 40)
        wire.see(vxlan(a_ip, b_ip, dict(packet, ttl=63)), b, "eth0", IN, at + 10)  # 30 us "before" it left a
        wire.see(dict(packet, ttl=63), b, "flannel.1", IN, at + 15)
        wire.see(dict(packet, ttl=62), b, "cni0", OUT, at + 20)
        wire.see(dict(packet, ttl=62), b, "veth-b", OUT, at + 25)
    report = wire.analyze()
    request, reply = report.journeys
    for journey, (a, b) in ((request, ("node1", "node2")), (reply, ("node2", "node1"))):
        assert [(h.node, h.iface) for h in journey.hops] == [(a, "veth-a"), (a, "cni0"), (a, "flannel.1"), (a, "eth0"),
                                                             (b, "eth0"), (b, "flannel.1"), (b, "cni0"), (b, "veth-b")]
        assert [c.kind for c in journey.hops[3].changes] == [ChangeKind.ENCAP]
        assert [c.kind for c in journey.hops[5].changes] == [ChangeKind.DECAP]
        assert [c.kind for c in journey.hops[4].changes] == []  # the wire changes nothing


def test_without_ttl_the_node_that_only_sent_comes_before_the_node_that_only_received():
    from tests.findings.wire import IN, OUT, Wire, udp_dns

    wire = Wire()
    query = dict(udp_dns("10.0.0.1", 5353, "10.0.0.2", 77, False), ttl=None)
    wire.see(query, "node2", "eth0", IN, 0)  # the receiver's clock is ahead by more than the wire's delay
    wire.see(query, "node1", "eth0", OUT, 20)
    (journey,) = wire.analyze().journeys
    assert [(h.node, h.direction) for h in journey.hops] == [("node1", "Out"), ("node2", "In")]


def test_ipv6_packets_are_followed_and_written_with_bracketed_addresses(tmp_path):
    from tests.frames import ethernet, ipv6, tcp, write_pcap

    client, server = "fd00:10:244:1::5", "fd00:10:244:2::7"

    def seen(src: str, dst: str, hop_limit: int = 64, **segment: int) -> bytes:
        return ethernet(ipv6(tcp(**segment), src=src, dst=dst, hop_limit=hop_limit), ethertype=0x86DD)

    frames = [seen(client, server, sport=40000, dport=80, seq=1, flags=2),
              seen(client, server, 63, sport=40000, dport=80, seq=1, flags=2),  # routed: hop limit 64 -> 63
              seen(server, client, sport=80, dport=40000, seq=100, ack=2, flags=18)]
    report = analyze([InputSpec(str(write_pcap(tmp_path / "v6.pcap", frames)))])
    syn, synack = report.journeys
    assert syn.summary == f"TCP [{client}]:40000 > [{server}]:80 [S] seq 1, len 0"
    assert [(c.kind, c.before, c.after) for c in syn.hops[1].changes] == [(ChangeKind.TTL, "64", "63")]
    (flow,) = report.flows
    assert (str(flow.client), str(flow.server)) == (f"[{client}]:40000", f"[{server}]:80")


def test_distinct_udp_sources_as_text_are_distinct_journeys(tmp_path) -> None:
    """Plain UDP in text shows no IP id nor digest: 25,000 sources to one destination 1 us apart (issue 14's
    case) are 25,000 packets and conversations, not one packet seen 25,000 times with 25,000 legs (its addresses
    join a key with nothing of its own)."""
    from cniscope.analyze import analyze
    from cniscope.sources import InputSpec

    path = tmp_path / "sources.txt"
    path.write_text("".join(f"12:00:00.{i:06d} IP 10.1.{i // 250}.{i % 250 + 1}.{32768 + i} > 10.96.0.10.53: UDP, length 10\n"
                            for i in range(25_000)))
    report = analyze([InputSpec(str(path))])
    assert (report.journeys_total, report.flows_total) == (25_000, 25_000)
    assert len(report.journeys) == 20_000 and all(len(j.hops) == 1 for j in report.journeys)  # the report's default
    assert len(report.flows) == 20_000 and all(len(f.legs) == 1 and f.packets == 1 for f in report.flows)
    assert {(j.id, j.flow) for j in report.journeys} == {(f.journeys[0], f.id) for f in report.flows}


def test_envelopes_that_show_nothing_inside_are_told_apart_by_their_own_ends(tmp_path) -> None:
    """A UDP line on a tunnel port is read as an envelope with nothing of its packet shown (as is a VXLAN packet
    cut by the snaplen before the inner header): two senders' are two packets and two conversations, not one."""
    from cniscope.analyze import analyze
    from cniscope.sources import InputSpec

    path = tmp_path / "sources.txt"
    path.write_text("".join(f"12:00:00.00000{i} IP 10.1.0.{i}.{port} > 10.96.0.10.53: UDP, length 10\n"
                            for i, port in enumerate((4789, 4789, 8472, 8472))))
    report = analyze([InputSpec(str(path))])
    assert [len(j.hops) for j in report.journeys] == [1, 1, 1, 1]
    assert (report.journeys_total, report.flows_total) == (4, 4)


def test_identical_link_local_multicast_from_two_hosts_is_two_packets(tmp_path) -> None:
    """Every bridge that joins a group sends the same IGMP report (IP id 0, same bytes); no router forwards
    224.0.0.0/24, so one node's report and another's are never one packet rewritten by NAT."""
    from tests.frames import ethernet, ipv4, write_pcapng

    report_bytes = bytes.fromhex("2200f9fc0000000104000000e00000fb")  # IGMPv3 report: join 224.0.0.251
    def igmp(src: str) -> bytes:
        return ethernet(ipv4(report_bytes, src=src, dst="224.0.0.22", proto=2, ttl=1, ip_id=0),
                        dst="01:00:5e:00:00:16")
    one = write_pcapng(tmp_path / "node1.pcapng", [(0, igmp("192.168.200.1"))], [("eth0", 1)])
    two = write_pcapng(tmp_path / "node2.pcapng", [(0, igmp("10.244.2.1")), (1, igmp("10.244.2.1"))],
                       [("cni0", 1), ("veth1", 1)])
    report = analyze([InputSpec(str(one), "node1"), InputSpec(str(two), "node2")])
    assert sorted(len(j.hops) for j in report.journeys) == [1, 2]
    assert not [c for j in report.journeys for h in j.hops for c in h.changes if c.kind in (ChangeKind.DNAT, ChangeKind.SNAT)]


def test_the_keys_of_a_table_are_those_of_each_of_its_sightings_alone(tmp_path) -> None:
    """`fingerprint` leaves out the branches no sighting of its table takes: whichever are left, a sighting gets the
    same key alone as among the others (plain TCP, UDP with nothing of its own, envelopes that show nothing inside,
    ARP inside VXLAN, link-local multicast)."""
    from tests.frames import ethernet, ipv4, write_pcapng

    text = tmp_path / "sources.txt"
    text.write_text("".join(f"12:00:00.00000{i} IP 10.1.0.{i}.{port} > 10.96.0.10.53: UDP, length 10\n"
                            for i, port in enumerate((4789, 53, 8472, 8472))))
    igmp = ethernet(ipv4(bytes.fromhex("2200f9fc0000000104000000e00000fb"), src="10.244.2.1", dst="224.0.0.22", proto=2,
                         ttl=1, ip_id=0), dst="01:00:5e:00:00:16")
    pcapng = write_pcapng(tmp_path / "node2.pcapng", [(0, igmp)], [("cni0", 1)])
    inputs = [SEED, text, pcapng, *sorted((TESTS_DATA / "scenarios" / "weave" / "cross-node").glob("node*.pcapng"))]
    table = read([InputSpec(str(path)) for path in inputs]).table
    special = (nothing_inside().any(), pl.col("arp_op").is_not_null().any(), (pl.col("dst") == 0xE0000016).any(),
               (pl.col("proto") == 17).any())
    assert table.select(*special).row(0) == (True, True, True, True)  # every branch is taken by some sighting
    fields = key_fields(table)
    keys = table.select(key=fingerprint(table, fields))
    assert keys["key"].n_unique() > 10
    alone = pl.concat([row.select(key=fingerprint(row, fields)) for row in table.iter_slices(1)])
    assert alone.equals(keys)


def test_first_distinct_agrees_with_polars():
    rng = np.random.default_rng(7)
    a = rng.integers(0, 50, 5000).astype(np.uint32)
    b = rng.integers(0, 4, 5000).astype(np.uint64) * np.uint64(2**61)
    expected = pl.DataFrame({"a": a, "b": b}).select(pl.struct("a", "b").is_first_distinct()).to_series().to_numpy()
    assert expected.sum() < len(a)  # there are repeats to find
    assert (_first_distinct(a, b) == expected).all()


def test_first_in_run_agrees_with_sorting_the_pairs():
    rng = np.random.default_rng(11)
    lengths = np.concatenate([rng.integers(1, 5, 3000), [9] * 30, [10, 12, 40]])  # mostly a few; SHIFTED + 1 and past it
    run = np.repeat(np.arange(len(lengths)), lengths)
    b = rng.integers(0, 3, len(run)).astype(np.uint64)
    nine = np.flatnonzero(lengths[run] == 9)
    b[nine] = np.tile([0, 1, 2, 3, 4, 5, 6, 7, 0], 30)  # a repeat SHIFTED rows after the first
    expected = _first_distinct(run, b)
    assert (~expected[run >= 3000]).any() and (~expected[run < 3000]).any()  # repeats in short and long runs
    assert (_first_in_run(run, b) == expected).all()


@pytest.mark.parametrize("inputs,nodes", [
    ([0] * 6, ["n1"] * 6), ([0] * 6, [None] * 6), ([0, 0, 0, 1, 1, 1, 1, 2], ["b", "a", None, None, "a", "a", None, "b"]),
    ([0, 0, 0, 0, 1, 1], ["a", "b", "a", "b", "b", "b"]), ([], []),
])
def test_capture_points_are_the_distinct_input_node_pairs_in_order_of_first_sighting(inputs, nodes):
    table = pl.DataFrame({"input": pl.Series(inputs, dtype=pl.UInt16), "node": pl.Series(nodes, dtype=pl.Categorical)})
    expected = table.unique(maintain_order=True)
    assert capture_points(table).equals(expected)
    several = pl.concat([table.slice(0, 3), table.slice(3)], rechunk=False)  # chunked as a table read in batches
    assert capture_points(several).equals(expected)
    assert one_capture_point(table) == one_capture_point(several) == (expected.height <= 1)


def test_capture_points_are_made_once_for_the_table_last_asked_of():
    """Asked again of the same table, `capture_points` gives what it made (the findings and the report ask of one table
    three times); of another table, even an equal one, it makes them anew; the table is not kept alive by it."""
    import gc
    import weakref

    table = pl.DataFrame({"input": pl.Series([0, 0, 1], dtype=pl.UInt16), "node": pl.Series(["a", "a", "b"], dtype=pl.Categorical)})
    made = capture_points(table)
    assert capture_points(table) is made and made.equals(table.unique(maintain_order=True))
    other = table.clone()
    assert capture_points(other) is not made and capture_points(other).equals(made)
    changed = table.with_columns(input=pl.Series([0, 1, 1], dtype=pl.UInt16))
    assert capture_points(changed).equals(changed.unique(maintain_order=True))
    gone = weakref.ref(changed)
    del changed
    gc.collect()
    assert gone() is None


@pytest.mark.parametrize("n", [0, 1, journeys_mod.ROWS_BLOCK, journeys_mod.ROWS_BLOCK + 1, 3 * journeys_mod.ROWS_BLOCK + 5])
def test_rows_in_numbers_every_row_of_an_array_done_with(n):
    done_with = np.full(n, 2**32 - 1, dtype=np.uint32)
    assert _rows_in(done_with) is done_with and (done_with == np.arange(n)).all()


@pytest.mark.parametrize("inputs,nodes", [
    ([0, 0, None], ["a", "a", "a"]), ([None, None], ["a", "a"]), ([1, 1, 1], ["a", None, "a"]), ([2, 2], [None, "b"]),
])
def test_one_capture_point_tells_nulls_from_values(inputs, nodes):
    table = pl.DataFrame({"input": pl.Series(inputs, dtype=pl.UInt16), "node": pl.Series(nodes, dtype=pl.Categorical)})
    assert one_capture_point(table) == (table.unique().height <= 1)


def _narrow(rng, n, nulls=False, shuffled=False, steps=1_000_000):
    """A narrow frame of one node (journeys.narrow): few keys, times in order with many equal, Out and In mixed."""
    ts = np.sort(rng.integers(0, 400, n)) * steps  # 1 ms steps, ties; bursts split at 50 ms
    frame = pl.DataFrame({
        "key": rng.integers(0, 60, n).astype(np.uint64), "_nid": np.zeros(n, dtype=np.uint32),
        "ts": pl.Series(ts, dtype=pl.Int64), "direction": pl.Series([None if d == 9 else int(d) for d in rng.choice([0, 4, 9], n, p=[0.45, 0.45, 0.1])], dtype=pl.UInt8),
        "iface": pl.Series(rng.choice(["eth0", "cni0", "veth1", None], n).tolist(), dtype=pl.Categorical),
        "row": pl.Series(np.arange(n), dtype=pl.UInt32),
    })
    if nulls:
        frame = frame.with_columns(ts=pl.when(pl.col("row") % 7 == 0).then(None).otherwise(pl.col("ts")))
    if shuffled:
        frame = frame.with_columns(ts=pl.Series(rng.permutation(ts)))
    return frame


@pytest.mark.parametrize("nulls,shuffled,steps", [(False, False, 1_000_000), (True, False, 1_000_000),
                                                  (False, True, 1_000_000), (False, False, 20_000_000), (True, True, 0)])
def test_one_node_partitions_are_group_then_order_hops(nulls, shuffled, steps):
    """One node's partitions are numbered in numpy (`one_node_partial`): as `group` then `order_hops` number them,
    bursts split at gaps and at named points seen again, sightings at one time In before Out, times missing."""
    rng = np.random.default_rng(3)
    frame = _narrow(rng, 4000, nulls, shuffled, steps)
    partial = correlate_partition(frame.drop("_nid"), by_node=False)
    expected, expected_firsts = order_hops(frame.with_columns(journey=group(frame, "ts")), "ts")
    got = {name: np.empty_like(values) for name, values in
           (("journey", partial.journey), ("hop", partial.hop), ("hops", partial.hops), ("delay", partial.delay))}
    for name, values in got.items():
        values[partial.perm] = getattr(partial, name)
    assert expected["hop"].max() > 2 and expected["journey"].max() > 100 and (np.diff(partial.firsts) > 0).all()
    assert pl.DataFrame(got).equals(expected.with_columns(pl.col("delay").fill_null(0)))
    assert (partial.firsts == expected_firsts).all()


@pytest.mark.parametrize("order", ["ascending", "descending", "shuffled"])
def test_journeys_are_numbered_by_their_first_row_in_any_row_order(order):
    """Partitions' rows ascend (numbered in arrays of the partition's size); any other order by the rows themselves."""
    rng = np.random.default_rng(5)
    frame = _narrow(rng, 4000)
    rows = {"ascending": np.arange(4000), "descending": np.arange(4000)[::-1], "shuffled": rng.permutation(4000)}[order]
    frame = frame.with_columns(row=pl.Series(rows + 7, dtype=pl.UInt32))
    hops, firsts = order_hops(frame.with_columns(journey=group(frame, "ts")), "ts")
    first = frame.with_columns(j=hops["journey"]).group_by("j").agg(pl.col("row").min()).sort("j")["row"].to_list()
    assert first == sorted(first) == firsts.tolist() and len(first) == hops["journey"].max() + 1 > 100


def test_a_summary_leaves_out_a_length_the_input_did_not_show(tmp_path):
    shown = "12:00:00.000001 IP 10.0.0.1.5000 > 10.0.0.2.80: Flags [S], seq 1, win 64240, length 0\n"
    hidden = "12:00:00.100001 IP 10.0.0.1.5001 > 10.0.0.2.80: Flags [S], seq 7, win 64240\n"
    path = tmp_path / "paste.txt"
    path.write_text(shown + hidden)
    summaries = [j.summary for j in analyze([InputSpec(path=str(path))]).journeys]
    assert summaries[0].endswith(", len 0")
    assert summaries[1].endswith("seq 7") and "?" not in summaries[1]


def test_summaries_over_whole_columns_are_summary_row_by_row():
    """TCP and UDP between IPv4 addresses are written over whole columns, the rest row by row: the same words
    either way, in every case of `summary` (ports, flags, seq and ack, DNS, lengths missing; IPv6, ARP, ICMP)."""
    from cniscope.journeys import _SUMMARY_READS, _summaries, summary
    from cniscope.packets.schema import SCHEMA

    def row(**values: object) -> dict[str, object]:
        return {name: values.get(name) for name in _SUMMARY_READS}

    a, b = 0x0AF40310, 0xC0A8C815
    rows = [
        row(proto=6, src=a, dst=b, sport=80, dport=41000, tcp_flags=18, seq=5, ack=9, payload_len=0),
        row(proto=6, src=a, dst=b, sport=80, dport=41000, tcp_flags=2, seq=5, ack=9, payload_len=None),  # ack without ACK
        row(proto=6, src=a, dst=b, sport=None, dport=None, tcp_flags=24, seq=None, ack=7, payload_len=12),
        row(proto=6, src=a, dst=b, sport=1, dport=2, tcp_flags=None, seq=1),  # flags not shown
        row(proto=6, src=a, dst=b, sport=1, dport=2, tcp_flags=0, seq=1),
        row(proto=17, src=a, dst=b, sport=5353, dport=53, dns_id=7, dns_qr=True, payload_len=40),
        row(proto=17, src=a, dst=b, sport=5353, dport=53, dns_id=7, dns_qr=False),
        row(proto=17, src=a, dst=b, sport=5353, dport=53, dns_id=7, dns_qr=None, payload_len=3),
        row(proto=17, src=a, dst=None, dst_name="kube-dns", sport=1, dport=53),
        row(proto=6, src6="fd00::1", dst6="fd00::2", sport=1, dport=80, tcp_flags=2, seq=1),
        row(proto=1, src=a, dst=b, icmp_type=8, icmp_id=1, icmp_seq=2),
        row(arp_op=1, proto=None, arp_spa=a, arp_tpa=b),
        row(proto=17, src=a, dst=b, sport=1, dport=2, arp_op=2, arp_spa=a),
        row(proto=47, src=a, dst=b),
        row(ethertype=0x88CC),
    ]
    heads = pl.DataFrame(rows, schema={name: SCHEMA[name] for name in _SUMMARY_READS})
    expected = [summary(r) for r in heads.iter_rows(named=True)]
    assert _summaries(heads.with_row_index("row"), np.arange(heads.height), heads) == expected
    assert expected[1] == "TCP 10.244.3.16:80 > 192.168.200.21:41000 [S] seq 5" and expected[7].endswith("DNS query id 7, len 3")


@pytest.mark.parametrize("count", [2, 7, 300])
def test_split_gives_each_partition_its_positions_in_order(monkeypatch, count: int) -> None:
    """A partition's positions are the rows whose key falls in it (key modulo the count), ascending, 32-bit; made a
    block of rows at a time (blocks of 1000 here: rows end mid-block, some partitions get none of a block)."""
    monkeypatch.setattr(journeys_mod, "SPLIT_BLOCK", 1000)
    rng = np.random.default_rng(count)
    key = rng.integers(0, 2**64, 4321, dtype=np.uint64)
    t = pl.DataFrame({"key": key[:2000]}).vstack(pl.DataFrame({"key": key[2000:]}))  # two chunks
    parts = journeys_mod.split(t, count)
    assert len(parts) == count
    for i, positions in enumerate(parts):
        assert positions is not None and positions.dtype == np.uint32
        assert positions.tolist() == np.flatnonzero(key % np.uint64(count) == i).tolist()
    assert journeys_mod.split(t, 1) == [None]


@pytest.mark.parametrize("workers", [1, 2, 3, 8])
def test_columns_are_put_in_partition_order_by_stretches_of_rows_as_by_one(monkeypatch: pytest.MonkeyPatch, workers: int) -> None:
    """`_partitioned` cuts its passes in a stretch of rows a thread: the positions and each column in partition order
    (an array, a series of chunks cut elsewhere than the stretches) are those of one pass, row after row."""
    monkeypatch.setattr(journeys_mod, "SPLIT_BLOCK", 1000)
    rng = np.random.default_rng(workers)
    key = rng.integers(0, 2**64, 4321, dtype=np.uint64)
    ts = pl.concat([pl.Series(rng.integers(0, 10**12, n)) for n in (1500, 2000, 821)], rechunk=False)
    for count in (2, 7, 300):
        parts, ordered = journeys_mod._partitioned(key, count, {"key": key, "ts": ts}, workers)
        order = np.argsort(key % np.uint64(count), kind="stable")
        assert np.concatenate(parts).tolist() == order.tolist() and [len(p) for p in parts] == np.bincount(
            (key % np.uint64(count)).astype(np.int64), minlength=count).tolist()
        assert (ordered["key"] == key[order]).all() and (ordered["ts"] == ts.to_numpy()[order]).all()


@pytest.mark.parametrize("compiled", [True, False], ids=["c", "numpy"])
@pytest.mark.parametrize("hops", [True, False])
def test_one_node_partitions_in_place_give_one_partitions_columns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   compiled: bool, hops: bool) -> None:
    """One node in partitions here (`_correlate_one_node`: key, capture point and time put in partition order, a partition a
    slice of them), with the C steps or their numpy fallbacks: the columns of one partition, row for row. Without hops
    in C, no partitions: the whole capture in time order (`_journeys_in_time`, also where one partition is planned), the
    same columns; and with them, forced."""
    from tests.test_analyze_golden import generated

    if not compiled:
        monkeypatch.setattr(journeys_mod, "COMPILED", False)  # the keys of polars' hash
        for name in ("argsort_keys", "merge_put", "partition_place", "partition_scatter", "partition_sizes", "put_rows", "rank_firsts"):
            monkeypatch.setattr(journeys_mod, name, getattr(journeys_mod, f"python_{name}"))
    table = read([InputSpec(str(generated(tmp_path, 3000)))]).table
    columns = ["row", "journey", "hop", *(["hops", "delay"] if hops else [])]
    # (the partitions run by a given `run`: the path of any capture, whatever its nodes)
    whole = journeys_mod.correlate(table, hops=hops, run=journeys_mod.threads(1)).table.select(columns)
    assert whole["hop"].max() > 1 and whole["journey"].max() > 500
    seen, asked = [], []  # each partition's size, whichever did it; whether C did each it was asked to
    monkeypatch.setattr(journeys_mod, "one_node_partial", lambda *a, **k: seen.append(len(a[0])) or one_node_partial(*a, **k))
    one_node_journeys = journeys_mod.one_node_journeys

    def journeys_in_c(*a: np.ndarray) -> bool:
        done = one_node_journeys(*a)
        asked.append(done)
        if done:
            seen.append(len(a[0]))
        return done

    monkeypatch.setattr(journeys_mod, "one_node_journeys", journeys_in_c)
    monkeypatch.setattr(journeys_mod, "take", None)  # no partition gathered from the narrow frame
    monkeypatch.setattr(journeys_mod, "SPLIT_BLOCK", 1000)  # rows put in partition order by a thread each
    in_time = journeys_mod._journeys_in_time
    for windows in ([True, False] if compiled and not hops else [False]):
        monkeypatch.setattr(journeys_mod, "_journeys_in_time", in_time if windows else lambda *a: None)
        for partitions, workers in ((1, 1), (1, 2), (2, 1), (7, 2), (64, 2)) if not hops else ((2, 1), (7, 2), (64, 2)):
            seen.clear()
            asked.clear()
            parted = journeys_mod.correlate(table, partitions=partitions, workers=workers, hops=hops).table.select(columns)
            assert parted.equals(whole) and len(seen) == (0 if windows else partitions) and sum(seen) == (not windows) * table.height
            assert asked == ([] if hops or windows else [compiled] * partitions)  # without hops in C, where built


HOPS_READ = [CORPUS / "22-weave3014-nodeport-any-dnat-snat.txt", TESTS_DATA / "findings" / "missing-route" / "node1-eth0.txt"]


@pytest.mark.parametrize("capture", HOPS_READ, ids=lambda p: p.name)
def test_hop_arrays_are_the_materialised_hops_and_theirs_only(capture: Path) -> None:
    made = journeys_mod.materialise(journeys_mod.correlate(read([InputSpec(str(capture))]).table).table)
    arrays = journeys_mod.hop_arrays(made)
    assert arrays is not None
    assert arrays.lengths.tolist() == [len(j.hops) for j in made]
    assert arrays.rows.tolist() == [h.row for j in made for h in j.hops]
    assert arrays.changes.tolist() == [id(h.changes) for j in made for h in j.hops]
    assert {id(c) for c in arrays.distinct} >= {id(h.changes) for j in made for h in j.hops}
    assert journeys_mod.hop_arrays([replace(j, flow=7) for j in made]) is arrays  # linked: other journeys, the same hops
    assert journeys_mod.hop_arrays(made[1:]) is None
    assert journeys_mod.hop_arrays([*made[:-1], replace(made[-1], hops=(*made[-1].hops,))]) is None


class _Forgets(list[object]):
    """A list that keeps nothing assigned to it: `materialise` leaves no `hop_arrays` behind."""

    def __setitem__(self, index: object, value: object) -> None:
        pass


@pytest.mark.parametrize("capture", HOPS_READ, ids=lambda p: p.name)
def test_the_report_read_from_hop_arrays_is_the_one_read_hop_by_hop(capture: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with_arrays = json_out.dumps(analyze([InputSpec(str(capture))]))
    monkeypatch.setattr(journeys_mod, "_materialised", _Forgets())
    assert json_out.dumps(analyze([InputSpec(str(capture))])) == with_arrays


def test_correlation_asks_numpy_for_no_huge_pages_and_gives_its_setting_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """While correlation runs, numpy's arrays are not advised to the kernel as huge pages (a fresh one waited for
    the kernel to compact memory); numpy's setting is what it was before and after, an error or not."""
    core = getattr(np, "_core", None) or getattr(np, "core", None)
    multiarray, seen = core.multiarray, []
    was = multiarray._get_madvise_hugepage()
    monkeypatch.setattr(journeys_mod, "one_capture_point", lambda t: seen.append(multiarray._get_madvise_hugepage()) or 1 / 0)
    for setting in (True, False):
        multiarray._set_madvise_hugepage(setting)
        with pytest.raises(ZeroDivisionError):
            journeys_mod.correlate(pl.DataFrame({"ts": [1]}))
        assert multiarray._get_madvise_hugepage() == setting and seen.pop() is False
    multiarray._set_madvise_hugepage(was)


def test_a_categorical_column_listed_with_one_object_per_value() -> None:
    """`_shared_objects` is `to_list` (as a list or an array of objects), a name's rows sharing one str; nulls, no rows
    and other columns alike."""
    column = pl.Series(["eth0", None, "cni0", "eth0", None, "eth0"], dtype=pl.Categorical)
    listed = list(journeys_mod._shared_objects(column))
    assert listed == column.to_list() and listed[0] is listed[3] is listed[5]
    for other in (column.head(0), pl.Series([None, None], dtype=pl.Categorical), pl.Series([3, None, 3]),
                  column.filter(column.is_not_null())):
        assert list(journeys_mod._shared_objects(other)) == other.to_list()


def test_directions_and_integers_as_made_many_takes_them() -> None:
    """`_directions`: each sighting's `HopDirection`, None where it has none; `_integers`: int64 where a column holds
    no null, else its list."""
    from cniscope.results import HopDirection

    directions = pl.Series([0, None, 4, 0], dtype=pl.UInt8)
    assert journeys_mod._directions(directions).tolist() == [HopDirection("In"), None, HopDirection("Out"), HopDirection("In")]
    assert journeys_mod._integers(pl.Series([1, 2**40])).dtype == np.int64
    assert journeys_mod._integers(pl.Series([1, None])) == [1, None]
    assert journeys_mod._integers(pl.Series([2**63], dtype=pl.UInt64)) == [2**63]
