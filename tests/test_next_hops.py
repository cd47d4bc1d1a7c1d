"""Where a node sent a frame: the host's own MAC in a one-NIC capture (no direction recorded), and the hops labelled."""

from __future__ import annotations

import polars as pl

from cniscope.analyze import analyze
from cniscope.models import Role, role_anywhere
from cniscope.next_hops import host_macs, mac_sightings, owners
from cniscope.sources import InputSpec
from tests.paths import DATA

HOST, PEER, GATEWAY, OTHER = 0x0A0000000001, 0x0A0000000002, 0x0A0000000003, 0x0A0000000004
BROADCAST = 0xFFFFFFFFFFFF


def frames(*pairs: tuple[int, int], node: int = 0) -> pl.LazyFrame:
    return pl.LazyFrame({"node": [node] * len(pairs), "src": [s for s, _ in pairs], "dst": [d for _, d in pairs]},
                        schema={"node": pl.UInt32, "src": pl.UInt64, "dst": pl.UInt64})


def test_the_mac_on_one_side_of_every_unicast_frame_is_the_hosts() -> None:
    nic = frames((HOST, PEER), (PEER, HOST), (HOST, GATEWAY), (GATEWAY, HOST), (HOST, BROADCAST), (OTHER, BROADCAST))
    assert host_macs(nic) == {0: HOST}  # broadcasts say nothing of whose NIC it is


def test_no_host_where_frames_do_not_share_one_mac() -> None:
    bridge = frames((PEER, GATEWAY), (GATEWAY, PEER), (HOST, OTHER), (OTHER, HOST))  # pods talking among themselves
    assert host_macs(bridge) == {}
    assert host_macs(frames((HOST, PEER), (PEER, HOST))) == {}  # one exchange: either end could be the host
    assert host_macs(frames((HOST, PEER))) == {}
    assert host_macs(frames()) == {}


def test_each_node_has_its_own() -> None:
    both = pl.concat([frames((HOST, PEER), (PEER, HOST), (HOST, GATEWAY)), frames((PEER, HOST), (HOST, PEER), (PEER, OTHER), node=1)])
    assert host_macs(both) == {0: HOST, 1: PEER}


def test_a_pasted_one_nic_capture_of_no_named_node_says_where_each_frame_it_sent_went() -> None:
    """`tcpdump -i eth0 -nn -e` pasted on its own: no node name, no direction, no inventory."""
    pasted = DATA / "findings" / "missing-route" / "node1-eth0.txt"
    report = analyze([InputSpec(str(pasted))])
    node1, node2, gateway = "66:2b:b7:46:95:7f", "1e:a9:33:d8:15:90", "52:ba:c0:c3:89:95"
    hops = [(j.summary, h.mac_to, h.mac_owner) for j in report.journeys for h in j.hops]
    sent = [(summary, to, owner) for summary, to, owner in hops if to is not None]
    assert all(to is None for summary, to, _ in hops if summary.startswith("TCP 10.244.2.10:80 >"))  # the replies came in
    before = {(to, owner) for summary, to, owner in sent if summary.startswith("TCP 10.244.1.11:50688 >")}
    assert before == {(node2, "192.168.200.12")}  # its owner by the ARP reply just before
    assert {to for summary, to, _ in sent if summary.startswith("TCP 10.244.1.11:50690")} == {gateway}  # after the fault
    assert ("ARP who-has 192.168.200.12 tell 192.168.200.11", "ff:ff:ff:ff:ff:ff", "broadcast") in sent
    assert node1 not in {to for _, to, _ in sent}  # nothing the host received counts as sent
    frames_sent = [line for line in pasted.read_text().splitlines() if line[16:].startswith(f"{node1} > ")]
    assert len(sent) == len(frames_sent) > 0  # every frame it sent, each once


def one_nic_table(iface: str, *pairs: tuple[int, int]) -> pl.DataFrame:
    """A one-interface capture (no direction) of node1 and an ARP reply, as `owners` reads the packet table."""
    rows = len(pairs) + 1
    return pl.DataFrame({
        "input": [0] * rows, "node": ["node1"] * rows, "iface": [iface] * rows, "direction": [None] * rows,
        "eth_src": [s for s, _ in pairs] + [GATEWAY], "eth_dst": [d for _, d in pairs] + [HOST],
        "arp_sha": [None] * len(pairs) + [GATEWAY], "arp_spa": [None] * len(pairs) + [0xC0A80001],
    }, schema={"input": pl.UInt16, "node": pl.Categorical, "iface": pl.Categorical, "direction": pl.UInt8, "eth_src": pl.UInt64,
               "eth_dst": pl.UInt64, "arp_sha": pl.UInt64, "arp_spa": pl.UInt32})


