"""Facts derived once for every detector."""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import pytest

from cniscope import next_hops
from cniscope.findings import detect_in, start
from cniscope.findings import facts as facts_mod
from cniscope.findings.facts import Facts, _partners
from tests.paths import DATA, SEED


def test_partners_find_the_first_reply_way_sighting_from_each_position_on() -> None:
    """For each sighting, the first position at or after it going the other way between its two addresses (itself
    when source and destination are one address; the length when none): the definition, checked by brute force."""
    rng = np.random.default_rng(7)
    for trial in range(300):
        n = int(rng.integers(0, 30))
        src = rng.integers(0, 4, n).astype(np.uint32)
        dst = rng.integers(0, 4, n).astype(np.uint32)
        if trial % 2:
            src, dst = src + np.uint32(2**32 - 4), dst + np.uint32(2**32 - 4)  # the top of the address space too
        expected = [next((p for p in range(i, n) if (src[p], dst[p]) == (dst[i], src[i])), n) for i in range(n)]
        assert _partners(src, dst).tolist() == expected


@pytest.mark.parametrize("inputs", [1, 2])
@pytest.mark.parametrize("probe", [3, 1 << 13])
def test_two_way_between_is_a_pair_both_ways_in_the_window(monkeypatch, probe: int, inputs: int) -> None:
    """Whether the window shows some address pair both ways, by brute force, whether the window's first sightings
    (`TWO_WAY_PROBE` of them) show it or the whole input's partners must; on a table of several chunks with sightings
    that are not IPv4, read from its own rows (one input in time order) or from a copy of each input's (two)."""
    monkeypatch.setattr(facts_mod, "TWO_WAY_PROBE", probe)
    rng = np.random.default_rng(5)
    n = 60
    ts = np.sort(rng.integers(0, 40, n))
    src, dst = rng.integers(0, 6, n), rng.integers(0, 6, n)
    src[::2] = 100  # mostly one way: many windows show no pair both ways
    ipv4 = rng.random(n) > 0.2
    source = np.zeros(n, dtype=np.uint16) if inputs == 1 else (np.arange(n) % 2).astype(np.uint16)
    whole = pl.DataFrame({"input": source, "ts": ts, "src": pl.Series(np.where(ipv4, src, 0).astype(np.uint32)),
                          "dst": dst.astype(np.uint32)}).with_columns(src=pl.when(pl.Series(ipv4)).then(pl.col("src")))
    table = pl.concat([whole[:17], whole[17:40], whole[40:]], rechunk=False)
    assert table["src"].n_chunks() == 3 and table["src"].null_count()
    facts = Facts(table=table, journeys=(), flows=(), verdict=None, clocks=(), inventory=None, by_id={}, flow_by_id={},
                  model=None, node_names=(), node_codes=np.zeros(n), coverage={}, local={}, pods_on={})
    answers = set()
    for index in range(inputs):
        for lo in range(-2, 42, 3):
            for hi in range(lo, 44, 5):
                inside = [(int(s), int(d)) for t, s, d, i, v in zip(ts, src, dst, source, ipv4) if lo <= t <= hi and i == index and v]
                expected = any((d, s) in inside for s, d in inside)
                assert facts.two_way_between(index, lo, hi) is expected, (index, lo, hi)
                answers.add(expected)
    assert answers == {True, False}
    assert ("_pairs" in facts.__dict__) is (inputs == 2 or probe == 3)  # one input: its own rows, unless a probe falls short
    assert not facts.two_way_between(inputs, None, None)


@pytest.mark.parametrize("inputs", [1, 2])
def test_sightings_between_is_a_time_in_the_window_over_every_chunk(inputs: int) -> None:
    """Whether an input shows a sighting at lo <= ts <= hi, by brute force, on a table of several chunks (as read
    batch by batch, or mapped from spilled files), one input in time order (its own column searched) or two."""
    rng = np.random.default_rng(3)
    parts = []
    for size in (0, 7, 1, 12, 5):
        ts = np.sort(rng.integers(0, 100, size)) + 100 * len(parts)
        parts.append(pl.DataFrame({"input": pl.Series(rng.integers(0, inputs, size), dtype=pl.UInt16), "ts": ts.astype(np.int64)}))
    table = pl.concat(parts, rechunk=False)
    assert table["ts"].n_chunks() > 1
    facts = Facts(table=table, journeys=(), flows=(), verdict=None, clocks=(), inventory=None, by_id={}, flow_by_id={},
                  model=None, node_names=(), node_codes=np.zeros(table.height), coverage={}, local={}, pods_on={})
    answers = set()
    for source in range(inputs + 1):
        times = table.filter(pl.col("input") == source)["ts"].to_list()
        for lo in range(-3, 520, 4):
            for hi in (lo, lo + 2, lo + 9, lo + 60):
                expected = any(lo <= t <= hi for t in times)
                assert facts.sightings_between(source, lo, hi) is expected, (source, lo, hi)
                answers.add(expected)
    assert answers == {True, False}


