"""Requests that never got a reply anywhere in the capture: TCP SYN, DNS query, ICMP echo, ARP request.

Each request kind is matched to its reply by the protocol's own fields
(`KINDS`), sent from the other end: anything the server sent back to the
SYN (SYN-ACK, RST, or a conversation that went on), the DNS answer to the
query id, the echo reply to the echo id and sequence, the ARP reply from
the asked address. Retries are counted. A capture that stopped right after the
request, or that shows no packet at all going the other way (a one-way
filter such as `dst host X`), cannot prove a missing reply: the first is
skipped, the second reported with that caveat.
"""

from __future__ import annotations

from collections import defaultdict
from concurrent.futures import Future
from dataclasses import dataclass
from itertools import compress

import numpy as np
import polars as pl

from cniscope.findings.catalogue import note, say
from cniscope.findings.facts import Facts
from cniscope.findings.found import Found
from cniscope.findings.losses import Losses
from cniscope.journeys import at_rows, columns_of
from cniscope.packets.schema import address_text, ip4_text, ip4_value
from cniscope.results import Evidence, Finding, FindingKind, Flow, Journey, Severity

REPLY_WAIT_NS = 200_000_000  # a capture must show packets this long after a request before its reply can be called missing
FOLLOW_WINDOW_NS = 10_000_000_000  # ... and not much later: a capture glued from separate runs has gaps
ONE_WAY_WINDOW_NS = 10_000_000_000
SYN, ACK, RST = 2, 16, 4


@dataclass(frozen=True)
class RequestKind:
    name: str
    is_request: pl.Expr  # on the first sighting of a journey
    answer_key: tuple[str, ...]  # columns equal for a request and the replies that answer it (none: any reply answers)
    is_reply: pl.Expr
    check: str  # the catalogue key of the next step


_FLAGS = pl.col("tcp_flags").fill_null(0)

KINDS: dict[str, RequestKind] = {
    "tcp": RequestKind(
        "TCP SYN",
        (pl.col("proto") == 6) & (_FLAGS & (SYN | ACK) == SYN),
        (),
        pl.col("proto") == 6,  # anything back from the other side: SYN-ACK, RST, or the talk went on
        "unanswered.tcp",
    ),
    "dns": RequestKind(
        "DNS query",
        pl.col("dns_id").is_not_null() & pl.col("dns_qr").eq_missing(False),
        ("dns_id",),
        pl.col("dns_id").is_not_null() & pl.col("dns_qr").eq_missing(True),
        "unanswered.dns",
    ),
    "icmp": RequestKind(
        "ICMP echo request",
        pl.col("icmp_type").is_in([8, 128]),
        ("icmp_id", "icmp_seq"),
        pl.col("icmp_type").is_in([0, 129]),
        "unanswered.icmp",
    ),
}
_READS = ("proto", "tcp_flags", "dns_id", "dns_qr", "icmp_type", "icmp_id", "icmp_seq", "sport")


Unanswered = list[tuple[Flow, "RequestKind", list[int], int, int]]


def unanswered(facts: Facts, losses: Losses, asked: Future[Unanswered] | None = None) -> Found:
    """Every journey of a flow counts, also those not materialised for the report (see `Facts.first_row`). `asked`:
    `requests_unanswered(facts)`, started elsewhere (`findings.detect_in`)."""
    out = []
    errors: pl.DataFrame | None = None  # ICMP errors quoting a packet: found once, for every finding
    for flow, kind, missing, distinct, requests in asked.result() if asked is not None else requests_unanswered(facts):
        if any(_capture_went_on(facts, facts.last_row(jid)) for jid in missing):
            if errors is None:
                errors = facts.ahead(icmp_quoting)
            out.append(_finding(facts, kind, flow, missing, distinct, requests, errors))
    out.extend(_arp(facts))
    return Found(out)