def test_owners_from_sightings_gathered_before_the_model_are_the_same() -> None:
    """`mac_sightings` is gathered before the model is known, of the interfaces some model takes for a NIC: `owners`
    gives what it gives from the table, and reads the table again for a NIC it did not count."""
    for iface, nic in (("eth0", True), ("weird0", False)):
        table = one_nic_table(iface, (HOST, PEER), (PEER, HOST), (HOST, OTHER))
        seen = mac_sightings(table)
        assert (iface in seen.nics) is nic
        for role in (role_anywhere_nic, lambda name: Role.NIC):
            expected = owners(table, ["node1"], role, lambda addr: None)
            assert owners(table, ["node1"], role, lambda addr: None, seen) == expected
        assert owners(table, ["node1"], lambda name: Role.NIC, lambda addr: None, seen) == {HOST: "node1", GATEWAY: "192.168.0.1"}
    assert owners(table, ["node1"], lambda name: None, lambda addr: None, seen) == {GATEWAY: "192.168.0.1"}


def role_anywhere_nic(iface: str | None) -> Role | None:
    return role_anywhere(None, iface)


def test_frames_and_sides_are_counted_by_capture_point() -> None:
    """Of the unicast frames of no direction on a NIC: how many each capture point has, and how many show each MAC on
    one side or the other (once for a frame from a MAC to itself); broadcasts and frames without both MACs left out."""
    one = one_nic_table("eth0", (HOST, PEER), (PEER, HOST), (HOST, PEER), (HOST, HOST), (HOST, BROADCAST), (PEER, None))  # type: ignore[arg-type]
    other = one_nic_table("eth0", (OTHER, HOST)).with_columns(node=pl.lit("node2", dtype=pl.Categorical))
    seen = mac_sightings(pl.concat([one, other]))
    assert sorted(seen.frames.iter_rows()) == [(0, "node1", "eth0", 5), (0, "node2", "eth0", 2)]
    assert sorted(seen.sides.iter_rows()) == sorted([(0, "node1", "eth0", HOST, 5), (0, "node1", "eth0", PEER, 3),
                                                     (0, "node1", "eth0", GATEWAY, 1), (0, "node2", "eth0", HOST, 2),
                                                     (0, "node2", "eth0", GATEWAY, 1), (0, "node2", "eth0", OTHER, 1)])
    assert seen.frames.schema["frames"] == seen.sides.schema["seen"] == pl.get_index_type()


def test_one_capture_point_counts_as_one_of_several() -> None:
    """A table of one capture point (its pairs grouped without the input and node, then given them): the frames and
    sides it has among other points' rows, the same schema; the node named or not."""
    pairs = ((HOST, PEER), (PEER, HOST), (HOST, PEER), (HOST, HOST), (HOST, BROADCAST), (PEER, None))
    for node in ("node1", None):
        one = one_nic_table("eth0", *pairs).with_columns(node=pl.lit(node, dtype=pl.Categorical))  # type: ignore[arg-type]
        other = one_nic_table("eth0", (OTHER, HOST)).with_columns(input=pl.lit(1, dtype=pl.UInt16))
        alone, among = mac_sightings(one), mac_sightings(pl.concat([one, other]))
        for name in ("frames", "sides"):
            found, expected = getattr(alone, name), getattr(among, name).filter(pl.col("input") == 0)
            assert found.schema == expected.schema
            assert sorted(found.iter_rows()) == sorted(expected.iter_rows())
        assert sorted(alone.frames.iter_rows()) == [(0, node, "eth0", 5)]
    assert mac_sightings(one.clear()).frames.is_empty()


def test_arp_senders_are_those_with_an_address_in_order_of_first_sighting() -> None:
    """`MacSightings.arp`: each (MAC, address) an ARP packet gives once, in the order first seen; a sender without an
    address (0 or none: a probe) left out."""
    table = one_nic_table("eth0", (HOST, PEER), (PEER, HOST))
    arp = pl.DataFrame({"arp_sha": [PEER, None, HOST, PEER, OTHER, OTHER, HOST], "arp_spa": [5, 7, 0, 5, None, 9, 6]},
                       schema={"arp_sha": pl.UInt64, "arp_spa": pl.UInt32})
    table = pl.concat([table.head(1)] * 7).with_columns(arp)
    assert mac_sightings(table).arp.rows() == [(PEER, 5), (OTHER, 9), (HOST, 6)]
    assert mac_sightings(table.clear()).arp.is_empty()