MISSING_ROUTE = DATA / "findings" / "missing-route"


def _facts_of(specs: list, cluster: str | None = None) -> Facts:
    from cniscope.analyze import analyze

    report = analyze(specs, cluster=cluster)
    return facts_mod.build(report.table, report.journeys, report.flows, report.model, report.clocks, report.inventory)


def _path_first_rows(facts: Facts) -> list[int | None]:
    """The row of each journey's `Facts.path_firsts` hop (None: no hops)."""
    rows = facts.hops["row"].to_list()
    return [rows[at] if at >= 0 else None for at in facts.path_firsts().tolist()]


@pytest.mark.parametrize("case", ["seed", "cross-node", "missing-route"])
def test_hops_as_columns_are_the_journeys_hops_and_their_last_in_path_order(case: str) -> None:
    """`Facts.hops` holds every materialised hop in order; `losses.last_in_path` picks, per journey, the hop that ends
    `Facts.path` (nodes that sent it before nodes that received it), and every journey with a loss is a candidate of
    `_may_be_lost`: on one node and on several (three lab nodes, and two where one node's capture names no direction)."""
    from cniscope.findings import losses
    from cniscope.sources import InputSpec

    if case == "seed":
        facts = _facts_of([InputSpec(str(SEED))])
    elif case == "cross-node":
        facts = _facts_of([InputSpec(str(DATA / "scenarios" / "flannel-vxlan" / "cross-node"))])
    else:
        facts = _facts_of([InputSpec(str(MISSING_ROUTE / "node1-eth0.txt"), node="node1"),
                           InputSpec(str(MISSING_ROUTE / "node2.pcapng"), node="node2")], str(MISSING_ROUTE / "cluster.yaml"))
    assert len(facts.node_names) == (1 if case == "seed" else 2 if case == "missing-route" else 3)
    hops = facts.hops
    assert hops.select("journey", "hop", "row").rows() == [(at, n, h.row) for at, j in enumerate(facts.journeys) for n, h in enumerate(j.hops)]
    assert hops["node"].to_list() == [facts.node_names.index(facts.node(h)) for j in facts.journeys for h in j.hops]
    last = losses.last_in_path(facts)
    assert last.select("journey", "row").rows() == [(at, facts.path(j)[-1].row) for at, j in enumerate(facts.journeys) if j.hops]
    assert _path_first_rows(facts) == [facts.path(j)[0].row if j.hops else None for j in facts.journeys]
    if case != "seed":  # each journey's hops backwards, as clocks far apart would order them: the path puts them right
        turned = [dataclasses.replace(j, hops=j.hops[::-1]) for j in facts.journeys]
        backwards = facts_mod.build(facts.table, turned, list(facts.flows), facts.verdict, list(facts.clocks), facts.inventory)
        assert any(backwards.path(j) != j.hops for j in backwards.journeys) or case == "missing-route"  # (crossing none)
        assert losses.last_in_path(backwards).select("journey", "row").rows() == [
            (at, backwards.path(j)[-1].row) for at, j in enumerate(backwards.journeys) if j.hops]
        assert _path_first_rows(backwards) == [backwards.path(j)[0].row if j.hops else None for j in backwards.journeys]
    lost = [at for at, j in enumerate(facts.journeys) if j.hops and losses._loss(facts, j) is not None]
    assert set(lost) <= set(losses._may_be_lost(facts))