def requests_unanswered(facts: Facts) -> Unanswered:
    """Per conversation and request kind: the requests no reply answered (their journeys, in the conversation's
    order), how many of them are distinct (by `answer_key`; the rest are retries), and how many were sent. A reply
    answers when it comes from an end that sent none of the requests; over whole columns of every conversation's first
    sightings at once (nulls are values here: a request without an id is answered by a reply without one), each kind's
    queries run by polars at once (`collect_all`: one call, not a dozen, 0.02 -> 0.01 s at 2M)."""
    untranslated = facts.untranslated  # answered from the endpoint: missing_reverse_nat
    kept = ~np.isin(facts.flow_ids, np.fromiter(untranslated, dtype=np.int64, count=len(untranslated)))
    flows = list(compress(facts.flows, kept))
    counts, members = facts.flow_journeys  # (a generator over every conversation's journeys took 7 ms at 20,000)
    jids = members[np.repeat(kept, counts)]
    owner = np.repeat(np.arange(len(flows), dtype=np.int64), counts[kept])
    rows = facts.first_row.rows(jids)
    seen = rows >= 0
    gathered = at_rows(columns_of(facts.table, *_READS, "src", "src6", "src_name"), rows[seen])
    firsts = columns_of(gathered, *_READS).with_columns(addr=_address_keys(gathered), owner=pl.Series(owner[seen]),
                                                  journey=pl.Series(jids[seen]), order=pl.int_range(pl.len())).lazy()
    sender = ["owner", "addr", "sport"]
    queries = []
    for kind in KINDS.values():
        requests = firsts.filter(kind.is_request.fill_null(False))
        replies = firsts.filter(kind.is_reply.fill_null(False)).join(
            requests.select(sender).unique(), on=sender, how="anti", nulls_equal=True)
        answered = replies.select("owner", *kind.answer_key).unique()
        missing = requests.join(answered, on=["owner", *kind.answer_key], how="anti", nulls_equal=True)
        sent = requests.group_by("owner").len("sent")
        queries.append(missing.join(sent, on="owner").sort("order").select("owner", "journey", "sent", *kind.answer_key))
    found = []
    for index, (kind, lost) in enumerate(zip(KINDS.values(), pl.collect_all(queries))):
        parts: dict[int, tuple[list[int], set[tuple[object, ...]], int]] = {}  # per conversation, in order
        for at, journey, count, *key in lost.iter_rows():
            part = parts.setdefault(at, ([], set(), count))
            part[0].append(journey)
            part[1].add(tuple(key))
        for at, (journeys, keys, count) in parts.items():
            found.append((at, index, flows[at], kind, journeys, len(keys) if kind.answer_key else 1, count))
    return [(flow, kind, journeys, distinct, count) for _, _, flow, kind, journeys, distinct, count in sorted(found, key=lambda f: f[:2])]


def _address_keys(frame: pl.DataFrame) -> pl.Series:
    """A number for each row's source address as `Facts.addr` writes it (equal texts, equal numbers; null: none): its
    IPv4 address, else its IPv6 text (unless empty) or its name, numbered past every IPv4 address unless the text is
    one (text made for every row, and joined as text: 0.01 s of CPU at 2M)."""
    v6, name = pl.col("src6").cast(pl.String), pl.col("src_name").cast(pl.String)
    texts = frame.select(pl.when(pl.col("src").is_null()).then(pl.coalesce(pl.when(v6 != "").then(v6), name))).to_series()
    keys = {}
    for n, text in enumerate(texts.drop_nulls().unique(maintain_order=True).to_list()):
        v4 = _ip4(text)
        keys[text] = v4 if v4 is not None else (1 << 32) + n
    return frame.select(pl.col("src").cast(pl.Int64).fill_null(
        texts.replace_strict(list(keys), list(keys.values()), default=None, return_dtype=pl.Int64))).to_series()


def _ip4(text: str) -> int | None:
    """The IPv4 address whose text (`ip4_text`) this is, if any."""
    try:
        value = ip4_value(text)
    except ValueError:
        return None
    return value if ip4_text(value) == text else None


def _sender(facts: Facts, row: int) -> tuple[object, object]:
    return facts.addr(row, "src"), facts.number(row, "sport")


