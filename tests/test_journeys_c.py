"""Correlation's sequential steps in C (`_journeys.c`) give what their numpy fallbacks in `cniscope.journeys` give,
on keys of every kind and partition counts of every size; positions outside the arrays are refused."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import polars as pl
import pytest

from cniscope import journeys
from cniscope.packets import schema
from tests.compiled import compile_c, garbage_under_nulls


@dataclass(frozen=True)
class Dicted:
    """A class keeping its fields in a dict, as `results.Endpoint` did."""

    addr: str
    port: int | None = None

SOURCE = Path(journeys.__file__).with_name("_journeys.c")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    return compile_c(SOURCE, tmp_path_factory.mktemp("journeys"))


def keys(rng: np.random.Generator, n: int, kind: str) -> np.ndarray:
    """uint64 keys: fingerprints (random), fingerprints seen a few times each, fingerprints alike but for low bits, one
    key, small numbers (most digits the same in every key: passes skipped), numbers at the ends of the range."""
    if kind == "random":
        return rng.integers(0, 2**64, n, dtype=np.uint64)
    if kind == "repeated":
        distinct = rng.integers(0, 2**64, max(n // 3, 1), dtype=np.uint64)
        return distinct[rng.integers(0, len(distinct), n)]
    if kind == "one":
        return np.full(n, 0x0123456789ABCDEF, dtype=np.uint64)
    if kind == "small":
        return rng.integers(0, 3000, n).astype(np.uint64)
    if kind == "near":  # fingerprints sharing their top 31 bits by fours, told apart below them: the C sort's runs mended
        tops = rng.integers(0, 2**64, max(n // 4, 1), dtype=np.uint64) & ~np.uint64(2**33 - 1)
        return tops[rng.integers(0, len(tops), n)] | rng.integers(0, 5, n).astype(np.uint64) << np.uint64(rng.integers(0, 33))
    ends = np.array([0, 1, 2**64 - 1, 2**64 - 2, 2**63, 2**63 - 1, 2**32, 2**32 - 1], dtype=np.uint64)
    return ends[rng.integers(0, len(ends), n)]


KINDS = ["random", "repeated", "near", "one", "small", "ends"]


@pytest.mark.parametrize("kind", KINDS)
def test_argsort_keys_is_numpys_stable_argsort(compiled: ModuleType, kind: str) -> None:
    rng = np.random.default_rng(len(kind))
    for n in (0, 1, 2, 17, 5000, 70_000):
        key = keys(rng, n, kind)
        perm, ordered = np.full(n, 7, np.uint32), np.zeros(n, np.uint64)
        compiled.argsort_keys(key, perm, ordered)
        want_perm, want_ordered = np.zeros(n, np.uint32), np.zeros(n, np.uint64)
        journeys.python_argsort_keys(key, want_perm, want_ordered)
        assert (perm == want_perm).all() and (ordered == want_ordered).all() and (perm == np.argsort(key, kind="stable")).all()


@pytest.mark.parametrize("kind", KINDS)
def test_partitions_are_numpys(compiled: ModuleType, kind: str) -> None:
    """Each key's partition is the key modulo the count (a remainder computed without dividing, in C): the same
    sizes and places as numpy's, block after block, for counts of every size."""
    rng = np.random.default_rng(10 + len(kind))
    key = np.concatenate([keys(rng, 3000, kind), keys(rng, 3000, "ends")])
    for count in (*range(1, 70), 255, 256, 1000, 65535, 65536, 65537, 1_000_003):
        sizes, want_sizes = np.zeros(count, np.int64), np.zeros(count, np.int64)
        blocks = [(0, key[:2500]), (2500, key[2500:])]
        for _, block in blocks:
            compiled.partition_sizes(block, sizes)
            journeys.python_partition_sizes(block, want_sizes)
        assert (sizes == want_sizes).all() and sizes.sum() == len(key)
        at = np.cumsum(sizes) - sizes
        want_at = at.copy()
        positions, want_positions = np.zeros(len(key), np.uint32), np.zeros(len(key), np.uint32)
        for start, block in blocks:
            compiled.partition_place(block, start, at, positions)
            journeys.python_partition_place(block, start, want_at, want_positions)
        assert (positions == want_positions).all() and (at == want_at).all(), count
        assert (positions == np.argsort(key % np.uint64(count), kind="stable")).all()
        for dtype in (np.uint8, np.uint16, np.uint32, np.int64):  # a column put in the same order
            values = rng.integers(0, 100, len(key)).astype(dtype)
            at, out = np.cumsum(sizes) - sizes, np.zeros(len(key), dtype)
            for start, block in blocks:
                compiled.partition_scatter(block, at, values[start:start + len(block)], out)
            assert (out == values[positions]).all() and (at == want_at).all()


def test_a_place_outside_the_positions_is_refused(compiled: ModuleType) -> None:
    with pytest.raises(ValueError, match="outside"):
        compiled.partition_place(np.arange(10, dtype=np.uint64), 0, np.full(3, 3, np.int64), np.zeros(5, np.uint32))
    with pytest.raises(ValueError, match="outside"):
        compiled.partition_scatter(np.arange(10, dtype=np.uint64), np.full(3, 3, np.int64), np.arange(10), np.zeros(5))
    with pytest.raises(ValueError, match="bytes a key"):
        compiled.partition_scatter(np.arange(10, dtype=np.uint64), np.zeros(3, np.int64), np.zeros(10, "V3"), np.zeros(30))


def test_a_partitions_journeys_are_put_in_place_as_numpy_puts_them(compiled: ModuleType) -> None:
    rng = np.random.default_rng(6)
    rows, n, journeys_ = 100_000, 5000, 1200
    idx = np.sort(rng.choice(rows, n, replace=False)).astype(np.uint32)  # the partition's rows
    perm = rng.permutation(n).astype(np.uint32)  # hop order -> the partition's row
    firsts = np.sort(rng.choice(rows, journeys_, replace=False)).astype(np.uint32)
    journey = rng.integers(0, journeys_, n).astype(np.uint32)
    hop = rng.integers(0, 9, n).astype(np.uint32)
    got = [np.full(rows, 7, np.uint32), np.full(rows, 7, np.uint32)]
    want = [np.full(rows, 7, np.uint32), np.full(rows, 7, np.uint32)]
    compiled.merge_put(perm, idx, firsts, journey, hop, *got)
    journeys.python_merge_put(perm, idx, firsts, journey, hop, *want)
    assert (got[0] == want[0]).all() and (got[1] == want[1]).all() and (got[0] != 7).sum() == n
    with pytest.raises(ValueError, match="outside"):
        compiled.merge_put(perm, idx, firsts, journey + np.uint32(journeys_), hop, *got)
    with pytest.raises(ValueError, match="outside"):
        compiled.merge_put(perm, idx, firsts, journey, hop, np.zeros(10, np.uint32), np.zeros(10, np.uint32))