@pytest.mark.parametrize("numbering", ["by first sighting", "with gaps", "shuffled"])
def test_first_rows_are_each_journeys_hop_zero(numbering: str) -> None:
    """Journey id -> the row of its hop 0, whether the ids are 0.. in order of first sighting (as correlation numbers
    them: the rows are the array itself), have gaps (a selection's) or come in any order; absent ids are not in it."""
    rng = np.random.default_rng(3)
    journeys = np.repeat(np.arange(40), rng.integers(1, 4, 40))
    ids = {"by first sighting": np.arange(40), "with gaps": np.arange(40) * 3 + 1, "shuffled": rng.permutation(40)}[numbering]
    hop = np.concatenate([np.arange(n) for n in np.bincount(journeys)])
    table = pl.DataFrame({"journey": ids[journeys], "row": np.arange(len(journeys)), "hop": hop},
                         schema={"journey": pl.UInt32, "row": pl.UInt32, "hop": pl.UInt32})
    expected = {int(j): int(r) for j, r, h in table.iter_rows() if h == 0}
    found = facts_mod.first_rows(table)
    assert dict(found) == expected and len(found) == 40
    assert all(found[j] == r for j, r in expected.items())
    absent = [j for j in range(-2, int(ids.max()) + 3) if j not in expected]
    assert not any(j in found for j in absent)
    asked = np.array([*expected, *absent], dtype=np.int64)
    assert found.rows(asked).tolist() == [*expected.values(), *[-1] * len(absent)]
    assert dict(facts_mod.first_rows(table.head(0))) == {}


@pytest.mark.parametrize("case", ["seed", "cross-node", "vxlan"])
def test_numbering_finds_the_first_rows_the_findings_ask_for(case: str) -> None:
    """Each journey's first row as numbering conversations finds it (`flows.number`; in C as in polars: test_flows_c) is `first_rows`
    of the numbered table; `analyze` hands it to the early work, which does not look for it again."""
    from cniscope import findings, flows
    from cniscope.ingest import expand, read
    from cniscope.journeys import correlate
    from cniscope.sources import InputSpec

    spec = {"seed": SEED, "cross-node": DATA / "scenarios" / "flannel-vxlan" / "cross-node",
            "vxlan": DATA / "corpus" / "01-ysaied-pan-cn-calico-vxlan.pcap"}[case]
    correlated = correlate(read(expand([InputSpec(str(spec))])).table).table
    numbered = flows.number(correlated)
    whole = facts_mod.first_rows(numbered.table)
    assert numbered.firsts.height == len(whole) > 0
    found = facts_mod.first_rows_of(numbered.firsts)
    assert dict(found) == dict(whole) and found.rows(np.arange(-1, len(whole) + 1)).tolist() == whole.rows(np.arange(-1, len(whole) + 1)).tolist()

    def never(table: pl.DataFrame) -> None:
        raise AssertionError("computed although known")

    early = findings.start(numbered.table, never, known={facts_mod.first_rows: found, never: "known"})
    assert facts_mod.first_rows not in {compute for compute, future in early.work.items() if not future.done()}
    assert early.result(facts_mod.first_rows, numbered.table) is found and early.result(never, numbered.table) == "known"


@pytest.mark.parametrize("case", ["seed", "cross-node", "vxlan"])
def test_hop_columns_gathered_ahead_are_those_gathered_then(case: str) -> None:
    """`gather_hops`' columns, gathered as soon as the journeys are materialised, are what `Facts.hop_columns` gathers
    itself, and the facts use them only for the very hops and table they were gathered at (else they gather again)."""
    from cniscope.analyze import analyze
    from cniscope.sources import InputSpec

    spec = {"seed": SEED, "cross-node": DATA / "scenarios" / "flannel-vxlan" / "cross-node",
            "vxlan": DATA / "corpus" / "01-ysaied-pan-cn-calico-vxlan.pcap"}[case]
    r = analyze([InputSpec(str(spec))])
    columns = [c for c in facts_mod.HOP_COLUMNS if c in r.table.columns]
    args = (r.table, r.journeys, r.flows, r.model, r.clocks, r.inventory)
    itself = facts_mod.build(*args).hop_columns(*columns)
    ahead = facts_mod.build(*args, hops_ahead=facts_mod.gather_hops(r.table, r.journeys))
    assert ahead._gathered is not None and ahead.hop_columns(*columns).equals(itself) and itself.height
    assert ahead.hop_columns("ts", "tunnel").equals(facts_mod.build(*args).hop_columns("ts", "tunnel"))  # not gathered ahead
    assert ahead.hop_columns("iface", "tunnel").columns == [*ahead.hops.columns, "tunnel"]  # the hops' own, once
    for other in (r.journeys[1:], r.journeys[::-1]):  # other hops: gathered again
        stale = facts_mod.build(*args, hops_ahead=facts_mod.gather_hops(r.table, other))
        assert stale._gathered is None and stale.hop_columns(*columns).equals(itself)
    copy = r.table.clone()  # another table (the facts sort one that is not in row order)
    assert facts_mod.build(*args, hops_ahead=facts_mod.gather_hops(copy, r.journeys))._gathered is None


