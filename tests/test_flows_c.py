"""Numbering conversations in C (`_flows.c`) gives what the polars/numpy path of `cniscope.flows` gives: the same
rows share a tuple (the ids themselves differ: polars' hashes there), the same conversations, leg rows and first
hops, on tables of every kind of sighting and on the scenarios; keys numbered by first appearance as numpy does."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import polars as pl
import pytest

from cniscope import flows
from cniscope.ingest import expand, read
from cniscope.journeys import ADDRESS_FIELDS, correlate
from cniscope.sources import InputSpec
from tests.compiled import compile_c, garbage_under_nulls
from tests.paths import DATA

SOURCE = Path(flows.__file__).with_name("_flows.c")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    return compile_c(SOURCE, tmp_path_factory.mktemp("flows"))


def in_c(monkeypatch: pytest.MonkeyPatch, compiled: ModuleType) -> None:
    monkeypatch.setattr(flows, "COMPILED", True)
    monkeypatch.setattr(flows, "tuple_scan", compiled.tuple_scan, raising=False)
    monkeypatch.setattr(flows, "number_first_seen", compiled.number_first_seen)
    monkeypatch.setattr(flows, "gather", compiled.gather, raising=False)


def in_python(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flows, "COMPILED", False)
    monkeypatch.setattr(flows, "number_first_seen", flows.python_number_first_seen)


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether the rows equal in `a` are the rows equal in `b`."""
    pairs = pl.DataFrame({"a": a, "b": b})
    return pairs["a"].n_unique() == pairs["b"].n_unique() == pairs.unique().height


