"""Journeys: the sightings of one packet, grouped and put in hop order.

Theory of operation
-------------------
1. *Fingerprint.* Every sighting gets a key from the fields that survive
   routing, bridging, encapsulation and NAT: protocol, TCP flags/seq/ack/
   timestamp option values, ICMP type/id/seq, DNS id, ARP fields, payload
   length, plus the IP id and payload digest where the input shows them.
   Addresses and ports are not part of it (NAT rewrites them; only a
   packet with nothing of its own in the key, plain UDP as text shows it,
   or one sent to link-local multicast, which no router forwards,
   is told from others by them), and the
   packet columns of a tunnelled sighting are the inner packet's, so the
   encapsulated copy has the key of the plain ones. When some input hides an
   optional field where the packet has it (IP id without `-v`, the digest of
   any text capture), the field is left out of every key rather than letting
   it split one packet's sightings.
2. *Bursts.* On one node, copies of one packet are microseconds apart; a
   re-sent packet with an identical key (no IP id, no timestamps) comes
   hundreds of milliseconds later. Sightings of a key on one node split into
   bursts at gaps over `BURST_GAP_NS`, or where a named capture point repeats.
   The k-th burst of a key on every node forms the k-th journey of that key.
3. *Clocks.* Nodes' clocks disagree. Offsets are estimated (see `clocks`)
   from journeys that cross nodes, and every timestamp is corrected before
   hops are ordered.
4. *Hops.* A journey's sightings on one node (a stretch) are ordered by
   that node's time, then by direction (In before Out), then by input order.
   Stretches are never interleaved: `stretches` orders them by what the
   packet and the capture points say (TTL, the hand-over from one node's
   eth0 Out to the next one's eth0 In, direction), and only then by
   corrected time: a hop between nodes takes microseconds while corrected
   clocks stay microseconds (lab) to milliseconds (NTP) apart. Between
   consecutive hops we record the delay and what changed: TTL, MACs,
   addresses and ports (NAT), the tunnel envelope.

5. *Partitions.* Steps 2 and 4 need only the sightings of one packet, so
   they run per partition of the fingerprint (`split`: a hash picks the
   partition), a few at a time, with working memory a partition's. The unit
   of work is `correlate_partition(narrow rows of one partition) -> Partial`;
   `Merge` puts partials back in row order and numbers journeys over all
   partitions by first row, so any partition count gives the same result.
   Only step 3 (clocks) looks at all partitions at once, between the two.
   One node whose times ascend needs no partitions (without hops, in C): in
   time order, a key last seen over `BURST_GAP_NS` ago starts a burst afresh,
   so one pass over the rows keeps only the keys of the last gap.

Everything up to the materialisation of `Journey` objects is columnar
(polars), so a capture of millions of sightings is grouped in seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache, partial
from typing import Any, TypeVar, cast

import numpy as np
import polars as pl

from cniscope.heap import give_back, small_pages
from cniscope.last import Last
from cniscope.packets.schema import DIRECTION_LABELS, Direction, Tunnel, address_text, ip4_expr, ip4_text, mac_text, tcp_flags_text
from cniscope.results import Change, ChangeKind, Hop, HopDirection, Journey, NodeClock, made_many

S = TypeVar("S")
T = TypeVar("T")
Row = Mapping[str, Any]  # one sighting's columns by name (a row of the packet table, or the few columns read of it)

BURST_GAP_NS = 50_000_000  # 50 ms: copies of one packet on one node are far closer; RTO minimum is 200 ms

# Fields every reader shows when the protocol has them: the strong part of the key.
KEY_FIELDS = (
    "ethertype", "proto", "tcp_flags", "seq", "ack", "tsval", "tsecr", "payload_len",
    "icmp_type", "icmp_id", "icmp_seq", "dns_id", "dns_qr", "arp_op", "arp_spa", "arp_tpa",
)
# Fields some inputs show and others do not (IP id without -v, digests of text): in the key only when every input shows them.
OPTIONAL_KEY_FIELDS = ("ip_id", "payload_digest")
# Fields that tell one packet from the next of the same kind; a key with none of them joins the addresses.
OWN_FIELDS = ("seq", "ack", "tsval", "icmp_id", "icmp_seq", "dns_id", "arp_spa", "arp_tpa", "ip_id", "payload_digest")
ADDRESS_FIELDS = ("src", "dst", "src6", "dst6", "sport", "dport")
ENVELOPE_FIELDS = ("outer_src", "outer_dst", "outer_src6", "outer_dst6", "outer_src_name", "outer_dst_name", "outer_sport", "outer_dport")


@dataclass(frozen=True)
class Correlation:
    """The packet table with journey columns added, and the clock corrections used."""

    table: pl.DataFrame  # + row, journey, hop, hops, delay (ns, to the previous hop)
    clocks: list[NodeClock]
    # uint32, one a row: memory correlation touched and is done with (the fingerprints' second half, which `row`'s
    # array holds alive), for numbering's `flow` (`flows.number`: 40 MB of fresh pages fewer at 10M); None: none
    spare: np.ndarray | None = None


def node_column(table: pl.DataFrame) -> pl.Expr:
    """Node name, or `input N` for inputs that name no node (each file is its own capture host)."""
    return pl.coalesce(pl.col("node"), (pl.lit("input ") + pl.col("input").cast(pl.Utf8)).cast(pl.Categorical))


_points: Last[pl.DataFrame] = Last()  # `capture_points`' last table and its pairs


def capture_points(table: pl.DataFrame) -> pl.DataFrame:
    """The distinct (input, node) pairs of `table`, in order of first sighting: as `unique(maintain_order=True)`, over
    the rows where either changes only (a pair first shows where one does; 10x less CPU time than hashing every row).
    Made once for the last table asked of (the table only referred to weakly): the findings' node codes and coverage
    and the report's capture points ask of the same table (at 2M, 1-2 ms of CPU and 1,000 fresh pages each)."""
    return _points.get(table, (), lambda: _capture_points(table))


def _capture_points(table: pl.DataFrame) -> pl.DataFrame:
    node = pl.col("node").to_physical()
    start = (pl.col("input").ne_missing(pl.col("input").shift(1)) | node.ne_missing(node.shift(1))).fill_null(True)
    # one query (three eager steps each let the interpreter go: the early thread took it back up to 5 ms later each)
    return table.lazy().select("input", "node").filter(start).unique(maintain_order=True).collect(engine="in-memory")


def one_capture_point(table: pl.DataFrame) -> bool:
    """Whether `capture_points(table)` has one pair at most: the input and the node each the same in every row (or
    null in every row), by reductions over the two columns (no mask made: `capture_points` took 0.005-0.015 s and
    1,300 fresh pages at 2M)."""
    stats = table.select(*(expr.alias(f"{n}{k}") for n, c in enumerate((pl.col("input"), pl.col("node").to_physical()))
                           for k, expr in enumerate((c.null_count(), c.min(), c.max())))).row(0)
    return all(nulls == table.height or (nulls == 0 and low == high) for nulls, low, high in (stats[:3], stats[3:]))


def fingerprint(table: pl.DataFrame, fields: list[str] | None = None) -> pl.Expr:
    """The key (UInt64) of each sighting: equal for sightings of one packet. `fields`: the key's fields
    (default: `key_fields` of `table`; a table read in batches knows them only at its end).

    A sighting with nothing of its own in the key (plain UDP as text shows it: protocol and length)
    would share it with every packet of that length: its addresses and ports join its key. Without
    NAT evidence such packets are told apart by where they go; a NAT still splits their journey.
    """
    fields = key_fields(table) if fields is None else fields
    own = [f for f in fields if f in OWN_FIELDS]
    key = pl.struct([pl.col(f) for f in fields]).hash(seed=1)
    addressed = pl.struct([pl.col(f) for f in [*fields, *ADDRESS_FIELDS]]).hash(seed=1)
    # an envelope that shows nothing of what it carries (text of a tunnel port, a snaplen cut before the inner
    # header) is told apart by its own addresses
    enveloped = pl.struct([pl.col(f) for f in [*fields, *ENVELOPE_FIELDS]]).hash(seed=1)
    nothing_own = pl.all_horizontal([pl.col(f).is_null() for f in own])
    special = nothing_own | _link_local_multicast(table)
    if not table.select(special.any()).item():  # every sighting has something of its own: the key alone (0.3 s of CPU less at 10M)
        return key
    return pl.when(~special).then(key).when(nothing_inside()).then(enveloped).otherwise(addressed)


# the columns `_journeys.fingerprint_scan` reads, in its order
FINGERPRINTED = (*KEY_FIELDS, *OPTIONAL_KEY_FIELDS, *ADDRESS_FIELDS, *ENVELOPE_FIELDS, "tunnel")


def fingerprints(table: pl.DataFrame, workers: int = 1) -> np.ndarray:
    """`fingerprint`'s keys of `table`'s rows (uint64): in C over the columns' own buffers where built, `workers`
    stretches of rows at once (a quarter of the CPU time of polars' struct hash, and none of its scratch pages),
    else polars' a slice at a time.

    The C keys are not polars' hash values: equal where polars' are equal, different but by chance, so the journeys
    are the same."""
    key = np.empty(table.height, dtype=np.uint64)
    if not COMPILED:
        expr = fingerprint(table)
        for start in range(0, table.height, NARROW_SLICE):
            made = table.slice(start, NARROW_SLICE).select(key=expr).to_series()
            key[start:start + len(made)] = made.to_numpy()
        return key
    given = {*key_fields(table), *ADDRESS_FIELDS, *ENVELOPE_FIELDS, "tunnel"}
    seen = table.select(pl.col("dst6").drop_nulls().unique()).to_series()
    ff02 = np.sort(seen.filter(seen.cast(pl.Utf8).str.to_lowercase().str.starts_with("ff02:")).to_physical().to_numpy()
                   ).astype(np.uint32)
    bounds = np.linspace(0, table.height, max(workers, 1) + 1).astype(np.int64).tolist()

    def stretch(n: int) -> None:
        columns = tuple(None if name not in given or (s := table.get_column(name)).null_count() == s.len()
                        else s.to_physical().__arrow_c_stream__() for name in FINGERPRINTED)  # None: null in every row
        fingerprint_scan(columns, ff02, table.height, bounds[n], key[bounds[n]:bounds[n + 1]])

    _map(list(range(len(bounds) - 1)), stretch, workers)
    return key


