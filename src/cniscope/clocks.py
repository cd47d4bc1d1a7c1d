"""Clock offsets between nodes, estimated from the packets themselves.

Two-way (NTP's idea): a packet from A to B seen at A at a and at B at b gives
b - a = offset + delay; one from B to A gives a - b = -offset + delay'. The
smallest sample of each direction is the least delayed, so
offset = (min(A->B) - min(B->A)) / 2, within +/- (min(A->B) + min(B->A)) / 2.
Which node sent the packet comes from the evidence `stretches` weighs (TTL,
the hand-over from one node's Out to the next one's In on a like-named
interface, direction): never from the clocks being corrected.

When the nodes share no packet (separate capture runs), the sender's own
clock, carried in the packets, still ties them: TCP timestamp values, or the
sequence numbers of a periodic ICMP echo stream (ping), whose interval is
measured on each node. The estimate is coarser and reported as such.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from cniscope import stretches
from cniscope.results import NodeClock


def _pair_samples(t: pl.DataFrame) -> pl.DataFrame:
    """One-way samples for every cross-node journey: (a, b, d) meaning a packet travelled a -> b in d ns (raw)."""
    stats = stretches.collect(t.select("journey", "_nid", "ts", "ttl", "direction", "iface", "row"), "ts").stats
    names = dict(t.select("_nid", "_node").unique().iter_rows())
    return stretches.sender_pairs(stats).select(
        a=pl.col("a").replace_strict(names, return_dtype=pl.Utf8),
        b=pl.col("b").replace_strict(names, return_dtype=pl.Utf8),
        d=pl.col("gap"),
    )


def _two_way(mins: pl.DataFrame) -> dict[tuple[str, str], tuple[int, int, int, str]]:
    """(a, b) -> (offset of b relative to a, uncertainty, samples, method), a < b, from the samples' minimum `m`
    and count `n` of each (a, b)."""
    out: dict[tuple[str, str], tuple[int, int, int, str]] = {}
    if mins.is_empty():
        return out
    found = {(r["a"], r["b"]): (r["m"], r["n"]) for r in mins.iter_rows(named=True)}
    for (a, b), (m_ab, n_ab) in found.items():
        if a > b:
            continue
        back = found.get((b, a))
        if back is not None:
            m_ba, n_ba = back
            out[(a, b)] = ((m_ab - m_ba) // 2, abs(m_ab + m_ba) // 2, n_ab + n_ba, "two-way")
        else:
            out[(a, b)] = (m_ab, 0, n_ab, "one-way")
    for (a, b), (m_ba, n_ba) in found.items():
        if a > b and (b, a) not in found:
            out[(b, a)] = (-m_ba, 0, n_ba, "one-way")
    return out


def _sender_clock(echoes: pl.DataFrame) -> dict[tuple[str, str], tuple[int, int, int, str]]:
    """Offsets tied by the senders' clocks: ping sequence numbers (TCP timestamps would follow the same pattern).
    `echoes`: each echo request's first time on each node (`_node`, `icmp_id`, `icmp_seq`, `ts`)."""
    if echoes.is_empty():
        return {}
    per_point = echoes.sort(["_node", "icmp_id", "icmp_seq"])
    steps = per_point.with_columns(
        dt=pl.col("ts").diff().over(["_node", "icmp_id"]),
        ds=pl.col("icmp_seq").cast(pl.Int64).diff().over(["_node", "icmp_id"]),
    ).filter(pl.col("ds") > 0)
    if steps.is_empty():
        return {}
    interval = (steps["dt"] / steps["ds"]).median()
    if not isinstance(interval, int | float) or interval <= 0:  # None: no steps with a time
        return {}
    base = per_point.with_columns(c=pl.col("ts") - (pl.col("icmp_seq").cast(pl.Float64) * interval).cast(pl.Int64))
    per_node = base.group_by(["_node", "icmp_id"]).agg(c=pl.col("c").median(), spread=pl.col("c").max() - pl.col("c").min(), n=pl.len())
    out: dict[tuple[str, str], tuple[int, int, int, str]] = {}
    rows = per_node.to_dicts()
    for x in rows:
        for y in rows:
            if x["icmp_id"] == y["icmp_id"] and x["_node"] < y["_node"] and (x["_node"], y["_node"]) not in out:
                unc = int(max(x["spread"], y["spread"]) + interval * 0.01)
                out[(x["_node"], y["_node"])] = (int(y["c"] - x["c"]), unc, x["n"] + y["n"], "sender-clock")
    return out


