"""Address translation and tunnels: what was rewritten where (informational), and the translations that are missing."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import numpy as np
import polars as pl

from cniscope.findings.catalogue import note, say
from cniscope.findings.facts import Facts, group_address
from cniscope.findings.found import Found
from cniscope.findings.losses import Losses
from cniscope.findings.mtu import TUNNEL_OVERHEAD
from cniscope.journeys import hop_arrays
from cniscope.models import Role
from cniscope.packets.schema import Tunnel, address_expr, ip4_text
from cniscope.results import (
    Change,
    ChangeKind,
    Evidence,
    Finding,
    FindingKind,
    Flow,
    Hop,
    Journey,
    Severity,
)


def rewrites(facts: Facts, losses: Losses) -> Found:
    """One `nat` finding per rewrite of a conversation (its undoing on the replies folded in), one `tunnel` per envelope."""
    return Found(_nat(facts) + _tunnels(facts))


OPPOSITE = {ChangeKind.DNAT: ChangeKind.SNAT, ChangeKind.SNAT: ChangeKind.DNAT}


def _nat(facts: Facts) -> list[Finding]:
    forward: dict[tuple[int | None, ChangeKind, str, str], tuple[Hop, list[int]]] = {}
    undone: dict[tuple[int | None, ChangeKind, str, str], tuple[Hop, list[int]]] = {}
    for j, hop, mine in _translated(facts.journeys):
        if hop.direction in ("B", "M") or group_address(facts.number(hop, "dst")):
            continue  # one multicast/broadcast packet from several senders looks alike: not a rewrite
        for change in mine:
            reverse = (j.flow, OPPOSITE[change.kind], change.after, change.before)
            if reverse in forward:
                undone.setdefault(reverse, (hop, []))[1].append(j.id)
            else:
                forward.setdefault((j.flow, change.kind, change.before, change.after), (hop, []))[1].append(j.id)
    out = []
    for key, (hop, ids) in forward.items():
        flow, kind, before, after = key
        side = "destination" if kind is ChangeKind.DNAT else "source"
        explanation = (f"Between two sightings of the same packet its {side} was rewritten from {before} to {after}; "
                       f"first seen rewritten at {facts.where(hop)}.")
        back = undone.get(key)
        if back is not None:
            explanation += " " + note("translated_back", after=after, before=before, where=facts.where(back[0]))
        out.append(Finding(
            kind=FindingKind.NAT, severity=Severity.INFO,
            title=f"{kind.value.upper()} {before} -> {after}",
            explanation=explanation,
            next_step=say("nat"), key="nat",
            node=facts.named(facts.node(hop)), iface=hop.iface,
            journeys=tuple(dict.fromkeys(ids + (back[1] if back else [])))[:200],
            flows=(flow,) if flow is not None else (), rows=(hop.row,) + ((back[0].row,) if back else ()),
            evidence=Evidence(packets=len(ids), received=len(back[1]) if back else 0, addresses=(before, after),
                              interfaces=(facts.where(hop),), rewrite=kind.value,
                              notes=("translated_back",) if back else ()),
        ))
    return out


def _translated(journeys: Sequence[Journey]) -> Iterator[tuple[Journey, Hop, list[Change]]]:
    """Each hop whose changes translate an address, in order, with its journey and those translations: the hops found
    by numpy among the materialised ones (`hop_arrays`: the translations worked out once per distinct tuple of
    changes), not hop by hop."""
    made = hop_arrays(journeys)
    if made is None:
        translations: dict[int, list[Change]] = {}
        for j in journeys:
            for hop in j.hops:
                if hop.changes:  # most hops change nothing
                    if id(hop.changes) not in translations:
                        translations[id(hop.changes)] = [c for c in hop.changes if c.kind in OPPOSITE]
                    if translations[id(hop.changes)]:
                        yield j, hop, translations[id(hop.changes)]
        return
    wanted = {id(changes): mine for changes in made.distinct if (mine := [c for c in changes if c.kind in OPPOSITE])}
    at = np.flatnonzero(np.isin(made.changes, np.fromiter(wanted, dtype=np.int64, count=len(wanted))))
    starts = np.cumsum(made.lengths) - made.lengths
    of_journey = np.searchsorted(starts, at, side="right") - 1
    for place, n in zip(of_journey.tolist(), (at - starts[of_journey]).tolist()):
        j = journeys[place]
        hop = j.hops[n]
        yield j, hop, wanted[id(hop.changes)]


class Envelopes(NamedTuple):
    """The capture's tunnel envelopes (`envelopes`): each with its ends as ranks in `texts`, and per kind and pair of ends
    (`_a`, `_b`: the lower and higher rank) how many packets each end sent (`ways`) and the pair's summary (`groups`)."""

    table: pl.DataFrame
    texts: list[str]
    ways: pl.DataFrame
    groups: pl.DataFrame