@pytest.mark.parametrize("shown", [True, False])
def test_the_macs_sightings_start_early_where_a_destination_mac_shows(shown: bool) -> None:
    """The MACs' sightings (what their owners are found from) start beside the other early work only when some sighting
    shows its destination MAC, which every question of their owners needs; the owners are the same either way."""
    from cniscope import findings, next_hops
    from cniscope.analyze import analyze
    from cniscope.sources import InputSpec

    report = analyze([InputSpec(str(SEED))])  # (a text capture: no destination MAC but one given here)
    mac = pl.lit(0x02_00_00_00_00_01 if shown else None, dtype=report.table.schema["eth_dst"])
    table = report.table.with_columns(eth_dst=pl.when(pl.col("row") == 0).then(mac).otherwise(pl.col("eth_dst")))
    assert (table["eth_dst"].null_count() < table.height) is shown
    early = findings.start(table)
    assert (next_hops.mac_sightings in early.work) is shown
    facts = facts_mod.build(table, report.journeys, report.flows, report.model, report.clocks, early=early)
    assert facts.mac_owners == facts_mod.build(table, report.journeys, report.flows, report.model, report.clocks).mac_owners


def test_early_work_its_thread_has_not_come_to_is_done_by_who_asks_for_it() -> None:
    """`Early.result` takes work still queued behind other work from the queue and does it on the asking thread (not
    waited for behind the rest); work already started is waited for; another table's is computed anew."""
    import threading

    table, started, gate = pl.DataFrame({"a": [1]}), threading.Event(), threading.Event()

    def slow(t: pl.DataFrame) -> str:
        started.set()
        gate.wait(60)  # bounds, not timings: the asking thread takes the queued work long before (unless it is broken)
        return threading.current_thread().name

    def queued(t: pl.DataFrame) -> str:
        return threading.current_thread().name

    early = facts_mod.start(table, [slow, queued])
    assert started.wait(60)
    assert early.result(queued, table) == threading.current_thread().name
    gate.set()
    assert early.result(slow, table).startswith("facts")
    assert early.result(slow, pl.DataFrame({"a": [1]})) == threading.current_thread().name


@pytest.mark.parametrize("case", ["seed", "cross-node", "missing-route"])
def test_facts_built_before_the_conversations_and_linked_are_those_built_with_them(case: str) -> None:
    """`analyze` builds the facts of the hops while the conversations are tallied, then links them (`linked`): the
    same facts as built with the linked journeys and their conversations, the hops made once."""
    from cniscope.analyze import analyze
    from cniscope.sources import InputSpec

    specs = {"seed": [InputSpec(str(SEED))], "cross-node": [InputSpec(str(DATA / "scenarios" / "flannel-vxlan" / "cross-node"))],
             "missing-route": [InputSpec(str(MISSING_ROUTE / "node1-eth0.txt"), node="node1"),
                               InputSpec(str(MISSING_ROUTE / "node2.pcapng"), node="node2")]}[case]
    r = analyze(specs, cluster=str(MISSING_ROUTE / "cluster.yaml") if case == "missing-route" else None)
    whole = facts_mod.build(r.table, r.journeys, r.flows, r.model, r.clocks, r.inventory)
    unlinked_journeys = [dataclasses.replace(j, flow=None) for j in r.journeys]  # (the same hops: link keeps them)
    unlinked = facts_mod.unlinked(r.table, unlinked_journeys, r.model, r.clocks, r.inventory)
    facts = facts_mod.linked(unlinked, r.journeys, r.flows)
    assert all(name in facts.__dict__ for name in facts_mod.OF_HOPS if name != "mac_owners")  # made once, before
    assert np.array_equal(facts.journey_places, whole.journey_places) and facts.mac_owners == whole.mac_owners
    assert facts.journeys == whole.journeys and facts.flows == whole.flows and r.flows
    assert facts.by_id == whole.by_id and facts.flow_by_id == whole.flow_by_id
    assert (facts.local, facts.pods_on, facts.node_names) == (whole.local, whole.pods_on, whole.node_names)
    assert facts.hops is unlinked.hops and facts.hops.equals(whole.hops)
    assert [f.title for f in detect_in(facts)] == [f.title for f in detect_in(whole)] == [f.title for f in r.findings]
    early = start(r.table)  # the MACs' owners made before where their sightings were started early
    ahead = facts_mod.unlinked(r.table, unlinked_journeys, r.model, r.clocks, r.inventory, early=early)
    assert ("mac_owners" in ahead.__dict__) == (next_hops.mac_sightings in early.work)
    assert facts_mod.linked(ahead, r.journeys, r.flows).mac_owners == whole.mac_owners
