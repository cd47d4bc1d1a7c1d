"""Conversations: journeys joined into flows, before and after NAT.

A journey's sightings may carry several address/port tuples (one per NAT
stage). Two journeys belong to one conversation when they share a tuple, in
either direction; so the pre-NAT and post-NAT legs of one connection join
through the journeys that were seen on both sides of the rewrite.

The flow key is the Community ID (v1, seed 0) of the first leg seen: the
direction-free id that Zeek, Suricata and Wireshark also print.
"""

from __future__ import annotations

import struct
from binascii import b2a_base64
from functools import lru_cache, reduce
from hashlib import sha1
from socket import AF_INET, AF_INET6, inet_pton
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import polars as pl

from cniscope.journeys import _map, chunked_like, nothing_inside
from cniscope.packets.schema import Tunnel, ip4_expr
from cniscope.results import Endpoint, Flow, FlowState, Journey, Proto, made_many, make_endpoint

if TYPE_CHECKING:
    from polars._typing import EngineType

SYN, FIN, RST, ACK = 2, 1, 4, 16
PROTO_NAMES = {6: Proto.TCP, 17: Proto.UDP, 1: Proto.ICMP, 58: Proto.ICMP6}


def tuple_id(table: pl.DataFrame | None = None) -> pl.Expr:
    """Direction-free id of the (proto, endpoints) of a sighting; ICMP echo uses its id as the port. Given `table`:
    without the branches none of its sightings takes (envelopes that show nothing inside, ARP): the same values,
    in 30% less time. The ends' hashes are added (wrapping), the same either way round: each end is hashed once
    (their least and greatest took each twice, 2.2x the CPU time at 2M)."""
    bare = table is None or bool(table.select(nothing_inside().any()).item())
    arps = table is None or bool(table.select(pl.col("arp_op").is_not_null().any()).item())

    # a host tcpdump printed by name (no -n) stands where its IPv6 address would; an envelope that shows nothing
    # of what it carries, by its own ends (as in its journey's key)
    # (IPv6 addresses and names by their category codes: one code a text in every column, and hashed faster)
    def end(side: str) -> pl.Expr:
        inner = pl.struct(ip=pl.col(side), ip6=pl.coalesce(f"{side}6", f"{side}_name").to_physical(),
                          port=pl.coalesce(pl.col(f"{side[0]}port"), pl.col("icmp_id")))
        outer = pl.struct(ip=pl.col(f"outer_{side}"), ip6=pl.coalesce(f"outer_{side}6", f"outer_{side}_name").to_physical(),
                          port=pl.col(f"outer_{side[0]}port"))
        return (pl.when(nothing_inside()).then(outer).otherwise(inner) if bare else inner).hash(seed=5)

    ends = pl.struct(proto=pl.col("proto"), ends=end("src") + end("dst")).hash(seed=7)
    if not arps:
        return ends.alias("tuple")
    # either way round as the ends' (their least's and greatest's hashes, the same sum, took 3x the time)
    arp = pl.col("arp_spa").hash(seed=6) + pl.col("arp_tpa").hash(seed=6)
    return pl.when(pl.col("arp_op").is_not_null()).then(arp).otherwise(ends).alias("tuple")


SLICE_ROWS = 1 << 20


def _components(edges: pl.DataFrame) -> dict[int, int]:
    """Union-find over journeys that carry several tuples (NAT): tuple -> root tuple."""
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        root = x
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(x, x) != root:
            parent[x], x = root, parent[x]
        return root

    for tuples in edges["tuples"].to_list():
        first = find(tuples[0])
        for other in tuples[1:]:
            r = find(other)
            if r != first:
                parent[r] = first
    return {x: find(x) for x in list(parent)}


class LegRows(NamedTuple):
    """The rows that may show a leg of their flow first (`tally`): each journey's first row, and the rows whose tuple
    differs from it; any other row repeats the tuple of a row before it, so its leg is already shown."""

    marked: np.ndarray  # bool, one a row
    rewritten: bool  # whether some rows' tuples differ from their journey's first (NAT); if not, a journey shows one leg
    bare: bool  # whether an envelope (not of ARP) shows nothing of what it carries (`_envelopes_as_seen`)


class Numbered(NamedTuple):
    """`number`'s result."""

    table: pl.DataFrame  # with `flow`
    leg_rows: LegRows
    firsts: pl.DataFrame  # journey, row of each journey's first sighting (hop 0), in row order (`facts.first_rows_of`)


class Scanned(NamedTuple):
    """What numbering flows keeps of each sighting's tuple (`scan`)."""

    seen: np.ndarray  # each journey's tuple at its first row (uint64)
    firsts: pl.DataFrame  # journey, tuple, row of the first hops (hop 0), in row order
    rewritten: pl.DataFrame  # journey, tuple of the sightings whose tuple differs from their journey's first (NAT)
    leg_rows: np.ndarray  # bool: each journey's first row, and the rewritten ones
    journeys: int  # how many journeys the rows start
    bare: bool  # whether an envelope (not of ARP) shows nothing of what it carries


def number(table: pl.DataFrame, workers: int = 1, spare: np.ndarray | None = None) -> Numbered:
    """A correlated table with `flow` (UInt32, conversations numbered by first appearance), the rows whose legs
    `tally` needs to look at, and each journey's first row (the scan finds them: the findings' `first_rows` filtered
    the table for them again, 4-7 ms of CPU and 600 fresh pages at 2M); the rows' tuples on up to `workers` cores
    (`scan`); `flow` in `spare` if it fits (`Correlation.spare`: memory already touched).

    The tuples are worked a stretch of rows at a time and the result gathered by journey id (journeys are numbered
    0..n-1 by first row), so the wide table is never joined or sorted, and no column of tuples is made: each
    journey's tuple at its first row is kept, and only the sightings whose tuple differs from it (NAT rewrote them)
    are collected.
    """
    count = int(table.select(pl.col("journey").max()).item() or 0) + 1 if table.height else 0
    scanned = scan(table, count, workers=workers)
    if scanned.journeys != count:
        raise ValueError("journeys are not numbered by first row")  # `journeys.correlate` numbers them so
    multi = pl.DataFrame(schema={"journey": pl.UInt32, "tuple": pl.UInt64})
    if scanned.rewritten.height:  # the journeys seen with several tuples: each of them, and the tuple at its first row
        nat = np.unique(scanned.rewritten["journey"].to_numpy())
        multi = pl.concat([pl.DataFrame({"journey": nat, "tuple": scanned.seen[nat]}), scanned.rewritten])
    flow_of = flow_numbers(scanned.firsts, multi.group_by("journey").agg(tuples=pl.col("tuple").unique()), count)
    leg_rows = LegRows(scanned.leg_rows, scanned.rewritten.height > 0, scanned.bare)
    firsts = scanned.firsts.select("journey", "row")
    del scanned, multi
    journeys = table.get_column("journey")
    flow = np.empty(table.height, dtype=np.uint32) if spare is None or spare.dtype != np.uint32 or \
        spare.shape != (table.height,) or not spare.flags.writeable else spare
    if COMPILED:
        gather(journeys.__arrow_c_stream__(), flow_of, flow)
    else:
        python_gather(journeys, flow_of, flow)
    return Numbered(table.with_columns(flow=chunked_like(pl.Series(flow), journeys)), leg_rows, firsts)


SCAN_STRETCH = 1 << 19  # rows `scan` works on one thread at least (the threads' start and the columns' streams)
# the columns `_flows.tuple_scan` reads, in its order
SCANNED = ("proto", "src", "dst", "src6", "dst6", "src_name", "dst_name", "sport", "dport", "icmp_id", "outer_src",
           "outer_dst", "outer_src6", "outer_dst6", "outer_src_name", "outer_dst_name", "outer_sport", "outer_dport",
           "tunnel", "arp_op", "arp_spa", "arp_tpa", "journey", "hop", "row")