PAIR = ["tunnel", "_a", "_b"]
NAMED = 200  # journeys a tunnel finding names
PROBE = 4 * NAMED  # envelopes of a pair read for them: its first distinct journeys are among these unless packets repeat


def envelopes(table: pl.DataFrame) -> Envelopes:
    """What `_tunnels` reads of the packet table: the table alone (`Facts.ahead`)."""
    columns = ("row", "journey", "tunnel", "vni", "outer_dport")
    sides = [f"{side}{kind}" for side in ("outer_src", "outer_dst") for kind in ("", "6", "_name")]
    # the ends' IPv6 addresses and names read only where some sighting has one (most captures: none)
    read = [c for c in sides if c in V4_ENDS or table.get_column(c).null_count() < table.height]
    t = table.lazy().filter(pl.col("tunnel").fill_null(0) > 0).select(*columns, *read).collect()  # lazy: only these columns read
    # the columns that hold a value somewhere (IPv4 tunnels: the two addresses)
    held = [c for c in read if t.get_column(c).null_count() < t.height] or sides[:1]
    # the ends as text (IPv4, IPv6 or a name), written once per distinct end, not once per envelope; the envelopes
    # carry each text's rank among them (grouped and ordered as the texts, but as integers), the lower and the higher
    # of their two ends' (`_a`, `_b`) and the keys they are grouped by: their pair (`_pair`), and the sender (`_way`)
    keyed = held == list(V4_ENDS) and not any(t.get_column(c).null_count() for c in held)
    if keyed:
        t, texts = _keyed_v4(t, columns)
    else:
        t = t.with_columns(pl.lit(None, dtype=table.schema[c]).alias(c) for c in sides if c not in read)  # (null throughout)
        t, texts = _ranked(t, columns, sides, held)
        size = len(texts) + 1  # a rank, or none (the last)
        t = t.with_columns(_a=pl.min_horizontal("_s", "_d"), _b=pl.max_horizontal("_s", "_d"))
        pair = (pl.col("tunnel").cast(pl.UInt64) * size + pl.col("_a").fill_null(size - 1)) * size + pl.col("_b").fill_null(size - 1)
        t = t.with_columns(_pair=pair).with_columns(_way=pl.col("_pair") * size + pl.col("_s").fill_null(size - 1))
    # grouped by one integer made of the pair (and the sender): several keys at once are hashed row-encoded (0.13 ->
    # 0.08 s of CPU at 10M). Each a query of its own, not the two at once (`collect_all`: 60-90 MB more at the peak of
    # analyze at 10M), nor eager (each step a query: each lets the interpreter go, and beside the main thread's Python
    # took it back up to 5 ms later)
    # (in C where it can, each group's distinct journeys: `_key_groups`; and the senders' and the pairs' whole where
    # every envelope has both ends, their keys made of the ranks alone, and the pairs' lists need no grouping)
    senders = _key_groups(t, "_way") if keyed else None
    ways = _ways_of(t, senders, len(texts) + 1) if senders is not None else t.lazy().group_by("_way", maintain_order=True).agg(
        pl.col(*PAIR, "_s").first(), n=pl.col("journey").n_unique()).drop("_way").collect(engine="in-memory")
    lists = {name: _one_list(t, column) for name, column in _LISTS.items()}  # (None: grouped)
    pairs = _key_groups(t, "_pair")
    if keyed and pairs is not None and all(values is not None for values in lists.values()):
        return Envelopes(t.select("journey", *PAIR), texts, ways, _groups_of(t, pairs, lists))
    groups = _with_distinct(t, "_pair", pairs, "packets", lambda packets: t.lazy().group_by("_pair", maintain_order=True).agg(
        pl.col(*PAIR).first(), row=pl.col("row").first(), _s=pl.col("_s").first(), _d=pl.col("_d").first(),
        **{name: pl.col(column).drop_nulls().unique().sort() for name, column in _LISTS.items() if lists[name] is None},
        **packets, envelopes=pl.len(),
        ids=pl.col("journey").head(PROBE),  # not each pair's journeys made unique in order: 0.15 s of CPU at 10M
    ).collect(engine="in-memory"))
    for before, (name, column) in zip(("_d", *_LISTS), _LISTS.items()):
        if (values := lists[name]) is not None:
            groups.insert_column(groups.columns.index(before) + 1, pl.Series(name, [values] * groups.height, dtype=pl.List(t.schema[column])))
    return Envelopes(t.select("journey", *PAIR), texts, ways, groups)  # what `_tunnels` reads of each envelope


