"""Conversations: journeys joined into flows, before and after NAT.

A journey's sightings may carry several address/port tuples (one per NAT
stage). Two journeys belong to one conversation when they share a tuple, in
either direction; so the pre-NAT and post-NAT legs of one connection join
through the journeys that were seen on both sides of the rewrite.

The flow key is the Community ID (v1, seed 0) of the first leg seen: the
direction-free id that Zeek, Suricata and Wireshark also print.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import struct
from dataclasses import replace

import polars as pl

from cniscope.packets.schema import ip4_text
from cniscope.results import Endpoint, Flow, Journey

SYN, FIN, RST, ACK = 2, 1, 4, 16
PROTO_NAMES = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmp6"}


def _ip(col: str) -> pl.Expr:
    return pl.coalesce(pl.col(col).cast(pl.Utf8), pl.col(f"{col}6"))


def tuple_id() -> pl.Expr:
    """Direction-free id of the (proto, endpoints) of a sighting; ICMP echo uses its id as the port."""
    a = pl.struct(ip=_ip("src"), port=pl.coalesce(pl.col("sport"), pl.col("icmp_id")))
    b = pl.struct(ip=_ip("dst"), port=pl.coalesce(pl.col("dport"), pl.col("icmp_id")))
    a_h, b_h = a.hash(seed=5), b.hash(seed=5)
    lo = pl.min_horizontal(a_h, b_h)
    hi = pl.max_horizontal(a_h, b_h)
    arp = pl.struct(
        lo=pl.min_horizontal(pl.col("arp_spa"), pl.col("arp_tpa")), hi=pl.max_horizontal(pl.col("arp_spa"), pl.col("arp_tpa"))
    ).hash(seed=6)
    return (
        pl.when(pl.col("arp_op").is_not_null())
        .then(arp)
        .otherwise(pl.struct(proto=pl.col("proto"), lo=lo, hi=hi).hash(seed=7))
        .alias("tuple")
    )


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


def assign(table: pl.DataFrame) -> pl.DataFrame:
    """Add `flow` (UInt32, numbered by first appearance) to a correlated table."""
    t = table.with_columns(tuple_id())
    multi = t.group_by("journey").agg(tuples=pl.col("tuple").unique()).filter(pl.col("tuples").list.len() > 1)
    roots = _components(multi)
    if roots:
        mapping = pl.DataFrame({"tuple": list(roots), "_root": list(roots.values())}, schema={"tuple": pl.UInt64, "_root": pl.UInt64})
        t = t.join(mapping, on="tuple", how="left").with_columns(_root=pl.coalesce("_root", "tuple"))
    else:
        t = t.with_columns(_root=pl.col("tuple"))
    # a journey belongs to the flow of its first sighting's tuple root
    jflow = t.filter(pl.col("hop") == 0).select("journey", "_root", "row")
    order = jflow.group_by("_root").agg(_first=pl.col("row").min()).sort("_first").with_columns(
        flow=pl.int_range(pl.len()).cast(pl.UInt32)
    )
    jflow = jflow.join(order.select("_root", "flow"), on="_root").select("journey", "flow")
    return t.drop(["_root"]).join(jflow, on="journey", how="left").sort("row")


def community_id(proto: int, src: str, dst: str, sport: int | None, dport: int | None) -> str:
    """Community ID v1 (seed 0) of a flow; ICMP ports are type/code per the spec, echo approximated by id."""
    try:
        s, d = socket.inet_pton(socket.AF_INET, src), socket.inet_pton(socket.AF_INET, dst)
    except OSError:
        try:
            s, d = socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, dst)
        except OSError:
            return f"{proto}:{src}-{dst}"
    sp, dp = sport or 0, dport or 0
    if (s, sp) > (d, dp):
        s, d, sp, dp = d, s, dp, sp
    data = struct.pack("!H", 0) + s + d + struct.pack("!BB", proto, 0) + struct.pack("!HH", sp, dp)
    return "1:" + base64.b64encode(hashlib.sha1(data).digest()).decode()


def _endpoint(ip: str | None, port: int | None) -> Endpoint:
    return Endpoint(ip or "?", port)


def build(table: pl.DataFrame, journeys: list[Journey]) -> tuple[list[Flow], list[Journey]]:
    """Flow objects from a table with `journey`, `hop`, `flow`; journeys get their flow and re-send links."""
    first = table.filter(pl.col("hop") == 0).sort("journey")
    retrans_of = _retransmissions(first)
    flows: list[Flow] = []
    by_flow = first.partition_by("flow", as_dict=True, maintain_order=True)
    legs_by_flow = _legs(table)
    for (fid,), rows in by_flow.items():
        if fid is None:
            continue
        flows.append(_flow(int(fid), rows, legs_by_flow.get(int(fid), ()), retrans_of))
    jflow = dict(zip(first["journey"].to_list(), first["flow"].to_list()))
    journeys = [replace(j, flow=jflow.get(j.id), retransmission_of=retrans_of.get(j.id)) for j in journeys]
    return flows, journeys


def _retransmissions(first: pl.DataFrame) -> dict[int, int]:
    """Later journeys re-sending sequence space already sent in the flow -> the original journey."""
    tcp = first.filter(
        (pl.col("proto") == 6)
        & pl.col("seq").is_not_null()
        & ((pl.col("payload_len") > 0) | ((pl.col("tcp_flags") & (SYN | FIN)) > 0))
        & ((pl.col("tcp_flags") & RST) == 0)
    )
    if tcp.is_empty():
        return {}
    groups = tcp.sort(["ts", "row"], nulls_last=True).group_by(["flow", "seq", "payload_len", "tcp_flags"], maintain_order=True).agg(
        js=pl.col("journey")
    ).filter(pl.col("js").list.len() > 1)
    out: dict[int, int] = {}
    for js in groups["js"].to_list():
        for j in js[1:]:
            out[j] = js[0]
    return out


def _legs(table: pl.DataFrame) -> dict[int, tuple[tuple[Endpoint, Endpoint], ...]]:
    """Distinct (src, dst) pairs of each flow, in order of appearance, oriented client -> server."""
    t = table.select("flow", "row", "journey", "src", "dst", "src6", "dst6", "sport", "dport", "icmp_id", "proto").sort("row")
    seen = t.unique(subset=["flow", "src", "dst", "src6", "dst6", "sport", "dport"], maintain_order=True)
    legs: dict[int, list[tuple[Endpoint, Endpoint]]] = {}
    for r in seen.iter_rows(named=True):
        if r["flow"] is None:
            continue
        a = _endpoint(ip4_text(r["src"]) if r["src"] is not None else r["src6"], r["sport"])
        b = _endpoint(ip4_text(r["dst"]) if r["dst"] is not None else r["dst6"], r["dport"])
        lst = legs.setdefault(r["flow"], [])
        if (a, b) in lst or (b, a) in lst:
            continue
        # orient like the first leg: whoever shares an endpoint with the first leg's client side is the client
        if lst and (b == lst[0][0] or a == lst[0][1]):
            a, b = b, a
        lst.append((a, b))
    return {k: tuple(v) for k, v in legs.items()}


def _flow(fid: int, rows: pl.DataFrame, legs: tuple[tuple[Endpoint, Endpoint], ...], retrans_of: dict[int, int]) -> Flow:
    recs = rows.sort(["ts", "row"], nulls_last=True).to_dicts()
    head = recs[0]
    proto_num = head["proto"]
    proto = "arp" if head["arp_op"] is not None else PROTO_NAMES.get(proto_num, "other")
    src = ip4_text(head["src"]) if head["src"] is not None else head["src6"]
    dst = ip4_text(head["dst"]) if head["dst"] is not None else head["dst6"]
    client, server = _endpoint(src, head["sport"]), _endpoint(dst, head["dport"])
    syn = next((r for r in recs if r["tcp_flags"] is not None and r["tcp_flags"] & SYN and not r["tcp_flags"] & ACK), None)
    if syn is not None and syn is not head:
        client = _endpoint(ip4_text(syn["src"]), syn["sport"])
        server = _endpoint(ip4_text(syn["dst"]), syn["dport"])
    elif head["dns_qr"] is True or head["icmp_type"] in (0, 129):
        client, server = server, client  # the first packet seen is an answer: its sender is the server
    if legs and client != legs[0][0] and client in (legs[0][1],):
        legs = tuple((b, a) for a, b in legs)
    ts = [r["ts"] for r in recs if r["ts"] is not None]
    notes: list[str] = []
    handshake: dict[str, int | None] = {}
    state = "seen"
    resets: tuple[int, ...] = ()
    zero = 0
    out_of_order = 0
    if proto == "tcp":
        state, handshake, resets, zero, out_of_order = _tcp(recs, retrans_of)
    elif head["dns_id"] is not None:
        queries = {r["dns_id"] for r in recs if r["dns_qr"] is False}
        answers = {r["dns_id"] for r in recs if r["dns_qr"] is True}
        state = "answered" if queries and queries <= answers else ("unanswered" if queries else "answers only")
        notes.append(f"DNS: {len(queries)} queries, {len(queries & answers)} answered")
    elif proto in ("icmp", "icmp6"):
        reqs = {r["icmp_seq"] for r in recs if r["icmp_type"] in (8, 128)}
        reps = {r["icmp_seq"] for r in recs if r["icmp_type"] in (0, 129)}
        if reqs or reps:
            state = "answered" if reqs and reqs <= reps else ("unanswered" if reqs - reps else "replies only")
            notes.append(f"echo: {len(reqs)} requests, {len(reqs & reps)} replied")
        elif any(r["icmp_type"] == 3 for r in recs):
            state = "error"
    key = community_id(proto_num or 0, client.addr, server.addr, client.port, server.port) if proto != "arp" else f"arp:{src}-{dst}"
    return Flow(
        id=fid,
        key=key,
        proto=proto,
        client=client,
        server=server,
        legs=legs,
        journeys=tuple(r["journey"] for r in recs),
        packets=len(recs),
        bytes=sum(r["payload_len"] or 0 for r in recs if r["journey"] not in retrans_of),
        first_ts=min(ts) if ts else None,
        last_ts=max(ts) if ts else None,
        state=state,
        handshake=handshake,
        retransmissions=sum(1 for r in recs if r["journey"] in retrans_of),
        out_of_order=out_of_order,
        zero_windows=zero,
        resets=resets,
        notes=tuple(notes),
    )


def _tcp(recs: list[dict], retrans_of: dict[int, int]) -> tuple[str, dict[str, int | None], tuple[int, ...], int, int]:
    flags = [(r["tcp_flags"] or 0) for r in recs]
    syn = next((r for r, f in zip(recs, flags) if f & SYN and not f & ACK), None)
    synack = next((r for r, f in zip(recs, flags) if f & SYN and f & ACK), None)
    ack = None
    if synack is not None:
        isn_plus_one = (synack["seq"] + 1) & 0xFFFFFFFF if synack["seq"] is not None else None
        ack = next(
            (r for r, f in zip(recs, flags) if f & (SYN | FIN | RST) == 0 and f & ACK
             and r["ack"] in (isn_plus_one, 1) and (r["ts"] or 0) >= (synack["ts"] or 0)),
            None,
        )
    handshake: dict[str, int | None] = {}
    if syn is not None and synack is not None and syn["ts"] is not None and synack["ts"] is not None:
        handshake["syn_to_synack_ns"] = synack["ts"] - syn["ts"]
    if synack is not None and ack is not None and synack["ts"] is not None and ack["ts"] is not None:
        handshake["synack_to_ack_ns"] = ack["ts"] - synack["ts"]
    resets = tuple(r["journey"] for r, f in zip(recs, flags) if f & RST)
    fins = sum(1 for f in flags if f & FIN)
    zero = sum(1 for r, f in zip(recs, flags) if r["win"] == 0 and not f & RST)
    if resets:
        state = "reset"
    elif fins >= 2:
        state = "closed"
    elif syn is not None and synack is None:
        state = "unanswered"
    elif syn is not None and synack is not None and ack is None and len(recs) <= 2:
        state = "handshake incomplete"
    elif syn is not None:
        state = "established"
    else:
        state = "mid-stream"
    # out of order: a data segment below the highest end already sent by the same sender, not a re-send
    out_of_order = 0
    high: dict[tuple, int] = {}
    for r, f in zip(recs, flags):
        if r["seq"] is None or not r["payload_len"]:
            continue
        side = (r["src"], r["sport"])
        end = (r["seq"] + r["payload_len"]) & 0xFFFFFFFF
        if side in high and _before(r["seq"], high[side]) and r["journey"] not in retrans_of:
            out_of_order += 1
        if side not in high or _before(high[side], end):
            high[side] = end
    return state, handshake, resets, zero, out_of_order


def _before(a: int, b: int) -> bool:
    """Sequence-number comparison modulo 2**32."""
    return ((a - b) & 0xFFFFFFFF) > 0x7FFFFFFF