def nothing_inside() -> pl.Expr:
    """A tunnel envelope whose sighting shows no address of the packet inside it."""
    return pl.all_horizontal([pl.col(f).is_null() for f in ADDRESS_FIELDS]) & (pl.col("tunnel").fill_null(0) != 0)


def _link_local_multicast(table: pl.DataFrame) -> pl.Expr:
    """224.0.0.0/24 and ff02::/16 in `table`: never routed, so never NAT-rewritten (IGMP reports, mDNS, router
    solicitations).

    Hosts send identical ones (the same IGMP report, IP id 0, from every bridge that joins a group): only
    their addresses tell them apart. The IPv6 destinations are judged as text once each, not once a sighting.
    """
    v4 = (pl.col("dst") // 256) == 0xE00000
    seen = table.lazy().select(pl.col("dst6").drop_nulls().unique().cast(pl.Utf8)).collect().to_series()
    v6 = pl.col("dst6").is_in(seen.filter(seen.str.to_lowercase().str.starts_with("ff02:")).implode())
    return (v4 | v6).fill_null(False)


def key_fields(table: pl.DataFrame) -> list[str]:
    """`KEY_FIELDS` and the optional fields no input of `table` hides."""
    hidden = table.select(hides()).row(0)
    return list(KEY_FIELDS) + [f for f, h in zip(OPTIONAL_KEY_FIELDS, hidden) if not h]


def hides() -> list[pl.Expr]:
    """Whether some sighting hides each optional field where the packet has it (booleans, `OPTIONAL_KEY_FIELDS`
    order): such a field joins no key."""
    has_it = {"ip_id": pl.col("ip_version") == 4, "payload_digest": pl.col("payload_len") > 0}  # null: no
    return [(has_it[f].fill_null(False) & pl.col(f).is_null()).any().alias(f) for f in OPTIONAL_KEY_FIELDS]


def _sorted_by(t: pl.DataFrame, by: list[pl.Expr | str], *columns: pl.Expr | str, stable: bool = False,
               **named: pl.Expr) -> tuple[pl.DataFrame, np.ndarray]:
    """`columns` of `t` in the order of `by` (nulls first; `stable`: equal rows keep their order), and the
    permutation (sorted position -> row of `t`).

    Only the permutation is sorted and only the few columns a step reads are gathered.
    """
    perm = t.select(pl.arg_sort_by(by, maintain_order=stable)).to_series().to_numpy()
    return t.select(*columns, **named)[perm], perm


def _in_time_order(t: pl.DataFrame, ts_col: str) -> bool:
    """Rows in order of `row` and of time, no time missing (a capture of one node mostly is): a stable sort by
    the other keys then keeps time and row order, and sorting by them costs up to 4x the sort."""
    ts = t[ts_col]
    return ts.null_count() == 0 and ts.is_sorted() and t["row"].is_sorted()


def _one_value(t: pl.DataFrame, column: str) -> bool:
    return bool(t.select(pl.col(column).min() == pl.col(column).max()).item())


def _unsorted(s: pl.DataFrame, perm: np.ndarray) -> pl.DataFrame:
    """Back to the row order of the frame `perm` came from."""
    inverse = np.empty(len(perm), dtype=perm.dtype)  # row numbers are UInt32 (the table's `row`)
    inverse[perm] = np.arange(len(perm), dtype=perm.dtype)
    return s[inverse]


def group(table: pl.DataFrame, ts_col: str = "ts") -> pl.Series:
    """`journey` ids (in `table`'s row order) from `key` and time bursts per node (`ts_col` may be clock-corrected)."""
    t, perm = _bursts(table, ts_col)
    # k-th burst of a key on each node -> k-th journey of that key
    first_burst = pl.when(pl.col("_new")).then(pl.col("_burst")).forward_fill()
    journey = t.select(journey=pl.struct(pl.col("key"), kth=pl.col("_burst") - first_burst).hash(seed=4))
    return _unsorted(journey, perm).to_series()


def _bursts(table: pl.DataFrame, ts_col: str) -> tuple[pl.DataFrame, np.ndarray]:
    """`table` sorted by key, node, time and row (`key`, `_nid`, `ts_col`, `direction`, `_new`: a new key or
    node, `_burst`: the burst's number, ascending), and the permutation (sorted position -> row of `table`).

    One sort, then comparisons with the previous row: no per-group windows.
    """
    # nulls (no timestamps) first: nulls_last sorts 10x slower
    by: list[pl.Expr | str] = ["key", "_nid", ts_col, "row"]
    stable = table.height > 1 and _in_time_order(table, ts_col)
    if stable:
        by = ["key"] if _one_value(table, "_nid") else ["key", "_nid"]
    t, perm = _sorted_by(
        table, by, "key", "_nid", ts_col, "direction", stable=stable,
        _pt=pl.struct([pl.col("iface"), pl.col("direction")]).hash(seed=3), _named=pl.col("iface").is_not_null(),
    )
    from cniscope import stretches  # (here: one capture point's sightings are correlated without it, `_correlate`)

    t = t.with_columns(_new=stretches.run_starts("key", "_nid"))
    gap = (pl.col(ts_col) - pl.col(ts_col).shift(1)) > BURST_GAP_NS
    t = t.with_columns(_burst=(pl.col("_new") | gap.fill_null(False)).cum_sum())
    # a named capture point seen twice within one burst: a re-send with an identical key (or a loop)
    first_at_point = _first_in_run(t["_burst"].to_numpy(), t["_pt"].to_numpy())
    repeat = pl.col("_named") & ~pl.Series(first_at_point)
    t = t.with_columns(_burst=(pl.col("_new") | gap.fill_null(False) | repeat).cum_sum()).drop("_pt", "_named")
    return t, perm


SHIFTED = 8  # runs up to this long plus one are searched for repeats by comparing shifted columns


def _first_in_run(run: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether each row's `b` occurs in its run for the first time (`run`: ascending, equal within a run).

    Most packets are seen once or a few times: an earlier equal value within `SHIFTED` rows is found by
    comparing the columns shifted; only the rows of longer runs are sorted."""
    first = np.ones(len(run), dtype=np.bool_)
    if not len(run):
        return first
    lengths = np.bincount(run)
    for k in range(1, min(int(lengths.max()), SHIFTED + 1)):
        first[k:] &= (run[k:] != run[:-k]) | (b[k:] != b[:-k])
    long = lengths[run] > SHIFTED + 1
    if long.any():
        first[long] = _first_distinct(run[long], b[long])
    return first


def _first_distinct(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether each (a, b) pair occurs here for the first time: a stable sort of the pairs, where polars'
    `is_first_distinct` on a struct holds about 175 B a row more."""
    order = np.lexsort((b, a))  # stable: equal pairs keep their order
    a, b = a[order], b[order]
    starts = np.ones(len(order), dtype=np.bool_)
    starts[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    first = np.zeros(len(order), dtype=np.bool_)
    first[order[starts]] = True
    return first


def _egress_last() -> pl.Expr:
    return pl.when(pl.col("direction") == int(Direction.OUT)).then(1).otherwise(0)


def order_hops(table: pl.DataFrame, ts_col: str, by_node: bool = False) -> tuple[pl.DataFrame, np.ndarray]:
    """`journey` renumbered in order of first sighting, `hop`, `hops`, `delay`: a frame in `table`'s row order;
    and the first row of each journey (ascending: journey ids follow first rows).

    `by_node` (several nodes, `_nid` given): a journey's sightings on each node stay together, the nodes in
    the order `stretches.upstream_first` gives.
    """
    t, perm, firsts = _order_hops_sorted(table, ts_col, by_node)
    return _unsorted(t, perm), firsts


def _order_hops_sorted(table: pl.DataFrame, ts_col: str, by_node: bool) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """`order_hops` in hop order: the frame, the permutation (its position -> row of `table`) and the firsts."""
    if by_node:
        from cniscope import stretches

        t, perm = stretches.upstream_first(stretches.collect(table.select("journey", "_nid", ts_col, "ttl", "direction", "iface", "row"), ts_col))
    else:
        t, perm = _sorted_by(table, ["journey", ts_col, _egress_last(), "row"], "journey", ts_col)
    run = t.select(pl.col("journey").rle_id()).to_series().to_numpy()
    return _numbered(t, perm, run, table["row"].to_numpy(), ts_col)


def one_node_partial(key: np.ndarray, ts: np.ndarray, valid: np.ndarray | None, point: np.ndarray,
                     rows: np.ndarray, hops: bool = True) -> Partial:
    """`group` and `order_hops` of the sightings of one node at once, in numpy over a partition's arrays (`key`,
    `ts` with `valid`: where it is not null, None: nowhere; `point`: `point_codes`; `rows`: the table's `row`;
    `hops`: also each sighting's hops and delay, else empty):
    there each burst is a journey, and the sort that finds the bursts has its sightings together in time and row
    order already; only sightings at one time are put In before Out (a second sort when some are not).

    As `_bursts` then `order_hops` on polars frames, without a frame: a partition's columns are gathered once, and
    no query is planned for each of its steps (233 queries for 20 partitions at 10M sightings took 1.5 s)."""
    n = len(key)
    if valid is not None:
        ts = np.where(valid, ts, 0)  # a null time sorts first of its key, is no gap and no delay
    # the order of (key, time, row), nulls first: the rows of a partition of one node are mostly in that order already
    if valid is None and bool((ts[1:] >= ts[:-1]).all()) and bool((rows[1:] >= rows[:-1]).all()):
        perm, key = stable_order(key)
    else:
        perm = np.lexsort((rows, ts, np.ones(n, bool) if valid is None else valid, key))
        key = key[perm]
    ts, point = ts[perm], point[perm]
    same_time = ts[1:] == ts[:-1]
    split = np.ones(n, dtype=bool)  # a new key, or a gap in time: a new burst
    np.not_equal(key[1:], key[:-1], out=split[1:])
    gap = (ts[1:] - ts[:-1]) > BURST_GAP_NS
    if valid is not None:
        valid = valid[perm]
        both = valid[1:] & valid[:-1]
        gap &= both
        same_time &= valid[1:] == valid[:-1]
    split[1:] |= gap
    del key, gap
    # a named capture point seen twice within one burst: a re-send with an identical key (or a loop)
    named = point >= POINT_NAMED
    if named.any():
        split |= named & ~_first_in_run(np.cumsum(split, dtype=np.uint32), point)
    del named
    # sightings at one time within a burst: In before Out; only the runs with an Out before an In are sorted
    egress = (point & POINT_DIRECTION) == int(Direction.OUT)
    late = ~split[1:] & same_time & egress[:-1] & ~egress[1:]
    if late.any():
        place = np.cumsum(split | np.concatenate([[True], ~same_time]), dtype=np.uint32)  # the run of one time
        unsorted = np.zeros(int(place[-1]) + 1, dtype=bool)
        unsorted[place[1:][late]] = True
        at = np.flatnonzero(unsorted[place])  # those runs' positions, each run in one piece
        perm[at] = perm[at[np.lexsort((egress[at], place[at]))]]  # stable: each run's In, then its Out, in order
        del place, unsorted, at  # times (and nulls) are equal within each run: `ts` and `valid` stand
    del point, same_time, egress, late
    journey, hop, run, count, firsts = _numbered_runs(split, perm, rows)
    if not hops:
        return Partial(journey, hop, np.empty(0, np.uint32), np.empty(0, np.int64), firsts, perm)
    delay = np.zeros(n, dtype=np.int64)
    np.subtract(ts[1:], ts[:-1], out=delay[1:])
    delay[split] = 0
    if valid is not None:
        delay[1:][~both] = 0
    return Partial(journey, hop, count[run], delay, firsts, perm)


def one_node_journeys(key: np.ndarray, ts: np.ndarray, point: np.ndarray, rows: np.ndarray, journey: np.ndarray,
                      hop: np.ndarray) -> bool:
    """`one_node_partial` (without hops) then `merge_put` in the partition's own order, in C: each sighting's journey
    (its first row) and hop into `journey` and `hop` (uint32), from a partition's `key`, `ts` (no nulls), `point` and
    `rows` (ascending). Times in order (a capture's mostly are): one pass over the rows, each key's state in a hash
    table, no sort; else two passes over the keys sorted. False, nothing written: not compiled, or sightings at one
    time to be put In before Out (`one_node_partial` puts them)."""
    if not COMPILED:
        return False
    constants = BURST_GAP_NS, POINT_NAMED, POINT_DIRECTION, int(Direction.OUT)
    if bool((ts[1:] >= ts[:-1]).all()):  # each key's sightings in time order already: no sort
        return time_journeys(key, ts, point, rows, *constants, journey, hop)
    perm = np.lexsort((rows, ts, key)).astype(np.uint32)  # `one_node_partial`'s order: by key, time and row
    return burst_journeys(key[perm], perm, ts, point, rows, *constants, journey, hop)


# `point_codes`: a sighting's capture point (interface, direction) as one number, the interface's code above
POINT_DIRECTION = 511  # the direction's bits (256: none)
POINT_NAMED = 512  # and above: the interface is named


def point_codes() -> pl.Expr:
    """Each sighting's (iface, direction) as one number (UInt64): equal for equal pairs, nulls too; `POINT_NAMED` and
    above where the interface is named, `& POINT_DIRECTION` the direction (256: none)."""
    iface = (pl.col("iface").to_physical().cast(pl.UInt64) + 1).fill_null(0)
    return iface * POINT_NAMED + pl.col("direction").cast(pl.UInt64).fill_null(256)


def _numbered_runs(new: np.ndarray, perm: np.ndarray,
                   rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Journey (numbered 0.. by first row), hop and run (0..) of each sighting in hop order, each run's hops, and
    each journey's first row (ascending), from `new`: where each journey starts in hop order, `perm`: hop order position -> row of the
    partition, `rows`: the partition's `row`."""
    n = len(new)
    starts = np.flatnonzero(new)
    run = np.cumsum(new, dtype=np.uint32)
    run -= 1
    # each run's earliest sighting as its position in the partition when `rows` ascend there (a partition's do): the
    # order of rows, in arrays of the partition's size (by the table's rows, 8 B a sighting of the whole table each)
    ascending = n < 2 or bool((rows[1:] >= rows[:-1]).all())
    at = perm if ascending else rows[perm]
    first = np.minimum.reduceat(at, starts) if n else at  # the run's earliest
    by_first = np.full(int(at.max()) + 1 if n else 0, -1, dtype=np.int32)  # runs by their (distinct) firsts: no argsort
    del at
    by_first[first] = np.arange(len(starts), dtype=np.int32)
    taken = by_first >= 0
    first = np.flatnonzero(taken)  # the firsts in order, as sorting them gives (a partition's sort took 8 ms of 500k)
    firsts = (rows[first] if ascending else first).astype(np.uint32)
    del first
    order = np.empty(len(starts), dtype=np.uint32)
    order[by_first[taken]] = np.arange(len(starts), dtype=np.uint32)
    del by_first, taken
    hops = np.diff(np.append(starts, n)).astype(np.uint32)
    hop = np.arange(n, dtype=np.uint32)
    hop -= np.repeat(starts.astype(np.uint32), hops)  # position in the run
    return order[run], hop, run, hops, firsts


def _numbered(t: pl.DataFrame, perm: np.ndarray, run: np.ndarray, rows: np.ndarray,
              ts_col: str) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """`order_hops`' result in hop order, `perm` and the firsts, from `t` sorted in hop order (`perm`: sorted
    position -> row), `run`: each sorted position's journey numbered 0.. ascending, `rows`: the table's `row`."""
    new = np.ones(len(run), dtype=bool)
    new[1:] = run[1:] != run[:-1]
    journey, hop, run, hops, firsts = _numbered_runs(new, perm, rows)
    t = t.select(
        journey=pl.Series(journey, dtype=pl.UInt32),
        hop=pl.Series(hop),
        hops=pl.Series(hops[run]),
        delay=pl.when(pl.Series(new)).then(None).otherwise(pl.col(ts_col) - pl.col(ts_col).shift(1)),
    )
    return t, perm, firsts


def chunked_like(values: pl.Series, like: pl.Series) -> pl.Series:
    """`values` cut at the chunk boundaries of `like` (views, no copy).

    The table is read in batches, so its columns are chunked; a frame given a
    column chunked differently is copied whole (rechunked) by its next `select`.
    """
    if values.n_chunks() > 1:
        values = values.rechunk()
    pieces, start = [], 0
    for chunk in like.get_chunks():
        pieces.append(values.slice(start, len(chunk)))
        start += len(chunk)
    return pl.concat(pieces, rechunk=False) if len(pieces) > 1 else values


SPLIT_BLOCK = 1 << 20  # rows `split` sorts at a time
NARROW = ("input", "iface", "direction", "ts", "ttl", "icmp_type", "icmp_id", "icmp_seq")


def correlate(table: pl.DataFrame, partitions: int = 1, workers: int = 1, run: Run | None = None,
              hops: bool = True) -> Correlation:
    """Group the sightings of every packet into journeys, with clocks aligned across nodes.

    The work happens on a narrow copy (the key and what ordering needs); the
    wide table is never sorted, only given the resulting columns. `partitions`
    splits that work by fingerprint (every sighting of one packet in one
    partition) so that its working memory is a partition's, `workers` of them
    at a time; the result is the same for any count. `run` runs the partitions
    elsewhere (`analyze --dask`); by default, `workers` threads here. `hops=False`: without the `hops` and
    `delay` columns (`analyze.HOPS_ONLY`).
    """
    with small_pages():
        return _correlate(table, partitions, workers, run, hops)


def _correlate(table: pl.DataFrame, partitions: int, workers: int, run: Run | None, hops: bool) -> Correlation:
    one_node = one_capture_point(table)
    if one_node and run is None and (partitions > 1 or not hops) and table.height and not table.get_column("ts").null_count():
        return _correlate_one_node(table, partitions, workers, hops)
    t = narrow(table, one_node)
    merged = Merge(t.height, hops)
    parts = split(t, partitions)
    run = run or threads(workers)
    if not one_node:
        keys = np.empty(t.height, dtype=np.uint64)

        def put(idx: np.ndarray | None, values: np.ndarray) -> None:
            keys[slice(None) if idx is None else idx] = values

        run(_journey_keys, t, parts, put)
        t = t.with_columns(journey=pl.Series(keys))
        del keys
        from cniscope import clocks  # (several nodes' clocks: here, as `stretches`)

        offsets = clocks.estimate(t)
        t = t.drop("journey").with_columns(ts=clocks.corrected(offsets))  # bursts on one timeline
    else:
        offsets = []
    run(partial(correlate_partition, by_node=not one_node, hops=hops), t, parts, merged.add)
    return _correlation(table, t, merged.finish(parts, numbers=False), offsets, one_node)


def _correlation(table: pl.DataFrame, t: pl.DataFrame, made: pl.DataFrame, offsets: list[NodeClock],
                 one_node: bool) -> Correlation:
    """`table` with the columns correlation made (`Merge.finish`) and `t`'s `row` (and `ts`, clock-corrected)."""
    like = table.get_column("ts")
    added = {"row": t["row"], **{c: made[c] for c in made.columns}}
    if not one_node:  # one node: no clock moved a time, the table's `ts` stands (given again, it was copied: 8 B a row)
        added["ts"] = t["ts"]
    wide = table.with_columns(**{name: chunked_like(values, like) for name, values in added.items()})
    return Correlation(table=wide, clocks=offsets)


def _correlate_one_node(table: pl.DataFrame, count: int, workers: int, hops: bool) -> Correlation:
    """`correlate` of the sightings of one node (times all known) in `count` partitions here, `workers` at a time (one
    partition too where no hops are asked: the window pass below, in C, works over the whole capture on `workers` cores
    where a partition's correlation was serial: 200k pcapng 0.044 -> 0.027 s, 4.5k -> 1.5k page faults):
    the key, capture point (`narrow`'s) and time put in partition order in one pass over the rows each, each partition
    a slice of them, where gathering each partition's rows from the whole frame read it once a partition (at 10M, 20
    partitions: 0.3 s of CPU time). The key and point are made in numpy arrays, freed once in order: polars' heap kept
    a frame's columns. The result's columns take the memory of arrays done with (fresh pages cost on this VM)."""
    key = fingerprints(table, workers)
    made = None if hops else _journeys_in_time(key, table, workers)
    if made is not None:
        halves = key.view(np.uint32)
        correlated = _correlation(table, pl.DataFrame({"row": _rows_in(halves[:table.height])}), made, [], True)
        return Correlation(correlated.table, correlated.clocks, halves[table.height:])
    columns: dict[str, np.ndarray | pl.Series] = {"_point": _points_of(table), "ts": table.get_column("ts"), "key": key}
    parts, ordered = _partitioned(key, count, columns, workers)
    del key, columns
    merged = _one_node_partitions(table.height, parts, ordered, workers, hops)
    del ordered
    made = merged.finish(parts, numbers=False)
    positions = parts[0].base  # the partitions' positions (`_partitioned`'s one array) are done with: their pages hold `row`
    del parts
    row: np.ndarray = positions if isinstance(positions, np.ndarray) and positions.dtype == np.uint32 and \
        positions.shape == (table.height,) else np.empty(table.height, dtype=np.uint32)
    del positions
    return _correlation(table, pl.DataFrame({"row": _rows_in(row)}), made, [], True)


ROWS_BLOCK = 1 << 14  # rows `_rows_in` numbers at a time


def _rows_in(row: np.ndarray) -> np.ndarray:
    """`row` (uint32, an array done with: its pages are touched already) filled with the row numbers: its first block
    numbered, each next one that block plus its start, in place (an `arange` of a slice was a fresh array of pages
    each: 1,000 faults at 2M)."""
    first = row[:ROWS_BLOCK]
    first[:] = np.arange(len(first), dtype=np.uint32)
    for start in range(ROWS_BLOCK, len(row), ROWS_BLOCK):
        block = row[start:start + ROWS_BLOCK]
        np.add(first[:len(block)], np.uint32(start), out=block)
    return row


def _points_of(table: pl.DataFrame) -> np.ndarray:
    """`point_codes` of `table`'s rows, in the fewest bytes that hold them, evaluated a slice at a time."""
    points = _point_code(table)
    point = np.empty(table.height, dtype=table.head(1).select(points).to_series().to_numpy().dtype)
    for start in range(0, table.height, NARROW_SLICE):
        piece = table.slice(start, NARROW_SLICE).select(points).to_series()
        point[start:start + len(piece)] = piece.to_numpy()
    return point


def _journeys_in_time(key: np.ndarray, table: pl.DataFrame, workers: int) -> pl.DataFrame | None:
    """`journey` and `hop` of one node's sightings (`Merge.finish`'s columns, without hops) whose times ascend in row
    order (a capture's mostly do), in C in one pass over the rows, `workers` threads each with the keys of one lane:
    a key last seen over `BURST_GAP_NS` ago starts a burst afresh, so only the keys of the last gap are kept (no
    partitions, no sort, no column put in partition order); the capture points read from the iface and direction
    columns there (made in polars, they took 0.08 s and 4,600 fresh pages at 2M). None: not compiled, times out of
    order (C stops at the first), or sightings at one time to be put In before Out (the partitions do it)."""
    if not COMPILED or table.get_column("ts").null_count():
        return None
    journey, hop = np.empty(len(key), dtype=np.uint32), np.empty(len(key), dtype=np.uint32)
    lanes = max(workers, 1)
    constants = BURST_GAP_NS, POINT_NAMED, POINT_DIRECTION, int(Direction.OUT)

    def lane(n: int) -> bool:
        iface, direction = (None if (s := table.get_column(name)).null_count() == s.len() else s.to_physical().__arrow_c_stream__()
                            for name in ("iface", "direction"))  # None: null in every row
        return bool(window_journeys(key, table.get_column("ts").__arrow_c_stream__(), iface, direction, n, lanes, *constants,
                                    journey, hop))

    done = _map(list(range(lanes)), lane, workers)
    if not all(done):
        return None
    rank_firsts(journey)
    return pl.DataFrame({"journey": journey, "hop": hop})


def narrow(table: pl.DataFrame, one_node: bool) -> pl.DataFrame:
    """What correlation reads of the packet table: `row`, the fingerprint `key`, `NARROW` and `_nid` (node code);
    one node: `ts`, `row`, `key` and `_point` (`point_codes`)."""
    row = pl.Series("row", np.arange(table.height, dtype=np.uint32))
    key = pl.Series("key", fingerprints(table))
    if one_node:  # no names to carry (a text column costs 16+ bytes a row), no clocks to align, no stretches to order
        return pl.concat([table.select("ts"), _by_slices(table, _point=_point_code(table))],
                         how="horizontal").insert_column(1, row).insert_column(2, key)
    node = node_column(table)
    names = {"_node": node, "_nid": node.cast(pl.Categorical).to_physical()}
    return table.select(*NARROW, **names).insert_column(len(NARROW), row).insert_column(len(NARROW) + 1, key)


def _point_code(table: pl.DataFrame) -> pl.Expr:
    """`point_codes` in the fewest bytes that hold those of `table`."""
    codes = (table.select(pl.col("iface").to_physical().max()).item() or 0) + 1  # (the codes + 1) * POINT_NAMED
    return point_codes().cast(pl.UInt16 if codes < 1 << 7 else pl.UInt32 if codes < 1 << 23 else pl.UInt64)


NARROW_SLICE = 1 << 20  # rows `narrow` evaluates at a time: `split` reads blocks of as many


def _by_slices(table: pl.DataFrame, **exprs: pl.Expr) -> pl.DataFrame:
    """`exprs` of `table` evaluated a slice of rows at a time, a chunk each: the scratch memory is a slice's, and a
    partition gathers from the chunks in place."""
    return pl.concat([table.slice(start, NARROW_SLICE).select(**exprs) for start in range(0, max(table.height, 1), NARROW_SLICE)],
                     rechunk=False)


def split(t: pl.DataFrame, count: int) -> list[np.ndarray | None]:
    """Positions in `t` of each partition, ascending: a hash of the fingerprint picks it, so every sighting of
    one packet falls in one partition. One partition is the whole frame (None: no gather)."""
    if count <= 1 or t.height == 0:
        return [None]
    return list(_partitioned(t.get_column("key"), count, {})[0])


def _partitioned(key: pl.Series | np.ndarray, count: int, columns: dict[str, np.ndarray | pl.Series],
                 workers: int = 1) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
    """`split`'s positions of the rows of `key` (`count` > 1), and `columns` (as many rows) in partition order: each
    partition's rows together in row order, where `split`'s positions are (a partition is a slice of them). Each
    column is taken out of `columns` once put in order: given no other reference, its memory goes before the next.

    Each pass over the rows is cut in `workers` stretches of rows, one a thread: a stretch's rows of each partition
    go after the earlier stretches' (their counts known first), so the order is one thread's."""

    def blocks(column: pl.Series | np.ndarray, lo: int, hi: int) -> Iterator[tuple[int, np.ndarray]]:
        for start in range(lo, hi, SPLIT_BLOCK):  # the table's chunks: as one array, a copy (8 B a sighting)
            end = min(start + SPLIT_BLOCK, hi)
            yield start, column[start:end] if isinstance(column, np.ndarray) else column.slice(start, end - start).to_numpy()

    def pieces(column: np.ndarray | pl.Series, lo: int, hi: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(keys, values) a block of rows at a time: a series' own chunks, in place (as one array a block, a copy)."""
        if isinstance(column, np.ndarray):
            yield from ((block, values) for (_, block), (_, values) in zip(blocks(key, lo, hi), blocks(column, lo, hi)))
            return
        start = lo
        for chunk in column.slice(lo, hi - lo).get_chunks():
            rows = slice(start, start + len(chunk))
            yield key[rows] if isinstance(key, np.ndarray) else key.slice(start, len(chunk)).to_numpy(), chunk.to_numpy()
            start += len(chunk)

    # a block of rows at a time, into one array of positions: no array of every row's partition (22 B a sighting at the
    # peak of correlation at 10M, with argsort's order of them)
    stretches = max(1, min(workers, len(key) // SPLIT_BLOCK))
    bounds = np.linspace(0, len(key), stretches + 1).astype(np.int64).tolist()
    counted = [np.zeros(count, dtype=np.int64) for _ in range(stretches)]

    def each_stretch(work: Callable[[int, int, int], None]) -> None:
        _map(list(range(stretches)), lambda n: work(n, bounds[n], bounds[n + 1]), workers)

    def count_rows(n: int, lo: int, hi: int) -> None:
        for _, block in blocks(key, lo, hi):
            partition_sizes(block, counted[n])

    each_stretch(count_rows)
    sizes = np.sum(counted, axis=0)
    ends = np.cumsum(sizes)
    firsts = np.cumsum([ends - sizes, *counted[:-1]], axis=0)  # where each stretch's rows of each partition go
    positions = np.empty(len(key), dtype=np.uint32)

    def place(n: int, lo: int, hi: int) -> None:
        at = firsts[n].copy()
        for start, block in blocks(key, lo, hi):
            partition_place(block, start, at, positions)

    each_stretch(place)

    def in_order(column: np.ndarray | pl.Series) -> np.ndarray:  # a pass over the rows: a partition gathering its rows read all of them
        dtype = column.dtype if isinstance(column, np.ndarray) else column.head(0).to_numpy().dtype
        if isinstance(column, pl.Series) and column.null_count():
            raise ValueError(f"{column.name} has nulls: no numbers to put in order")
        out = np.empty(len(key), dtype=dtype)

        def put(n: int, lo: int, hi: int) -> None:
            at = firsts[n].copy()
            for block, values in pieces(column, lo, hi):
                partition_scatter(block, at, values, out)

        each_stretch(put)
        return out

    ordered = {name: in_order(columns.pop(name)) for name in list(columns)}
    return [positions[end - size:end] for size, end in zip(sizes.tolist(), ends.tolist())], ordered


# The sequential steps of correlation, in numpy: what `cniscope._journeys` does in C where it was built (a partition's
# sort 2.4x, `split` 4x, `_rank_firsts` 20x faster at 10M sightings), to the same arrays.


def python_argsort_keys(keys: np.ndarray, perm: np.ndarray, ordered: np.ndarray) -> None:
    """The stable order of the uint64 `keys` into `perm` (uint32), and the keys in that order into `ordered`."""
    perm[:] = np.argsort(keys, kind="stable")
    np.take(keys, perm, out=ordered)


def python_partition_sizes(keys: np.ndarray, sizes: np.ndarray) -> None:
    """Add to `sizes` (int64) how many of the uint64 `keys` fall in each partition: the key modulo `len(sizes)`."""
    sizes += np.bincount((keys % np.uint64(len(sizes))).astype(np.intp), minlength=len(sizes))


def python_partition_place(keys: np.ndarray, start: int, at: np.ndarray, positions: np.ndarray) -> None:
    """Put `start + i` for the i-th of the uint64 `keys` at `positions[at[p]]`, p its partition, and move `at[p]` on."""
    python_partition_scatter(keys, at, np.arange(start, start + len(keys), dtype=positions.dtype), positions)


def python_partition_scatter(keys: np.ndarray, at: np.ndarray, values: np.ndarray, out: np.ndarray) -> None:
    """Put the i-th of `values` at `out[at[p]]`, p the partition of the i-th of the uint64 `keys`, and move `at[p]` on."""
    count = len(at)
    part = (keys % np.uint64(count)).astype(np.uint16 if count <= 1 << 16 else np.uint32)
    order = np.argsort(part, kind="stable")  # radix sort of small integers: linear
    bounds = np.searchsorted(part[order], np.arange(count + 1))
    for i in range(count):
        n = bounds[i + 1] - bounds[i]
        out[at[i]:at[i] + n] = values[order[bounds[i]:bounds[i + 1]]]
        at[i] += n


def python_merge_put(perm: np.ndarray, idx: np.ndarray, firsts: np.ndarray, journey: np.ndarray, hop: np.ndarray,
                     out_journey: np.ndarray, out_hop: np.ndarray) -> None:
    """A partition's journeys (by first row: `firsts[journey]`) and hops into the capture's columns, at its rows
    `idx[perm]`."""
    at = idx[perm]
    out_journey[at], out_hop[at] = firsts[journey], hop


def python_put_rows(idx: np.ndarray, journey: np.ndarray, hop: np.ndarray, out_journey: np.ndarray,
                    out_hop: np.ndarray) -> None:
    """A partition's journeys and hops in its own row order into the capture's columns, at its rows `idx`."""
    out_journey[idx], out_hop[idx] = journey, hop


RANK_BLOCK = 1 << 20  # rows `python_rank_firsts` numbers at a time


def python_rank_firsts(journey: np.ndarray) -> None:
    """Each sighting's journey given by its first row (uint32, at most its own row) -> numbered 0.. by first row, in
    place: a block of rows at a time, the first sightings numbered in order, then the others take their first's
    number (numbered already: it is an earlier row). No array of the table's size besides."""
    done = 0
    for start in range(0, len(journey), RANK_BLOCK):
        block = journey[start:start + RANK_BLOCK]
        first = block == np.arange(start, start + len(block), dtype=journey.dtype)
        count = int(np.count_nonzero(first))
        block[first] = np.arange(done, done + count, dtype=journey.dtype)
        done += count
        np.logical_not(first, out=first)
        block[first] = journey[block[first]]


try:
    from cniscope._journeys import (
        argsort_keys,
        burst_journeys,
        fingerprint_scan,
        merge_put,
        partition_place,
        partition_scatter,
        partition_sizes,
        put_rows,
        rank_firsts,
        time_journeys,
        window_journeys,
    )
    COMPILED = True
except ImportError:  # built without a C compiler
    argsort_keys, merge_put, partition_place, partition_scatter, partition_sizes, put_rows, rank_firsts = (
        python_argsort_keys, python_merge_put, python_partition_place, python_partition_scatter, python_partition_sizes,
        python_put_rows, python_rank_firsts)
    COMPILED = False


def stable_order(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The stable order of the uint64 `key` (uint32: sorted position -> position in `key`), and `key` in it."""
    perm, ordered = np.empty(len(key), dtype=np.uint32), np.empty(len(key), dtype=np.uint64)
    argsort_keys(np.ascontiguousarray(key, dtype=np.uint64), perm, ordered)
    return perm, ordered


@dataclass
class Partial:
    """Correlation of one partition: each sighting's journey as numbered in the partition (in order of first row),
    hop, hops, delay (ns, 0 at the first hop), in hop order: `perm` says which row of the partition each is (they
    are put in place once, by `Merge`, not first put back in the partition's order); and each journey's first row."""

    journey: np.ndarray
    hop: np.ndarray
    hops: np.ndarray
    delay: np.ndarray
    firsts: np.ndarray
    perm: np.ndarray  # position -> row of the partition

    def at(self, idx: np.ndarray | None) -> np.ndarray:
        """Where each value goes, given the partition's positions in the whole frame (`idx`; None: it is the whole)."""
        return self.perm if idx is None else idx[self.perm]


def _one_node_partitions(height: int, parts: list[np.ndarray], ordered: Mapping[str, np.ndarray], workers: int,
                         hops: bool) -> Merge:
    """`correlate_partition` of each partition of one node's `height` sightings, `workers` at a time, as `threads` runs
    them, but each partition's key, capture point and time (none missing) a slice of `ordered` (`_partitioned`'s) and
    its rows its positions: gathering them from the whole frame read it once a partition (at 10M, 20 partitions: 0.3 s
    of CPU time; the times alone from the table's chunks 0.2 s, against 0.03 s put in partition order).

    Without `hops`, no column of the capture's size is made while the partitions run: each partition puts its journeys
    and hops in its own slice of the keys (it sorted a copy of them), in its own order, and once every partition has
    read its times, they are put in row order in the times' memory (`Merge.add`). The peak stays the partitions'
    inputs, and no fresh pages are touched for the result (up to 5 ms a MB on this VM). No partition's first rows are
    kept: the result is for `Merge.finish(numbers=False)`."""
    bounds = np.cumsum([0, *(len(idx) for idx in parts)]).tolist()

    def partial_of(n: int) -> Partial:
        lo, hi = bounds[n], bounds[n + 1]
        return one_node_partial(ordered["key"][lo:hi], ordered["ts"][lo:hi], None, ordered["_point"][lo:hi], parts[n], hops)

    if hops:
        merged = Merge(height, hops)
        _map(list(range(len(parts))), lambda n: merged.add(parts[n], partial_of(n)), workers)
        return merged

    def own_order(n: int) -> None:  # the journeys by first row (`Merge.add`'s), in the partition's own order
        lo, hi = bounds[n], bounds[n + 1]
        halves = ordered["key"][lo:hi].view(np.uint32)
        journey, hop = halves[:hi - lo], halves[hi - lo:]
        if not one_node_journeys(ordered["key"][lo:hi], ordered["ts"][lo:hi], ordered["_point"][lo:hi], parts[n], journey, hop):
            p = partial_of(n)
            merge_put(p.perm, np.arange(hi - lo, dtype=np.uint32), p.firsts, p.journey, p.hop, journey, hop)

    _map(list(range(len(parts))), own_order, workers)
    merged = Merge(height, hops, into=ordered["ts"].view(np.uint64))

    def place(n: int) -> None:
        size = bounds[n + 1] - bounds[n]
        halves = ordered["key"][bounds[n]:bounds[n + 1]].view(np.uint32)
        put_rows(parts[n], halves[:size], halves[size:], merged.journey, merged.hop)

    _map(list(range(len(parts))), place, workers)
    return merged


def correlate_partition(sub: pl.DataFrame, by_node: bool, hops: bool = True) -> Partial:
    """The unit of work: journeys of one partition of the narrow frame (`narrow`, gathered by `split`; on
    several nodes with `ts` already clock-corrected). Needs nothing from other partitions. `hops`: also each
    sighting's hops and delay (one node: else left empty)."""
    if by_node or ("_nid" in sub.columns and not _one_value(sub, "_nid")):
        ordered, perm, firsts = _order_hops_sorted(sub.with_columns(journey=group(sub, "ts")), "ts", by_node)
        return Partial(ordered["journey"].to_numpy(), ordered["hop"].to_numpy(), ordered["hops"].to_numpy(),
                       ordered["delay"].fill_null(0).to_numpy(), firsts, perm)
    ts = sub.get_column("ts")
    valid = ts.is_not_null().to_numpy() if ts.null_count() else None
    point = sub.get_column("_point") if "_point" in sub.columns else sub.select(point_codes()).to_series()
    return one_node_partial(sub.get_column("key").to_numpy(), ts.fill_null(0).to_numpy(), valid, point.to_numpy(),
                            sub.get_column("row").to_numpy(), hops)


class Merge:
    """The partitions' results in one set of columns in row order, each written in place as it arrives (no
    partition's result is kept); `finish` numbers journeys over all partitions by first row, as one partition
    numbers them."""

    def __init__(self, height: int, hops: bool = True, into: np.ndarray | None = None) -> None:
        """`hops`: also `hops` and `delay` (without them, 12 B a sighting less). `into`: an array of `height` uint64
        that is done with, whose memory `journey` and `hop` take (touched pages: fresh ones cost more than the
        writes on this VM, up to 5 ms a MB)."""
        if into is not None and into.dtype == np.uint64 and len(into) == height and into.flags.c_contiguous:
            halves = into.view(np.uint32)
            self.journey, self.hop = halves[:height], halves[height:]  # each sighting's journey by its first row until `finish`
        else:
            self.journey = np.empty(height, dtype=np.uint32)
            self.hop = np.empty(height, dtype=np.uint32)
        self.hops = np.empty(height, dtype=np.uint32) if hops else None
        self.delay = np.empty(height, dtype=np.int64) if hops else None
        self.firsts: dict[int, np.ndarray] = {}  # partition (by its first position) -> first row of each journey
        self.numbers: list[np.ndarray] | None = None  # after `finish`, per partition: its journey numbers -> the capture's

    def add(self, idx: np.ndarray | None, p: Partial) -> None:
        if idx is not None and self.hops is None and all(a.dtype == np.uint32 and a.flags.c_contiguous
                                                          for a in (p.perm, idx, p.firsts, p.journey, p.hop)):
            merge_put(p.perm, idx, p.firsts, p.journey, p.hop, self.journey, self.hop)  # one pass (the partitions here)
        else:
            at = p.at(idx)
            self.journey[at], self.hop[at] = p.firsts[p.journey], p.hop
            if self.hops is not None and self.delay is not None:
                self.hops[at], self.delay[at] = p.hops, p.delay
        self.firsts[-1 if idx is None or not len(idx) else int(idx[0])] = p.firsts

    def finish(self, parts: Sequence[np.ndarray | None], numbers: bool = True) -> pl.DataFrame:
        """`parts`: the positions of every partition, in the order `split` gave them; `numbers`: also `self.numbers`
        (each journey's first row read again: 0.08 s at 10M)."""
        # the partitions' scratch, kept by each thread's heap from one partition to the next: handed back after each
        # partition, the next one's arrays were fresh pages again (at 10M, 140,000 page faults more: 1.4 s of CPU)
        give_back()
        rank_firsts(self.journey)
        if numbers:
            firsts = [self.firsts[int(idx[0])] if idx is not None and len(idx) else self.firsts.get(-1, np.empty(0, np.uint32))
                      for idx in parts]
            self.numbers = [self.journey[own] for own in firsts]
        if self.hops is None or self.delay is None:
            return pl.DataFrame({"journey": self.journey, "hop": self.hop})
        frame = pl.DataFrame({"journey": self.journey, "hop": self.hop, "hops": self.hops, "delay": self.delay})
        return frame.with_columns(delay=pl.when(pl.col("hop") == 0).then(None).otherwise(pl.col("delay")))


def _journey_keys(sub: pl.DataFrame) -> np.ndarray:
    return group(sub, "ts").to_numpy()


# runs `work` on each partition of the narrow frame (`split`'s positions) and hands each result to `consume`
# (any order, possibly from several threads)
Run = Callable[[Callable[[pl.DataFrame], Any], pl.DataFrame, list[np.ndarray | None], Callable[[np.ndarray | None, Any], None]], None]


def threads(workers: int) -> Run:
    """Partitions run here, `workers` at a time."""
    def run(work: Callable[[pl.DataFrame], Any], t: pl.DataFrame, parts: list[np.ndarray | None],
            consume: Callable[[np.ndarray | None, Any], None]) -> None:
        cut = {name: Chunks.of(t.get_column(name)) for name in t.columns}  # once for every partition
        _map(parts, lambda idx: consume(idx, work(take(t, idx, cut))), workers)

    return run


def take(t: pl.DataFrame, idx: np.ndarray | None, cut: Mapping[str, Chunks | None] | None = None) -> pl.DataFrame:
    """A partition of the narrow frame (None: all of it); `cut`: its columns' `Chunks`, if known."""
    if idx is None:
        return t
    return pl.DataFrame([gather(t.get_column(name), idx, cut[name] if cut is not None else Chunks.of(t.get_column(name)))
                         for name in t.columns])


@dataclass(frozen=True)
class Chunks:
    """A column of numbers without nulls as numpy arrays, one a chunk (views), and where each starts (and the end)."""

    arrays: list[np.ndarray]
    bounds: np.ndarray

    @staticmethod
    def of(s: pl.Series) -> Chunks | None:
        """None: numpy cannot gather it (not numbers, nulls, empty)."""
        if not (s.dtype.is_numeric() and not s.null_count() and len(s)):
            return None
        arrays = [chunk.to_numpy() for chunk in s.get_chunks()]
        return Chunks(arrays, np.cumsum([0, *(len(a) for a in arrays)], dtype=np.int64))


def gather(s: pl.Series, idx: np.ndarray, cut: Chunks | None) -> pl.Series:
    """`s` at the ascending positions `idx`, in one piece: numbers without nulls (`cut`) by numpy, from each chunk in
    place (polars gathers 4x slower from a column of many chunks, the table's: it is read in batches)."""
    if cut is None or not len(idx):
        return s.gather(idx)
    out = np.empty(len(idx), dtype=cut.arrays[0].dtype)
    at = np.searchsorted(idx, cut.bounds).tolist()
    for array, first, lo, hi in zip(cut.arrays, cut.bounds.tolist(), at[:-1], at[1:]):
        if hi > lo:
            np.take(array, idx[lo:hi] - first if first else idx[lo:hi], out=out[lo:hi])
    return pl.Series(s.name, out)


def _map(parts: list[S], work: Callable[[S], T], workers: int) -> list[T]:
    """`work` on every partition, `workers` at a time (polars and numpy release the GIL: threads use the cores)."""
    if workers <= 1 or len(parts) <= 1:
        return [work(idx) for idx in parts]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(work, parts))


# ---- materialisation: Journey objects for the renderers ---------------------------------------------


NO_ADDRESS = "(no address)"  # a row that shows neither an address nor a name (a damaged text line)


def _endpoint(row: Row) -> tuple[str | None, str | None]:
    return address_text(row, "src"), address_text(row, "dst")


def summary(row: Row) -> str:
    """One line in tcpdump's spirit: `TCP 10.0.0.1:5 > 10.0.0.2:80 [S] seq 1, len 0`."""
    src, dst = _endpoint(row)
    proto = row["proto"]
    if row["arp_op"] is not None:
        op = {1: "who-has", 2: "reply"}.get(row["arp_op"], f"op {row['arp_op']}")
        # tcpdump without -n prints names for the addresses (kept as dst_name/src_name); a reply's text names no target
        target = ip4_text(row["arp_tpa"]) or row["dst_name"]
        sender = ip4_text(row["arp_spa"]) or row["src_name"] or NO_ADDRESS
        return f"ARP {op} {target} tell {sender}" if target else f"ARP {op} from {sender}"
    if proto == 6:
        text = f"TCP {_hostport(src, row['sport'])} > {_hostport(dst, row['dport'])} [{tcp_flags_text(row['tcp_flags'])}]"
        if row["seq"] is not None:
            text += f" seq {row['seq']}"
        if row["ack"] is not None and (row["tcp_flags"] or 0) & 16:
            text += f" ack {row['ack']}"
        return text + _length(row)
    if proto == 17:
        text = f"UDP {_hostport(src, row['sport'])} > {_hostport(dst, row['dport'])}"
        if row["dns_id"] is not None:
            text += f" DNS {'answer' if row['dns_qr'] else 'query'} id {row['dns_id']}"
        return text + _length(row)
    if proto in (1, 58):
        names = {0: "echo reply", 8: "echo request", 3: "unreachable", 11: "time exceeded", 128: "echo request", 129: "echo reply"}
        kind = names.get(row["icmp_type"], f"type {row['icmp_type']}" if row["icmp_type"] is not None else "(type not shown)")
        text = f"ICMP {src or NO_ADDRESS} > {dst or NO_ADDRESS} {kind}"
        if row["icmp_id"] is not None:
            text += f" id {row['icmp_id']} seq {row['icmp_seq']}"
        if row["icmp_mtu"] is not None:
            text += f" mtu {row['icmp_mtu']}"
        return text
    if src or dst:
        return f"IP {src} > {dst} proto {proto}"
    if row.get("tunnel"):  # an envelope that shows nothing of what it carries (weave's port read as BFD)
        outer_src, outer_dst = address_text(row, "outer_src"), address_text(row, "outer_dst")
        if outer_src or outer_dst:
            ends = f"{_hostport(outer_src, row['outer_sport'])} > {_hostport(outer_dst, row['outer_dport'])}"
            return f"{Tunnel(row['tunnel']).label} envelope {ends}, the packet inside not shown"
    return f"ethertype 0x{(row['ethertype'] or 0):04x}"


def _length(row: Row) -> str:
    """`, len N`; nothing when the input did not show it (tcpdump's text leaves it out for some packets)."""
    return f", len {row['payload_len']}" if row["payload_len"] is not None else ""


def _addr(row: Row, side: str) -> str:
    return _hostport(address_text(row, side), row["sport" if side == "src" else "dport"])


def _hostport(ip: str | None, port: int | None) -> str:
    """`10.0.0.1:80`, `[fd00::1]:80` (as URLs write an IPv6 address with a port), or the address alone."""
    ip = ip or NO_ADDRESS
    if port is None:
        return f"{ip}"
    return f"[{ip}]:{port}" if ip and ":" in ip else f"{ip}:{port}"


def changes(prev: Row, cur: Row) -> tuple[Change, ...]:
    """What changed between two consecutive sightings of one packet."""
    out: list[Change] = []
    p_tun, c_tun = prev["tunnel"] or 0, cur["tunnel"] or 0
    if p_tun == 0 and c_tun != 0:
        out.append(Change(ChangeKind.ENCAP, "plain", _envelope(cur)))
    elif p_tun != 0 and c_tun == 0:
        out.append(Change(ChangeKind.DECAP, _envelope(prev), "plain"))
    if prev["ttl"] is not None and cur["ttl"] is not None and prev["ttl"] != cur["ttl"]:
        out.append(Change(ChangeKind.TTL, str(prev["ttl"]), str(cur["ttl"])))
    if prev["eth_src"] is not None and cur["eth_src"] is not None and p_tun == c_tun:
        # SLL/SLL2 frames carry the source MAC only: compare what both sightings show
        both_dst = prev["eth_dst"] is not None and cur["eth_dst"] is not None
        before = (prev["eth_src"], prev["eth_dst"] if both_dst else None)
        after = (cur["eth_src"], cur["eth_dst"] if both_dst else None)
        if before != after:
            out.append(Change(ChangeKind.MAC, _macs(*before), _macs(*after)))
    before_src, before_dst, after_src, after_dst = _addr(prev, "src"), _addr(prev, "dst"), _addr(cur, "src"), _addr(cur, "dst")
    if before_src != before_dst and (before_src, before_dst) == (after_dst, after_src):
        out.append(Change(ChangeKind.SWAP, f"{before_src} > {before_dst}", f"{after_src} > {after_dst}"))
    else:
        if before_dst != after_dst:
            out.append(Change(ChangeKind.DNAT, before_dst, after_dst))
        if before_src != after_src:
            out.append(Change(ChangeKind.SNAT, before_src, after_src))
    if (prev["mf"], prev["frag_offset"]) != (cur["mf"], cur["frag_offset"]) and cur["mf"] is not None and prev["mf"] is not None:
        out.append(Change(ChangeKind.FRAGMENT, f"offset {prev['frag_offset']}", f"offset {cur['frag_offset']}"))
    return tuple(out)


def _macs(src: int, dst: int | None) -> str:
    return f"{mac_text(src)} > {mac_text(dst)}" if dst is not None else f"from {mac_text(src)}"


def _envelope(row: Row) -> str:
    kind = Tunnel(row["tunnel"]).label
    vni = f" vni {row['vni']}" if row["vni"] is not None else ""
    ports = f" :{row['outer_dport']}" if row["outer_dport"] is not None else ""
    src, dst = address_text(row, "outer_src") or NO_ADDRESS, address_text(row, "outer_dst") or NO_ADDRESS
    return f"{kind}{vni}{ports} {src} > {dst}"


def point_label(row: Row, position: int) -> str:
    """`node3 eth0 In`; `node3 copy 2` when the capture does not name interfaces."""
    node = row["node"] or ""
    if row["iface"] is None and row["direction"] is None:
        return f"{node} copy {position + 1}".strip()
    direction = DIRECTION_LABELS.get(Direction(row["direction"])) if row["direction"] is not None else None
    return " ".join(x for x in (node, row["iface"] or "?", direction) if x)


# what `changes` compares, what `summary` and `point_label` read: the only columns materialising gathers
_ADDRESS_FIELDS = tuple(f"{side}{kind}" for side in ("src", "dst", "outer_src", "outer_dst") for kind in ("", "6", "_name"))
_CHANGE_FIELDS = ("tunnel", "vni", "outer_dport", "ttl", "eth_src", "eth_dst", "sport", "dport", "mf", "frag_offset", *_ADDRESS_FIELDS)
_SUMMARY_FIELDS = ("proto", "arp_op", "arp_spa", "arp_tpa", "tcp_flags", "seq", "ack", "payload_len", "outer_sport",
                   "dns_id", "dns_qr", "icmp_type", "icmp_id", "icmp_seq", "icmp_mtu", "ethertype")
_SUMMARY_READS = _SUMMARY_FIELDS + ("sport", "dport", "tunnel", "outer_dport", *_ADDRESS_FIELDS)


def hop_delay() -> pl.Expr:
    """The table's `delay` from its times, over rows sorted by journey and hop (every hop of each journey): as
    `_numbered` computes it, so the report's table need not keep the column (`analyze.HOPS_ONLY`)."""
    return pl.when(pl.col("hop") == 0).then(None).otherwise((pl.col("ts") - pl.col("ts").shift(1)).fill_null(0))


def materialise(table: pl.DataFrame, limit: int | None = None) -> list[Journey]:
    """Journey objects for the first `limit` journeys (all when None) of a correlated table, for renderers and detectors.

    Python makes the objects only: what is derived from values (a hop's changes, its capture point label, its
    direction) is computed once per distinct value over whole columns (the journeys of one conversation share
    them), and a journey's summary reads its first sighting only.
    """
    own = ("journey", "hop", "row", "node", "iface", "direction", "ts")
    # (the summaries' other fields are read at the few first sightings Python writes: 45 columns of 73k rows -> 31)
    t = columns_of(table, *own, *_CHANGE_FIELDS, *(f for f in _IP4_SUMMARY_FIELDS if f not in _CHANGE_FIELDS))  # no copy
    if t["journey"].null_count() or t["hop"].null_count():
        if limit is not None:
            t = t.filter(pl.col("journey") < limit)
        t = t.sort(["journey", "hop"])
    else:  # one gather of the few rows, in (journey, hop) order: filtering scans and copies every column, sorting again
        kept = _below(t["journey"], limit) if limit is not None else np.arange(t.height)
        head = at_rows(columns_of(t, "journey", "hop"), kept)
        order = head["journey"].to_numpy().astype(np.uint64) << np.uint64(32) | head["hop"].to_numpy().astype(np.uint64)
        t = at_rows(t, kept[np.argsort(order, kind="stable")])  # (one key: numpy's lexsort of two took 3x the time)
    t = t.with_columns(delay=hop_delay())
    if not t.height:
        return []
    starts = np.flatnonzero(t["hop"].to_numpy() == 0)
    summaries = _summaries(t, starts, table)
    distinct, changed = _changes_at(t, starts)
    point_at = _spread(*_once_per_distinct(columns_of(t, "node", "iface", "direction", "hop"), lambda p: point_label(p, p["hop"])))
    rows = t["row"].to_numpy().astype(np.int64)
    # Hop's fields in order: row, node, iface, direction, ts, delay_ns, point, role, changes, mac_to, mac_owner; numpy's
    # arrays handed over as they are (`made_many`: no list of each, 0.6 MB at 73k hops)
    hops = made_many(Hop, (rows, _shared_objects(t["node"]), _shared_objects(t["iface"]), _directions(t["direction"]),
                           _integers(t["ts"]), t["delay"].to_list(), point_at, None, _spread(distinct, changed), None, None),
                     t.height)
    bounds = [*starts.tolist(), t.height]
    held = [tuple(hops[start:end]) for start, end in zip(bounds, bounds[1:])]
    # Journey's: id, flow, summary, retransmission_of, hops
    journeys = made_many(Journey, (t["journey"].gather(starts).to_list(), None, summaries, None, held), len(starts))
    ids = np.array([id(changes) for changes in distinct], dtype=np.int64)
    _materialised[:] = [HopArrays(held, np.diff(bounds), rows, ids[changed], distinct)]
    return journeys


@dataclass(frozen=True)
class HopArrays:
    """The hops `materialise` made, as arrays, journey after journey: what the later stages would otherwise read hop by
    hop, each in a pass over every hop in Python (10 ms at 20,000 journeys)."""

    held: Sequence[tuple[object, ...]]  # each journey's hops (held: compared by identity)
    lengths: np.ndarray  # each journey's count of hops
    rows: np.ndarray  # each hop's row (int64)
    changes: np.ndarray  # the identity (`id`) of each hop's changes: equal changes are one shared tuple
    distinct: list[tuple[Change, ...]]  # every hop's changes, each tuple once


_materialised: list[HopArrays] = []  # the last journeys materialised


def hop_arrays(journeys: Sequence[Journey]) -> HopArrays | None:
    """`HopArrays` of `journeys` when they hold the hops the last `materialise` made, in its order (labelling sets their
    roles in place, linking gives the same hops other journeys); else None."""
    from operator import attrgetter, is_  # (here, with what reads it)

    for arrays in _materialised:  # the very tuples, compared without a number made for each (20,000: 1.3 -> 0.8 ms)
        if len(arrays.held) == len(journeys) and (
                _c_same(journeys, "hops", arrays.held) if _c_same is not None  # (in C: 0.8 -> 0.1 ms, 7 times a report)
                else all(map(is_, map(attrgetter("hops"), journeys), arrays.held))):
            return arrays
    return None


_c_same: Callable[[Sequence[object], str, Sequence[object]], bool] | None
try:
    from cniscope._journeys import same_items as _c_same
except ImportError:  # built without a C compiler, or before it had the function
    _c_same = None


def columns_of(frame: pl.DataFrame, *names: str) -> pl.DataFrame:
    """`frame.select(*names)` without a query: taken as they are by name (`frame[names]`), no plan made and run. A query
    lets the interpreter go and waits to take it back, up to its switch interval (5 ms) where another thread runs
    Python meanwhile (the early findings' and the conversations' threads beside the report's stages: each select of a
    few columns on the main thread took 1.5-3.3 ms there, where it takes 0.02 ms)."""
    return frame[list(names)]


def at_rows(frame: pl.DataFrame, rows: np.ndarray) -> pl.DataFrame:
    """`frame[rows]` gathered from its rows up to the highest of `rows` only: the materialised journeys' rows are among
    the table's first (journeys are numbered by first row), and polars gathers 2-4x slower from columns of many chunks
    (the table's: it is read in batches) than from the few of their first rows."""
    return frame.slice(0, int(rows.max()) + 1)[rows] if len(rows) else frame[rows]


def _below(numbers: pl.Series, limit: int) -> np.ndarray:
    """The positions of the values below `limit` of a column without nulls, compared over its chunks in place: a copy of
    the whole column (and of `hop` beside it) for 73k rows at 2M took fresh pages, 0.1 s of CPU at 10M."""
    found, start = [], 0
    for chunk in numbers.get_chunks():
        values = chunk.to_numpy()
        found.append(np.flatnonzero(values < limit) + start)
        start += len(values)
    return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)


def _summaries(t: pl.DataFrame, starts: np.ndarray, table: pl.DataFrame) -> list[str]:
    """`summary` of the rows `starts` of `t` (`_IP4_SUMMARY_FIELDS` and `row`, the row of `table` each is): TCP and UDP
    between IPv4 addresses (nearly every journey) over whole columns (in C where it was built, reading `t`'s columns
    in place: no frame of the 20,000 rows gathered), the rest row by row, read from `table`."""
    if _c_summaries_at is not None:
        columns = tuple(None if (s := t.get_column(f)).null_count() == s.len() else s.to_physical().rechunk().__arrow_c_stream__()
                        for f in _IP4_SUMMARY_FIELDS)
        texts = _c_summaries_at(columns, t.height, starts.astype(np.int64), _flag_texts())
    else:
        texts = _ip4_summaries_polars(t[starts])
    rest = [n for n, text in enumerate(texts) if text is None]
    if rest:
        heads = at_rows(columns_of(table, *_SUMMARY_READS), t.get_column("row").to_numpy()[starts[rest]])
        for n, values in zip(rest, heads.iter_rows()):
            texts[n] = summary(dict(zip(heads.columns, values)))
    return cast(list[str], texts)


_c_summaries_at: Callable[[tuple[object, ...], int, np.ndarray, list[str]], list[str | None]] | None
try:
    from cniscope._journeys import summaries_at as _c_summaries_at
except ImportError:  # built without a C compiler, or before it had the function
    _c_summaries_at = None

# the columns `_ip4_summaries_polars` reads, in the order `_journeys.summaries_at` takes them
_IP4_SUMMARY_FIELDS = ("proto", "arp_op", "src", "dst", "sport", "dport", "tcp_flags", "seq", "ack", "payload_len", "dns_id",
                       "dns_qr")


@cache
def _flag_texts() -> list[str]:
    return [cast(str, tcp_flags_text(flags)) for flags in range(256)]


def _ip4_summaries_polars(heads: pl.DataFrame) -> list[str | None]:
    """`summary` of each row that is TCP (with flags) or UDP between IPv4 addresses, over whole columns; None for the
    others."""
    flags = heads["tcp_flags"].drop_nulls().unique().to_list()
    ends = pl.col("arp_op").is_null() & pl.col("src").is_not_null() & pl.col("dst").is_not_null()

    def number(column: str) -> pl.Expr:
        return pl.col(column).cast(pl.String)

    def part(when: pl.Expr, *text: pl.Expr) -> pl.Expr:
        return pl.when(when).then(pl.concat_str(*text)).otherwise(pl.lit(""))

    def hostport(side: str, port: str) -> pl.Expr:
        return pl.concat_str(ip4_expr(side), part(pl.col(port).is_not_null(), pl.lit(":"), number(port)))

    # what TCP and UDP share, formatted once (an expression used twice in one query is computed twice)
    heads = heads.with_columns(
        _between=pl.concat_str(hostport("src", "sport"), pl.lit(" > "), hostport("dst", "dport")),
        _length=part(pl.col("payload_len").is_not_null(), pl.lit(", len "), number("payload_len")),
    )
    between, length = pl.col("_between"), pl.col("_length")
    tcp = pl.concat_str(
        pl.lit("TCP "), between, pl.lit(" ["),
        pl.col("tcp_flags").replace_strict(flags, [tcp_flags_text(f) for f in flags], return_dtype=pl.String), pl.lit("]"),
        part(pl.col("seq").is_not_null(), pl.lit(" seq "), number("seq")),
        part(pl.col("ack").is_not_null() & (pl.col("tcp_flags") & 16 != 0), pl.lit(" ack "), number("ack")),
        length,
    )
    udp = pl.concat_str(
        pl.lit("UDP "), between,
        part(pl.col("dns_id").is_not_null(), pl.lit(" DNS "), pl.when(pl.col("dns_qr")).then(pl.lit("answer")).otherwise(pl.lit("query")),
             pl.lit(" id "), number("dns_id")),
        length,
    )
    texts: list[str | None] = heads.select(pl.when(ends & (pl.col("proto") == 6) & pl.col("tcp_flags").is_not_null()).then(tcp)
                                          .when(ends & (pl.col("proto") == 17)).then(udp)).to_series().to_list()
    return texts


# the inner packet's ends: they change only under NAT, and a pair of sightings where they stay the same is the
# same pair to `changes` whatever they are
_INNER_ENDS = ("sport", "dport", *(f for f in _ADDRESS_FIELDS if not f.startswith("outer_")))


def _changes_at(t: pl.DataFrame, starts: np.ndarray) -> tuple[list[tuple[Change, ...]], np.ndarray]:
    """What changed at each hop of `t` (sorted by journey, hop; `starts`: each journey's first) since the previous hop of
    its journey, `()` at the first: the distinct changes and each hop's place among them. `changes` runs once per
    distinct pair of sightings, the ends left out of the pair where they stay the same."""
    # the fields no sighting here holds (IPv6, names, envelopes in many captures) are none on both sides of every
    # pair: left out of the pairs, which are as distinct without them (44 columns -> 20 at 200k sightings)
    held = [f for f in _CHANGE_FIELDS if t[f].null_count() < t.height] or [_CHANGE_FIELDS[0]]  # a pair a row: one at least
    if _c_distinct is not None:
        return _changes_numbered(t, starts, held)
    later = pl.col("hop") > 0
    same_ends = pl.all_horizontal([pl.col(f).eq_missing(pl.col(f).shift(1)) for f in _INNER_ENDS])

    def side(f: str, value: pl.Expr) -> pl.Expr:
        keep = later & ~same_ends if f in _INNER_ENDS else later
        return pl.when(keep).then(value).otherwise(None)

    # the pairs of the hops after the first only: each first hop's changes are `()`
    pairs = t.select(
        *(side(f, pl.col(f).shift(1)).alias(f"prev {f}") for f in held),
        *(side(f, pl.col(f)).alias(f) for f in held),
    ).filter(t.get_column("hop") > 0)
    none = dict.fromkeys(_CHANGE_FIELDS)

    def changed(pair: dict[str, Any]) -> tuple[Change, ...]:
        return changes(none | {f: pair[f"prev {f}"] for f in held}, none | {f: pair[f] for f in held})

    distinct, of_later = _once_per_distinct(pairs, changed)
    distinct.append(())
    which = np.full(t.height, len(distinct) - 1, dtype=np.int64)
    which[t.get_column("hop").to_numpy() > 0] = of_later
    return distinct, which


def _changes_numbered(t: pl.DataFrame, starts: np.ndarray, held: list[str]) -> tuple[list[tuple[Change, ...]], np.ndarray]:
    """`_changes_at`, its pairs of the `held` fields numbered in C over the columns' buffers (`_journeys.distinct_rows`,
    where polars shifted, compared and grouped 2x20 columns: 26-33 -> 16-19 ms at 20,000 journeys), each distinct
    pair's changes made from its first two rows."""
    assert _c_distinct is not None
    first = np.zeros(t.height, dtype=np.uint8)
    first[starts] = 1
    pairs = columns_of(t, *held)
    codes, reps = _distinct_numbers(pairs, first, np.array([f in _INNER_ENDS for f in held], dtype=np.uint8))
    rows = pairs[(np.array(reps, dtype=np.int64)[:, None] + [-1, 0]).ravel()].iter_rows()
    none = dict.fromkeys(_CHANGE_FIELDS)
    distinct: list[tuple[Change, ...]] = []
    for prev, cur in zip(rows, rows):
        # as polars' pairs have them: the ends none on both sides where they stay the same
        same = all(a == b for f, a, b in zip(held, prev, cur) if f in _INNER_ENDS)
        before, after = dict(none), dict(none)
        for f, a, b in zip(held, prev, cur):
            if not (same and f in _INNER_ENDS):
                before[f], after[f] = a, b
        distinct.append(changes(before, after))
    distinct.append(())
    codes[codes < 0] = len(distinct) - 1  # each journey's first hop
    return distinct, codes


def _once_per_distinct(frame: pl.DataFrame, derive: Callable[[dict[str, Any]], T]) -> tuple[list[T], np.ndarray]:
    """`derive` of each distinct row of `frame` (as a dict), and each row's place among them."""
    which, firsts = distinct_rows(frame)
    return [derive(row) for row in frame[firsts].iter_rows(named=True)], which


def distinct_rows(frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Each row's place among the distinct rows of `frame`, numbered in order of first appearance, and the first row of
    each: in C where it was built and the columns hold no text (`_distinct_numbers`), else by polars' group_by."""
    if _c_distinct is not None and all(map(_read_as_numbers, frame.dtypes)):
        which, firsts = _distinct_numbers(frame, np.zeros(frame.height, dtype=np.uint8), None)
        return which, np.array(firsts, dtype=np.int64)
    groups = frame.with_row_index("_i").group_by(frame.columns, maintain_order=True).agg("_i")
    places = groups.select(pl.int_range(pl.len(), dtype=pl.Int64).alias("_n"), "_i").explode("_i")
    which = np.empty(frame.height, dtype=np.int64)
    which[places["_i"].to_numpy()] = places["_n"].to_numpy()
    return which, groups.get_column("_i").list.first().to_numpy().astype(np.int64)


def _read_as_numbers(dtype: pl.DataType) -> bool:
    """Whether `_distinct_numbers` reads a column of `dtype`: numbers, flags, or names by their codes (no text)."""
    return dtype.is_integer() or dtype in (pl.Boolean, pl.Categorical)


def _distinct_numbers(frame: pl.DataFrame, first: np.ndarray, ends: np.ndarray | None) -> tuple[np.ndarray, list[int]]:
    """`_journeys.distinct_rows` of the rows of `frame` (pairs of rows when `ends` is given) over its columns' buffers
    (a categorical's codes: one code a name in a column): each row's place among the distinct ones, and the first row
    of each."""
    assert _c_distinct is not None
    columns = tuple(None if (s := frame.get_column(c)).null_count() == s.len() else s.to_physical().__arrow_c_stream__()
                    for c in frame.columns)
    codes = np.empty(frame.height, dtype=np.int64)
    reps = _c_distinct(columns, frame.height, np.zeros(len(columns), np.uint8) if ends is None else ends, first,
                       ends is not None, codes)
    return codes, reps


_c_distinct: Callable[[tuple[object, ...], int, np.ndarray, np.ndarray, bool, np.ndarray], list[int]] | None
try:
    from cniscope._journeys import distinct_rows as _c_distinct
except ImportError:  # built without a C compiler, or before it had the function
    _c_distinct = None


def _shared_objects(column: pl.Series) -> np.ndarray | list[Any]:
    """`column.to_list()`, or an array of its objects: a categorical column's values one str object per distinct value
    (polars makes one a row: 73k interface names 4.1 -> 1.5 ms, and their memory)."""
    if column.dtype != pl.Categorical or column.null_count() == len(column):
        return column.to_list()
    distinct = column.unique()
    codes = distinct.to_physical().to_list()
    lookup = np.empty(max((c for c in codes if c is not None), default=-1) + 2, dtype=object)  # the last: null
    for code, value in zip(codes, distinct.to_list()):
        if code is not None:
            lookup[code] = value
    shared: np.ndarray = lookup[column.to_physical().fill_null(len(lookup) - 1).to_numpy()]
    return shared


def _directions(column: pl.Series) -> np.ndarray:
    """Each sighting's `HopDirection` (None where it has none), one object per distinct direction."""
    lookup = np.empty(257, dtype=object)  # (the last: null)
    for d in column.unique().drop_nulls().to_list():
        lookup[d] = HopDirection(DIRECTION_LABELS[Direction(d)])
    found: np.ndarray = lookup[column.cast(pl.Int64).fill_null(256).to_numpy()]
    return found


def _integers(column: pl.Series) -> np.ndarray | list[Any]:
    """A column of integers as `made_many` takes it: int64 where it holds no null (and fits), else a list."""
    if column.null_count() or column.dtype not in (pl.Int64, pl.Int32, pl.Int16, pl.Int8, pl.UInt32, pl.UInt16, pl.UInt8):
        return column.to_list()
    return column.to_numpy().astype(np.int64, copy=False)


def _spread(results: list[T], which: np.ndarray) -> np.ndarray:
    """`results[n]` for each n of `which`, gathered by numpy as an array of objects (the rows that share a result share
    the object)."""
    objects = np.empty(len(results), dtype=object)
    for n, result in enumerate(results):  # (not assigned as a whole: numpy would take tuples for rows)
        objects[n] = result
    spread: np.ndarray = objects[which]
    return spread