def test_a_partitions_journeys_in_its_own_order_are_put_in_place_as_numpy_puts_them(compiled: ModuleType) -> None:
    rng = np.random.default_rng(7)
    rows, n = 100_000, 5000
    idx = np.sort(rng.choice(rows, n, replace=False)).astype(np.uint32)  # the partition's rows
    journey, hop = rng.integers(0, rows, n).astype(np.uint32), rng.integers(0, 9, n).astype(np.uint32)
    got = [np.full(rows, 7, np.uint32), np.full(rows, 7, np.uint32)]
    want = [np.full(rows, 7, np.uint32), np.full(rows, 7, np.uint32)]
    compiled.put_rows(idx, journey, hop, *got)
    journeys.python_put_rows(idx, journey, hop, *want)
    assert (got[0] == want[0]).all() and (got[1] == want[1]).all() and (got[1] != 7).sum() == (hop != 7).sum()
    assert (got[0][idx] == journey).all()
    with pytest.raises(ValueError, match="outside"):
        compiled.put_rows(idx, journey, hop, np.zeros(10, np.uint32), np.zeros(10, np.uint32))
    with pytest.raises(ValueError, match="lengths differ"):
        compiled.put_rows(idx, journey[:-1], hop, *got)


def test_journeys_are_ranked_by_first_row_as_numpy_ranks_them(compiled: ModuleType) -> None:
    rng = np.random.default_rng(4)
    rows = 3_000_000  # blocks of `RANK_BLOCK` rows in numpy: journeys cross them
    label = rng.integers(0, rows // 3, rows)
    first_row = np.full(rows // 3, rows, np.int64)
    np.minimum.at(first_row, label, np.arange(rows))
    journey = first_row[label].astype(np.uint32)  # each sighting's journey by its first row: what `Merge` gives
    first = journey == np.arange(rows, dtype=np.uint32)
    want = journey.copy()
    journeys.python_rank_firsts(want)
    compiled.rank_firsts(journey)
    assert (journey == want).all() and journey.max() == np.count_nonzero(first) - 1
    with pytest.raises(ValueError, match="first row after"):
        compiled.rank_firsts(np.array([0, 2, 1], np.uint32))


def sightings(rng: np.random.Generator, n: int) -> pl.DataFrame:
    """Made-up sightings with every column `journeys.fingerprint` reads, each field from a few values or null: rows
    repeated (some with other addresses), rows with nothing of their own (told apart by their addresses), rows sent to link-local multicast
    (224.0.0.x, ff02:: in either case), envelopes that show nothing inside. The columns chunked each their own way,
    some at offsets inside a byte of the validity bitmap."""

    def ints(name: str, values: list[int] | list[bool], null: float = 0.3) -> pl.Series:
        picked = pl.Series(values, dtype=schema.SCHEMA[name])[rng.integers(0, len(values), n)]
        return pl.select(pl.when(pl.Series(rng.random(n) >= null)).then(picked)).to_series().alias(name)

    def texts(name: str, values: list[str]) -> pl.Series:
        picked = [values[p] if p < len(values) else None for p in rng.integers(0, len(values) + 2, n)]
        return pl.Series(name, picked, dtype=pl.Categorical())

    own = rng.random(n) < 0.6  # the others have nothing of their own: null in every own field
    columns = [ints(name, [0, 1, 7, 2**16 - 1] if schema.SCHEMA[name] != pl.UInt8 else [0, 1, 255]) for name in
               ("ethertype", "proto", "tcp_flags", "icmp_type", "arp_op", "tunnel", "sport", "dport", "outer_sport", "outer_dport")]
    columns += [ints(name, [0, 5, 2**32 - 1], null=0.5) for name in ("seq", "ack", "tsval", "tsecr", "arp_spa", "arp_tpa", "ip_id")]
    columns += [ints(name, [0, 9, 2**16 - 1], null=0.5) for name in ("icmp_id", "icmp_seq", "dns_id")]
    columns += [ints("payload_len", [0, 3]), ints("payload_digest", [0, 1, 2**64 - 1], null=0.5), ints("dns_qr", [False, True]),
                ints("ip_version", [4, 6], null=0.1)]
    columns += [ints(name, [0, 0x0A000001, 0xE00000FB, 0xE0000105]) for name in ("src", "dst", "outer_src", "outer_dst")]
    columns += [texts(name, ["fd00::1", "ff02::fb", "FF02::1", "ff05::2"]) for name in ("src6", "dst6", "outer_src6", "outer_dst6")]
    columns += [texts(name, ["a", "fd00::1"]) for name in ("outer_src_name", "outer_dst_name")]
    table = pl.DataFrame(columns).with_columns(
        pl.when(pl.Series(own)).then(pl.col(name)) for name in journeys.OWN_FIELDS)
    # rows repeated, some of them with other addresses: the same key where the key's fields tell them apart
    again = table[rng.integers(0, max(n // 3, 1), n)]
    moved = pl.Series(rng.random(n) < 0.3)
    table = again.with_columns(pl.when(moved).then(table[name]).otherwise(again[name]).alias(name)
                               for name in (*journeys.ADDRESS_FIELDS, *journeys.ENVELOPE_FIELDS))
    inside = pl.Series(rng.random(n) >= 0.15)  # the others show no address of the packet (an envelope's: its own)
    table = table.with_columns(pl.when(inside).then(pl.col(name)) for name in journeys.ADDRESS_FIELDS)
    cuts = np.unique(np.clip([0, *rng.integers(1, n, 5), n], 0, n)).tolist()
    chunked = pl.concat([table.slice(a, b - a) for a, b in zip(cuts, cuts[1:])], rechunk=False)
    other = np.unique(np.clip([0, 3, 11, n // 2 + 5, n], 0, n)).tolist()
    return chunked.with_columns(pl.concat([table[name].slice(a, b - a) for a, b in zip(other, other[1:])], rechunk=False)
                                for name in ("seq", "dns_qr", "dst6", "payload_digest", "tunnel", "sport"))


def fingerprints_of(table: pl.DataFrame, monkeypatch: pytest.MonkeyPatch, compiled: ModuleType | None,
                    workers: int = 1) -> np.ndarray:
    """`journeys.fingerprints` in C (`compiled`) or in polars (None)."""
    monkeypatch.setattr(journeys, "COMPILED", compiled is not None)
    if compiled is not None:
        monkeypatch.setattr(journeys, "fingerprint_scan", compiled.fingerprint_scan, raising=False)
    return journeys.fingerprints(table, workers)


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether the rows equal in `a` are the rows equal in `b`."""
    pairs = pl.DataFrame({"a": a, "b": b})
    return pairs["a"].n_unique() == pairs["b"].n_unique() == pairs.unique().height


@pytest.mark.parametrize("n", [0, 1, 2, 9, 300, 6000])
def test_fingerprints_in_c_are_equal_where_polars_are(compiled: ModuleType, monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    """The C keys are not polars' hash values, but the same rows share one: key fields, addresses for rows with nothing
    of their own or sent to link-local multicast, the envelope's ends for those that show nothing inside; with the
    optional fields in the key or left out (a sighting hides them), in stretches of rows on threads or at once."""
    rng = np.random.default_rng(n)
    table = sightings(rng, max(n, 2)).head(n)
    want = fingerprints_of(table, monkeypatch, None)
    got = fingerprints_of(table, monkeypatch, compiled)
    assert same_partition(got, want) and (fingerprints_of(table, monkeypatch, compiled, workers=3) == got).all()
    if n >= 300:
        assert 50 < len(np.unique(want)) < n * 0.9  # rows alike, and rows told apart
        shown = table.with_columns(ip_version=pl.lit(None, dtype=pl.UInt8), payload_len=pl.lit(0, dtype=pl.UInt32))
        assert not {"ip_id", "payload_digest"} & {*journeys.key_fields(table)}  # some sightings hide them
        assert journeys.key_fields(shown)[-2:] == ["ip_id", "payload_digest"]  # none does
        assert same_partition(fingerprints_of(shown, monkeypatch, compiled), fingerprints_of(shown, monkeypatch, None))
        offset = table.slice(5)  # every column a view at an offset
        assert same_partition(fingerprints_of(offset, monkeypatch, compiled), fingerprints_of(offset, monkeypatch, None))
        special = table.select(~pl.all_horizontal(pl.col(f).is_null() for f in journeys.OWN_FIELDS)).to_series()
        assert 0 < special.sum() < n


def test_what_lies_under_a_null_is_not_hashed(compiled: ModuleType) -> None:
    """Arrow leaves the values under nulls unspecified: numbers there (each byte of the bitmap all null, all set or
    mixed, from offsets inside a byte) change no key."""
    rng = np.random.default_rng(4)
    table = sightings(rng, 3000)

    def keys(t: pl.DataFrame) -> np.ndarray:
        out = np.empty(t.height, np.uint64)
        compiled.fingerprint_scan(tuple(t[name].to_physical().__arrow_c_stream__() for name in journeys.FINGERPRINTED),
                                  np.empty(0, np.uint32), t.height, 0, out)
        return out

    numbers = [name for name in journeys.FINGERPRINTED if table[name].dtype.is_integer() and table[name].null_count()]
    dirty = table.with_columns(garbage_under_nulls(table[name], rng) for name in numbers)
    assert all(dirty[name].equals(table[name]) for name in numbers) and len(numbers) > 20
    assert (keys(dirty) == keys(table)).all() and (keys(dirty.slice(3)) == keys(table.slice(3))).all()


def test_nulls_and_zeros_are_told_apart(compiled: ModuleType) -> None:
    """A field null or 0, a boolean null or false, a field left out of the key or null in every row."""
    n = 6
    table = sightings(np.random.default_rng(5), n).with_columns(
        **{name: pl.lit(None, dtype=schema.SCHEMA[name]) for name in journeys.FINGERPRINTED},
    ).with_columns(seq=pl.Series([None, 0, 0, 0, 0, 0], dtype=pl.UInt32), dns_qr=pl.Series([False, False, None, True, False, False]),
                   payload_digest=pl.Series([0, 0, 0, 0, None, 0], dtype=pl.UInt64))
    columns = [table[name].to_physical().__arrow_c_stream__() for name in journeys.FINGERPRINTED]
    keys = np.empty(n, np.uint64)
    compiled.fingerprint_scan(tuple(columns), np.empty(0, np.uint32), n, 0, keys)
    assert len(set(keys[:5].tolist())) == 5 and keys[0] != keys[5] and keys[1] == keys[5]
    columns = [None if name == "ethertype" else table[name].to_physical().__arrow_c_stream__() for name in journeys.FINGERPRINTED]
    again = np.empty(n, np.uint64)
    compiled.fingerprint_scan(tuple(columns), np.empty(0, np.uint32), n, 0, again)  # all null: as good as not given
    assert same_partition(again, keys)


def test_columns_of_other_types_or_lengths_are_refused(compiled: ModuleType) -> None:
    table = sightings(np.random.default_rng(2), 20)

    def scan(t: pl.DataFrame, rows: int = 20, start: int = 0, n: int = 20, ff02: np.ndarray | None = None,
             names: tuple[str, ...] = journeys.FINGERPRINTED) -> None:
        compiled.fingerprint_scan(tuple(t[name].to_physical().__arrow_c_stream__() for name in names),
                                  np.empty(0, np.uint32) if ff02 is None else ff02, rows, start, np.empty(n, np.uint64))

    with pytest.raises(ValueError, match="format l"):
        scan(table.with_columns(pl.col("seq").cast(pl.Int64)))
    with pytest.raises(ValueError, match="33 columns"):
        scan(table, names=journeys.FINGERPRINTED[1:])
    with pytest.raises(ValueError, match="19 values for 20 rows"):
        scan(table.with_columns(pl.concat([table["seq"].head(19), pl.Series([None], dtype=pl.UInt32)])).head(19), rows=20)
    with pytest.raises(ValueError, match="beyond the rows"):
        scan(table, start=1)
    with pytest.raises(ValueError, match="ff02"):
        scan(table, ff02=np.zeros(3, np.uint8))


def partition(rng: np.random.Generator, n: int, sorted_times: bool, out: bool) -> tuple[np.ndarray, ...]:
    """A made-up partition of one node: keys seen once, a few times or very often (a storm of one key: bursts longer
    than C compares point by point), times from a few values (sightings at one time) with gaps over `BURST_GAP_NS`, in order or
    not; capture points named or not, repeated within bursts; `out`: some Out (else In or none). Rows ascending."""
    key = rng.integers(0, 2**64, max(n // 4, 1), dtype=np.uint64)[np.minimum(rng.geometric(0.05, n), max(n // 4, 1)) - 1]
    step = rng.choice([0, 0, 1000, journeys.BURST_GAP_NS, journeys.BURST_GAP_NS + 1], n)
    if n:
        key[n // 3:n // 3 + 300], step[n // 3:n // 3 + 300] = key[0], 0  # a storm of one key
    ts = np.cumsum(step).astype(np.int64)
    if not sorted_times:
        ts = rng.permutation(ts)
    iface = rng.integers(0, 3, n).astype(np.uint64)  # 0: no name
    iface[n // 3:n // 3 + 300] = 1 + np.arange(len(iface[n // 3:n // 3 + 300])) % 40  # the storm's points repeat later
    direction = rng.choice([0, 256, 4] if out else [0, 256], n).astype(np.uint64)
    point = (iface * np.uint64(journeys.POINT_NAMED) + direction).astype(np.uint32)
    rows = np.sort(rng.choice(4 * n, n, replace=False)).astype(np.uint32)
    return key, ts, point, rows


@pytest.mark.parametrize("sorted_times", [True, False])
def test_one_node_journeys_in_c_are_one_node_partials(compiled: ModuleType, monkeypatch: pytest.MonkeyPatch,
                                                      sorted_times: bool) -> None:
    """Journeys (first rows) and hops in the partition's own order as `one_node_partial` then `merge_put` give them
    (times in order: a pass over the rows, a hash table of keys; else by the keys sorted); nothing written where
    sightings at one time have an Out before an In."""
    monkeypatch.setattr(journeys, "COMPILED", True)
    monkeypatch.setattr(journeys, "burst_journeys", compiled.burst_journeys, raising=False)
    monkeypatch.setattr(journeys, "time_journeys", compiled.time_journeys, raising=False)
    monkeypatch.setattr(journeys, "argsort_keys", compiled.argsort_keys)
    rng = np.random.default_rng(sorted_times)
    done = refused = 0
    for n in (0, 1, 2, 3, 40, 3000, 20_000):
        for out in (False, True):
            key, ts, point, rows = partition(rng, n, sorted_times, out)
            p = journeys.one_node_partial(key, ts, None, point, rows, hops=False)
            want = np.zeros(n, np.uint32), np.zeros(n, np.uint32)
            journeys.python_merge_put(p.perm, np.arange(n, dtype=np.uint32), p.firsts, p.journey, p.hop, *want)
            got = np.full(n, 7, np.uint32), np.full(n, 7, np.uint32)
            if journeys.one_node_journeys(key, ts, point, rows, *got):
                assert (got[0] == want[0]).all() and (got[1] == want[1]).all()
                done += n > 1000
            else:
                assert (got[0] == 7).all() and (got[1] == 7).all()
                refused += 1
            if n == 20_000 and not out:  # repeated points split bursts, long ones (C's SHORT_BURST: 16) too
                assert len(np.unique(want[0])) > len(np.unique(key)) + n // 10
                assert not sorted_times or 16 < want[1].max() < 300
    assert done >= 2 and refused >= 1


def test_journeys_in_time_order_refuse_times_out_of_order(compiled: ModuleType) -> None:
    key, ts, point, rows = partition(np.random.default_rng(3), 500, True, False)
    out = np.full(500, 7, np.uint32), np.full(500, 7, np.uint32)
    constants = journeys.BURST_GAP_NS, journeys.POINT_NAMED, journeys.POINT_DIRECTION, 4
    assert compiled.time_journeys(key, ts, point, rows, *constants, *out)
    ts[300], ts[301] = ts[301] + 1, ts[300]
    out = np.full(500, 7, np.uint32), np.full(500, 7, np.uint32)
    assert not compiled.time_journeys(key, ts, point, rows, *constants, *out) and (out[0] == 7).all() and (out[1] == 7).all()
    with pytest.raises(ValueError, match="lengths differ"):
        compiled.time_journeys(key, ts[:-1], point, rows, *constants, *out)


def test_one_node_journeys_refuse_what_they_cannot_read(compiled: ModuleType) -> None:
    n = 5
    key, ts, point, rows = np.zeros(n, np.uint64), np.zeros(n, np.int64), np.zeros(n, np.uint32), np.arange(n, dtype=np.uint32)
    out = np.zeros(n, np.uint32), np.zeros(n, np.uint32)

    def run(perm: np.ndarray, point: np.ndarray = point, ts: np.ndarray = ts) -> bool:
        return bool(compiled.burst_journeys(key, perm, ts, point, rows, 1, 512, 511, 4, *out))

    assert run(np.arange(n, dtype=np.uint32))
    with pytest.raises(ValueError, match="outside the partition"):
        run(np.array([0, 1, 2, 3, 5], np.uint32))
    with pytest.raises(ValueError, match="lengths differ"):
        run(np.arange(n, dtype=np.uint32), point=np.zeros(n, np.uint8))
    with pytest.raises(ValueError, match="lengths differ"):
        run(np.arange(n, dtype=np.uint32), ts=np.zeros(n - 1, np.int64))


def point_columns(point: np.ndarray, cuts: list[int]) -> tuple[pl.Series, pl.Series]:
    """The iface (UInt32 codes) and direction (UInt8) columns whose `point_codes` are `point`, nulls where it says so,
    in chunks cut at `cuts` (other than the times')."""
    named, none = int(journeys.POINT_NAMED), 256
    code, direction = (point // named).astype(np.int64), (point % named).astype(np.int64)
    iface = pl.Series([int(c) - 1 if c else None for c in code], dtype=pl.UInt32)
    way = pl.Series([None if d == none else int(d) for d in direction], dtype=pl.UInt8)
    assert (pl.DataFrame({"iface": iface, "direction": way}).select(
        (pl.col("iface").cast(pl.UInt64) + 1).fill_null(0) * named + pl.col("direction").cast(pl.UInt64).fill_null(none)
    ).to_series().to_numpy() == point).all()  # `point_codes`' numbers
    bounds = [0, *[c for c in cuts if 0 < c < len(point)], len(point)]
    return tuple(pl.concat([s.slice(a, b - a) for a, b in zip(bounds, bounds[1:])], rechunk=False) if len(point) else s
                 for s in (iface, way))  # type: ignore[return-value]


def window(compiled: ModuleType, key: np.ndarray, ts: pl.Series, point: np.ndarray, lanes: int) -> tuple[np.ndarray, ...] | None:
    """`window_journeys` of every lane, one after the other: the journeys (first rows) and hops, None where refused. The
    capture points as their columns, chunked otherwise than the times."""
    out = np.full(len(key), 7, np.uint32), np.full(len(key), 7, np.uint32)
    constants = journeys.BURST_GAP_NS, journeys.POINT_NAMED, journeys.POINT_DIRECTION, 4
    iface, direction = point_columns(point, [len(point) // 2, len(point) // 2 + 7])
    done = [compiled.window_journeys(key, ts.__arrow_c_stream__(), iface.__arrow_c_stream__(), direction.__arrow_c_stream__(),
                                     lane, lanes, *constants, *out) for lane in range(lanes)]
    return out if all(done) else None


@pytest.mark.parametrize("lanes", [1, 2, 3])
def test_journeys_over_the_whole_capture_in_time_order_are_one_partitions(compiled: ModuleType, lanes: int) -> None:
    """Keys kept for the last burst gap only (two windows, each over the gap long) give the journeys and hops the hash
    table of every key gives over the same rows as one partition; each lane its own keys, the times in chunks."""
    rng = np.random.default_rng(lanes)
    for n in (0, 1, 2, 40, 3000, 3001, 20_000, 20_001):
        for out in (False, True):
            key, ts, point, rows = partition(rng, n, True, out)
            if n % 2:  # a key's sightings a third or a half of the gap apart: the windows' ends between them
                gap = journeys.BURST_GAP_NS
                ts = np.cumsum(rng.choice([0, 1000, gap // 3, gap // 2 + 1, gap + 1], n)).astype(np.int64)
            want = np.zeros(n, np.uint32), np.zeros(n, np.uint32)
            constants = journeys.BURST_GAP_NS, journeys.POINT_NAMED, journeys.POINT_DIRECTION, 4
            whole = compiled.time_journeys(key, ts, point, np.arange(n, dtype=np.uint32), *constants, *want)
            cuts = np.unique(np.clip([0, n // 3, n // 3 + 1, n], 0, n)).tolist()
            times = pl.concat([pl.Series(ts[a:b]) for a, b in zip(cuts, cuts[1:])], rechunk=False) if n else pl.Series(ts)
            got = window(compiled, key, times, point, lanes)
            assert (got is not None) == bool(whole)
            if got is not None:
                assert (got[0] == want[0]).all() and (got[1] == want[1]).all()


def test_a_burst_going_on_over_windows_keeps_its_points(compiled: ModuleType) -> None:
    """A key's burst that goes on from one window to the next keeps the named points it saw (more than the inline
    ones): a point seen before starts a run; a key not seen for two windows starts afresh."""
    gap, named = journeys.BURST_GAP_NS, journeys.POINT_NAMED
    other = np.uint64(99)
    # the window starts at 0 (another key); key 5 from just before the gap's end, its burst going on past it
    times = [0, gap - 10, gap - 9, gap - 8, gap - 7, gap - 6, gap + 5, gap + 6, gap + 7, 4 * gap, 4 * gap + 1]
    points = [named * 50, named * 1, named * 2, named * 3, named * 4, named * 5, named * 6, named * 5, named * 7, named * 3, named * 3]
    key = np.array([other, *[5] * 10], dtype=np.uint64)
    got = window(compiled, key, pl.Series(np.array(times, dtype=np.int64)), np.array(points, dtype=np.uint32), 1)
    assert got is not None
    assert got[0].tolist() == [0, 1, 1, 1, 1, 1, 1, 7, 7, 9, 10] and got[1].tolist() == [0, 0, 1, 2, 3, 4, 5, 0, 1, 0, 0]


def test_journeys_in_time_order_refuse_what_they_cannot_read(compiled: ModuleType) -> None:
    key, point = np.arange(4, dtype=np.uint64), np.zeros(4, np.uint32)
    assert window(compiled, key, pl.Series([1, 2, 2, 3]), point, 1) is not None
    assert window(compiled, key, pl.Series([1, 3, 2, 4]), point, 1) is None  # times out of order
    with pytest.raises(ValueError, match="nulls"):
        window(compiled, key, pl.Series([1, None, 2, 3]), point, 1)
    with pytest.raises(ValueError, match="3 values for 4 rows"):
        window(compiled, key, pl.Series([1, 2, 3]), point, 1)
    with pytest.raises(ValueError, match="no such lane"):
        compiled.window_journeys(key, pl.Series([1, 2, 3, 4]).__arrow_c_stream__(), None, None, 1, 1, 1, 512, 511, 4,
                                 np.zeros(4, np.uint32), np.zeros(4, np.uint32))
    with pytest.raises(ValueError, match="format"):  # a capture point's direction of the wrong type
        compiled.window_journeys(key, pl.Series([1, 2, 3, 4]).__arrow_c_stream__(), None, pl.Series([1, 2, 3, 4]).__arrow_c_stream__(),
                                 0, 1, 1, 512, 511, 4, np.zeros(4, np.uint32), np.zeros(4, np.uint32))


def test_journeys_in_time_order_read_null_columns_as_nulls(compiled: ModuleType) -> None:
    """An interface or direction column null in every row (None) reads as its nulls: no direction, no Out before an In
    at one time to refuse; no interface named, no point seen twice to start a journey again."""
    key, ts = np.array([5, 5, 5], dtype=np.uint64), pl.Series(np.array([1, 1, 2], dtype=np.int64))
    constants = journeys.BURST_GAP_NS, journeys.POINT_NAMED, journeys.POINT_DIRECTION, 4

    def run(iface: pl.Series | None, direction: pl.Series | None) -> list[int] | None:
        out = np.full(3, 7, np.uint32), np.full(3, 7, np.uint32)
        done = compiled.window_journeys(key, ts.__arrow_c_stream__(), *(None if s is None else s.__arrow_c_stream__() for s in (iface, direction)),
                                        0, 1, *constants, *out)
        return [*out[0].tolist(), *out[1].tolist()] if done else None

    same_iface, out_in = pl.Series([3, 3, 3], dtype=pl.UInt32), pl.Series([4, 0, 0], dtype=pl.UInt8)
    assert run(None, out_in) is None  # an Out before an In at one time
    assert run(None, None) == run(None, pl.Series([None] * 3, dtype=pl.UInt8)) == [0, 0, 0, 0, 1, 2]
    assert run(same_iface, None) == [0, 1, 2, 0, 0, 0]  # one named point seen again: a journey each
    assert run(None, None) == run(pl.Series([None] * 3, dtype=pl.UInt32), None)


def test_make_objects_makes_what_the_python_maker_makes(compiled: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """`results.made_many` in C: the same hops and journeys as the Python loop (equal; a hop's fields in its slots, a
    journey's and an end's too; the constants shared), lists of another length, columns not one a field, and a class
    keeping its fields in a dict refused."""
    from cniscope import results
    from cniscope.results import Change, ChangeKind, Endpoint, Hop, HopDirection, Journey, made_many

    changes = (Change(ChangeKind.TTL, "64", "63"),)
    columns = ([3, 1, 2], ["n1", None, "n2"], ["eth0", "cni0", None], [HopDirection("In"), None, HopDirection("Out")],
               [10, None, 2**70], [None, 5, 6], ["p1", "p2", "p3"], None, changes, None, "owner")
    monkeypatch.setattr(results, "_make_objects", compiled.make_objects)
    made = made_many(Hop, columns, 3)
    journey = made_many(Journey, ([7], None, ["TCP"], None, [tuple(made)]), 1)
    monkeypatch.setattr(results, "_make_objects", None)
    assert made == made_many(Hop, columns, 3) and journey == made_many(Journey, ([7], None, ["TCP"], None, [tuple(made)]), 1)
    assert not any(hasattr(o, "__dict__") for o in (*made, *journey))  # (their fields in slots)
    ends = made_many(Endpoint, (["10.0.0.1", "fd00::1"], [80, None]), 2)
    assert ends == [Endpoint("10.0.0.1", 80), Endpoint("fd00::1")] and not hasattr(ends[0], "__dict__")
    with pytest.raises(TypeError, match="slot"):  # a class keeping its fields in a dict
        compiled.make_objects(Dicted, ("addr", "port"), ("10.0.0.1", 80), 1)
    assert made[0].changes is made[2].changes is changes and journey[0].hops[1] is made[1]
    assert made_many(Hop, columns, 0) == []
    names = tuple(f.name for f in fields(Hop))
    with pytest.raises(ValueError):
        compiled.make_objects(Hop, names, (*columns[:-1], ["a", "b"]), 3)  # a list of another length
    with pytest.raises(ValueError):
        compiled.make_objects(Hop, names, columns[:-1], 3)  # a column short
    with pytest.raises(ValueError):
        compiled.make_objects(Hop, names, columns, -1)


def test_make_objects_reads_numpy_arrays_in_place(compiled: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """`made_many` given numpy arrays of objects or of int64 for columns: the hops its lists make, in C and in Python;
    an array of another length, kind or shape refused."""
    from cniscope import results
    from cniscope.results import Hop, made_many

    nodes = np.array(["n1", None, "n2"], dtype=object)
    as_lists = ([3, 1, 2], nodes.tolist(), "eth0", None, [10, -5, 2**62], None, "p", None, (), None, None)
    as_arrays = (np.array([3, 1, 2], dtype=np.int64), nodes, "eth0", None, np.array([10, -5, 2**62]), None, "p", None, (),
                 None, None)
    monkeypatch.setattr(results, "_make_objects", compiled.make_objects)
    made = made_many(Hop, as_arrays, 3)
    assert made == made_many(Hop, as_lists, 3) and made[0].node is nodes[0]
    monkeypatch.setattr(results, "_make_objects", None)
    assert made_many(Hop, as_arrays, 3) == made
    names = tuple(f.name for f in fields(Hop))
    for wrong in (np.array([1, 2], dtype=np.int64), np.array([1.0, 2.0, 3.0]), np.array([1, 2, 3], dtype=np.int32),
                  np.zeros((3, 1), dtype=np.int64), np.array([1, 2, 3], dtype=np.uint64)):
        with pytest.raises(ValueError, match="another length or kind"):
            compiled.make_objects(Hop, names, (wrong, *as_arrays[1:]), 3)


def summary_heads(rng: np.random.Generator, n: int) -> pl.DataFrame:
    """First sightings of every kind `_summaries` meets: TCP, UDP (DNS or not), ICMP, ARP, IPv6, each field null now
    and then, numbers at the ends of their types, every flags value."""
    def column(name: str, values: np.ndarray, nulls: float) -> pl.Series:
        dtype = schema.SCHEMA[name]
        return pl.Series(name, values, dtype=dtype).set(pl.Series(rng.random(n) < nulls), None)  # type: ignore[arg-type]

    def numbers(name: str, top: int, nulls: float = 0.1) -> pl.Series:
        ends = np.array([0, 1, top - 1, top // 2], dtype=np.uint64)
        picked = np.where(rng.random(n) < 0.2, ends[rng.integers(0, 4, n)], rng.integers(0, top, n, dtype=np.uint64))
        return column(name, picked, nulls)

    proto = np.array([6, 17, 1, 58, 47], dtype=np.uint8)[rng.choice(5, n, p=[0.5, 0.3, 0.1, 0.05, 0.05])]
    heads = pl.DataFrame([
        column("proto", proto, 0.02), numbers("arp_op", 3, 0.95), numbers("src", 2**32, 0.05), numbers("dst", 2**32, 0.05),
        numbers("sport", 2**16), numbers("dport", 2**16), numbers("tcp_flags", 256), numbers("seq", 2**32),
        numbers("ack", 2**32), numbers("payload_len", 2**32), numbers("dns_id", 2**16, 0.7),
        column("dns_qr", rng.random(n) < 0.5, 0.2),
    ])
    return heads.with_columns(pl.lit(None, dtype=schema.SCHEMA[c]).alias(c) for c in journeys._SUMMARY_READS if c not in heads.columns)


def test_summaries_in_c_are_the_polars_ones(compiled: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """`_journeys.summaries_at` writes what the polars expressions write, and leaves to Python what they leave (None),
    at any rows, in any order."""
    rng = np.random.default_rng(5)
    heads = summary_heads(rng, 20_000)
    texts = journeys._flag_texts()
    at = rng.permutation(heads.height)[:15_000]
    got = compiled.summaries_at(in_place(heads, journeys._IP4_SUMMARY_FIELDS), heads.height, at, texts)
    want = journeys._ip4_summaries_polars(heads[at])
    assert got == want
    assert 0 < sum(text is None for text in want) < len(want)
    assert any(text is not None and " DNS answer id " in text for text in want)
    assert compiled.summaries_at(in_place(heads, journeys._IP4_SUMMARY_FIELDS), heads.height, at[:0], texts) == []
    # every summary, the rest written by Python, alike either way
    heads = heads.head(500).with_columns(pl.col("src6").cast(pl.String).fill_null("fd00::1").cast(pl.Categorical))
    monkeypatch.setattr(journeys, "_c_summaries_at", compiled.summaries_at)
    with_c = journeys._summaries(heads.with_row_index("row"), at[at < 500], heads)
    monkeypatch.setattr(journeys, "_c_summaries_at", None)
    assert with_c == journeys._summaries(heads.with_row_index("row"), at[at < 500], heads)


def in_place(frame: pl.DataFrame, names: tuple[str, ...]) -> tuple[object, ...]:
    """The columns `names` of `frame` as the C reads them in place (None: all null)."""
    return tuple(None if frame[n].null_count() == frame.height else frame[n].to_physical().rechunk().__arrow_c_stream__()
                 for n in names)


def test_summaries_refuse_what_they_cannot_read(compiled: ModuleType) -> None:
    heads = pl.DataFrame({f: pl.Series([0, 1, 2], dtype=pl.UInt64) for f in journeys._IP4_SUMMARY_FIELDS})
    texts, at = journeys._flag_texts(), np.arange(3, dtype=np.int64)

    def columns() -> tuple[object, ...]:  # (a stream is read once)
        return in_place(heads, journeys._IP4_SUMMARY_FIELDS)

    assert len(compiled.summaries_at(columns(), 3, at, texts)) == 3
    with pytest.raises(ValueError, match="beyond the columns"):
        compiled.summaries_at(columns(), 3, at + 1, texts)
    with pytest.raises(ValueError, match="beyond the columns"):
        compiled.summaries_at(columns(), 3, at - 1, texts)
    with pytest.raises(ValueError, match="12 columns"):
        compiled.summaries_at(columns()[:11], 3, at, texts)
    with pytest.raises(ValueError, match="3 values for 4 rows"):
        compiled.summaries_at(columns(), 4, at, texts)
    with pytest.raises(ValueError, match="in 2 chunks"):
        chunked = pl.concat([heads["proto"][:1], heads["proto"][1:]], rechunk=False)
        compiled.summaries_at((chunked.__arrow_c_stream__(), *columns()[1:]), 3, at, texts)
    with pytest.raises(ValueError, match="256"):
        compiled.summaries_at(columns(), 3, at, texts[:255])
    with pytest.raises(ValueError, match="32 bytes"):
        compiled.summaries_at(columns(), 3, at, [*texts[:255], "x" * 33])
    with pytest.raises(ValueError, match="32 bytes"):
        compiled.summaries_at(columns(), 3, at, [*texts[:255], 7])
    many_flags = heads.with_columns(tcp_flags=pl.Series([300, 300, 300], dtype=pl.UInt64), proto=pl.Series([6, 6, 6], dtype=pl.UInt64))
    assert compiled.summaries_at(in_place(many_flags, journeys._IP4_SUMMARY_FIELDS), 3, at, texts) == [None] * 3  # beyond a byte: Python's


def distinct_frame(rng: np.random.Generator, n: int) -> pl.DataFrame:
    """Columns of every kind `_distinct_numbers` reads (numbers of each width, flags, names, signed), few values each
    (rows repeat), nulls now and then, numbers under the nulls, some columns in several chunks."""
    def pick(values: list[Any], nulls: float, dtype: pl.DataType | type[pl.DataType]) -> pl.Series:
        return pl.Series([None if rng.random() < nulls else values[i] for i in rng.integers(0, len(values), n)], dtype=dtype)

    frame = pl.DataFrame({
        "u8": pick([0, 1, 255], 0.1, pl.UInt8), "u16": pick([0, 7, 65535], 0.2, pl.UInt16),
        "u32": pick([0, 2**32 - 1, 5], 0.1, pl.UInt32), "u64": pick([0, 2**64 - 1, 2**63], 0.3, pl.UInt64),
        "flag": pick([True, False], 0.2, pl.Boolean), "name": pick(["a", "b", "c"], 0.3, pl.Categorical),
        "signed": pick([-1, 0, 2**40], 0.1, pl.Int64), "none": pl.Series([None] * n, dtype=pl.UInt32),
    })
    frame = frame.with_columns(garbage_under_nulls(frame["u32"], rng), garbage_under_nulls(frame["u16"], rng))
    if n > 3:  # some columns in chunks of their own (the table's are: read in batches)
        cut = n // 3
        frame = frame.with_columns(pl.concat([frame["u64"][:cut], frame["u64"][cut:]], rechunk=False),
                                   pl.concat([frame["u8"][:cut], frame["u8"][cut:2 * cut], frame["u8"][2 * cut:]], rechunk=False))
    return frame


@pytest.mark.parametrize("n", [0, 1, 2, 300, 5000])
def test_distinct_rows_in_c_are_polars_groups(compiled: ModuleType, monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    """`_once_per_distinct` in C: the same results in the same order (first appearance) and each row's place among
    them as polars' group_by gives, whatever the columns' types, nulls, chunks; text columns left to polars."""
    frame = distinct_frame(np.random.default_rng(n), n)
    for columns in (frame.columns, ["u8", "flag"], ["none"], ["name", "u64", "signed"]):
        sub = frame.select(columns)
        monkeypatch.setattr(journeys, "_c_distinct", compiled.distinct_rows)
        got, got_rows = journeys._once_per_distinct(sub, lambda row: tuple(row.values())), journeys.distinct_rows(sub)
        monkeypatch.setattr(journeys, "_c_distinct", None)
        want, want_rows = journeys._once_per_distinct(sub, lambda row: tuple(row.values())), journeys.distinct_rows(sub)
        assert got[0] == want[0] and (got[1] == want[1]).all()
        assert (got_rows[0] == want_rows[0]).all() and (got_rows[1] == want_rows[1]).all() and got_rows[1].dtype == np.int64
        assert len(set(got[0])) == len(got[0]) and (n == 0 or len(got[0]) < n or n < 300)
    monkeypatch.setattr(journeys, "_c_distinct", compiled.distinct_rows)
    texts = frame.select(text=pl.col("name").cast(pl.String))  # text: not read in C (polars' group_by)
    assert journeys._once_per_distinct(texts, lambda row: row["text"])[0] == texts["text"].unique(maintain_order=True).to_list()


def test_distinct_rows_are_numbered_alike_as_their_table_grows(compiled: ModuleType) -> None:
    """The slots of distinct rows grow as they are found (from 1024): rows all distinct, and pairs of them, numbered as
    polars' groups and a loop of Python number them, past several growths."""
    n = 20_000
    values = np.random.default_rng(7).permutation(np.repeat(np.arange(n // 2, dtype=np.uint64), 2))  # each twice
    column = pl.Series(values)
    codes = np.empty(n, dtype=np.int64)
    firsts = compiled.distinct_rows((column.__arrow_c_stream__(),), n, np.zeros(1, np.uint8), np.zeros(n, np.uint8), False, codes)
    seen: dict[int, int] = {}
    assert codes.tolist() == [seen.setdefault(v, len(seen)) for v in values.tolist()]
    assert firsts == [values.tolist().index(v) for v in seen]
    first = np.zeros(n, dtype=np.uint8)
    first[::4] = 1  # journeys of four rows: three pairs each
    compiled.distinct_rows((column.__arrow_c_stream__(),), n, np.zeros(1, np.uint8), first, True, codes)
    pairs: dict[tuple[int, int], int] = {}
    want = [-1 if first[i] else pairs.setdefault((values[i - 1], values[i]), len(pairs)) for i in range(n)]
    assert codes.tolist() == want and len(pairs) > 4 * 1024


def change_rows(rng: np.random.Generator, journeys_count: int) -> tuple[pl.DataFrame, np.ndarray]:
    """Hops of journeys as `_changes_at` reads them (every field of `_CHANGE_FIELDS`, their table types), and each
    journey's first: each journey one of a few paths (their hops' TTLs, MACs, envelopes, fragments drawn once a path,
    NAT at some of their hops), its inner packet's ends its own (many conversations along one path), so pairs of
    hops repeat with other ends."""
    def draw(values: list[Any], nulls: float = 0.0) -> Any:
        return None if rng.random() < nulls else values[rng.integers(0, len(values))]

    def hop_fields() -> dict[str, Any]:
        return {"tunnel": draw([0, 0, 1]), "vni": draw([1, 2], 0.5), "outer_dport": draw([8472, 4789], 0.5),
                "ttl": draw([64, 63, 62], 0.05), "eth_src": draw([1, 2, 3], 0.1), "eth_dst": draw([4, 5], 0.5),
                "mf": draw([True, False], 0.3), "frag_offset": draw([0, 185], 0.3), "outer_src": draw([0xC0A80001, 0xC0A80002], 0.5),
                "outer_dst": draw([0xC0A80003], 0.5)}

    def ends() -> dict[str, Any]:
        return {"sport": draw([80, 443, 30000, 30001], 0.05), "dport": draw([53, 8080], 0.05),
                "src": draw([0x0A000001, 0x0A000002, 0x0AF40001], 0.05), "dst": draw([0x0A000003, 0x0A600001], 0.05),
                "src6": draw(["fd00::1", "fd00::2"], 0.8), "dst6": draw(["fd00::3"], 0.8), "src_name": draw(["web"], 0.9),
                "dst_name": draw(["db", "cache"], 0.9)}

    paths = [[(hop_fields(), rng.random() < 0.2) for _ in range(rng.integers(1, 7))] for _ in range(6)]
    rows: list[dict[str, Any]] = []
    for path in (paths[i] for i in rng.integers(0, len(paths), journeys_count)):
        inner = ends()
        for hop, (fields_of_hop, translated) in enumerate(path):
            inner = ends() if hop and translated else inner
            rows.append({"hop": hop, **fields_of_hop, **inner})
    columns = {f: pl.Series(f, [row.get(f) for row in rows], dtype=schema.SCHEMA[f]) for f in journeys._CHANGE_FIELDS}
    frame = pl.DataFrame({"hop": pl.Series([row["hop"] for row in rows], dtype=pl.UInt32), **columns})
    return frame, np.flatnonzero(frame["hop"].to_numpy() == 0)


@pytest.mark.parametrize("count", [0, 1, 50, 3000])
def test_changes_in_c_are_the_polars_ones(compiled: ModuleType, monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    """`_changes_at` by `_journeys.distinct_rows`' pairs: the same distinct changes in the same order, each hop's place
    among them, `()` at each journey's first hop, as polars' pairs give."""
    t, starts = change_rows(np.random.default_rng(count), count)
    monkeypatch.setattr(journeys, "_c_distinct", compiled.distinct_rows)
    got = journeys._changes_at(t, starts)
    monkeypatch.setattr(journeys, "_c_distinct", None)
    want = journeys._changes_at(t, starts)
    assert got[0] == want[0] and (got[1] == want[1]).all()
    if count > 50:  # pairs repeat, with and without their ends
        kinds = {c.kind.value for changes in got[0] for c in changes}
        assert 20 < len(got[0]) < (t.height - count) / 2 and {"ttl", "mac", "dnat", "snat"} <= kinds


def test_distinct_rows_refuse_what_they_cannot_read(compiled: ModuleType) -> None:
    column = pl.Series([1, 2, 1], dtype=pl.UInt16)
    codes, ends, first = np.zeros(3, np.int64), np.zeros(1, np.uint8), np.array([1, 0, 0], np.uint8)
    assert compiled.distinct_rows((column.__arrow_c_stream__(),), 3, ends, first, True, codes) == [1, 2] and codes.tolist() == [-1, 0, 1]
    assert compiled.distinct_rows((column.__arrow_c_stream__(),), 3, ends, first, False, codes) == [0, 1] and codes.tolist() == [0, 1, 0]
    assert compiled.distinct_rows((None,), 3, ends, first, False, codes) == [0] and codes.tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="no row before it"):
        compiled.distinct_rows((column.__arrow_c_stream__(),), 3, ends, np.zeros(3, np.uint8), True, codes)
    with pytest.raises(ValueError, match="first and codes of n"):
        compiled.distinct_rows((column.__arrow_c_stream__(),), 3, ends, first, True, np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="first and codes of n"):
        compiled.distinct_rows((column.__arrow_c_stream__(),), 3, np.zeros(2, np.uint8), first, True, codes)
    with pytest.raises(ValueError, match="3 values for 4 rows"):
        compiled.distinct_rows((column.__arrow_c_stream__(),), 4, ends, np.ones(4, np.uint8), True, np.zeros(4, np.int64))
    with pytest.raises(ValueError, match="format"):
        compiled.distinct_rows((pl.Series(["a", "b", "c"]).__arrow_c_stream__(),), 3, ends, first, True, codes)
    many = tuple(pl.Series([True, False, True]).__arrow_c_stream__() for _ in range(65))
    with pytest.raises(ValueError, match="more than 64"):
        compiled.distinct_rows(many, 3, np.zeros(65, np.uint8), first, False, codes)


def test_roles_put_in_c_are_the_python_ones(compiled: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """`results.set_roles` by `_journeys.put_field`: each hop of each journey its role, in order, as the Python loop
    gives them (in a hop's slot; an object keeping its fields in a dict refused); a count of roles other than the hops', or hops
    not in tuples, refused before any is set."""
    from cniscope import results
    from cniscope.results import Endpoint, Hop, Journey, made_many

    def journeys_made() -> list[Journey]:
        hops = made_many(Hop, ([1, 2, 3, 4], "n", "eth0", None, [0, 1, 2, 3], None, "p", None, (), None, None), 4)
        return made_many(Journey, ([0, 1, 2], None, "s", None, [tuple(hops[:1]), (), tuple(hops[1:])]), 3)

    roles = ["a", "b", "c", "d"]
    got, want = journeys_made(), journeys_made()
    monkeypatch.setattr(results, "_put_field", compiled.put_field)
    results.set_roles(got, roles)
    monkeypatch.setattr(results, "_put_field", None)
    results.set_roles(want, roles)
    assert got == want and [h.role for j in got for h in j.hops] == roles
    assert not any(hasattr(h, "__dict__") for j in got for h in j.hops)  # (in their slots)
    ends = (Endpoint("10.0.0.1", 80), Endpoint("fd00::1"))
    compiled.put_field([ends], "port", [1, 2])
    assert ends == (Endpoint("10.0.0.1", 1), Endpoint("fd00::1", 2))
    with pytest.raises(TypeError, match="slot"):  # an object keeping its fields in a dict
        compiled.put_field([(Dicted("10.0.0.1", 80),)], "port", [1])
    untouched = journeys_made()
    with pytest.raises(ValueError, match="a value for each"):
        compiled.put_field([j.hops for j in untouched], "role", roles[:3])
    with pytest.raises(TypeError, match="tuples"):
        compiled.put_field([j.hops for j in untouched] + [list(untouched[2].hops)], "role", roles + roles[1:])
    assert all(h.role is None for j in untouched for h in j.hops)


class _Held:
    """An object keeping its attribute in a dict (not in a slot)."""

    def __init__(self, hops: object) -> None:
        self.hops = hops


def test_same_items_is_what_identity_says(compiled: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """`hop_arrays`' check in C: each journey's hops the very tuple held (slots or dict), else not; the arrays found as
    Python finds them."""
    from cniscope.results import Journey

    tuples: list[tuple[Any, ...]] = [(1,), (2, 3), (4,)]
    made = [Journey(n, None, "s", None, t) for n, t in enumerate(tuples)]
    other = [*made[:2], Journey(2, None, "s", None, tuple(h for h in tuples[2]))]  # equal hops, not the same tuple
    assert compiled.same_items(made, "hops", tuples) and compiled.same_items(tuple(made), "hops", tuple(tuples))
    assert not compiled.same_items(other, "hops", tuples) and other[2].hops == tuples[2]
    assert not compiled.same_items(made, "hops", tuples[:2]) and compiled.same_items([], "hops", [])
    assert compiled.same_items([_Held(tuples[0]), *made[1:]], "hops", tuples)  # a dict's, then slots'
    assert not compiled.same_items([Journey.__new__(Journey)], "hops", tuples[:1])  # a slot unset
    with pytest.raises(AttributeError):
        compiled.same_items([object()], "hops", tuples[:1])
    arrays = journeys.HopArrays(tuples, np.array([1, 2, 1]), np.array([0, 1, 2, 3]), np.zeros(4, dtype=np.int64), [()])
    monkeypatch.setattr(journeys, "_materialised", [arrays])
    for same in (compiled.same_items, None):
        monkeypatch.setattr(journeys, "_c_same", same)
        assert journeys.hop_arrays(made) is arrays
        assert journeys.hop_arrays(other) is None and journeys.hop_arrays(made[:2]) is None