_LISTS = {"vnis": "vni", "ports": "outer_dport"}  # `envelopes`' groups: each pair's distinct values of these, in order


def _one_list(t: pl.DataFrame, column: str) -> list[int] | None:
    """Every pair's distinct values of `column` where the envelopes tell it without grouping them: none where every
    envelope has none, the one where every one has it (one VXLAN port and VNI: at 10M, grouping the 2M envelopes'
    values took 20 ms of CPU); else None."""
    low, high, nulls = t.select(low=pl.col(column).min(), high=pl.col(column).max(), nulls=pl.col(column).null_count()).row(0)
    if nulls == t.height:
        return []
    return [low] if nulls == 0 and low == high else None


def _with_distinct(t: pl.DataFrame, key: str, found: KeyGroups | None, name: str,
                   grouped: Callable[[dict[str, pl.Expr]], pl.DataFrame]) -> pl.DataFrame:
    """`grouped` (a group_by of `t` by `key`, given the expression of each group's distinct journeys as `name`, or
    nothing) with that count (`found`'s, else polars') as `name` in the expression's place, and without `key`."""
    if found is None:
        return grouped({name: pl.col("journey").n_unique()}).drop(key)
    frame = grouped({})
    frame.insert_column(frame.columns.index("envelopes"), pl.Series(name, found.counts[frame.get_column(key).to_numpy()].astype(np.uint32)))
    return frame.drop(key)