def _capture_went_on(facts: Facts, row: int) -> bool:
    """Did the input that last saw the request keep capturing long enough for a reply to show?"""
    ts, source = facts.number(row, "ts"), facts.number(row, "input")
    if ts is None or source is None:
        return True  # no timestamps (tcpdump -t): order is all there is
    return facts.sightings_between(source, ts + REPLY_WAIT_NS, ts + FOLLOW_WINDOW_NS)


def _finding(facts: Facts, kind: RequestKind, flow: Flow, missing: list[int], distinct: int, sent: int,
             quoting: pl.DataFrame) -> Finding:
    last = facts.last_row(missing[-1])
    point = facts.where(last)
    retries = len(missing) - distinct
    one_way = _one_way(facts, [r for jid in missing for r in facts.rows_of(jid)])
    errors = _icmp_errors(quoting, flow)
    explanation = (f"{len(missing)} {kind.name}(s) ({distinct} distinct, {retries} retr{'y' if retries == 1 else 'ies'}) "
                   f"from {flow.client} to {flow.server}, no reply anywhere in the capture; the last was last seen at "
                   f"{point}." + (f" {sent - len(missing)} other(s) of the {sent} sent were answered." if sent > len(missing) else ""))
    missing_parts = facts.unrecorded([last])
    explanation += facts.how_to_record(missing_parts)
    if errors:
        explanation += " ICMP errors quote this conversation: " + "; ".join(errors) + "."
    if one_way:
        explanation += " " + note("one_way")
    return Finding(
        kind=FindingKind.UNANSWERED, severity=Severity.WARNING if one_way else Severity.ERROR,
        title=f"{kind.name} from {flow.client} to {flow.server}: no reply ("
              + (f"{len(missing)} sent)" if sent == len(missing) else f"{len(missing)} of {sent} sent)"),
        explanation=explanation, next_step=say(kind.check), key=kind.check,
        node=facts.named(facts.node(last)), iface=facts.text(last, "iface"),
        journeys=tuple(missing), flows=(flow.id,),
        rows=tuple(r for jid in missing[:20] for r in facts.rows_of(jid)),
        evidence=Evidence(packets=len(missing), sent=sent, retries=retries, interfaces=(point,),
                          addresses=(flow.client.addr, flow.server.addr),
                          notes=missing_parts + (("one_way",) if one_way else ())),
    )


def _one_way(facts: Facts, rows: list[int]) -> bool:
    """True when the inputs that saw these rows show no address pair in both directions around those moments."""
    for source, ts in sorted({(facts.number(r, "input"), facts.number(r, "ts")) for r in rows}, key=str):
        lo, hi = (None, None) if ts is None else (ts - ONE_WAY_WINDOW_NS, ts + ONE_WAY_WINDOW_NS)
        if source is not None and facts.two_way_between(source, lo, hi):
            return False
    return True


def icmp_quoting(table: pl.DataFrame) -> pl.DataFrame:
    """The ICMP errors (unreachable, time exceeded) that quote an IPv4 packet (read ahead: `findings.EARLY`)."""
    columns = ("src", "src6", "src_name", "icmp_type", "icmp_code", "quoted_src", "quoted_sport", "quoted_dst", "quoted_dport")
    return table.lazy().filter(pl.col("icmp_type").is_in([3, 11]) & pl.col("quoted_src").is_not_null()).select(
        columns).collect()


def _icmp_errors(quoting: pl.DataFrame, flow: Flow) -> list[str]:
    """ICMP errors (unreachable, time exceeded) that quote a packet of this flow."""
    ends = {(e.addr, e.port) for leg in flow.legs for e in leg} | {(flow.client.addr, flow.client.port), (flow.server.addr, flow.server.port)}
    out = []
    for r in quoting.iter_rows(named=True):
        src = (ip4_text(r["quoted_src"]), r["quoted_sport"])
        dst = (ip4_text(r["quoted_dst"]), r["quoted_dport"])
        if src in ends and dst in ends:
            what = {(3, 0): "network unreachable", (3, 1): "host unreachable", (3, 3): "port unreachable",
                    (3, 4): "fragmentation needed", (3, 13): "administratively prohibited"}.get(
                (r["icmp_type"], r["icmp_code"]), f"type {r['icmp_type']} code {r['icmp_code']}")
            text = f"{what} from {address_text(r, 'src')}"
            if text not in out:
                out.append(text)
    return out[:5]


