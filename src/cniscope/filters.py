"""`analyze --filter`: tcpdump's primitives, compiled to one polars expression over the packet table.

The language is the part of pcap-filter(7) that people type, plus what a
cluster adds:

    [src|dst] host ADDR      [src|dst] net CIDR      [src|dst] port N      portrange A-B
    tcp  udp  icmp  icmp6  arp  ip  ip6                                     (a protocol may qualify: tcp port 80)
    node NAME   iface NAME   pod [NAMESPACE/]NAME   service [NAMESPACE/]NAME    (pod and service need --cluster)
    not / !    and / &&    or / ||    ( )           a bare value repeats the last primitive: port 80 or 443

Theory of operation: `compile()` parses the text into a polars expression that
is true for the rows (sightings) it selects; nothing is evaluated row by row
in Python. Addresses match the packet and its tunnel envelope (and ARP's
addresses), so `host` finds a pod's packets inside VXLAN too. The caller keeps
every sighting of a selected packet (`analyze.py`), so a NAT rewrite or an
envelope never cuts a journey in two.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

from cniscope.errors import CniscopeError, ExitCode

if TYPE_CHECKING:  # (a pod or service primitive is asked of the inventory passed in)
    from cniscope.inventory import Inventory


class FilterError(CniscopeError):
    """The expression cannot be read (a usage error); the message says where and what was expected."""

    exit_code = ExitCode.USAGE


PROTOCOLS = {"tcp": 6, "udp": 17, "icmp": 1, "icmp6": 58, "sctp": 132}
QUALIFIED = ("host", "net", "port", "portrange", "node", "iface", "pod", "service")
TOKEN_RE = re.compile(r"\s*(\(|\)|&&|\|\||!|[^\s()!]+)")


@dataclass(frozen=True)
class _Primitive:
    direction: str | None  # "src", "dst" or None (either)
    kind: str  # one of QUALIFIED


def tokens(text: str) -> list[str]:
    out, pos = [], 0
    while pos < len(text):
        m = TOKEN_RE.match(text, pos)
        if m is None:
            break
        out.append(m.group(1))
        pos = m.end()
    return out


def compile(text: str, inventory: Inventory | None = None) -> pl.Expr:  # noqa: A001  (the word users expect)
    """The expression selecting the sightings `text` describes; FilterError when it cannot be read."""
    parser = _Parser(tokens(text), inventory, text)
    if not parser.toks:
        raise FilterError("empty filter")
    expr = parser.disjunction()
    if parser.pos < len(parser.toks):
        raise FilterError(f"unexpected {parser.toks[parser.pos]!r} at word {parser.pos + 1} of {text!r}")
    return expr


class _Parser:
    def __init__(self, toks: list[str], inventory: Inventory | None, text: str) -> None:
        self.toks, self.pos, self.inventory, self.text = toks, 0, inventory, text
        self.last: _Primitive | None = None  # for `port 80 or 443`

    def peek(self) -> str | None:
        return self.toks[self.pos].lower() if self.pos < len(self.toks) else None

    def take(self) -> str:
        if self.pos >= len(self.toks):
            raise FilterError(f"{self.text!r} ends early: expected a primitive (host, net, port, tcp, node ...)")
        self.pos += 1
        return self.toks[self.pos - 1]

    def disjunction(self) -> pl.Expr:
        expr = self.conjunction()
        while self.peek() in ("or", "||"):
            self.pos += 1
            expr = expr | self.conjunction()
        return expr

    def conjunction(self) -> pl.Expr:
        expr = self.negation()
        while self.peek() in ("and", "&&"):
            self.pos += 1
            expr = expr & self.negation()
        return expr

    def negation(self) -> pl.Expr:
        if self.peek() in ("not", "!"):
            self.pos += 1
            return ~self.negation()
        if self.peek() == "(":
            self.pos += 1
            expr = self.disjunction()
            if self.peek() != ")":
                raise FilterError(f"missing ')' in {self.text!r}")
            self.pos += 1
            return expr
        return self.primitive()

    def primitive(self) -> pl.Expr:
        word = self.take().lower()
        if word in PROTOCOLS or word in ("arp", "ip", "ip6"):
            expr = _protocol(word)
            if self.peek() in (*QUALIFIED, "src", "dst"):  # `tcp port 80`: the protocol qualifies what follows
                expr = expr & self.primitive()
            return expr
        direction = None
        if word in ("src", "dst"):
            direction, word = word, self.take().lower()
            if word not in ("host", "net", "port", "portrange"):
                raise FilterError(f"{direction} {word!r}: expected host, net, port or portrange after {direction}")
        if word in QUALIFIED:
            self.last = _Primitive(direction, word)
            return self.value(self.last, self.take())
        if self.last is not None:  # a bare value: the last primitive again
            return self.value(self.last, self.toks[self.pos - 1])
        raise FilterError(f"unknown word {word!r} in {self.text!r}: expected host, net, port, portrange, tcp, udp, "
                          "icmp, arp, ip, ip6, node, iface, pod, service, not, and, or, or parentheses")

    def value(self, prim: _Primitive, value: str) -> pl.Expr:
        kind, direction = prim.kind, prim.direction
        if kind == "host":
            return _addresses(direction, [_address(value)])
        if kind == "net":
            return _network(direction, value)
        if kind in ("port", "portrange"):
            low, high = _ports(kind, value)
            return _any(_cols(direction, PORT_COLUMNS), lambda c: c.is_between(low, high))
        if kind == "node":
            return pl.col("node") == value
        if kind == "iface":
            return pl.col("iface") == value
        return self.cluster(kind, value)

    def cluster(self, kind: str, value: str) -> pl.Expr:
        inv = self.inventory
        if inv is None:
            raise FilterError(f"'{kind} {value}' needs a cluster inventory (--cluster, or a capture directory's cluster.yaml)")
        if kind == "pod":
            ips = [ip for p in inv.pods if value in (p.ref, p.name) for ip in p.ips]
            found = any(value in (p.ref, p.name) for p in inv.pods)
        else:
            ips = [ip for s in inv.services if value in (s.ref, s.name) for ip in s.cluster_ips]
            found = any(value in (s.ref, s.name) for s in inv.services)
        if not found:
            names = sorted({p.ref for p in inv.pods} if kind == "pod" else {s.ref for s in inv.services})
            raise FilterError(f"no {kind} {value!r} in the inventory; there are: {', '.join(names[:20]) or 'none'}")
        return _addresses(None, [_address(ip) for ip in ips])


# address columns by family and side; envelopes and ARP count as the packet's addresses
V4 = {"src": ("src", "outer_src", "arp_spa"), "dst": ("dst", "outer_dst", "arp_tpa")}
V6 = {"src": ("src6",), "dst": ("dst6",)}
PORT_COLUMNS = {"src": ("sport", "outer_sport"), "dst": ("dport", "outer_dport")}


def _cols(direction: str | None, table: Mapping[str, tuple[str, ...]]) -> tuple[str, ...]:
    return table[direction] if direction else table["src"] + table["dst"]


def _any(columns: tuple[str, ...], test: Callable[[pl.Expr], pl.Expr]) -> pl.Expr:
    expr = pl.lit(False)
    for name in columns:
        expr = expr | test(pl.col(name)).fill_null(False)
    return expr


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise FilterError(f"host {text!r}: not an IP address (names are not resolved)") from None


def _addresses(direction: str | None, addrs: list[ipaddress.IPv4Address | ipaddress.IPv6Address]) -> pl.Expr:
    v4 = [int(a) for a in addrs if a.version == 4]
    v6 = [str(a) for a in addrs if a.version == 6]
    expr = pl.lit(False)
    if v4:
        expr = expr | _any(_cols(direction, V4), lambda c: c.is_in(pl.Series(v4, dtype=pl.UInt32).implode()))
    if v6:
        expr = expr | _any(_cols(direction, V6), lambda c: c.is_in(v6))
    return expr


def _network(direction: str | None, text: str) -> pl.Expr:
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise FilterError(f"net {text!r}: expected a network such as 10.244.0.0/16") from None
    if net.version == 4:
        mask, base = int(net.netmask), int(net.network_address)
        return _any(_cols(direction, V4), lambda c: (c & mask) == base)
    # IPv6 addresses are text in the table: test the distinct ones (few), then select by membership
    def inside(c: pl.Expr) -> pl.Expr:
        return c.map_batches(lambda s: s.is_in([a for a in s.unique().drop_nulls().to_list() if _in6(a, net)]),
                             return_dtype=pl.Boolean)

    return _any(_cols(direction, V6), inside)


def _in6(addr: str, net: ipaddress.IPv6Network) -> bool:
    try:
        return ipaddress.ip_address(addr) in net
    except ValueError:
        return False


def _ports(kind: str, value: str) -> tuple[int, int]:
    low, sep, high = value.partition("-")
    if kind == "port" and sep:
        raise FilterError(f"port {value!r}: one port (or portrange A-B)")
    try:
        lo, hi = int(low), int(high) if sep else int(low)
    except ValueError:
        raise FilterError(f"{kind} {value!r}: expected a number (service names are not resolved)") from None
    if not 0 <= lo <= hi <= 65535:
        raise FilterError(f"{kind} {value!r}: ports go from 0 to 65535")
    return lo, hi


def _protocol(word: str) -> pl.Expr:
    if word == "arp":
        return pl.col("arp_op").is_not_null()
    if word == "ip":
        return (pl.col("ip_version") == 4).fill_null(False)
    if word == "ip6":
        return (pl.col("ip_version") == 6).fill_null(False)
    return (pl.col("proto") == PROTOCOLS[word]).fill_null(False)
