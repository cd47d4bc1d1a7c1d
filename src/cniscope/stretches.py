"""A journey's stretches (its sightings on one node) and which node the packet passed first.

Clocks of different nodes are aligned only to microseconds (lab) or
milliseconds (NTP), while the hop from one node to the next takes
microseconds, so the order of nodes comes from what the packet and the
capture points say, strongest first, and from time only last:

1. *TTL*: routers decrement it, so the node that saw the higher TTL (highest,
   then lowest) saw the packet first. Used when every node shows one.
2. *Hand-over*: a packet leaves one node where it enters the next, and nodes
   are built alike: when A's last sighting is an Out on `eth0` and B's first
   an In on `eth0`, A came first. This is what `tcpdump -i any` text without
   `-v` (no TTL) still shows.
3. *Direction*: a node that only sent the packet comes before one that also
   or only received it, and one that only received it comes last.

`clocks` uses the same evidence, pair by pair, to tell sender from receiver
(it must not use time: that is what it estimates); `journeys` orders a
journey's stretches by it, then by corrected time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from cniscope.packets.schema import Direction

OUT = int(Direction.OUT)


STATS_SCHEMA = {
    "journey": pl.UInt64, "nodes": pl.Int64, "all_ttl": pl.Boolean, "_nid": pl.UInt32, "start": pl.Int64, "length": pl.Int64, "timed": pl.Boolean, "first": pl.Int64,
    "last": pl.Int64, "ttl_max": pl.Int16, "ttl_min": pl.Int16, "ttl_known": pl.Boolean, "sent": pl.Boolean,
    "received": pl.Boolean, "first_iface": pl.Int64, "first_in": pl.Boolean, "last_iface": pl.Int64, "last_out": pl.Boolean,
}


@dataclass
class Stretches:
    """`t` sorted by (journey, node, time), the permutation that sorted it, and one row per stretch in `stats`."""

    t: pl.DataFrame
    perm: np.ndarray
    stats: pl.DataFrame  # STATS_SCHEMA; an interface is a hash, -1 when the capture does not name it


def run_starts(*cols: str) -> pl.Expr:
    """True where a sorted frame's row begins a new run of `cols`."""
    expr = pl.lit(False)
    for c in cols:
        expr = expr | pl.col(c).ne_missing(pl.col(c).shift(1))
    return expr.fill_null(True)


def collect(t: pl.DataFrame, ts_col: str) -> Stretches:
    """Sort `t` (journey, _nid, `ts_col`, ttl, direction, iface, row) by journey, node and time; sum up each stretch."""
    egress_last = pl.when(pl.col("direction") == OUT).then(1).otherwise(0)
    perm = t.select(pl.arg_sort_by(["journey", "_nid", ts_col, egress_last, "row"])).to_series().to_numpy()
    s = t[perm]
    if s.height == 0:
        return Stretches(s, perm, pl.DataFrame(schema=STATS_SCHEMA))
    starts = np.flatnonzero(s.select(run_starts("journey", "_nid")).to_series().to_numpy())
    ends = np.append(starts[1:], s.height) - 1
    ts, ttl = s[ts_col], s["ttl"]
    dirs = s["direction"].fill_null(-1).to_numpy()
    iface = s.select(pl.when(pl.col("iface").is_not_null()).then((pl.col("iface").hash(seed=5) & (2**62 - 1)).cast(pl.Int64))
                     .otherwise(-1)).to_series().to_numpy()
    journey = s["journey"].to_numpy()[starts]
    run = np.flatnonzero(np.append(True, journey[1:] != journey[:-1]))  # first stretch of each journey
    per_run = np.diff(np.append(run, len(starts)))
    ttl_known = np.logical_or.reduceat(ttl.is_not_null().to_numpy(), starts)
    stats = pl.DataFrame({
        "journey": journey,
        "nodes": np.repeat(per_run, per_run),
        "all_ttl": np.repeat(np.logical_and.reduceat(ttl_known, run), per_run),
        "_nid": s["_nid"].to_numpy()[starts],
        "start": starts,
        "length": ends - starts + 1,
        "timed": np.logical_or.reduceat(ts.is_not_null().to_numpy(), starts),
        "first": np.minimum.reduceat(ts.fill_null(np.iinfo(np.int64).max).to_numpy(), starts),
        "last": np.maximum.reduceat(ts.fill_null(np.iinfo(np.int64).min).to_numpy(), starts),
        "ttl_max": np.maximum.reduceat(ttl.fill_null(0).to_numpy().astype(np.int16), starts),
        "ttl_min": np.minimum.reduceat(ttl.fill_null(255).to_numpy().astype(np.int16), starts),
        "ttl_known": ttl_known,
        "sent": np.logical_or.reduceat(dirs == OUT, starts),
        "received": np.logical_or.reduceat((dirs >= 0) & (dirs != OUT), starts),
        "first_iface": iface[starts],
        "first_in": (dirs[starts] >= 0) & (dirs[starts] != OUT),
        "last_iface": iface[ends],
        "last_out": dirs[ends] == OUT,
    }, schema=STATS_SCHEMA)
    return Stretches(s, perm, stats)