def scan(table: pl.DataFrame, journeys: int, tuples: np.ndarray | None = None, workers: int = 1) -> Scanned:
    """What `number` keeps of the tuples of `table`'s rows (`journeys` of them); every row's tuple into `tuples`
    (uint64) if given. In C over the columns' own buffers (10M sightings: 0.17 against 0.43 s of CPU time), in up to
    `workers` stretches of rows at once (`SCAN_STRETCH` rows at least each), or with `tuple_id` in polars."""
    if not COMPILED:
        return python_scan(table, journeys, tuples)
    physical = [None if (s := table.get_column(name)).null_count() == s.len() > 0 else s.to_physical() for name in SCANNED]
    seen, leg_rows = np.empty(journeys, dtype=np.uint64), np.empty(table.height, dtype=bool)
    bounds = np.linspace(0, table.height, max(1, min(workers, table.height // SCAN_STRETCH)) + 1).astype(np.int64).tolist()
    # the journeys each stretch's rows find begun: those of the rows before it (numbered by first row)
    before = [0, *(int(table.select(pl.col("journey").head(stop).max()).item()) + 1 for stop in bounds[1:-1])]

    # the first hops in one array each (a column of one chunk), each stretch's after those of the stretches before it
    first = np.empty(journeys, dtype=np.uint32), np.empty(journeys, dtype=np.uint64), np.empty(journeys, dtype=np.uint32)
    at = [0, *(int(table.select((pl.col("hop").head(stop) == 0).sum()).item()) for stop in bounds[1:-1])]

    def stretch(n: int) -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray, bool]:
        columns = tuple(None if s is None else s.__arrow_c_stream__() for s in physical)  # None: a column of nulls, not read
        numbered, firsts, rewritten_journey, rewritten_tuple, rewritten_row, bare = tuple_scan(
            columns, seen, leg_rows, first[0][at[n]:], first[1][at[n]:], first[2][at[n]:], tuples, bounds[n], bounds[n + 1], before[n])
        return (numbered, firsts, np.frombuffer(rewritten_journey, dtype=np.uint32), np.frombuffer(rewritten_tuple, dtype=np.uint64),
                np.frombuffer(rewritten_row, dtype=np.int64), bare)

    done = _map(list(range(len(bounds) - 1)), stretch, workers)
    if [numbered for numbered, *_ in done[:-1]] != before[1:]:
        raise ValueError("journeys are not numbered by first row")
    if [at[n] + firsts for n, (_, firsts, *_) in enumerate(done[:-1])] != at[1:]:
        raise ValueError("the first hops of a stretch are not its rows of hop 0")  # (they are: a stretch wrote over the next's)
    firsts = at[-1] + done[-1][1]
    rewritten = []
    for n, (_, _, rewritten_journey, rewritten_tuple, rewritten_row, _) in enumerate(done):
        if n:  # the rows of journeys begun before the stretch: rewritten where their tuple differs from the first's
            told = rewritten_journey >= before[n]
            differ = told | (rewritten_tuple != seen[np.where(told, 0, rewritten_journey)])
            leg_rows[rewritten_row] = differ
            rewritten_journey, rewritten_tuple = rewritten_journey[differ], rewritten_tuple[differ]
        rewritten.append(pl.DataFrame({"journey": rewritten_journey, "tuple": rewritten_tuple}))
    return Scanned(seen, pl.DataFrame({"journey": first[0][:firsts], "tuple": first[1][:firsts], "row": first[2][:firsts]}),
                   pl.concat(rewritten), leg_rows, done[-1][0], any(bare for *_, bare in done))


def python_scan(table: pl.DataFrame, journeys: int, tuples: np.ndarray | None = None) -> Scanned:
    """`scan` with `tuple_id` in polars and numpy, a slice of rows at a time (hashing the structs of 10M rows at once
    takes gigabytes of scratch memory)."""
    expr = tuple_id(table)
    journey_column, hops, rows = (table.get_column(name) for name in ("journey", "hop", "row"))
    seen = np.empty(journeys, dtype=np.uint64)
    firsts, rewritten, numbered = [], [], 0  # numbered: journeys whose first row has gone by
    leg_rows = np.zeros(table.height, dtype=bool)
    for start in range(0, table.height, SLICE_ROWS):
        hashed = table.slice(start, SLICE_ROWS).select(expr).to_series().to_numpy()
        if tuples is not None:
            tuples[start:start + SLICE_ROWS] = hashed
        journey = journey_column.slice(start, SLICE_ROWS).to_numpy()
        # a journey's first row is where the highest number so far rises
        high = np.maximum.accumulate(journey)
        if numbered:
            np.maximum(high, numbered - 1, out=high)
        new = np.empty(len(high), dtype=bool)
        new[0] = high[0] >= numbered
        np.greater(high[1:], high[:-1], out=new[1:])
        new_at = np.flatnonzero(new)
        seen[journey[new_at]] = hashed[new_at]
        numbered += len(new_at)
        other = np.flatnonzero(hashed != seen[journey])
        leg_rows[start + new_at] = True
        leg_rows[start + other] = True
        if len(other):
            rewritten.append(pl.DataFrame({"journey": journey[other], "tuple": hashed[other]}))
        at = np.flatnonzero(hops.slice(start, SLICE_ROWS).to_numpy() == 0)
        firsts.append(pl.DataFrame({"journey": journey[at], "tuple": hashed[at], "row": rows.slice(start, SLICE_ROWS).to_numpy()[at]}))
    return Scanned(seen, pl.concat(firsts) if firsts else pl.DataFrame(schema={"journey": pl.UInt32, "tuple": pl.UInt64, "row": pl.UInt32}),
                   pl.concat(rewritten) if rewritten else pl.DataFrame(schema={"journey": pl.UInt32, "tuple": pl.UInt64}),
                   leg_rows, numbered, any_bare(table))


def journey_tuples(narrow: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """What numbering flows needs of some journeys' sightings (`narrow`: journey, hop, row, tuple), every
    sighting of each journey among them: each journey's first sighting (journey, tuple, row), and the tuples
    of the journeys seen with several (journey, tuples): NAT rewrote them on the way. The parts of a capture
    partitioned by journey concatenate to the whole capture's."""
    journey, tuples = narrow["journey"].to_numpy(), narrow["tuple"].to_numpy()
    low = np.full(int(journey.max()) + 1 if len(journey) else 0, np.iinfo(np.uint64).max, dtype=np.uint64)
    high = np.zeros_like(low)
    np.minimum.at(low, journey, tuples)
    np.maximum.at(high, journey, tuples)
    nat = np.flatnonzero(low != high)
    multi = narrow.filter(pl.col("journey").is_in(nat)).group_by("journey").agg(tuples=pl.col("tuple").unique())
    return narrow.filter(pl.col("hop") == 0).select("journey", "tuple", "row"), multi


def flow_numbers(firsts: pl.DataFrame, multi: pl.DataFrame, journeys: int) -> np.ndarray:
    """Journey id -> flow (`journey_tuples`' frames of all `journeys`): a journey belongs to the flow of its first
    sighting's tuple, tuples joined by the journeys that carry several; flows numbered by first row."""
    roots = _components(multi)
    root = pl.col("tuple")
    if roots:
        root = root.replace(pl.Series(list(roots), dtype=pl.UInt64), pl.Series(list(roots.values()), dtype=pl.UInt64))
    firsts = firsts.select("journey", "row", _root=root)
    if not firsts["row"].is_sorted():  # a spilled capture's partitions
        firsts = firsts.sort("row")
    # flows by first row: the roots numbered in order of first appearance (in C: a hash table of the roots, 2.7M first
    # sightings at 10M in 0.03 s, against 0.15 s of polars' unique and replace_strict)
    keys = firsts["_root"].to_numpy()
    flow = np.empty(len(keys), dtype=np.uint32)
    number_first_seen(np.ascontiguousarray(keys, dtype=np.uint64), flow)
    flow_of = np.zeros(journeys, dtype=np.uint32)
    flow_of[firsts["journey"].to_numpy()] = flow
    return flow_of


def python_number_first_seen(keys: np.ndarray, numbers: np.ndarray) -> int:
    """Each of the uint64 `keys` numbered 0.. by its first appearance into `numbers` (uint32); how many distinct."""
    distinct, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    rank = np.empty(len(distinct), dtype=np.uint32)
    rank[np.argsort(first)] = np.arange(len(distinct), dtype=np.uint32)
    numbers[:] = rank[inverse.reshape(-1)]
    return len(distinct)


def python_gather(column: pl.Series, table: np.ndarray, out: np.ndarray) -> None:
    """`out[i] = table[column[i]]` for a UInt32 column, a slice of rows at a time (`_flows.gather` takes the column's
    Arrow stream, and reads its chunks in place)."""
    for start in range(0, len(column), SLICE_ROWS):
        out[start:start + SLICE_ROWS] = table[column.slice(start, SLICE_ROWS).to_numpy()]


try:
    from cniscope._flows import community_ids, gather, late_segments, leg_scan, number_first_seen, resends, tallies, tuple_scan
    COMPILED = True
except ImportError:  # built without a C compiler
    number_first_seen = python_number_first_seen
    COMPILED = False


def community_id(proto: int, src: str, dst: str, sport: int | None, dport: int | None) -> str:
    """Community ID v1 (seed 0) of a flow; ICMP ports are type/code per the spec, echo approximated by id."""
    try:
        s, d, hashed = inet_pton(AF_INET, src), inet_pton(AF_INET, dst), _HASHED_V4
    except OSError:
        try:
            s, d, hashed = inet_pton(AF_INET6, src), inet_pton(AF_INET6, dst), _HASHED_V6
        except OSError:
            return f"{proto}:{src}-{dst}"
    sp, dp = sport or 0, dport or 0
    if (s, sp) > (d, dp):
        s, d, sp, dp = d, s, dp, sp
    data = hashed.pack(0, s, d, proto, 0, sp, dp)  # the seed (0), the addresses, proto, 0, ports
    return "1:" + b2a_base64(sha1(data).digest(), newline=False).decode()


_HASHED_V4, _HASHED_V6 = struct.Struct("!H4s4sBBHH"), struct.Struct("!H16s16sBBHH")
_PACKED_V4 = np.dtype([("seed", ">u2"), ("src", ">u4"), ("dst", ">u4"), ("proto", "u1"), ("zero", "u1"), ("sport", ">u2"),
                       ("dport", ">u2")])  # _HASHED_V4's bytes


def community_ids_v4(proto: np.ndarray, src: np.ndarray, dst: np.ndarray, sport: np.ndarray, dport: np.ndarray) -> list[str]:
    """`community_id` of many IPv4 flows (addresses as integers, 0 for a port not there): ordered and packed over
    whole arrays, hashed one by one (20,000 conversations: 15 against 30 ms)."""
    turn = (src > dst) | ((src == dst) & (sport > dport))
    packed = np.zeros(len(src), dtype=_PACKED_V4)
    packed["src"], packed["dst"] = np.where(turn, dst, src), np.where(turn, src, dst)
    packed["sport"], packed["dport"] = np.where(turn, dport, sport), np.where(turn, sport, dport)
    packed["proto"] = proto
    if COMPILED:  # hashed in C: 20,000 conversations 4 against 35 ms
        return community_ids(packed, _PACKED_V4.itemsize)
    data, size = memoryview(packed.tobytes()), _PACKED_V4.itemsize
    return ["1:" + b2a_base64(sha1(data[at:at + size]).digest(), newline=False).decode() for at in range(0, len(data), size)]


@lru_cache(maxsize=1 << 16)  # conversations share ends (a server, a DNS service): one immutable object each
def _endpoint(ip: str | None, port: int | None) -> Endpoint:
    return make_endpoint(ip or "?", port)


FIRST_COLUMNS = (
    "journey", "flow", "row", "ts", "proto", "arp_op", "src", "dst", "src6", "dst6", "src_name", "dst_name", "sport",
    "dport", "tcp_flags", "seq", "ack", "win", "payload_len", "dns_id", "dns_qr", "icmp_type", "icmp_seq", "arp_spa", "arp_tpa",
)


MAX_FLOWS = 20_000  # conversations materialised for reports; JSON says how many there were
# the engine of the tally's queries: polars' default ("auto") ran them streaming, where its group_bys, filters and gathers
# of a few 100,000 rows took more CPU (the tally at 2M: 0.20 -> 0.18 s)
IN_MEMORY: EngineType = "in-memory"


def build(table: pl.DataFrame, journeys: list[Journey], limit: int | None = MAX_FLOWS) -> tuple[list[Flow], list[Journey]]:
    """Flow objects from a table with `journey`, `hop`, `flow`; journeys get their flow and re-send links.

    Statistics are computed per flow in polars over the first sighting of each
    journey; Python only assembles one object per flow, for the first `limit`
    flows (numbered by first appearance, like journeys; a journey's flow id is
    never above its own id, so every materialised journey's flow is among them).
    `Flow.journeys` lists the journeys that were materialised (`journeys`);
    `Flow.packets` counts all.
    """
    return link(tally(table, max((j.id for j in journeys), default=-1) + 1, limit), journeys)


class Tally(NamedTuple):
    """What `build` makes of the table alone (`tally`), before the journeys are given their links (`link`)."""

    flows: list[Flow]
    flow_of: dict[int, int]  # journey -> flow, of the journeys below `tally`'s `kept`
    original_of: dict[int, int]  # re-sending journey -> the journey it re-sends


def link(tallied: Tally, journeys: list[Journey]) -> tuple[list[Flow], list[Journey]]:
    """The flows, and `journeys` with their flow and re-send links (made as columns: no call a journey)."""
    ids = [j.id for j in journeys]
    columns = (ids, list(map(tallied.flow_of.get, ids)), [j.summary for j in journeys], list(map(tallied.original_of.get, ids)),
               [j.hops for j in journeys])
    return tallied.flows, made_many(Journey, columns, len(journeys))


def tally(table: pl.DataFrame, kept: int | None, limit: int | None = MAX_FLOWS, leg_rows: LegRows | None = None) -> Tally:
    """`build`'s work that needs the table alone: `kept`, the journeys below it are the materialised ones (None:
    all of them). `leg_rows`: `Numbered.leg_rows` of `table` (None: any row may show a leg). `analyze` runs it on
    another core while the journeys are materialised and labelled.

    In few queries of several parts each (`pl.collect_all`): this thread waits for the interpreter after each one
    while the main thread runs Python (up to its switch interval, 5 ms), and 58 queries took 0.67 s beside the
    0.5 s of the main thread at 2M, against 0.45 s alone.
    """
    table = _envelopes_as_seen(table, None if leg_rows is None else leg_rows.bare)
    first = _first_sightings(table, limit).collect(engine=IN_MEMORY)
    timed = (pl.col("ts").null_count() == 0) & pl.col("ts").is_sorted() & pl.col("row").is_sorted()
    ordered, by_journey = first.select(timed, pl.col("journey").is_sorted()).row(0)
    # already in time order: in one piece for polars (its statistics over the table's many chunks, 153 at 10M, took 1.5x
    # the CPU), as they are for C (which reads each chunk in place: the copy took 15 ms at 2M)
    if not ordered:
        first = first.sort(["ts", "row"])
    elif not COMPILED:
        first = first.rechunk()
    legs_query = _legs(table, first, ordered and by_journey, limit, leg_rows)
    if COMPILED:
        retrans, legs = _resends(first), legs_query.collect(engine=IN_MEMORY)
    else:
        retrans, legs = pl.collect_all([_retransmissions(first), legs_query], engine=IN_MEMORY)
    # the original of each re-send, gathered by journey id rather than joined (a join copies every column)
    original, resent = pl.lit(None, dtype=pl.UInt32), None
    if retrans.height:
        journey = first["journey"].to_numpy()
        of = np.full(int(journey.max()) + 1, -1, dtype=np.int64)
        of[retrans["journey"].to_numpy()] = retrans["original"].to_numpy()
        found = of[journey]
        resent = found >= 0
        original = pl.when(pl.lit(pl.Series(found)) >= 0).then(pl.lit(pl.Series(found))).cast(pl.UInt32)
    kept = 1 << 32 if kept is None else kept  # journey ids are 32-bit
    late = _late_segments(first, resent) if COMPILED else None
    stats, journeys, resets = _stats(first.lazy().with_columns(original=original), kept, late, first, resent)
    kept_first = first.lazy().select("journey", "flow").filter(pl.col("journey") < kept).collect(engine=IN_MEMORY)
    flows = _flows(stats, legs, journeys, resets)
    return Tally(flows, dict(zip(kept_first["journey"].to_list(), kept_first["flow"].to_list(), strict=True)),
                 dict(zip(retrans["journey"].to_list(), retrans["original"].to_list(), strict=True)))


def _first_sightings(table: pl.DataFrame, limit: int | None) -> pl.LazyFrame:
    """Each journey's first sighting (`FIRST_COLUMNS`) of the first `limit` flows."""
    keep = pl.col("hop") == 0
    if limit is not None:
        keep = keep & (pl.col("flow") < limit)  # statistics only for the flows that become objects
    return table.lazy().select(*FIRST_COLUMNS, "hop").filter(keep).drop("hop")


_ENDS = ("src", "dst")
_SHOWN = ("src", "dst", "src6", "dst6", "src_name", "dst_name", "sport", "dport")


def _bare() -> pl.Expr:
    return nothing_inside() & pl.col("arp_op").is_null()  # ARP inside an envelope is its own conversation


def any_bare(table: pl.DataFrame) -> bool:
    """Whether an envelope of `table` (not of ARP) shows nothing of what it carries."""
    return bool(table.select(_bare().any()).item())


def _envelopes_as_seen(table: pl.DataFrame, bare: bool | None = None) -> pl.DataFrame:
    """The conversation of tunnel envelopes that show nothing of what they carry (weave's port that tcpdump prints
    as BFD) is the envelopes' own, as `tuple_id` keys it: their ends stand where the packet's would. `bare`: whether
    there are such envelopes (`any_bare`), if known."""
    if not (any_bare(table) if bare is None else bare):
        return table  # the usual case: nothing replaced, no column copied
    bare_row = _bare()
    carrier = pl.when(pl.col("tunnel") == Tunnel.IPIP).then(pl.lit(4)).otherwise(pl.lit(17))
    return table.with_columns(
        pl.when(bare_row).then(carrier).otherwise(pl.col("proto")).cast(table.schema["proto"]).alias("proto"),
        *(pl.when(bare_row).then(pl.col(f"outer_{f}")).otherwise(pl.col(f)).cast(table.schema[f]).alias(f) for f in _SHOWN),
    )



_HEAD = ("proto", "arp_op", "arp_spa", "arp_tpa", "dns_qr", "icmp_type")


def _flag(bit: int) -> pl.Expr:
    return (pl.col("tcp_flags").fill_null(0) & bit) > 0


Ids = list[tuple[int, ...]]  # of each flow (`_stats`), the journeys below `kept`, or its RSTs' journeys


def _stats(rows: pl.LazyFrame, kept: int, late: np.ndarray | None = None, first: pl.DataFrame | None = None,
           resent: np.ndarray | None = None) -> tuple[pl.DataFrame, Ids, Ids]:
    """Each flow's statistics, sorted by flow, and of each its journeys below `kept` and its RSTs' journeys, of the
    first sightings `rows` (with `original`). In C where built (`_tallied`), given `first` (`rows` without `original`),
    `resent` (the rows that re-send, None: none) and `late` (the flows of the segments out of order,
    `_late_segments`); else in polars (`late` None: found there too)."""
    if first is not None and late is not None and (tallied := _tallied(first, kept, resent, late)) is not None:
        return tallied
    syn, ack, rst, fin = _flag(SYN), _flag(ACK), _flag(RST), _flag(FIN)
    is_syn = syn & ~ack
    is_synack = syn & ack
    fresh = pl.col("original").is_null()
    # one group_by (three, one for each kind of statistic, took 1.5x the CPU time); each flow's first sighting (`head_`),
    # first SYN (`syn_`) and SYN-ACK: its rows, not a `first` of each column in the group_by (22 of them, 30 ms at 2M)
    stats = rows.group_by("flow", maintain_order=True).agg(
        packets=pl.len(),
        bytes=pl.col("payload_len").filter(fresh).sum(),
        first_ts=pl.col("ts").min(),
        last_ts=pl.col("ts").max(),
        retransmissions=(~fresh).sum(),
        zero_windows=((pl.col("win") == 0) & ~rst & (pl.col("proto") == 6)).sum(),
        fins=fin.sum(),
        resets=pl.col("journey").filter(rst),
        syn_ts=pl.col("ts").filter(is_syn).min(),
        synack_ts=pl.col("ts").filter(is_synack).min(),
        journeys=pl.col("journey").filter(pl.col("journey") < kept),
        any_syn=is_syn.any(),
        queries=pl.col("dns_id").filter(pl.col("dns_qr") == False).unique(),  # noqa: E712 - polars expression
        answers=pl.col("dns_id").filter(pl.col("dns_qr") == True).unique(),  # noqa: E712
        requests=pl.col("icmp_seq").filter(pl.col("icmp_type").is_in([8, 128])).unique(),
        replies=pl.col("icmp_seq").filter(pl.col("icmp_type").is_in([0, 129])).unique(),
        unreachable=(pl.col("icmp_type") == 3).sum(),
    )
    once = pl.col("flow").is_first_distinct()
    heads = rows.filter(once).select(**{f"head_{f}": pl.col(f) for f in (*_HEAD, *_SHOWN)})  # in the group_by's order
    syns = rows.filter(is_syn).with_columns(_once=once).filter("_once").select("flow", **{f"syn_{f}": pl.col(f) for f in _SHOWN})
    synacks = rows.filter(is_synack).with_columns(_once=once).filter("_once").select("flow", synack_seq="seq")
    stats = pl.concat([stats, heads], how="horizontal").join(synacks, on="flow", how="left").join(syns, on="flow", how="left")
    # the handshake's ACK: the first pure ACK of the SYN-ACK's sequence number after it (absolute, or 1 when relative)
    acks = rows.select("flow", "tcp_flags", "ack", "ts").filter(ack & ~syn & ~rst & ~fin).join(
        stats.select("flow", "synack_ts", "synack_seq"), on="flow").filter(
        ((pl.col("ack") == ((pl.col("synack_seq").cast(pl.Int64) + 1) % 2**32)) | (pl.col("ack") == 1))
        & (pl.col("ts") >= pl.col("synack_ts"))
    ).group_by("flow").agg(ack_ts=pl.col("ts").min())
    if late is None:
        late_frame, senders_apart = _out_of_order(rows)
    else:
        flows, counts = np.unique(late, return_counts=True)
        late_frame, senders_apart = pl.LazyFrame({"flow": flows, "out_of_order": counts.astype(np.uint32)}), pl.LazyFrame({"apart": [True]})
    stats = stats.join(acks, on="flow", how="left").join(late_frame, on="flow", how="left").sort("flow").filter(
        pl.col("flow").is_not_null())
    # the DNS ids and echo sequence numbers counted (`_states` needs no more)
    both = {"answered": ("queries", "answers"), "replied": ("requests", "replies")}
    stats = stats.drop("synack_seq").with_columns(
        **{name: pl.col(a).list.set_intersection(pl.col(b)).list.len() for name, (a, b) in both.items()},
        **{name: pl.col(name).list.len() for name in ("queries", "answers", "requests", "replies")},
        rsts=pl.col("resets").list.len())
    stats_, apart = pl.collect_all([stats, senders_apart], engine=IN_MEMORY)
    if not apart.item():  # hash twins interleaved two senders of one flow
        stats_ = stats_.drop("out_of_order").join(_out_of_order_grouped(rows), on="flow", how="left")
    ids = [list(map(tuple, stats_.get_column(name).to_list())) for name in ("journeys", "resets")]
    return stats_.drop("journeys", "resets").with_columns(pl.col("out_of_order").fill_null(0)), ids[0], ids[1]


# the columns `_flows.tallies` reads, in its order, and the layout of what it finds of each flow (its `Tally`)
_TALLY_COLUMNS = ("flow", "journey", "tcp_flags", "ts", "seq", "ack", "proto", "win", "payload_len", "dns_id", "dns_qr",
                  "icmp_type", "icmp_seq")
TALLY = np.dtype([*((name, "<i8") for name in ("head", "syn", "synack", "first_ts", "last_ts", "syn_ts", "synack_ts", "ack_ts")),
                  *((name, "<u4") for name in ("packets", "bytes", "retransmissions", "zero_windows", "fins", "unreachable",
                                               "rsts", "journeys", "queries", "requests", "answers", "replies", "answered",
                                               "replied", "synack_seq", "unused")),
                  *((name, "u1") for name in ("has_ts", "has_syn_ts", "has_synack_ts", "has_ack_ts", "has_synack_seq",
                                              "any_syn", "unused_0", "unused_1"))])
_COUNTS = ("packets", "bytes", "retransmissions", "zero_windows", "fins", "rsts", "queries", "answers", "answered", "requests",
           "replies", "replied", "unreachable")
_TIMES = {"first_ts": "has_ts", "last_ts": "has_ts", "syn_ts": "has_syn_ts", "synack_ts": "has_synack_ts", "ack_ts": "has_ack_ts"}


def _tallied(first: pl.DataFrame, kept: int, resent: np.ndarray | None, late: np.ndarray) -> tuple[pl.DataFrame, Ids, Ids] | None:
    """`_stats` in C: one pass over the first sightings in time order (`_flows.tallies`, each flow an entry of an
    array; polars' group_by, filters and joins took 0.085 s of CPU at 2M), each flow's first row's (`head_`) and first
    SYN's (`syn_`) columns gathered by position. None where C is not built, or the flows' numbers are far more than the
    rows (an array of them would be larger than the rows)."""
    flows = int(first.select(pl.col("flow").max()).item() or 0) + 1 if first.height else 0
    if not COMPILED or flows > 4 * first.height + 1024:
        return None
    of = np.empty(flows, dtype=TALLY)
    journeys, resets = tallies(_capsules(first, _TALLY_COLUMNS), first.height, flows, kept, resent, of)
    flow = np.flatnonzero(of["packets"]).astype(np.uint32)
    # taken as whole records of bytes (numpy takes a structured array's rows field by field: 20,000 of them 5-15 ms)
    of = of.view(np.dtype((np.void, TALLY.itemsize)))[flow].view(TALLY)

    def at(positions: np.ndarray) -> pl.Series:  # null where none
        return pl.select(pl.when(pl.Series(positions >= 0)).then(pl.Series(positions))).to_series()

    stats = pl.DataFrame({"flow": flow, **{name: np.ascontiguousarray(of[name]) for name in _COUNTS},
                          "any_syn": of["any_syn"].astype(bool),
                          "out_of_order": np.bincount(late, minlength=flows)[flow].astype(np.uint32)})
    times = pl.select(pl.when(pl.Series(of[has].astype(bool))).then(pl.Series(np.ascontiguousarray(of[name]))).alias(name)
                      for name, has in _TIMES.items())
    heads = first.select(**{f"head_{f}": pl.col(f) for f in (*_HEAD, *_SHOWN)}).gather(of["head"])
    syns = first.select(**{f"syn_{f}": pl.col(f) for f in _SHOWN}).gather(at(of["syn"]))
    return stats.hstack([*times.get_columns(), *heads.get_columns(), *syns.get_columns()]), journeys, resets


_ORDER_COLUMNS = ("flow", "src", "src6", "sport", "proto", "seq", "payload_len")


def _late_segments(first: pl.DataFrame, resent: np.ndarray | None) -> np.ndarray:
    """The flow of each of `_out_of_order`'s segments, in C, of the first sightings in time order (`resent`: those that
    re-send, bool, None: none do): one pass, each sender found by its values in a hash table (at 10M, 0.2M segments:
    polars' sort of them by flow and sender took 55 ms of CPU)."""
    return np.frombuffer(late_segments(_capsules(first, _ORDER_COLUMNS), first.height, resent), dtype=np.uint32)


def _capsules(frame: pl.DataFrame, names: tuple[str, ...]) -> tuple[object | None, ...]:
    """The Arrow streams of `frame`'s columns `names` for the C (categories by their codes); None for a column of
    nulls, not read. The codes in one query: each lets the interpreter go, and beside the main thread's Python took
    it back up to its switch interval (5 ms) later (a query a column: 40 a tally, 0.2 s at 2M)."""
    coded = [name for name in names if isinstance(frame.schema[name], (pl.Categorical, pl.Enum))]
    if coded:
        frame = frame.select(pl.col(name).to_physical() if name in coded else pl.col(name) for name in names)
    return tuple(None if (s := frame.get_column(name)).null_count() == s.len() > 0 else s.__arrow_c_stream__()
                 for name in names)


_RESEND_COLUMNS = ("journey", "flow", "src", "src6", "sport", "proto", "seq", "payload_len", "tcp_flags")


def _resends(first: pl.DataFrame) -> pl.DataFrame:
    """`_retransmissions`' (journey, original) in C, of the first sightings in time order: one pass, each segment's
    keys found by their values in a hash table (at 2M, 0.42M first sightings: polars' two queries of hashes and
    windows took 75-95 ms of CPU)."""
    found = [np.frombuffer(pairs, dtype=np.uint32).reshape(-1, 2) for pairs in resends(_capsules(first, _RESEND_COLUMNS), first.height)]
    return pl.concat([pl.LazyFrame({"journey": pairs[:, 0], "original": pairs[:, 1]}) for pairs in found]).unique(
        "journey", keep="first", maintain_order=True).collect(engine=IN_MEMORY)


def _retransmissions(first: pl.DataFrame) -> pl.LazyFrame:
    """Later journeys re-sending sequence space already sent in the flow -> (journey, original).

    A re-send repeats a segment (sequence number, length, SYN/FIN: a re-sent SYN loses its ECN flags), or
    re-sends the tail of one (`seq 1389:2395` after `seq 1:2395`: the part not acknowledged).
    """
    is_data = (
        (pl.col("proto") == 6)
        & pl.col("seq").is_not_null()
        & ((pl.col("payload_len") > 0) | _flag(SYN | FIN))
        & ~_flag(RST)
    ).fill_null(False)
    control = (pl.col("tcp_flags").fill_null(0) & (SYN | FIN | ACK)).alias("_control")
    end = ((pl.col("seq").cast(pl.Int64) + pl.col("payload_len").fill_null(0)) % 2**32).alias("_end")
    sender = ["flow", "src", "src6", "sport"]  # per sender: text shows relative seqs
    found = [_repeats(first, is_data, [*sender, "seq", "payload_len", "_control"], control, end),
             _repeats(first, is_data & (pl.col("payload_len") > 0), [*sender, "_end"], control, end)]
    return pl.concat(found).unique("journey", keep="first", maintain_order=True)


def _repeats(first: pl.DataFrame, wanted: pl.Expr, keys: list[str], *derived: pl.Expr) -> pl.LazyFrame:
    """(journey, original) of the later sightings among `wanted` ones with equal `keys`."""
    data = first.lazy().with_columns(*derived).filter(wanted).select("journey", *keys)
    # candidates: sightings whose key hash repeats among the wanted ones (every repeat, and rare hash twins); a pure
    # ACK ends where the segment before it did: hashed beside the segments, 74k candidates at 2M
    return data.filter(pl.struct(keys).hash(seed=8).is_duplicated()).with_columns(
        original=pl.col("journey").first().over(keys), n=pl.int_range(pl.len()).over(keys)
    ).filter(pl.col("n") > 0).select("journey", "original")


_SENDER = ["flow", "src", "src6", "sport"]


def _out_of_order(first: pl.LazyFrame) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Data segments below the highest sequence end already sent by the same sender (re-sends excluded): (flow,
    out_of_order) of the flows that have some, and whether the senders were apart (else `_out_of_order_grouped`).

    Sorted by (flow, 32-bit hash of the sender), then time: each sender is one run (checked: hash twins
    within a flow may interleave two senders), and the running maximum per sender is one cumulative
    maximum over the whole column, each sender's values lifted above the previous sender's (no windows).
    """
    sender = pl.struct("src", pl.col("src6").to_physical(), "sport").hash(seed=9) & 0xFFFFFFFF  # one number per address
    runs = _segments(first).sort(pl.col("flow").cast(pl.UInt64) * 2**32 + sender, maintain_order=True).with_columns(
        _new=~pl.all_horizontal([pl.col(c).eq_missing(pl.col(c).shift(1)) for c in _SENDER]).fill_null(False))
    new = pl.col("_new")
    rel = (pl.col("seq").cast(pl.Int64) - pl.when(new).then(pl.col("seq")).forward_fill().cast(pl.Int64) + 2**32) % 2**32
    lift = (new.cum_sum().cast(pl.Int64) - 1) * 2**34  # above any sequence end (< 2**33)
    high = (rel + pl.col("payload_len").cast(pl.Int64) + lift).cum_max() - lift
    late = runs.filter(~new & (rel < high.shift(1))).group_by("flow").agg(out_of_order=pl.len().cast(pl.UInt32))
    return late, runs.filter(new).select(pl.struct(_SENDER).is_unique().all())


def _segments(first: pl.LazyFrame) -> pl.LazyFrame:
    return first.select(*_SENDER, "proto", "seq", "payload_len", "original").filter(
        (pl.col("proto") == 6) & pl.col("seq").is_not_null() & (pl.col("payload_len") > 0) & pl.col("original").is_null()
    ).select(*_SENDER, "seq", "payload_len")


def _out_of_order_grouped(first: pl.LazyFrame) -> pl.DataFrame:
    rel = (pl.col("seq").cast(pl.Int64) - pl.col("seq").cast(pl.Int64).first()) % 2**32
    high = (rel + pl.col("payload_len")).cum_max().shift(1)
    per_sender = _segments(first).group_by(_SENDER).agg(n=(rel < high).sum())
    return per_sender.group_by("flow").agg(out_of_order=pl.col("n").sum()).collect(engine=IN_MEMORY)


def _legs(table: pl.DataFrame, first: pl.DataFrame, by_journey: bool, limit: int | None,
          leg_rows: LegRows | None) -> pl.LazyFrame:
    """Distinct (src, dst) pairs of each of the first `limit` flows, in order of appearance, each oriented like its
    flow's first (flow, a, a_port, b, b_port: addresses as text, `?` without one). `first`: the first sightings of
    those flows (`_first_sightings`), in journey order if `by_journey`; `leg_rows`: `tally`'s."""
    seen = _distinct_legs(table, first, by_journey, limit, leg_rows).collect(engine=IN_MEMORY)
    # each end as text (ARP's sender and target, `?` without an address); a pair is the same leg either way round
    a, b = (pl.coalesce(*_shown(seen, (side, f"_{side}"), f"{side}6", f"{side}_name", (f"arp_{arp}", f"_arp_{arp}")), pl.lit("?"))
            for side, arp in zip(_ENDS, ("spa", "tpa")))
    ends = _with_ip4_texts(seen.lazy(), "src", "dst", "arp_spa", "arp_tpa").select("flow", a=a, a_port="sport", b=b, b_port="dport")
    if seen.get_column("flow").is_unique().all():
        return ends  # one leg a conversation (no NAT): nothing to make one, and each is its conversation's first
    a_key, b_key = (pl.concat_str(pl.col(end), pl.col(f"{end}_port").cast(pl.Utf8).fill_null(""), separator="\0") for end in "ab")
    ends = ends.with_columns(_a=a_key, _b=b_key).with_columns(
        _lo=pl.when(pl.col("_a") < pl.col("_b")).then(pl.col("_a")).otherwise(pl.col("_b")),
        _hi=pl.when(pl.col("_a") < pl.col("_b")).then(pl.col("_b")).otherwise(pl.col("_a")),
    ).unique(subset=["flow", "_lo", "_hi"], keep="first", maintain_order=True)
    # oriented like the first leg: whoever shares an end with the first leg's client side is the client (the first
    # leg's ends joined to every leg: 2 ms at 20,000 conversations, a window over them 9 ms)
    firsts = ends.group_by("flow").agg(_first_a=pl.col("_a").first(), _first_b=pl.col("_b").first())
    ends = ends.join(firsts, on="flow", how="left", maintain_order="left")
    swap = (pl.col("_b") == pl.col("_first_a")) | (pl.col("_a") == pl.col("_first_b"))
    return ends.select("flow", *(pl.when(swap).then(pl.col(x)).otherwise(pl.col(y)).alias(y) for x, y in
                                 (("b", "a"), ("b_port", "a_port"), ("a", "b"), ("a_port", "b_port"))))


_LEG_COLUMNS = ("flow", "src", "dst", "src6", "dst6", "src_name", "dst_name", "sport", "dport", "arp_spa", "arp_tpa")


def _distinct_legs(table: pl.DataFrame, first: pl.DataFrame, by_journey: bool, limit: int | None,
                   leg_rows: LegRows | None) -> pl.LazyFrame:
    """`_LEG_COLUMNS` of the first row of each distinct combination of them among the rows of the first `limit` flows
    that may show a leg (`_legs`), in row order; in C, a leg and its mirror (the ends swapped) as one, as `_legs` makes
    them after (at 2M, 20,000 legs of 40,000 rows to put in text)."""
    cols = list(_LEG_COLUMNS)
    in_order = table["row"].is_sorted()
    if in_order and leg_rows is not None and not leg_rows.rewritten:
        # no NAT: a journey shows one leg, at its first row as at its first hop: the first sightings, already
        # gathered, in journey order (journeys are numbered by first row); at 10M, 0.43M rows not gathered again. In
        # polars, in the query of the re-sends: each call to polars lets the interpreter go, and beside a main thread
        # running Python took it back 5-20 ms later
        if COMPILED:
            return _distinct((first if by_journey else first.sort("journey")).select(cols), limit)
        rows = first.lazy().filter(_below(limit))
        return (rows if by_journey else rows.sort("journey")).select(cols).unique(maintain_order=True)
    if in_order:
        return _distinct(table.select(cols), limit, None if leg_rows is None else leg_rows.marked)
    # one query: the rows of the first `limit` flows are not copied before they are made distinct (at 2M sightings,
    # 1.5M rows: 0.15 -> 0.09 s CPU, 130 MB fewer fresh pages); of them, only those that may show a leg (0.42 M)
    rows = table.lazy().select(*cols, "row")
    if leg_rows is not None:
        rows = rows.filter(pl.Series(leg_rows.marked))
    return _distinct(rows.filter(_below(limit)).sort("row").select(cols).collect(engine=IN_MEMORY), None)


def _below(limit: int | None) -> pl.Expr:
    return pl.col("flow").is_not_null() if limit is None else pl.col("flow") < limit


def _distinct(rows: pl.DataFrame, limit: int | None, marked: np.ndarray | None = None) -> pl.LazyFrame:
    """The first of each distinct row of `rows` (`_LEG_COLUMNS`) of the first `limit` flows that `marked` marks (None:
    every row). In C, over the columns' own buffers, a row and its mirror as one, and only those rows gathered
    (`_flows.leg_scan`; at 10M, a pass over 2.7M leg rows with their columns copied and hashed in polars took 0.1 s of
    CPU)."""
    if COMPILED:
        positions = leg_scan(_capsules(rows, _LEG_COLUMNS), rows.height, marked,
                             1 << 32 if limit is None else min(max(limit, 0), 1 << 32), True)
        # (gathered eagerly: in a lazy query each column was made one chunk first, 0.2 s of CPU at 10M)
        return rows.gather(pl.Series(np.frombuffer(positions, dtype=np.int64))).lazy()
    shown = [c for c in _LEG_COLUMNS if rows[c].null_count() < rows.height]  # columns no input fills (names in a pcap) sort nothing
    query = rows.lazy() if marked is None else rows.lazy().filter(pl.Series(marked))
    return query.filter(_below(limit)).unique(subset=shown or list(_LEG_COLUMNS), maintain_order=True)


def _states() -> dict[str, pl.Expr]:
    """Each flow's state, a note counting its requests and answers, and its handshake's delays, over the columns
    of `_stats` (with `head_proto`, `head_arp_op`)."""
    def state(value: FlowState) -> pl.Expr:
        return pl.lit(value.value)

    def answered(asked: str, answered: str) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
        """The state of the distinct requests `asked` of which `answered` were, and those two counts."""
        n, both = pl.col(asked), pl.col(answered)
        verdict = (pl.when(n == 0).then(state(FlowState.ANSWERS_ONLY)).when(both == n).then(state(FlowState.ANSWERED))
                   .when(both > 0).then(state(FlowState.PARTLY_ANSWERED)).otherwise(state(FlowState.UNANSWERED)))
        return verdict, n, both

    tcp = pl.col("head_arp_op").is_null() & (pl.col("head_proto") == 6)
    tcp_state = (
        pl.when(pl.col("rsts") > 0).then(state(FlowState.RESET))
        .when(pl.col("fins") >= 2).then(state(FlowState.CLOSED))
        .when(~pl.col("any_syn")).then(state(FlowState.MID_STREAM))
        .when(pl.col("synack_ts").is_null()).then(state(FlowState.UNANSWERED))
        .when(pl.col("ack_ts").is_null() & (pl.col("packets") <= 2)).then(state(FlowState.HANDSHAKE_INCOMPLETE))
        .otherwise(state(FlowState.ESTABLISHED))
    )
    dns, queries, answered_queries = answered("queries", "answered")
    echo, requests, replied = answered("requests", "replied")
    is_dns = (pl.col("queries") + pl.col("answers")) > 0
    is_echo = (pl.col("requests") + pl.col("replies")) > 0
    return {
        "state": pl.when(tcp).then(tcp_state).when(is_dns).then(dns).when(is_echo).then(echo)
        .when(pl.col("unreachable") > 0).then(state(FlowState.ERROR)).otherwise(state(FlowState.SEEN)),
        "note": pl.when(tcp).then(None)
        .when(is_dns).then(pl.format("DNS: {} queries, {} answered", queries, answered_queries))
        .when(is_echo).then(pl.format("echo: {} requests, {} replied", requests, replied)),
        "syn_to_synack_ns": pl.col("synack_ts") - pl.col("syn_ts"),
        "synack_to_ack_ns": pl.col("ack_ts") - pl.col("synack_ts"),
    }


def _ends() -> dict[str, pl.Expr]:
    """Each flow's client and server over the columns of `_stats` (their addresses' fields, `_with_addresses`): ARP's
    sender and target; the first SYN's sender and receiver; else the first packet's, turned round when it is an answer
    (DNS, ICMP echo reply: its sender is the server)."""
    arp = pl.col("head_arp_op").is_not_null()
    answer = (pl.col("head_dns_qr") == True) | pl.col("head_icmp_type").is_in([0, 129])  # noqa: E712 - polars expression

    def pick(side: str, other: str, arp_value: pl.Expr | None, field: str = "") -> pl.Expr:
        """One end's `field` (`""`: the IPv4 address, `6`, `_name`, or a port's name as `side`)."""
        return (pl.when(arp).then(arp_value).when(pl.col("any_syn")).then(pl.col(f"syn_{side}{field}"))
                .when(answer).then(pl.col(f"head_{other}{field}")).otherwise(pl.col(f"head_{side}{field}")))

    def address(end: str, side: str, other: str, arp_value: str) -> dict[str, pl.Expr]:
        """Its fields, each picked before it is put in text (`_with_addresses`; formatting the four candidates took 5x
        the time)."""
        return {f"_{end}_ip4": pick(side, other, pl.col(arp_value)), f"_{end}6": pick(side, other, None, "6"),
                f"_{end}_name": pick(side, other, None, "_name")}

    return {
        **address("client", "src", "dst", "head_arp_spa"),
        "client_port": pick("sport", "dport", None),
        "client_v4": pick("src", "dst", None),  # (not ARP's)
        **address("server", "dst", "src", "head_arp_tpa"),
        "server_port": pick("dport", "sport", None),
        "server_v4": pick("dst", "src", None),
        "proto": pl.when(arp).then(pl.lit(Proto.ARP.value)).otherwise(
            pl.col("head_proto").replace_strict({k: v.value for k, v in PROTO_NAMES.items()}, default=Proto.OTHER.value,
                                                return_dtype=pl.Utf8)),
    }


def _with_addresses(stats: pl.DataFrame, frame: pl.LazyFrame) -> pl.LazyFrame:
    """`frame` (`_ends`' columns of `stats`) with each flow's client and server addresses as text, `?` without one, and
    the columns `_flows` reads (the texts joined to those only)."""
    def address(end: str) -> pl.Expr:
        candidates = ((f"_{end}_ip4", f"__{end}_ip4"), f"_{end}6", f"_{end}_name")
        shown = pl.coalesce(*_shown(stats, *candidates, sources=_SOURCES))
        return pl.when(shown.is_null() | (shown == "")).then(pl.lit("?")).otherwise(shown)

    return _with_ip4_texts(frame.select(*_FLAT, *(f"_{end}{field}" for end in ("client", "server") for field in ("_ip4", "6", "_name"))),
                           "_client_ip4", "_server_ip4").select(*_FLAT, client=address("client"), server=address("server"))


# the columns of `_stats` an end's field of `_ends` is picked from (none of them filled: it is all null)
_SOURCES = {f"_{end}{field}": [f"{kind}_{side}{field.removesuffix('_ip4')}" for kind in ("head", "syn") for side in _ENDS]
            + (["head_arp_spa", "head_arp_tpa"] if field == "_ip4" else []) for end in ("client", "server") for field in ("_ip4", "6", "_name")}
# what `_flows` reads of its columns but the ends' texts
_FLAT = ("flow", "proto", "client_port", "server_port", "packets", "bytes", "first_ts", "last_ts", "state", "syn_to_synack_ns",
         "synack_to_ack_ns", "retransmissions", "out_of_order", "zero_windows", "note", "head_proto", "client_v4", "server_v4")


def _shown(frame: pl.DataFrame, *candidates: str | tuple[str, str], sources: dict[str, list[str]] | None = None) -> list[str]:
    """The columns `candidates` (a column, or a column and that of its text) that are not all null in `frame`, or the
    first (coalesced, the same text, without IPv6 addresses and names cast to text for nothing: 20,000 conversations'
    ends 9 -> 3 ms). `sources`: a candidate's columns of `frame` it is made of, where it is not one of them."""
    named = [(c, c) if isinstance(c, str) else c for c in candidates]
    return [shown for name, shown in named if any(frame.get_column(c).null_count() < frame.height
                                                  for c in (sources or {}).get(name, [name]))] or [named[0][1]]


def _with_ip4_texts(frame: pl.LazyFrame, *names: str) -> pl.LazyFrame:
    """`frame` with the text (`ip4_expr`) of each of its columns `names` of IPv4 addresses that repeat (conversations'
    ends, their legs'), `_` and the column's name: each distinct address of them all put in text once, and joined
    (20,000 conversations' clients: 3 against 8 ms); in the query of what reads them (three queries a column each let the
    interpreter go, and beside the main thread's Python took it back up to 5 ms later each time)."""
    distinct = frame.select(_ip4=reduce(pl.Expr.append, map(pl.col, names)).unique().drop_nulls()).with_columns(
        _text=ip4_expr("_ip4"))
    for name in names:
        frame = frame.join(distinct.rename({"_ip4": name, "_text": f"_{name}"}), on=name, how="left", maintain_order="left")
    return frame


Legs = tuple[tuple[Endpoint, Endpoint], ...]
_TURNED = (("b", "a"), ("b_port", "a_port"), ("a", "b"), ("a_port", "b_port"))


def _legs_of(legs: pl.DataFrame, flat: pl.DataFrame, clients: list[Endpoint], servers: list[Endpoint]) -> list[Legs]:
    """Of each flow of `flat` (`_flows`' columns, its `clients` and `servers`), its `_legs` as (client side, server
    side): turned round where its first leg's server side is the client. Where each flow shows one leg, row by row
    beside its flow, each end that is the flow's own taken as it is (40,000 endpoints not looked up at 2M); else by
    joins."""
    legs = legs.sort("flow", maintain_order=True)
    if legs.height != flat.height or not legs.get_column("flow").equals(flat.get_column("flow")):
        return _legs_joined(legs, flat)
    def same(a: str, b: str) -> pl.Expr:
        return (pl.col(a) == pl.col(b)) & pl.col(f"{a}_port").eq_missing(pl.col(f"{b}_port"))

    # a leg whose ends are the client and server, either way round, is (client, server) once oriented
    ends = legs.hstack(flat.select("client", "client_port", "server", "server_port").get_columns())
    if ends.select(((same("a", "client") & same("b", "server")) | (same("b", "client") & same("a", "server"))).all()).item():
        return [((client, server),) for client, server in zip(clients, servers, strict=True)]
    a, a_port, b, b_port = (pl.when(same("b", "client")).then(pl.col(x)).otherwise(pl.col(y)) for x, y in _TURNED)
    frame = ends.select(own=(a == pl.col("client")) & a_port.eq_missing(pl.col("client_port")) & (b == pl.col("server"))
                        & b_port.eq_missing(pl.col("server_port")), a=a, a_port=a_port, b=b, b_port=b_port)
    values = (frame.get_column(name).to_list() for name in ("own", "a", "a_port", "b", "b_port"))
    return [((client, server),) if is_own else ((_endpoint(a, a_port), _endpoint(b, b_port)),)
            for client, server, is_own, a, a_port, b, b_port in zip(clients, servers, *values, strict=True)]


def _legs_joined(legs: pl.DataFrame, flat: pl.DataFrame) -> list[Legs]:
    """`_legs_of` by joining each flow's first leg (`legs` sorted by flow)."""
    firsts = legs.lazy().filter(pl.col("flow").is_first_distinct()).join(flat.lazy().select("flow", "client", "client_port"), on="flow")
    turned = firsts.filter((pl.col("b") == pl.col("client")) & pl.col("b_port").eq_missing(pl.col("client_port")))
    swap = pl.col("_turned").fill_null(False)
    legs = legs.lazy().join(turned.select("flow", _turned=pl.lit(True)), on="flow", how="left", maintain_order="left").select(
        "flow", *(pl.when(swap).then(pl.col(x)).otherwise(pl.col(y)).alias(y) for x, y in _TURNED)).collect(engine=IN_MEMORY)
    pairs = tuple(zip(map(_endpoint, legs["a"].to_list(), legs["a_port"].to_list()),
                      map(_endpoint, legs["b"].to_list(), legs["b_port"].to_list()), strict=True))
    flow_of_leg, ids = legs["flow"].to_numpy(), flat["flow"].to_numpy()
    return [pairs[start:end] for start, end in zip(np.searchsorted(flow_of_leg, ids).tolist(),
                                                    np.searchsorted(flow_of_leg, ids, side="right").tolist(), strict=True)]


def _members(column: pl.Series, kind: type[Proto] | type[FlowState]) -> np.ndarray:
    """The members of `kind` a column of their values names, as an array of objects: each value told by its code in
    an Enum of them, not looked up one by one (20,000 conversations' protocols and states 2.6 -> 1.0 ms)."""
    members = list(kind)
    codes = column.cast(pl.Enum([m.value for m in members])).to_physical().to_numpy()
    made: np.ndarray = np.array(members, dtype=object)[codes]
    return made


def _flows(stats: pl.DataFrame, legs: pl.DataFrame, journeys: Ids, resets: Ids) -> list[Flow]:
    """A Flow of each row of `_stats` (sorted by flow), with its `_legs`, `journeys` and `resets`: what is decided per
    flow is decided over whole columns (state, client and server, the legs' orientation, the Community ID of IPv4
    conversations); Python makes the objects, one call each."""
    columns = _with_addresses(stats, stats.lazy().with_columns(**_states(), **_ends()).with_columns(
        pl.col("bytes", "out_of_order").fill_null(0), pl.col("head_proto").fill_null(0))).collect(engine=IN_MEMORY).lazy()
    v4 = (pl.col("proto") != Proto.ARP.value) & pl.col("client_v4").is_not_null() & pl.col("server_v4").is_not_null()
    flat, fast = pl.collect_all([columns.with_columns(_v4=v4), columns.filter(v4).select(
        "head_proto", "client_v4", "server_v4", pl.col("client_port", "server_port").fill_null(0))], engine=IN_MEMORY)
    col = {name: flat[name].to_list() for name in (
        "flow", "client", "client_port", "server", "server_port", "packets", "bytes", "first_ts", "last_ts",
        "syn_to_synack_ns", "synack_to_ack_ns", "retransmissions", "out_of_order", "zero_windows", "note")}
    protos, states = _members(flat.get_column("proto"), Proto), _members(flat.get_column("state"), FlowState)
    # (each address text is there, `?` without one: `_with_addresses`)
    clients, servers = (made_many(Endpoint, [col[end], col[f"{end}_port"]], flat.height) for end in ("client", "server"))
    legs_of = _legs_of(legs, flat, clients, servers)
    keys = community_ids_v4(*(fast[name].to_numpy() for name in fast.columns))
    if len(keys) < flat.height:  # the others one by one (at 2M, 106 of 20,000: 11 -> 1 ms)
        ids = np.empty(flat.height, dtype=object)
        fast_rows = flat.get_column("_v4").to_numpy()
        ids[fast_rows] = keys
        numbers = flat.get_column("head_proto").to_list()
        for at in np.flatnonzero(~fast_rows).tolist():
            client, server = clients[at], servers[at]
            ids[at] = (f"arp:{client.addr}-{server.addr}" if protos[at] is Proto.ARP else
                       community_id(numbers[at], client.addr, server.addr, client.port, server.port))
        keys = ids.tolist()
    handshakes: list[dict[str, int | None]] = [
        ({} if syn is None else {"syn_to_synack_ns": syn}) if ack is None else
        ({"synack_to_ack_ns": ack} if syn is None else {"syn_to_synack_ns": syn, "synack_to_ack_ns": ack})
        for syn, ack in zip(col["syn_to_synack_ns"], col["synack_to_ack_ns"], strict=True)]
    return made_many(Flow, [col["flow"], keys, protos, clients, servers, legs_of,
                            journeys, col["packets"], col["bytes"], col["first_ts"], col["last_ts"],
                            states, handshakes, col["retransmissions"], col["out_of_order"],
                            col["zero_windows"], resets,
                            [() if note is None else (note,) for note in col["note"]]], len(keys))