@dataclass(frozen=True)
class Observations:
    """What the estimate reads of the sightings (journeys grouped on the raw clocks), reduced: those of parts of
    a capture (every sighting of a journey in one part) `merge` into the whole capture's."""

    firsts: pl.DataFrame  # _node, input, row: each node's first input and row
    mins: pl.DataFrame  # a, b, m, n: the least one-way delay from a to b and how many journeys showed one
    echoes: pl.DataFrame  # _node, icmp_id, icmp_seq, ts: each echo request's first time on each node


def observe(t: pl.DataFrame) -> Observations:
    """`t`: `journey`, `_node`, `_nid`, `input`, `row`, `ts` (raw), `ttl`, `direction`, `iface`, `icmp_*`."""
    firsts = t.select("_node", "input", "row").group_by("_node").agg(pl.col("input").min(), pl.col("row").min())
    mins = _pair_samples(t).group_by(["a", "b"]).agg(m=pl.col("d").min(), n=pl.len())
    return Observations(firsts, mins, _echoes(t))


def _echoes(t: pl.DataFrame) -> pl.DataFrame:
    echo = t.filter((pl.col("icmp_type").is_in([8, 128])) & pl.col("icmp_seq").is_not_null() & pl.col("ts").is_not_null())
    return echo.group_by(["_node", "icmp_id", "icmp_seq"]).agg(ts=pl.col("ts").min())


def merge(parts: list[Observations]) -> Observations:
    """The observations of a capture from those of its parts."""
    firsts = pl.concat([p.firsts for p in parts], how="vertical_relaxed").group_by("_node").agg(pl.col("input").min(), pl.col("row").min())
    mins = pl.concat([p.mins for p in parts], how="vertical_relaxed").group_by(["a", "b"]).agg(pl.col("m").min(), pl.col("n").sum())
    echoes = pl.concat([p.echoes for p in parts], how="vertical_relaxed").group_by(["_node", "icmp_id", "icmp_seq"]).agg(pl.col("ts").min())
    return Observations(firsts, mins, echoes)


def estimate(t: pl.DataFrame) -> list[NodeClock]:
    """Offsets of every node relative to the first node, for tables with several nodes."""
    return offsets(observe(t))


def offsets(seen: Observations) -> list[NodeClock]:
    """`estimate`, from what was observed."""
    nodes = seen.firsts.sort(["input", "row"])["_node"].to_list()
    if len(nodes) < 2:
        return []
    edges = _two_way(seen.mins)
    for pair, value in _sender_clock(seen.echoes).items():
        edges.setdefault(pair, value)
    reference = nodes[0]
    known: dict[str, tuple[int, int, int, str]] = {reference: (0, 0, 0, "reference")}
    changed = True
    while changed:
        changed = False
        for (a, b), (off, unc, n, method) in sorted(edges.items()):  # sorted: the same result on every run
            if a in known and b not in known:
                o, u, _, _ = known[a]
                known[b] = (o + off, u + unc, n, method)
                changed = True
            elif b in known and a not in known:
                o, u, _, _ = known[b]
                known[a] = (o - off, u + unc, n, method)
                changed = True
    return [
        NodeClock(node=node, offset_ns=off, uncertainty_ns=unc, samples=n, reference=reference, method=method)
        for node, (off, unc, n, method) in sorted(known.items(), key=lambda kv: nodes.index(kv[0]))
        if node != reference
    ]


def corrected(offsets: list[NodeClock]) -> pl.Expr:
    """`ts` on the reference node's clock."""
    expr = pl.col("ts")
    if not offsets:
        return expr
    table = {c.node: c.offset_ns for c in offsets}
    shift = pl.col("_node").replace_strict(table, default=0, return_dtype=pl.Int64)
    return (pl.col("ts") - shift).alias("ts")
