"""Requests that never got a reply anywhere in the capture: TCP SYN, DNS query, ICMP echo, ARP request.

Each request kind is matched to its reply by the protocol's own fields
(`KINDS`): the SYN-ACK to the SYN, the DNS answer to the query id, the
echo reply to the echo id and sequence, the ARP reply from the asked
address. Retries are counted. A capture that stopped right after the
request, or that shows no packet at all going the other way (a one-way
filter such as `dst host X`), cannot prove a missing reply: the first is
skipped, the second reported with that caveat.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from cniscope.findings.context import Context
from cniscope.packets.schema import ip4_text
from cniscope.results import Finding, FindingKind, Flow, Journey, Severity

REPLY_WAIT_NS = 200_000_000  # a capture must show packets this long after a request before its reply can be called missing
FOLLOW_WINDOW_NS = 10_000_000_000  # ... and not much later: a capture glued from separate runs has gaps
ONE_WAY_WINDOW_NS = 10_000_000_000
SYN, ACK, RST = 2, 16, 4


@dataclass(frozen=True)
class RequestKind:
    name: str
    is_request: Callable[[Context, Journey], bool]
    answer_key: Callable[[Context, Journey], object]  # equal for a request and the replies that answer it
    is_reply: Callable[[Context, Journey], bool]
    next_step: str


def _v(ctx: Context, j: Journey, column: str) -> object:
    return ctx.value(j.hops[0], column)


def _flags(ctx: Context, j: Journey) -> int:
    return int(_v(ctx, j, "tcp_flags") or 0)  # type: ignore[call-overload]


KINDS: dict[str, RequestKind] = {
    "tcp": RequestKind(
        "TCP SYN",
        lambda c, j: _v(c, j, "proto") == 6 and _flags(c, j) & (SYN | ACK) == SYN,
        lambda c, j: "connection",
        lambda c, j: _v(c, j, "proto") == 6 and (_flags(c, j) & (SYN | ACK) == SYN | ACK or bool(_flags(c, j) & RST)),
        "Follow the SYN: where it was last seen is where to look next (is anything listening on the server, does the "
        "SYN reach the server's node, does the SYN-ACK leave it?).",
    ),
    "dns": RequestKind(
        "DNS query",
        lambda c, j: _v(c, j, "dns_id") is not None and _v(c, j, "dns_qr") is False,
        lambda c, j: _v(c, j, "dns_id"),
        lambda c, j: _v(c, j, "dns_id") is not None and _v(c, j, "dns_qr") is True,
        "Check that the DNS pods run and are endpoints of the DNS service, and follow the query to the DNS pod's node: "
        "if the answer leaves the DNS pod, find the hop where it stops.",
    ),
    "icmp": RequestKind(
        "ICMP echo request",
        lambda c, j: _v(c, j, "icmp_type") in (8, 128),
        lambda c, j: (_v(c, j, "icmp_id"), _v(c, j, "icmp_seq")),
        lambda c, j: _v(c, j, "icmp_type") in (0, 129),
        "Follow the echo request: the hop after its last sighting is where it (or the reply) is lost; ICMP may also be "
        "filtered on purpose.",
    ),
}


def unanswered(ctx: Context) -> list[Finding]:
    out = []
    for flow in ctx.flows:
        journeys = [ctx.by_id[jid] for jid in flow.journeys if jid in ctx.by_id and ctx.by_id[jid].hops]
        for kind in KINDS.values():
            requests = [j for j in journeys if kind.is_request(ctx, j)]
            if not requests:
                continue
            answered = {kind.answer_key(ctx, j) for j in journeys if kind.is_reply(ctx, j)}
            missing = [j for j in requests if kind.answer_key(ctx, j) not in answered]
            missing = [j for j in missing if _capture_went_on(ctx, j)]
            if missing:
                out.append(_finding(ctx, kind, flow, missing, len({kind.answer_key(ctx, j) for j in missing})))
    out.extend(_arp(ctx))
    return out


def _capture_went_on(ctx: Context, j: Journey) -> bool:
    """Did the input that last saw the request keep capturing long enough for a reply to show?"""
    last = ctx.path(j)[-1]
    ts = ctx.value(last, "ts")
    if ts is None:
        return True  # no timestamps (tcpdump -t): order is all there is
    return ctx.sightings_between(ctx.value(last, "input"), ts + REPLY_WAIT_NS, ts + FOLLOW_WINDOW_NS)  # type: ignore[arg-type, operator]


def _finding(ctx: Context, kind: RequestKind, flow: Flow, missing: list[Journey], distinct: int) -> Finding:
    last = ctx.path(missing[-1])[-1]
    node = ctx.node(last)
    retries = len(missing) - distinct
    one_way = _one_way(ctx, missing)
    errors = _icmp_errors(ctx, flow)
    explanation = (f"{len(missing)} {kind.name}(s) ({distinct} distinct, {retries} retr{'y' if retries == 1 else 'ies'}) "
                   f"from {flow.client} to {flow.server}, no reply anywhere in the capture; the last was last seen at "
                   f"{last.point or node}.")
    if errors:
        explanation += " ICMP errors quote this conversation: " + "; ".join(errors) + "."
    if one_way:
        explanation += (" The capture shows no packet at all going the other way around that time: if it was taken with "
                        "a one-way filter (src/dst host ...), replies could not appear in it.")
    return Finding(
        kind=FindingKind.UNANSWERED, severity=Severity.WARNING if one_way else Severity.ERROR,
        title=f"{kind.name} from {flow.client} to {flow.server}: no reply ({len(missing)} sent)",
        explanation=explanation, next_step=kind.next_step,
        node=last.node, iface=last.iface,
        journeys=tuple(j.id for j in missing), flows=(flow.id,),
        rows=tuple(h.row for j in missing[:20] for h in j.hops),
    )


def _one_way(ctx: Context, journeys: list[Journey]) -> bool:
    """True when the inputs that saw these journeys show no address pair in both directions around those moments."""
    seen = sorted({(ctx.value(h, "input"), ctx.value(h, "ts")) for j in journeys for h in j.hops}, key=str)
    windows: list[tuple[object, int | None, int | None]] = []
    for source, ts in seen:
        lo, hi = (None, None) if ts is None else (ts - ONE_WAY_WINDOW_NS, ts + ONE_WAY_WINDOW_NS)  # type: ignore[operator]
        if windows and windows[-1][0] == source and lo is not None and windows[-1][2] is not None and lo <= windows[-1][2]:
            windows[-1] = (source, windows[-1][1], hi)
        else:
            windows.append((source, lo, hi))
    inside = pl.lit(False)
    for source, lo, hi in windows[:64]:
        here = pl.col("input") == source
        if lo is not None:
            here = here & pl.col("ts").is_between(lo, hi)
        inside = inside | here.fill_null(False)
    pairs = ctx.table.filter(inside & pl.col("src").is_not_null()).select("src", "dst").unique()
    both = pairs.join(pairs.rename({"src": "dst", "dst": "src"}), on=["src", "dst"], how="inner")
    return both.is_empty()


def _icmp_errors(ctx: Context, flow: Flow) -> list[str]:
    """ICMP errors (unreachable, time exceeded) that quote a packet of this flow."""
    ends = {(e.addr, e.port) for leg in flow.legs for e in leg} | {(flow.client.addr, flow.client.port), (flow.server.addr, flow.server.port)}
    errs = ctx.table.filter(pl.col("icmp_type").is_in([3, 11]) & pl.col("quoted_src").is_not_null())
    out = []
    for r in errs.iter_rows(named=True):
        src = (ip4_text(r["quoted_src"]), r["quoted_sport"])
        dst = (ip4_text(r["quoted_dst"]), r["quoted_dport"])
        if src in ends and dst in ends:
            what = {(3, 0): "network unreachable", (3, 1): "host unreachable", (3, 3): "port unreachable",
                    (3, 4): "fragmentation needed", (3, 13): "administratively prohibited"}.get(
                (r["icmp_type"], r["icmp_code"]), f"type {r['icmp_type']} code {r['icmp_code']}")
            text = f"{what} from {ip4_text(r['src'])}"
            if text not in out:
                out.append(text)
    return out[:5]


def _arp(ctx: Context) -> list[Finding]:
    """ARP requests for an address that never answered (probes and gratuitous ARP excluded)."""
    arp = ctx.table.filter(pl.col("arp_op").is_not_null())
    if arp.is_empty():
        return []
    replied = set(arp.filter(pl.col("arp_op") == 2)["arp_spa"].to_list())
    asks: dict[int, list[Journey]] = defaultdict(list)
    for j in ctx.journeys:
        if not j.hops or ctx.value(j.hops[0], "arp_op") != 1:
            continue
        spa, tpa = ctx.value(j.hops[0], "arp_spa"), ctx.value(j.hops[0], "arp_tpa")
        if tpa is None or spa in (0, tpa) or tpa in replied:
            continue
        if not _capture_went_on(ctx, j):
            continue
        asks[tpa].append(j)  # type: ignore[index]
    out = []
    for tpa, js in asks.items():
        last = ctx.path(js[-1])[-1]
        askers = sorted({ip4_text(ctx.value(j.hops[0], "arp_spa")) or "?" for j in js})  # type: ignore[arg-type]
        out.append(Finding(
            kind=FindingKind.UNANSWERED, severity=Severity.ERROR,
            title=f"ARP who-has {ip4_text(tpa)}: no reply ({len(js)} request(s) from {', '.join(askers)})",
            explanation=f"{ip4_text(tpa)} never answered ARP ({len(js) - 1} retr{'y' if len(js) == 2 else 'ies'}); last request "
                        f"seen at {last.point}. Nothing can be sent to it on that link until it does.",
            next_step=f"Is {ip4_text(tpa)} up and on the same link? For a gateway answered by proxy ARP (calico's 169.254.1.1), "
                      "check proxy_arp on the host veth and that the node has a route out another interface.",
            node=last.node, iface=last.iface, journeys=tuple(j.id for j in js),
            rows=tuple(h.row for j in js[:20] for h in j.hops),
        ))
    return out