def _ways_of(t: pl.DataFrame, found: KeyGroups, size: int) -> pl.DataFrame:
    """`envelopes`' `ways` from each sender's key (`_keyed_v4`'s `_way`, in the order first met) and its distinct
    journeys: the pair and the sender read off the key, no group_by (20 ms of CPU at 10M)."""
    way = found.met.astype(np.int64)
    pair = way // size
    return pl.DataFrame([pl.Series("tunnel", pair // size // size, dtype=t.schema["tunnel"]),
                         *(pl.Series(name, part % size, dtype=pl.UInt32) for name, part in (("_a", pair // size), ("_b", pair), ("_s", way))),
                         pl.Series("n", found.counts[found.met], dtype=pl.UInt32)])


def _groups_of(t: pl.DataFrame, found: KeyGroups, lists: dict[str, list[int] | None]) -> pl.DataFrame:
    """`envelopes`' `groups` from each pair's (`_keyed_v4`'s `_pair`) first row, rows, distinct journeys and first
    journeys, and the lists every pair has (`_one_list`): no group_by (25 ms of CPU at 10M)."""
    first = t.select(*PAIR, "row", "_s", "_d")[found.firsts]
    size = first.height
    probes = np.split(found.probes, np.cumsum(np.minimum(found.sizes, PROBE))[:-1].tolist())
    return first.with_columns(
        *(pl.Series(name, [lists[name]] * size, dtype=pl.List(t.schema[column])) for name, column in _LISTS.items()),
        pl.Series("packets", found.counts[found.met], dtype=pl.UInt32), pl.Series("envelopes", found.sizes, dtype=pl.UInt32),
        pl.Series("ids", [p.tolist() for p in probes], dtype=pl.List(t.schema["journey"])))


class KeyGroups(NamedTuple):
    """What `_evidence.distinct_counts` tells of the envelopes' keys (`_key_groups`)."""

    counts: np.ndarray  # the distinct journeys of each key, by key
    met: np.ndarray  # the keys, in the order first met
    firsts: np.ndarray  # the first row of each (in `met`'s order)
    sizes: np.ndarray  # how many rows each has
    probes: np.ndarray  # the first PROBE journeys of each, one key's after another's


def _key_groups(t: pl.DataFrame, key: str) -> KeyGroups | None:
    """`KeyGroups` of the envelopes' column `key` (UInt32), in C (a bit a journey for each value: at 10M, 2M envelopes
    of 3 pairs and 6 senders, polars' `n_unique` took 17-19 ms a group_by); None where C is not built or the values
    are too many."""
    if not COMPILED or not t.height or t.schema[key] != pl.UInt32 or t.schema["journey"] != pl.UInt32 \
            or t.get_column("journey").null_count() or t.get_column(key).null_count():
        return None
    keys, journeys = (np.ascontiguousarray(t.get_column(c).to_numpy()) for c in (key, "journey"))
    most = int(keys.max()) + 1
    found = distinct_counts(keys, journeys, int(journeys.max()) + 1, most, PROBE) if most <= 1 << 24 else None
    if found is None:
        return None
    counts, met, firsts, sizes, probes = found
    return KeyGroups(np.frombuffer(counts, dtype=np.int64), np.frombuffer(met, dtype=np.uint32), np.frombuffer(firsts, dtype=np.int64),
                     np.frombuffer(sizes, dtype=np.int64), np.frombuffer(probes, dtype=np.uint32))


V4_ENDS = ("outer_src", "outer_dst")
FEW_ENDS = 16  # distinct IPv4 ends whose ranks are counted by comparisons, not searched for


def _ranked(t: pl.DataFrame, columns: tuple[str, ...], sides: list[str], held: list[str]) -> tuple[pl.DataFrame, list[str]]:
    """The envelopes (`columns`) with the ranks of their ends' texts (`_s`, `_d`), and the texts in order."""
    named = t.lazy().select(sides).unique().collect(engine="streaming").with_columns(  # streaming: no 155 MB table of hashes at 10M
        _s=address_expr("outer_src"), _d=address_expr("outer_dst"))
    texts = pl.concat([named["_s"], named["_d"]]).drop_nulls().unique().sort().to_list()
    rank = {text: at for at, text in enumerate(texts)}
    named = named.select(*sides, *(pl.col(c).replace_strict(rank, default=None, return_dtype=pl.UInt32) for c in ("_s", "_d")))
    # joined on the columns that hold a value somewhere: null matches null in the others
    return t.join(named.drop(c for c in sides if c not in held), on=held, how="left", nulls_equal=True,
                  maintain_order="left").select(*columns, "_s", "_d"), texts


def _keyed_v4(t: pl.DataFrame, columns: tuple[str, ...]) -> tuple[pl.DataFrame, list[str]]:
    """`envelopes`' ranks and keys of envelopes between IPv4 addresses, every one with both: each address's rank looked
    up among the few distinct ones (sorted) rather than the ends joined (0.075 -> 0.035 s of CPU at 10M), and the
    lower, the higher and the keys made by numpy, not by polars' expressions in the queries (`envelopes` at 2M 48 ->
    41 ms of CPU, at 10M 254 -> 233)."""
    values = np.unique(np.concatenate([t.get_column(c).unique().to_numpy() for c in V4_ENDS]))
    written = [ip4_text(int(v)) or "" for v in values.tolist()]
    texts = sorted(written)
    at = {text: n for n, text in enumerate(texts)}
    rank = np.array([at[text] for text in written], dtype=np.uint32)
    s, d = (np.take(rank, _positions(values, t.get_column(c).to_numpy())) for c in V4_ENDS)
    a, b = np.minimum(s, d), np.maximum(s, d)
    # (as the other ends' keys: a rank, or none; in 32 bits where they fit)
    size = len(texts) + 1
    tunnel: np.ndarray = t.get_column("tunnel").to_numpy().astype(np.uint32 if 256 * size ** 3 <= 1 << 32 else np.uint64)
    pair = (tunnel * size + a) * size + b
    return t.select(*columns).with_columns(_s=pl.Series(s), _d=pl.Series(d), _a=pl.Series(a), _b=pl.Series(b), _pair=pl.Series(pair),
                                           _way=pl.Series(pair * size + s)), texts


def _positions(values: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Where each of `found` is among `values` (sorted, distinct; each of `found` one of them): few, by counting those
    below it (a pass a value: 2M envelopes' ends among 4 values, 8 against 21 ms), else by binary search."""
    if len(values) > FEW_ENDS:
        return np.searchsorted(values, found)
    below = np.zeros(len(found), dtype=np.uint8)  # (a byte each: np.take of them 3.5 against 6.2 ms a side of 2M ends)
    for value in values[:-1]:
        below += found > value
    return below


def _tunnels(facts: Facts) -> list[Finding]:
    """One finding per envelope kind and pair of endpoints (both ways), from every envelope seen, inner sightings or not."""
    t, texts, ways, groups = facts.ahead(envelopes)
    counts: dict[tuple[int, object, object], list[str]] = {}
    for r in ways.iter_rows(named=True):
        counts.setdefault((r["tunnel"], r["_a"], r["_b"]), []).append(f"{r['n']} from {_text(texts, r['_s'])}")
    # the conversations of the materialised journeys of each pair, in order of first envelope: from their envelopes
    # only (a group's distinct journeys filtered afterwards hashed every envelope's journey once more: 0.2 s of CPU at
    # 10M), each journey's conversation looked up by numpy in an array by journey id (not journey by journey; hashed
    # by polars, 5 ms at 2M)
    places = facts.journey_places
    flow_of = np.array([-1 if j.flow is None else j.flow for j in facts.journeys] + [-1], dtype=np.int64)  # the last: none
    near = t.filter(pl.col("journey") < len(places))  # (materialised journeys have the lowest ids)
    flows = flow_of[places[near.get_column("journey").to_numpy()]]
    mine: dict[tuple[object, ...], list[int]] = {}  # each pair's distinct conversations, in order (a few thousand rows)
    for *pair, flow in near.lazy().with_columns(_flow=flows).filter(pl.col("_flow") >= 0).select(*PAIR, "_flow").unique(
            maintain_order=True).collect().iter_rows():
        if len(named := mine.setdefault(tuple(pair), [])) < 200:
            named.append(flow)
    out = []
    for first in groups.iter_rows(named=True):
        kind = Tunnel(first["tunnel"]).label
        vnis, ports = first["vnis"], first["ports"]
        vni = f" vni {vnis[0]}" if len(vnis) == 1 else (f" {len(vnis)} VNIs" if vnis else "")
        port = f" :{ports[0]}" if len(ports) == 1 else ""
        ends = (_text(texts, first["_s"]) or "(no address)", _text(texts, first["_d"]) or "(no address)")
        ids = list(dict.fromkeys(first["ids"]))[:NAMED]
        if len(ids) < NAMED and first["envelopes"] > len(first["ids"]):  # packets repeat among the first: read every envelope
            ids = t.filter(*(pl.col(c).eq_missing(first[c]) for c in PAIR))["journey"].unique(maintain_order=True).head(NAMED).to_list()
        count = ", ".join(counts[(first["tunnel"], first["_a"], first["_b"])])
        flows = tuple(mine.get(tuple(first[c] for c in PAIR), ()))
        out.append(Finding(
            kind=FindingKind.TUNNEL, severity=Severity.INFO,
            title=f"tunnel {kind}{vni}{port} between {ends[0]} and {ends[1]} ({first['packets']} packet(s))",
            explanation=f"Packets travel between these nodes inside a {kind} envelope ({count}); first seen: "
                        f"{facts.where(first['row'])}.",
            next_step=say("tunnel"), key="tunnel",
            node=facts.named(facts.node(first["row"])), iface=facts.text(first["row"], "iface"),
            journeys=tuple(ids), flows=flows, rows=(first["row"],),
            evidence=Evidence(packets=first["packets"], addresses=ends, overhead=TUNNEL_OVERHEAD.get(Tunnel(first["tunnel"])),
                              interfaces=(facts.where(first["row"]),)),
        ))
    return out


def _text(texts: list[str], rank: int | None) -> str | None:
    return None if rank is None else texts[rank]


def missing_reverse_nat(facts: Facts, losses: Losses) -> Found:
    """A reply reaching the client from the endpoint's address although the client called another (the service's)."""
    out = [_untranslated(facts, facts.flow_by_id[a], facts.flow_by_id[b]) for a, b in facts.untranslated.items()]
    for flow in facts.flows:
        if flow.proto not in ("tcp", "udp") or len(flow.legs) < 2:
            continue
        called = flow.server
        entry_nodes = {facts.node(h) for jid in flow.journeys if jid in facts.by_id for h in facts.by_id[jid].hops
                       if facts.addr(h, "dst") == called.addr and facts.number(h, "dport") == called.port}
        replies = []
        for jid in flow.journeys:
            j = facts.by_id.get(jid)
            if j is None or not j.hops:
                continue
            last = facts.path(j)[-1]
            src, dst = facts.addr(last, "src"), facts.addr(last, "dst")
            sport, dport = facts.number(last, "sport"), facts.number(last, "dport")
            if dst == flow.client.addr and dport == flow.client.port and (src, sport) != (called.addr, called.port):
                role = facts.role(last.iface) if last.direction == "Out" else None
                delivered = role is Role.HOST_VETH or (role is Role.NIC and facts.node(last) in entry_nodes)
                if delivered or facts.is_local(facts.node(last), dst):
                    replies.append((j, f"{src}:{sport}"))
        if not replies:
            continue
        wrong = {text for _, text in replies}
        client_rsts = [
            jid for jid in flow.resets
            if jid in facts.by_id and facts.addr(facts.by_id[jid].hops[0], "src") == flow.client.addr
        ]
        j, _text = replies[0]
        explanation = (f"{flow.client} called {called}, but the reply reached it from {', '.join(sorted(wrong))}, "
                       f"untranslated (delivered at {facts.where(facts.path(j)[-1])}). The client's stack knows no connection with that "
                       "address")
        explanation += (f" and answered with {len(client_rsts)} reset(s)." if client_rsts else ", so it will not accept it.")
        out.append(Finding(
            kind=FindingKind.MISSING_REVERSE_NAT, severity=Severity.ERROR,
            title=f"reply from {', '.join(sorted(wrong))} to {flow.client} missed its reverse NAT (client called {called})",
            explanation=explanation,
            next_step=say("missing_reverse_nat"), key="missing_reverse_nat",
            node=facts.named(facts.node(facts.path(j)[-1])), iface=facts.path(j)[-1].iface,
            journeys=tuple(x.id for x, _ in replies) + tuple(client_rsts), flows=(flow.id,),
            rows=tuple(h.row for x, _ in replies[:10] for h in x.hops),
            evidence=Evidence(packets=len(replies), retries=len(client_rsts),
                              addresses=(flow.client.addr, called.addr, *sorted({text.rsplit(":", 1)[0] for text in wrong})),
                              interfaces=tuple(dict.fromkeys(facts.where(facts.path(x)[-1]) for x, _ in replies))),
        ))
    return Found(out)


def _untranslated(facts: Facts, request: Flow, reply: Flow) -> Finding:
    """Requests to a service and their replies from the endpoint, seen as two conversations at one place."""
    client, called = request.client, request.server
    endpoint = reply.server if reply.client == client else reply.client
    replies = [j for j in reply.journeys if j in facts.first_row and facts.addr(facts.first_row[j], "src") == endpoint.addr]
    rows = [facts.first_row[j] for j in replies]
    places = list(dict.fromkeys(facts.where(r) for r in rows))
    missing = facts.unrecorded(rows[:1])
    return Finding(
        kind=FindingKind.MISSING_REVERSE_NAT, severity=Severity.ERROR,
        title=f"replies from {endpoint} reach {client} untranslated (it called {called}): missing reverse NAT",
        explanation=f"{client} sent {len(request.journeys)} packet(s) to {called} (a Service address: it never answers "
                    f"itself) and {len(replies)} answer(s) came back from {endpoint}, the endpoint's own address, answering "
                    f"the same requests; seen at {', '.join(places[:3])}. The reverse translation of the Service's DNAT "
                    "was not applied, so the client's socket, connected to the Service address, rejects them (an ICMP "
                    "port unreachable or a reset follows) and the requests look unanswered."
                    + (f" Here the client reset {len(reply.resets)} of them." if reply.resets else "") + facts.how_to_record(missing),
        next_step=say("missing_reverse_nat"), key="missing_reverse_nat",
        node=facts.named(facts.node(rows[0])) if rows else None, iface=facts.text(rows[0], "iface") if rows else None,
        journeys=tuple(request.journeys[:100]) + tuple(replies[:100]), flows=(request.id, reply.id),
        rows=tuple(rows[:50]),
        evidence=Evidence(packets=len(replies), sent=len(request.journeys), retries=len(reply.resets),
                          addresses=(client.addr, called.addr, endpoint.addr), interfaces=tuple(places), notes=missing),
    )


def missing_snat(facts: Facts, losses: Losses) -> Found:
    """A pod address leaving a node's NIC towards an address outside the cluster (known from the inventory)."""
    ranges = facts.cluster_ranges()
    if ranges is None or (facts.model is not None and facts.model.routes_pods_beyond_nodes):
        return Found([])
    known_nodes = set().union(*facts.local.values()) if facts.local else set()
    groups: dict[tuple[str, str | None, str], list[int]] = {}
    rows: dict[tuple[str, str | None, str], list[int]] = {}
    for j in facts.journeys:
        for hop in j.hops:
            if hop.direction != "Out" or facts.role(hop.iface) is not Role.NIC or facts.number(hop, "tunnel"):
                continue
            src, dst = facts.addr(hop, "src"), facts.addr(hop, "dst")
            if src is None or dst is None or ":" in src or dst in known_nodes:
                continue
            if _inside(src, ranges) and not _inside(dst, ranges):
                key = (facts.node(hop), hop.iface, src)
                groups.setdefault(key, []).append(j.id)
                rows.setdefault(key, []).append(hop.row)
    return Found([
        Finding(
            kind=FindingKind.MISSING_SNAT, severity=Severity.WARNING,
            title=f"pod address {src} leaves {facts.where(rows[(node, iface, src)][0])} without SNAT",
            explanation=f"{len(ids)} packet(s) from pod {src} went out of {facts.where(rows[(node, iface, src)][0])} to "
                        "addresses outside the cluster with the pod address as source. Outside hosts have no route back "
                        "to pod addresses, so replies get lost.",
            next_step=say("missing_snat"), key="missing_snat",
            node=facts.named(node), iface=iface, journeys=tuple(ids[:200]), rows=tuple(rows[(node, iface, src)][:50]),
            evidence=Evidence(packets=len(ids), addresses=(src,), device=iface,
                              interfaces=(facts.where(rows[(node, iface, src)][0]),)),
        )
        for (node, iface, src), ids in groups.items()
    ])


def _inside(addr: str, ranges: list[ipaddress.IPv4Network]) -> bool:
    ip = ipaddress.ip_address(addr)
    return any(ip in net for net in ranges)


try:
    from cniscope._evidence import distinct_counts
    COMPILED = True
except ImportError:  # built without a C compiler
    COMPILED = False