def _sent_ip(facts: Facts, asked: list[tuple[Journey, int]]) -> set[int]:
    """Which of the addresses asked for sent IP packets: one pass over the column for these few, not its every address
    (0.02-0.03 s at 2M and 10M: not made when every request was seen with -i any)."""
    wanted = pl.Series(sorted({tpa for _, tpa in asked}), dtype=facts.table.schema["src"])
    return set(facts.table.lazy().select(pl.col("src").filter(pl.col("src").is_in(wanted.implode())).unique())
               .collect()["src"].to_list())


def arp_sightings(table: pl.DataFrame) -> pl.DataFrame:
    """The operation and sender address of every ARP sighting (read ahead: `findings.EARLY`)."""
    return table.lazy().filter(pl.col("arp_op").is_not_null()).select("arp_op", "arp_spa").collect()


def _arp(facts: Facts) -> list[Finding]:
    """ARP requests for an address that never answered (probes and gratuitous ARP excluded)."""
    arp = facts.ahead(arp_sightings)
    if arp.is_empty():
        return []
    replied = set(arp.filter(pl.col("arp_op") == 2)["arp_spa"].to_list())
    asked: list[tuple[Journey, int]] = []
    asking = facts.hop_columns("arp_op").filter((pl.col("hop") == 0) & (pl.col("arp_op") == 1))  # requests: polars finds them
    for at in asking.get_column("journey").to_list():
        j = facts.journeys[at]
        spa, tpa = facts.number(j.hops[0], "arp_spa"), facts.number(j.hops[0], "arp_tpa")
        if tpa is None or spa in (0, tpa) or tpa in replied:
            continue
        asked.append((j, tpa))
    if not asked:
        return []
    alive: set[int] | None = None  # asked only of requests seen on one bridge port (not with -i any)
    asks: dict[int, list[Journey]] = defaultdict(list)
    for j, tpa in asked:
        cov = facts.coverage.get(facts.node(j.hops[0]))
        if cov is None or not cov.every_iface:
            alive = _sent_ip(facts, asked) if alive is None else alive
            if tpa in alive:
                continue  # one bridge port sees the flooded request, and the reply goes to the asker's port
        if not _capture_went_on(facts, facts.path(j)[-1].row):
            continue
        asks[tpa].append(j)
    out = []
    for tpa, js in asks.items():
        last = facts.path(js[-1])[-1]
        askers = sorted({t for j in js if (t := ip4_text(facts.number(j.hops[0], "arp_spa")))})
        out.append(Finding(
            kind=FindingKind.UNANSWERED, severity=Severity.ERROR,
            title=f"ARP who-has {ip4_text(tpa)}: no reply ({len(js)} request(s){' from ' + ', '.join(askers) if askers else ''})",
            explanation=f"{ip4_text(tpa)} never answered ARP ({len(js) - 1} retr{'y' if len(js) == 2 else 'ies'}); last request "
                        f"seen at {facts.where(last)}. Nothing can be sent to it on that link until it does.",
            next_step=say("unanswered.arp", addr=ip4_text(tpa)), key="unanswered.arp",
            node=facts.named(facts.node(last)), iface=last.iface, journeys=tuple(j.id for j in js),
            rows=tuple(h.row for j in js[:20] for h in j.hops),
            evidence=Evidence(packets=len(js), sent=len(js), retries=len(js) - 1, interfaces=(facts.where(last),),
                              addresses=tuple(a for a in (ip4_text(tpa), *askers) if a is not None)),
        ))
    return out