def sightings(rng: np.random.Generator, n: int) -> pl.DataFrame:
    """`flows.SCANNED` of `n` made-up sightings, each field from a few values or null (0 and null both common, the
    same text among addresses and names), ends often swapped: equal tuples abound, and near misses. Journeys numbered
    by first row, their hops in row order; the columns chunked each their own way, one slice starting mid-byte."""

    def ints(values: list[int], dtype: pl.DataType) -> pl.Series:
        picked = rng.integers(0, len(values) + 1, n)
        return pl.Series([None if p == len(values) else values[p] for p in picked], dtype=dtype)

    def texts() -> pl.Series:
        picked = rng.integers(0, 5, n)
        return pl.Series([None if p >= 3 else "abc"[p] for p in picked], dtype=pl.Categorical())

    columns = {
        "proto": ints([0, 6, 17, 1], pl.UInt8()), "tunnel": ints([0, 0, 1, 3], pl.UInt8()),
        "icmp_id": ints([0, 7], pl.UInt16()), "arp_op": ints([1] + [2] * 3, pl.UInt16()),
    }
    columns["arp_op"] = pl.select(pl.when(pl.Series(rng.random(n) < 0.2)).then(columns["arp_op"])).to_series()  # mostly not ARP
    for side in ("src", "dst", "outer_src", "outer_dst"):
        columns[side] = ints([0, 1, 2, 2**32 - 1], pl.UInt32())
        columns[f"{side}6"], columns[f"{side}_name"] = texts(), texts()
        columns[f"{side[:-3]}{side[-3]}port"] = ints([0, 1, 80, 65535], pl.UInt16())
    for side in ("spa", "tpa"):
        columns[f"arp_{side}"] = ints([0, 1, 5], pl.UInt32())
    table = pl.DataFrame(columns)
    bare = pl.Series(rng.random(n) < 0.05)  # envelopes that show nothing of what they carry (their own ends stand for it)
    table = table.with_columns(pl.when(bare).then(None).otherwise(pl.col(name)).alias(name) for name in ADDRESS_FIELDS)
    table = table.with_columns(tunnel=pl.when(bare).then(1).otherwise(pl.col("tunnel")).cast(pl.UInt8))
    swap = rng.random(n) < 0.4  # the same ends the other way round
    table = table.with_columns(**{f"{prefix}{a}{kind}": pl.when(pl.Series(swap)).then(pl.col(f"{prefix}{b}{kind}"))
                                  .otherwise(pl.col(f"{prefix}{a}{kind}"))
                                  for prefix in ("", "outer_") for a, b in (("src", "dst"), ("dst", "src")) for kind in ("", "6", "_name")},
                               **{f"{prefix}{a}port": pl.when(pl.Series(swap)).then(pl.col(f"{prefix}{b}port")).otherwise(pl.col(f"{prefix}{a}port"))
                                  for prefix in ("", "outer_") for a, b in (("s", "d"), ("d", "s"))})
    journey, hop, started = np.empty(n, np.uint32), np.empty(n, np.uint32), np.zeros(0, np.uint32)
    for i in range(n):
        if not len(started) or rng.random() < 0.3:
            journey[i], started = len(started), np.append(started, 0)
        else:
            journey[i] = rng.integers(max(0, len(started) - 20), len(started))
        hop[i] = started[journey[i]]
        started[journey[i]] += 1
    table = table.with_columns(journey=pl.Series(journey), hop=pl.Series(hop), row=pl.Series(np.arange(n, dtype=np.uint32)))
    table = table.select(flows.SCANNED)
    cuts = np.unique(np.clip([0, *rng.integers(1, n, 6), n], 0, n)).tolist()
    chunked = pl.concat([table.slice(a, b - a) for a, b in zip(cuts, cuts[1:])], rechunk=False)
    # some columns cut elsewhere, views into one buffer at offsets that are not whole bytes of the validity bitmap
    other = np.unique(np.clip([0, 3, 11, n // 2 + 5, n], 0, n)).tolist()
    return chunked.with_columns(pl.concat([table[name].slice(a, b - a) for a, b in zip(other, other[1:])], rechunk=False)
                                for name in ("src", "dst6", "sport", "tunnel", "arp_op", "journey"))


def compare(table: pl.DataFrame, monkeypatch: pytest.MonkeyPatch, compiled: ModuleType) -> flows.Numbered:
    """`number` and `scan` of `table` in C and in polars/numpy: the same results; the C one."""
    count = int(table["journey"].max() or 0) + 1 if table.height else 0
    in_python(monkeypatch)
    want, polars_tuples = flows.number(table), np.empty(table.height, np.uint64)
    slow = flows.scan(table, count, polars_tuples)
    in_c(monkeypatch, compiled)
    got, c_tuples = flows.number(table), np.empty(table.height, np.uint64)
    fast = flows.scan(table, count, c_tuples)
    assert same_partition(c_tuples, polars_tuples)
    assert got.table["flow"].equals(want.table["flow"]) and got.leg_rows.rewritten == want.leg_rows.rewritten
    assert got.leg_rows.bare == want.leg_rows.bare == flows.any_bare(table)
    assert (got.leg_rows.marked == want.leg_rows.marked).all() and got.firsts.equals(want.firsts)
    assert fast.journeys == slow.journeys == count and (fast.leg_rows == slow.leg_rows).all()
    assert fast.firsts.select("journey", "row").equals(slow.firsts.select("journey", "row"))
    assert fast.rewritten["journey"].equals(slow.rewritten["journey"])
    assert same_partition(np.concatenate([fast.seen, fast.firsts["tuple"].to_numpy(), fast.rewritten["tuple"].to_numpy()]),
                          np.concatenate([slow.seen, slow.firsts["tuple"].to_numpy(), slow.rewritten["tuple"].to_numpy()]))
    # in stretches of rows on threads: journeys begun in one stretch go on in the next, NAT among them
    monkeypatch.setattr(flows, "SCAN_STRETCH", 7)
    for workers in (2, 3, 5):
        split_tuples = np.empty(table.height, np.uint64)
        split = flows.scan(table, count, split_tuples, workers=workers)
        assert (split_tuples == c_tuples).all() and (split.seen == fast.seen).all() and (split.leg_rows == fast.leg_rows).all()
        assert split.firsts.equals(fast.firsts) and split.rewritten.equals(fast.rewritten)
        assert split.journeys == count and split.bare == fast.bare
        assert flows.number(table, workers).table["flow"].equals(want.table["flow"])
    return got


@pytest.mark.parametrize("n", [0, 1, 2, 9, 300, 5000])
def test_made_up_sightings_are_numbered_as_in_polars(compiled: ModuleType, monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    rng = np.random.default_rng(n)
    table = sightings(rng, max(n, 2)).head(n)
    numbered = compare(table, monkeypatch, compiled)
    if n >= 300:  # every kind of row was there to tell apart, and some journeys took other tuples on the way
        assert numbered.leg_rows.bare
        assert 1 < numbered.table["flow"].n_unique() < n and numbered.leg_rows.marked.sum() > numbered.table["journey"].n_unique()
        offset = table.slice(5)  # the whole table a view at an offset, its journeys numbered anew by first row
        renumbered = np.empty(offset.height, np.uint32)
        flows.python_number_first_seen(offset["journey"].to_numpy().astype(np.uint64), renumbered)
        compare(offset.with_columns(journey=pl.Series(renumbered)), monkeypatch, compiled)


def test_nulls_and_zeros_and_names_are_told_apart(compiled: ModuleType) -> None:
    """One field null, or 0, or the other: each row's tuple against its neighbours'. A text is one code in every
    column, an IPv6 address the host name of the same text (as in polars' `tuple_id`); the ends either way round are
    one tuple."""
    text = pl.Categorical()
    rows = pl.DataFrame({
        "src": [1, 1, None, 0, None, None, 2], "dst": [2, 2, 2, 2, None, None, 1],
        "src6": pl.Series([None, None, None, None, "a", None, None], dtype=text),
        "src_name": pl.Series([None, None, None, None, None, "a", None], dtype=text),
        "sport": [5, None, 5, 5, 5, 5, 9], "dport": [9, 9, 9, 9, 9, 9, 5],
    }, schema_overrides={"src": pl.UInt32, "dst": pl.UInt32, "sport": pl.UInt16, "dport": pl.UInt16})
    n = rows.height
    table = rows.with_columns(
        [pl.lit(None, dtype=pl.UInt32).alias(name) for name in ("outer_src", "outer_dst", "arp_spa", "arp_tpa")]
        + [pl.lit(None, dtype=text).alias(name) for name in ("dst6", "dst_name", "outer_src6", "outer_dst6", "outer_src_name", "outer_dst_name")]
        + [pl.lit(None, dtype=pl.UInt16).alias(name) for name in ("icmp_id", "outer_sport", "outer_dport", "arp_op")],
        proto=pl.lit(6, dtype=pl.UInt8), tunnel=pl.lit(0, dtype=pl.UInt8), journey=pl.Series(np.arange(n, dtype=np.uint32)),
        hop=pl.lit(0, dtype=pl.UInt32), row=pl.Series(np.arange(n, dtype=np.uint32))).select(flows.SCANNED)
    tuples = np.empty(n, np.uint64)
    compiled.tuple_scan(tuple(table[name].to_physical().__arrow_c_stream__() for name in flows.SCANNED), np.empty(n, np.uint64),
                        np.empty(n, bool), *(np.empty(n, t) for t in (np.uint32, np.uint64, np.uint32)), tuples, 0, n, 0)
    assert len(set(tuples[:5].tolist())) == 5 and tuples[4] == tuples[5] and tuples[0] == tuples[6]


def test_what_lies_under_a_null_is_not_read(compiled: ModuleType) -> None:
    """Arrow leaves the values under nulls unspecified: numbers there (each byte of the bitmap all null, all set or
    mixed, from offsets inside a byte) change no tuple."""
    rng = np.random.default_rng(4)
    table = sightings(rng, 3000)

    def tuples(t: pl.DataFrame) -> np.ndarray:
        out, n = np.empty(t.height, np.uint64), t.height
        compiled.tuple_scan(tuple(t[name].to_physical().__arrow_c_stream__() for name in flows.SCANNED), np.empty(n, np.uint64),
                            np.empty(n, bool), *(np.empty(n, t) for t in (np.uint32, np.uint64, np.uint32)), out, 0, n, 0)
        return out

    numbers = [name for name in flows.SCANNED if table[name].dtype != pl.Categorical and table[name].null_count()]
    dirty = table.with_columns(garbage_under_nulls(table[name], rng) for name in numbers)
    assert all(dirty[name].equals(table[name]) for name in numbers)
    assert (tuples(dirty) == tuples(table)).all() and (tuples(dirty.slice(3)) == tuples(table.slice(3))).all()


def test_the_scenarios_are_numbered_as_in_polars(compiled: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every scenario (ClusterIP and NodePort ones: NAT; weave: ARP and envelopes that show nothing inside)."""
    several = 0
    for scenario in sorted(path for path in (DATA / "scenarios").glob("*/*") if path.is_dir()):
        table = correlate(read(expand([InputSpec(str(scenario))])).table).table
        numbered = compare(table, monkeypatch, compiled)
        several += numbered.leg_rows.marked.sum() > table["journey"].n_unique()
    assert several  # NAT: journeys seen with several tuples


def test_journeys_not_numbered_by_first_row_are_refused(compiled: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    table = sightings(np.random.default_rng(1), 50)
    skipped = table.with_columns(journey=pl.when(pl.col("journey") > 3).then(pl.col("journey") + 1).otherwise(pl.col("journey")))
    for use in (in_python, lambda m: in_c(m, compiled)):
        use(monkeypatch)
        with pytest.raises(ValueError, match="numbered by first row"):
            flows.number(skipped)
    monkeypatch.setattr(flows, "SCAN_STRETCH", 10)  # in stretches: the one where a number is skipped, and the next
    for stretches in (2, 5):
        with pytest.raises(ValueError, match="numbered by first row"):
            flows.number(skipped, stretches)


def test_columns_of_other_types_are_refused(compiled: ModuleType) -> None:
    table = sightings(np.random.default_rng(2), 20).with_columns(pl.col("src").cast(pl.Int64))
    columns = tuple(table[name].to_physical().__arrow_c_stream__() for name in flows.SCANNED)
    n = table.height
    with pytest.raises(ValueError, match="column src"):
        compiled.tuple_scan(columns, np.empty(n, np.uint64), np.empty(n, bool), *(np.empty(n, t) for t in (np.uint32, np.uint64, np.uint32)), None, 0, n, 0)


@pytest.mark.parametrize("kind", ["random", "repeated", "one", "ends", "many"])
def test_keys_are_numbered_by_first_appearance_as_numpy_does(compiled: ModuleType, kind: str) -> None:
    """Through the table's growth (many distinct keys), and keys equal in their low bits."""
    rng = np.random.default_rng(len(kind))
    for n in (0, 1, 2, 17, 5000, 70_000):
        if kind == "random":
            keys = rng.integers(0, 2**64, n, dtype=np.uint64)
        elif kind == "repeated":
            keys = rng.integers(0, 2**64, max(n // 5, 1), dtype=np.uint64)[rng.integers(0, max(n // 5, 1), n)]
        elif kind == "one":
            keys = np.full(n, 2**64 - 1, dtype=np.uint64)
        elif kind == "ends":
            keys = (rng.integers(0, 40, n).astype(np.uint64) << np.uint64(40)) | np.uint64(12345)
        else:
            keys = np.arange(n, dtype=np.uint64)[::-1].copy()
        got, want = np.full(n, 7, np.uint32), np.zeros(n, np.uint32)
        distinct = compiled.number_first_seen(keys, got)
        assert distinct == flows.python_number_first_seen(keys, want) == len(np.unique(keys))
        assert (got == want).all()
        if n:
            assert got[0] == 0 and (np.maximum.accumulate(got)[1:] - np.maximum.accumulate(got)[:-1] <= 1).all()


def test_gather_reads_each_chunk_in_place(compiled: ModuleType) -> None:
    """A column of chunks cut anywhere (one a view at an offset, one empty) looked up as numpy looks it up; a value
    outside the table, a null or another type refused."""
    rng = np.random.default_rng(5)
    table = rng.integers(0, 2**32, 1000, dtype=np.uint64).astype(np.uint32)
    whole = pl.Series(rng.integers(0, 1000, 5000).astype(np.uint32))
    column = pl.concat([whole.slice(0, 7), whole.slice(7, 0), whole.slice(7, 3000), whole.slice(3007)], rechunk=False)
    got, want = np.zeros(len(column), np.uint32), np.zeros(len(column), np.uint32)
    compiled.gather(column.__arrow_c_stream__(), table, got)
    flows.python_gather(column, table, want)
    assert (got == table[whole.to_numpy()]).all() and (want == got).all()
    for bad in (pl.Series([1, 1000], dtype=pl.UInt32), pl.Series([1, None], dtype=pl.UInt32), pl.Series([1, 2], dtype=pl.UInt16)):
        with pytest.raises(ValueError):
            compiled.gather(bad.__arrow_c_stream__(), table, np.zeros(2, np.uint32))


@pytest.mark.parametrize("n", [0, 1, 7, 3000])
def test_the_legs_distinct_rows_are_polars_unique_ones(compiled: ModuleType, n: int) -> None:
    """`leg_scan` keeps the first of each distinct row of the legs' columns among the marked rows of the first flows,
    as polars' `unique(maintain_order=True)` does, and with `mirror` the first of each row and its mirror (the ends
    swapped): made-up sightings (equal rows abound, mirrored ones and near misses: one field null, or 0, or the other),
    chunks cut anywhere, numbers under the nulls; every row, or marked ones; flows null."""
    rng = np.random.default_rng(n + 1)
    third = n // 3 + 1  # rows, their mirrors, and the same rows again
    base = sightings(rng, max(third, 2)).head(third).with_columns(flow=pl.Series(rng.integers(0, 6, third), dtype=pl.UInt32),
                                              dport=pl.col("sport").reverse())
    mirrored = base.rename({a: b for pair in MIRRORED for a, b in (pair, pair[::-1])}).select(base.columns)
    table = pl.concat([base, mirrored, base], rechunk=False)[rng.permutation(3 * third)[:n]]
    table = table.with_columns(flow=pl.when(pl.Series(rng.random(n) < 0.05)).then(None).otherwise(pl.col("flow")))
    columns = list(flows._LEG_COLUMNS)

    def unmirrored(row: tuple[object, ...]) -> tuple[object, ...]:
        """A row or its mirror, whichever sorts first (None as -1)."""
        named = dict(zip(columns, row, strict=True))
        mirror = tuple(named[b] if c == a else named[a] if c == b else named[c] for c in columns
                       for a, b in [next(((a, b) for a, b in MIRRORED if c in (a, b)), (c, c))])
        return min(row, mirror, key=lambda r: [-1 if v is None else v for v in r])

    dirty = table.with_columns(garbage_under_nulls(table[name], rng) for name in ("src", "sport", "arp_spa") if n)
    for marked in (None, rng.random(n) < 0.5):
        for limit in (0, 3, 1 << 32):
            rows = table.with_row_index("at")
            if marked is not None:
                rows = rows.filter(pl.Series(marked))
            rows = rows.filter(pl.col("flow") < limit)
            physical = rows.select(pl.col(columns).to_physical())
            seen = {unmirrored(row): at for at, row in reversed(list(zip(rows["at"].to_list(), physical.rows(), strict=True)))}
            for mirror, want in ((False, rows.unique(subset=columns, maintain_order=True)["at"].to_list()), (True, sorted(seen.values()))):
                capsules = tuple(dirty[name].to_physical().__arrow_c_stream__() for name in columns)
                got = np.frombuffer(compiled.leg_scan(capsules, n, marked, limit, mirror), dtype=np.int64)
                assert got.tolist() == want
                if n > 100 and limit > 3:
                    assert 10 < len(got) < len(rows) - 10  # equal rows were there to be found, and different ones
            if n > 100 and limit > 3:
                assert len(seen) < rows.unique(subset=columns).height - 10  # mirrored rows were there to be found
    with pytest.raises(ValueError, match="column flow"):
        compiled.leg_scan(tuple(table[name].cast(pl.Int64).__arrow_c_stream__() if name == "flow" else None for name in columns),
                          n, None, 1, False)


MIRRORED = (("src", "dst"), ("src6", "dst6"), ("src_name", "dst_name"), ("sport", "dport"), ("arp_spa", "arp_tpa"))


@pytest.mark.parametrize("n", [0, 1, 50, 4000])
def test_late_segments_are_polars_out_of_order_ones(compiled: ModuleType, monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    """`late_segments` counts each flow's data segments below their sender's highest end as `_out_of_order` does in
    polars: made-up first sightings of a few flows and senders (one field null, or 0, or another), sequence numbers
    wrapping round 2**32, segments re-sent, empty, not TCP; chunks cut anywhere."""
    monkeypatch.setattr(flows, "late_segments", compiled.late_segments, raising=False)
    rng = np.random.default_rng(n + 7)

    def ints(values: list[int], dtype: pl.DataType, nulls: float = 0.1) -> pl.Series:
        picked = pl.Series(rng.choice(np.array(values, dtype=np.int64), n), dtype=pl.Int64).cast(dtype)
        return pl.select(pl.when(pl.Series(rng.random(n) < nulls)).then(None).otherwise(picked)).to_series()

    base = rng.choice(np.array([0, 1000, 2**32 - 3000], dtype=np.int64), n)
    first = pl.DataFrame({
        "flow": ints([0, 1, 2, 3], pl.UInt32(), 0.02), "src": ints([0, 1, 2], pl.UInt32()),
        "src6": pl.Series(rng.choice(np.array(["a", "b", None], dtype=object), n), dtype=pl.Categorical()),
        "sport": ints([0, 80, 5000], pl.UInt16()), "proto": ints([6, 6, 6, 17], pl.UInt8(), 0.02),
        "seq": pl.select(pl.when(pl.Series(rng.random(n) < 0.03)).then(None).otherwise(
            pl.Series((base + rng.integers(0, 6000, n)) % 2**32).cast(pl.UInt32))).to_series(),
        "payload_len": ints([0, 1, 100, 1448, 3000], pl.UInt32(), 0.03),
        "original": pl.select(pl.when(pl.Series(rng.random(n) < 0.1)).then(1)).to_series().cast(pl.UInt32),
    })
    cuts = np.unique(np.clip([0, *rng.integers(1, max(n, 2), 4), n], 0, n)).tolist()
    first = pl.concat([first.slice(a, b - a) for a, b in zip(cuts, cuts[1:])], rechunk=False) if n else first
    late, apart = flows._out_of_order(first.lazy())
    want = (late if pl.collect_all([apart])[0].item() else flows._out_of_order_grouped(first.lazy()).lazy())
    want = want.filter(pl.col("out_of_order") > 0, pl.col("flow").is_not_null()).sort("flow").collect()
    flow, counts = np.unique(flows._late_segments(first, first["original"].is_not_null().to_numpy()), return_counts=True)
    assert pl.DataFrame({"flow": flow, "out_of_order": counts.astype(np.uint32)}).equals(want, null_equal=True)
    if n > 1000:
        assert want["out_of_order"].sum() > 100 and want.height == 4


@pytest.mark.parametrize("n", [0, 1, 50, 4000])
def test_resends_are_polars_retransmissions(compiled: ModuleType, monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    """`resends` finds each re-sent segment and the journey it re-sends as `_retransmissions` does in polars: made-up
    first sightings of a few flows and senders (one field null, or 0, or another), sequence numbers and ends wrapping
    round 2**32, segments repeated whole, by their tail only, with other flags, empty, not TCP; chunks cut anywhere,
    numbers under the nulls."""
    monkeypatch.setattr(flows, "resends", compiled.resends, raising=False)
    rng = np.random.default_rng(n + 11)

    def ints(values: list[int], dtype: pl.DataType, nulls: float = 0.1) -> pl.Series:
        picked = pl.Series(rng.choice(np.array(values, dtype=np.int64), n), dtype=pl.Int64).cast(dtype)
        return pl.select(pl.when(pl.Series(rng.random(n) < nulls)).then(None).otherwise(picked)).to_series()

    seq = pl.Series(rng.choice(np.array([0, 1, 1000, 1100, 2**32 - 100, 2**32 - 1], dtype=np.int64), n)).cast(pl.UInt32)
    first = pl.DataFrame({
        "journey": pl.Series(rng.permutation(n) * 3, dtype=pl.UInt32), "flow": ints([0, 1, 2], pl.UInt32(), 0.02),
        "src": ints([0, 1], pl.UInt32()), "src6": pl.Series(rng.choice(np.array(["a", None], dtype=object), n).tolist(), dtype=pl.Categorical()),
        "sport": ints([0, 80], pl.UInt16()), "proto": ints([6, 6, 6, 17], pl.UInt8(), 0.02),
        "seq": pl.select(pl.when(pl.Series(rng.random(n) < 0.03)).then(None).otherwise(seq)).to_series(),
        "payload_len": ints([0, 1, 99, 100, 200], pl.UInt32(), 0.05),
        "tcp_flags": ints([16, 16, 24, 2, 18, 0xC2, 1, 17, 4, 20], pl.UInt8(), 0.05),
    })
    cuts = np.unique(np.clip([0, *rng.integers(1, max(n, 2), 4), n], 0, n)).tolist()
    first = pl.concat([first.slice(a, b - a) for a, b in zip(cuts, cuts[1:])], rechunk=False) if n else first
    numbers = [name for name in ("flow", "src", "sport", "proto", "payload_len", "tcp_flags") if first[name].null_count()]
    dirty = first.with_columns(garbage_under_nulls(first[name], rng) for name in numbers)
    want = flows._retransmissions(first).collect()
    got = flows._resends(dirty)
    assert got.equals(want)
    # flows numbered far apart (no table of them: sorted)
    apart = dirty.with_columns(flow=pl.col("flow").cast(pl.UInt64) * 2_000_000_000 + 7).with_columns(pl.col("flow").cast(pl.UInt32))
    assert flows._resends(apart).equals(want)
    if n > 1000:  # both kinds of re-send were there to find, and segments that re-send nothing
        repeats, tails = (np.frombuffer(found, np.uint32).reshape(-1, 2) for found in
                          compiled.resends(flows._capsules(first, flows._RESEND_COLUMNS), n))
        assert len(set(tails[:, 0].tolist()) - set(repeats[:, 0].tolist())) > 10 and 100 < got.height < n // 2


def test_resends_refuses_what_it_cannot_read(compiled: ModuleType) -> None:
    """A journey null, a column of another type, too few values or columns."""
    first = pl.DataFrame({name: pl.Series([6, 6, 6], dtype=pl.UInt32) for name in flows._RESEND_COLUMNS}).with_columns(
        journey=pl.Series([1, None, 2], dtype=pl.UInt32), proto=pl.lit(6, dtype=pl.UInt8), tcp_flags=pl.lit(2, dtype=pl.UInt8))
    with pytest.raises(ValueError, match="journey with nulls"):
        compiled.resends(flows._capsules(first, flows._RESEND_COLUMNS), 3)
    assert compiled.resends(flows._capsules(first.head(1), flows._RESEND_COLUMNS), 1) == (b"", b"")
    with pytest.raises(ValueError, match="column seq"):
        compiled.resends(flows._capsules(first.with_columns(pl.col("seq").cast(pl.Int64)), flows._RESEND_COLUMNS), 3)
    with pytest.raises(ValueError, match="values for 4 rows"):
        compiled.resends(flows._capsules(first, flows._RESEND_COLUMNS), 4)
    with pytest.raises(ValueError, match="9 columns and"):
        compiled.resends(flows._capsules(first, flows._RESEND_COLUMNS[1:]), 3)


def test_community_ids_are_hashlibs(compiled: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """`community_ids` hashes each record as hashlib's SHA-1 and base64 do, records of every size one SHA-1 block
    takes (the padding's edge at 55 bytes); `community_ids_v4` gives the same in C and in Python."""
    import base64
    import hashlib

    rng = np.random.default_rng(9)
    for size in (1, 2, 3, 16, 40, 54, 55):
        records = rng.integers(0, 256, size * 300, dtype=np.uint8).tobytes()
        want = ["1:" + base64.b64encode(hashlib.sha1(records[at:at + size]).digest()).decode() for at in range(0, len(records), size)]
        assert compiled.community_ids(records, size) == want
    assert compiled.community_ids(b"", 16) == []
    for size, records in ((0, b""), (56, bytes(56)), (16, bytes(17))):
        with pytest.raises(ValueError, match="records of 1 to 55 bytes"):
            compiled.community_ids(records, size)
    proto = rng.choice(np.array([1, 6, 17], dtype=np.uint8), 500)
    src, dst = (rng.integers(0, 4, 500).astype(np.uint32) for _ in range(2))
    sport, dport = (rng.integers(0, 3, 500).astype(np.uint16) for _ in range(2))
    monkeypatch.setattr(flows, "community_ids", compiled.community_ids, raising=False)
    in_c(monkeypatch, compiled)
    fast = flows.community_ids_v4(proto, src, dst, sport, dport)
    in_python(monkeypatch)
    assert fast == flows.community_ids_v4(proto, src, dst, sport, dport) and len(set(fast)) > 50


@pytest.mark.parametrize("n", [0, 1, 60, 3000])
def test_tallies_are_polars_statistics(compiled: ModuleType, monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    """`_stats` in C (`tallies`: the counts, times, first rows and handshake's ACK of each flow, and its journeys and
    RSTs' journeys) gives what its polars group_by, filters and joins give: made-up first sightings of a few flows (some
    null) with SYNs, SYN-ACKs, pure ACKs and others (flags null too), re-sends, times null or equal, sequence numbers
    wrapping round 2**32, ACKs of 1, DNS ids and echo sequence numbers asked and answered (null ones too); chunks cut
    anywhere, numbers under the nulls. What C refuses: a flow above those it was told of, an output of the wrong size."""
    in_c(monkeypatch, compiled)
    monkeypatch.setattr(flows, "tallies", compiled.tallies, raising=False)
    assert flows.TALLY.itemsize == compiled.TALLY_SIZE
    rng = np.random.default_rng(n + 3)

    def ints(values: list[int], dtype: pl.DataType, nulls: float = 0.1) -> pl.Series:
        picked = pl.Series(rng.choice(np.array(values, dtype=np.int64), n), dtype=pl.Int64).cast(dtype)
        return pl.select(pl.when(pl.Series(rng.random(n) < nulls)).then(None).otherwise(picked)).to_series()

    text = pl.Series(rng.choice(np.array(["a", "b", None], dtype=object), n).tolist(), dtype=pl.Categorical())
    first = pl.DataFrame({
        "journey": pl.Series(np.arange(n), dtype=pl.UInt32), "flow": ints(list(range(0, n // 8 + 3, 2)), pl.UInt32(), 0.03),
        "row": pl.Series(np.arange(n), dtype=pl.UInt32), "ts": ints(list(range(0, 2 * n + 2, 3)), pl.Int64(), 0.05),
        "proto": ints([6, 6, 17], pl.UInt8()), "arp_op": ints([1], pl.UInt16(), 0.9), "src": ints([1, 2], pl.UInt32()),
        "dst": ints([1, 2], pl.UInt32()), "src6": text, "dst6": text.reverse(), "src_name": text.shift(1), "dst_name": text.shift(2),
        "sport": ints([80, 5000], pl.UInt16()), "dport": ints([80, 5000], pl.UInt16()),
        "tcp_flags": ints([2, 0xC2, 18, 16, 16, 16, 17, 20, 24, 6], pl.UInt8(), 0.05),
        "seq": ints([6, 100, 2**32 - 1], pl.UInt32()), "ack": ints([0, 1, 101, 2, 7], pl.UInt32()), "win": ints([0, 512], pl.UInt16()),
        "payload_len": ints([0, 100, 2**31], pl.UInt32()), "dns_id": ints([7, 8], pl.UInt16(), 0.5),
        "dns_qr": pl.Series(rng.choice(np.array([True, False, None], dtype=object), n).tolist(), dtype=pl.Boolean()),
        "icmp_type": ints([0, 3, 8, 128, 129], pl.UInt8(), 0.5), "icmp_seq": ints([1, 2], pl.UInt16(), 0.5),
        "arp_spa": ints([1], pl.UInt32(), 0.9), "arp_tpa": ints([2], pl.UInt32(), 0.9),
    }).select(flows.FIRST_COLUMNS)
    cuts = np.unique(np.clip([0, *rng.integers(1, max(n, 2), 4), n], 0, n)).tolist()
    first = pl.concat([first.slice(a, b - a) for a, b in zip(cuts, cuts[1:])], rechunk=False) if n else first
    names = ("flow", "tcp_flags", "seq", "ack", "journey", "win", "payload_len", "dns_id", "icmp_type", "icmp_seq", "proto")
    dirty = first.with_columns(garbage_under_nulls(first[name], rng) for name in names if n)
    resent = rng.random(n) < 0.2
    rows = first.lazy().with_columns(original=pl.when(pl.Series(resent)).then(pl.lit(0, dtype=pl.UInt32)))
    late = first["flow"].drop_nulls().to_numpy()[::3]
    want = flows._stats(rows, n // 2, late)
    got = flows._stats(rows, n // 2, late, dirty, resent)
    assert got[0].select(want[0].columns).equals(want[0]) and sorted(got[0].columns) == sorted(want[0].columns)
    assert got[0].select(want[0].columns).schema == want[0].schema and got[1:] == want[1:]
    if n > 1000:  # every kind was there: flows with and without a SYN, SYN-ACK or handshake's ACK, RSTs, DNS answered or not
        assert 0 < got[0]["ack_ts"].null_count() < got[0].height and 0 < got[0]["syn_src"].null_count() < got[0].height
        assert (got[0]["answered"] < got[0]["queries"]).sum() > 0 and got[0]["replied"].sum() > 0 and any(got[2])
        wide = rows.filter(pl.col("original").is_null()).group_by("flow").agg(pl.col("payload_len").cast(pl.Int64).sum())
        assert wide.select(pl.col("payload_len").max()).collect().item() >= 2**32  # some sums wrapped round (as polars')
    flow_columns = flows._capsules(first, flows._TALLY_COLUMNS)
    with pytest.raises(ValueError, match="wrong size"):
        compiled.tallies(flow_columns, n, 3, 0, None, np.empty(2, flows.TALLY))
    if n > 100:
        with pytest.raises(ValueError, match="a flow above the highest"):
            compiled.tallies(flows._capsules(first, flows._TALLY_COLUMNS), n, 2, 0, None, np.empty(2, flows.TALLY))
        assert flows._tallied(first.with_columns(flow=pl.col("flow") * 100_000 + 10_000), 0, None, late) is None  # far apart