def handover(stats: pl.DataFrame) -> pl.DataFrame:
    """Pairs (a, b) of stretches of one journey where a hands the packet over to b: a's last sighting is an Out
    on the interface where b's first is an In. Columns journey, a, b (`_nid`s)."""
    leaving = stats.filter(pl.col("last_out") & (pl.col("last_iface") >= 0)).select("journey", a="_nid", iface="last_iface")
    arriving = stats.filter(pl.col("first_in") & (pl.col("first_iface") >= 0)).select("journey", b="_nid", iface="first_iface")
    return leaving.join(arriving, on=["journey", "iface"]).filter(pl.col("a") != pl.col("b")).select("journey", "a", "b")


def upstream_first(stretches: Stretches) -> tuple[pl.DataFrame, np.ndarray]:
    """`t` and its permutation with each journey's stretches reordered, upstream first (see the module's rules)."""
    t, perm, stats = stretches.t, stretches.perm, stretches.stats
    several = stats["nodes"].to_numpy() > 1
    if not several.any():
        return t, perm
    at = np.flatnonzero(several)
    stats = stats.filter(pl.Series(several))
    pairs = handover(stats)
    if pairs.height:  # each hand-over counts against its giver and for its taker
        score = pl.concat([pairs.select("journey", _nid="b", s=pl.lit(1)), pairs.select("journey", _nid="a", s=pl.lit(-1))])
        score = score.group_by("journey", "_nid").agg(pl.col("s").sum())
        stats = stats.join(score, on=["journey", "_nid"], how="left", maintain_order="left")
    else:
        stats = stats.with_columns(s=pl.lit(None, dtype=pl.Int32))
    all_known = pl.col("all_ttl")
    keyed = stats.select(
        "journey",
        ttl_max=pl.when(all_known).then(-pl.col("ttl_max")).otherwise(0),
        ttl_min=pl.when(all_known).then(-pl.col("ttl_min")).otherwise(0),
        handover=pl.col("s").fill_null(0),
        role=pl.when(pl.col("sent") & ~pl.col("received")).then(0).when(pl.col("received") & ~pl.col("sent")).then(2).otherwise(1),
        first=pl.col("first"),
        nid=pl.col("_nid"),
    )
    order = np.arange(len(several))
    order[at] = at[keyed.select(pl.arg_sort_by(keyed.columns)).to_series().to_numpy()]  # one node: stays
    everything = stretches.stats
    starts, lengths = everything["start"].to_numpy()[order], everything["length"].to_numpy()[order]
    gather = np.arange(t.height) + np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    return t[gather], perm[gather]


def sender_pairs(stats: pl.DataFrame) -> pl.DataFrame:
    """For every two nodes of a journey, which one sent the packet to the other, from the evidence alone (no time).

    Columns: a, b (`_nid`, the sender first), gap (b's first sighting minus a's last, on the raw clocks).
    Pairs the evidence cannot order are left out.
    """
    two = stats.filter(pl.col("nodes") == 2)  # most journeys that cross nodes: neighbours (sorted by journey, node)
    more = stats.filter(pl.col("nodes") > 2)
    pairs = pl.concat([
        pl.concat([two.gather_every(2), two.gather_every(2, offset=1).select(pl.all().name.suffix("_r"))], how="horizontal"),
        more.join(more, on="journey", suffix="_r").filter(pl.col("_nid") < pl.col("_nid_r")).drop("journey_r", strict=False),
    ], how="diagonal_relaxed").filter(pl.col("timed") & pl.col("timed_r"))
    if pairs.is_empty():
        return pl.DataFrame(schema={"a": pl.UInt32, "b": pl.UInt32, "gap": pl.Int64})
    ttl_says = (
        pl.when(~pl.col("ttl_known") | ~pl.col("ttl_known_r")).then(0)
        .when(pl.col("ttl_max") > pl.col("ttl_max_r")).then(1)
        .when(pl.col("ttl_max") < pl.col("ttl_max_r")).then(-1)
        .when(pl.col("ttl_min") > pl.col("ttl_min_r")).then(1)
        .when(pl.col("ttl_min") < pl.col("ttl_min_r")).then(-1)
        .otherwise(0)
    )
    forward = pl.col("last_out") & pl.col("first_in_r") & (pl.col("last_iface") >= 0) & (pl.col("last_iface") == pl.col("first_iface_r"))
    backward = pl.col("last_out_r") & pl.col("first_in") & (pl.col("last_iface_r") >= 0) & (pl.col("last_iface_r") == pl.col("first_iface"))
    handover_says = pl.when(forward & ~backward).then(1).when(backward & ~forward).then(-1).otherwise(0)
    direction_says = (
        pl.when(pl.col("sent") & ~pl.col("sent_r") & pl.col("received_r")).then(1)
        .when(pl.col("sent_r") & ~pl.col("sent") & pl.col("received")).then(-1)
        .otherwise(0)
    )
    way = pl.when(ttl_says != 0).then(ttl_says).when(handover_says != 0).then(handover_says).otherwise(direction_says)
    pairs = pairs.with_columns(way=way)
    return pl.concat([
        pairs.filter(pl.col("way") == 1).select(a="_nid", b="_nid_r", gap=pl.col("first_r") - pl.col("last")),
        pairs.filter(pl.col("way") == -1).select(a="_nid_r", b="_nid", gap=pl.col("first") - pl.col("last_r")),
    ])
