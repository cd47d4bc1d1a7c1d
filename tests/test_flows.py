"""flows: the Community ID of a conversation."""

from __future__ import annotations

from cniscope import flows
from cniscope.analyze import analyze
from cniscope.sources import InputSpec
from tests.paths import DATA


def test_community_id_is_the_specifications() -> None:
    """The example of the Community ID specification (TCP 128.232.110.120:34855 > 66.35.250.204:80), either way
    round; IPv6; and what is no address at all."""
    assert flows.community_id(6, "128.232.110.120", "66.35.250.204", 34855, 80) == "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
    assert flows.community_id(6, "66.35.250.204", "128.232.110.120", 80, 34855) == "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
    assert flows.community_id(17, "fd00::1", "fd00::2", 5, 53) == flows.community_id(17, "fd00::2", "fd00::1", 53, 5)
    assert flows.community_id(1, "?", "node3", None, None) == "1:?-node3"


def test_an_arp_conversation_inside_envelopes_has_its_sender_and_target_as_its_leg() -> None:
    """weave carries ARP inside VXLAN: the sightings show no IP address, the conversation still names its ends."""
    report = analyze([InputSpec(str(DATA / "scenarios" / "weave" / "cross-node"))])
    arp = [f for f in report.flows if f.proto == "arp"]
    assert arp
    for flow in arp:
        assert flow.legs and all("?" not in str(a) + str(b) for a, b in flow.legs)
        assert {str(flow.client), str(flow.server)} == {str(e) for e in flow.legs[0]}


def test_tuples_are_the_same_without_the_branches_a_table_does_not_take() -> None:
    """`tuple_id(table)` leaves out what none of the table's sightings is (envelopes that show nothing inside, ARP):
    each sighting's tuple is the one the whole expression gives it, alone or among others of every kind."""
    import polars as pl

    from cniscope.ingest import read
    from cniscope.journeys import nothing_inside
    from tests.paths import CORPUS

    weave = read([InputSpec(str(path)) for path in sorted((DATA / "scenarios" / "weave" / "cross-node").glob("node*.pcapng"))]).table
    plain = read([InputSpec(str(CORPUS / "22-weave3014-nodeport-any-dnat-snat.txt"))]).table
    kinds = (nothing_inside().any(), pl.col("arp_op").is_not_null().any())
    assert weave.select(*kinds).row(0) == (True, True) and plain.select(*kinds).row(0) == (False, False)
    for table in (weave, plain, weave.filter(~nothing_inside()), weave.filter(pl.col("arp_op").is_null())):
        full = table.select(flows.tuple_id()).to_series()
        assert table.select(flows.tuple_id(table)).to_series().equals(full)
    assert weave.select(flows.tuple_id()).n_unique() > 1  # ARP and the envelopes' own
