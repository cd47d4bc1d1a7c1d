"""flows: the Community ID of a conversation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cniscope import flows
from cniscope.analyze import analyze
from cniscope.results import FlowState, Proto
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
    # (each conversation's protocol and state the enums' own members, `_members`)
    assert {f.proto for f in report.flows} >= {Proto.ARP} and all(type(f.proto) is Proto and type(f.state) is FlowState
                                                                   for f in report.flows)
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


def test_community_ids_of_many_ipv4_conversations_are_each_ones() -> None:
    """`community_ids_v4` over arrays gives what `community_id` gives one conversation at a time: the specification's
    example either way round, ends with equal addresses (the ports decide the order), ports not there (0)."""
    import numpy as np

    from cniscope.packets.schema import ip4_text, ip4_value

    rng = np.random.default_rng(7)
    n = 2000
    src, dst = (rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32) for _ in range(2))
    sport, dport = (rng.integers(0, 2**16, n).astype(np.uint16) for _ in range(2))
    proto = rng.choice(np.array([1, 6, 17, 58], dtype=np.uint8), n)
    dst[:50] = src[:50]
    sport[50:100] = 0
    src[0], dst[0], sport[0], dport[0], proto[0] = ip4_value("128.232.110.120"), ip4_value("66.35.250.204"), 34855, 80, 6
    src[1], dst[1], sport[1], dport[1], proto[1] = dst[0], src[0], dport[0], sport[0], 6
    many = flows.community_ids_v4(proto, src, dst, sport, dport)
    assert many[:2] == ["1:LQU9qZlK+B5F3KDmev6m5PMibrg="] * 2
    assert many == [flows.community_id(int(p), ip4_text(int(s)) or "", ip4_text(int(d)) or "", int(a) or None, int(b) or None)
                    for p, s, d, a, b in zip(proto, src, dst, sport, dport, strict=True)]


def test_the_legs_are_found_among_the_rows_numbering_marks(monkeypatch: pytest.MonkeyPatch) -> None:
    """`tally` given `number`'s leg rows (each journey's first row, and the rows NAT gave another tuple; without NAT,
    each journey's first hop) makes the same conversations as over every row, in C and in polars: on every scenario,
    ClusterIP and NodePort ones with conversations of several legs (DNAT, SNAT), and each journey's later sightings
    left out; of every conversation, and of the first few."""
    from cniscope.ingest import expand, read
    from cniscope.journeys import correlate

    left_out = several = rewritten = 0
    for scenario in sorted(path for path in (DATA / "scenarios").glob("*/*") if path.is_dir()):
        table, leg_rows, _ = flows.number(correlate(read(expand([InputSpec(str(scenario))])).table).table)
        assert leg_rows.marked.sum() > 0
        left_out += table.height - leg_rows.marked.sum()
        rewritten += leg_rows.rewritten
        for limit in (None, 3):
            every = flows.tally(table, None, limit)
            with monkeypatch.context() as python:
                python.setattr(flows, "COMPILED", False)
                assert flows.tally(table, None, limit) == every, scenario
                assert flows.tally(table, None, limit, leg_rows) == every, scenario
            assert flows.tally(table, None, limit, leg_rows) == every, scenario
        several += sum(len(flow.legs) > 1 for flow in every.flows)
    assert left_out > 500 and several > 10 and 0 < rewritten < 32


def test_addresses_put_in_text_once_each_are_ip4_exprs() -> None:
    """`_with_ip4_texts` writes each distinct address of its columns once and joins it: the text `ip4_expr` gives
    every row, nulls kept (and a column of nulls, or of none)."""
    import numpy as np
    import polars as pl

    from cniscope.packets.schema import ip4_expr

    rng = np.random.default_rng(5)
    values = pl.Series("a", rng.choice(np.array([0, 1, 0x0A000001, 0xC0A80101, 2**32 - 1], dtype=np.uint32), 500))
    for column in (values, values.set(pl.Series(rng.random(500) < 0.3), None), values.clear().cast(pl.UInt32), values.clear(3)):
        frame = pl.DataFrame([column, column.shuffle(seed=7).alias("b"), column.clear(column.len()).alias("c")])
        got = flows._with_ip4_texts(frame.lazy(), "a", "b", "c").collect()
        assert got.columns == ["a", "b", "c", "_a", "_b", "_c"] and got.select("a", "b", "c").equals(frame)
        for name in frame.columns:
            assert got[f"_{name}"].equals(pl.select(ip4_expr(pl.lit(frame[name]))).to_series().alias(f"_{name}"))


def test_one_leg_a_conversation_is_oriented_as_by_joins() -> None:
    """Where each conversation shows one leg, `_legs_of` orients it row by row (its own ends taken as they are) as
    `_legs_joined` does by joins: legs the same way round as their conversation, turned round, and others (another
    port, no port, an end that is neither the client nor the server)."""
    import polars as pl

    legs = pl.DataFrame({"flow": [0, 1, 2, 3, 4], "a": ["1", "2", "1", "1", "5"], "a_port": [10, 20, 10, None, 1],
                         "b": ["2", "1", "2", "2", "6"], "b_port": [20, 10, 21, None, 2]},
                        schema_overrides={"flow": pl.UInt32, "a_port": pl.UInt16, "b_port": pl.UInt16})
    flat = pl.DataFrame({"flow": [0, 1, 2, 3, 4], "client": ["1"] * 5, "client_port": [10, 10, 10, None, 10],
                         "server": ["2"] * 5, "server_port": [20, 20, 20, None, 20]},
                        schema_overrides={"flow": pl.UInt32, "client_port": pl.UInt16, "server_port": pl.UInt16})
    clients = list(map(flows._endpoint, flat["client"].to_list(), flat["client_port"].to_list()))
    servers = list(map(flows._endpoint, flat["server"].to_list(), flat["server_port"].to_list()))
    got = flows._legs_of(legs, flat, clients, servers)
    assert got == flows._legs_joined(legs, flat) and got[1] == ((clients[1], servers[1]),)
    assert [str(end) for end in got[2][0] + got[4][0]] == ["1:10", "2:21", "5:1", "6:2"]
    assert flows._legs_of(legs.head(2), flat.head(2), clients[:2], servers[:2]) == [((c, s),) for c, s in zip(clients, servers[:2])]


def test_flows_are_numbered_into_the_memory_correlation_is_done_with(tmp_path: Path) -> None:
    """One node's capture in time order, without hops: correlation leaves the fingerprints' second half
    (`Correlation.spare`), which no column holds; numbering writes `flow` there, the same numbers as into an array of
    its own."""
    from cniscope.ingest import read
    from cniscope.journeys import correlate
    from tests.test_analyze_golden import generated

    correlation = correlate(read([InputSpec(str(generated(tmp_path, 3000)))]).table, hops=False)  # (as `analyze` asks it)
    spare = correlation.spare
    assert spare is not None and spare.shape == (correlation.table.height,)
    before = [correlation.table[name].to_numpy().copy() for name in ("row", "journey", "hop")]  # (copies: not views)
    into_spare = flows.number(correlation.table, 2, spare)
    assert into_spare.table["flow"].equals(flows.number(correlation.table).table["flow"])
    assert (spare == into_spare.table["flow"].to_numpy()).all() and into_spare.table["flow"].n_unique() > 10
    assert all((into_spare.table[name].to_numpy() == was).all() for name, was in zip(("row", "journey", "hop"), before))
    for other in (spare[1:], spare.astype(np.uint64), None):  # not of the table's length or type, or none: an array of its own
        assert flows.number(correlation.table, 1, other).table["flow"].equals(into_spare.table["flow"])
