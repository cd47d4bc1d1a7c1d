"""The packet table: one row per *sighting* (one packet seen once, at one capture point).

This module is the single place where the table's columns are declared. Every
reader (pcap, pcapng, tcpdump text) produces exactly these columns, in this
order, with these types; `empty()` and `conform()` enforce it.

Conventions
- A column is null when the input does not show the value (tcpdump text without
  `-v` has no IP id, a text capture has no payload digest ...). Never invent.
- The *packet* columns (`src` ... `dns_qr`) always describe the innermost packet:
  the one the user's application sent. When a sighting is tunnelled (VXLAN,
  Geneve, IPIP, flannel UDP) the envelope goes into the `outer_*` columns and
  `tunnel` says which kind. So the same packet before and after encapsulation
  has the same packet columns, which is what journeys match on.
- IPv4 addresses are UInt32 (network order value, 10.0.0.1 == 0x0A000001).
  IPv6 addresses go to `src6`/`dst6` as text (categorical, as are names: `NAME`), and `src`/`dst` are null. A host
  tcpdump printed by name (no -n) leaves both null and goes to `src_name`;
  `address_text` shows whichever a row has.
- MAC addresses are UInt64 (the 48 bits, 00:00:5e:00:53:01 == 0x00005E005301).
- `direction` uses the Linux packet types (as in SLL/SLL2 and tcpdump's
  `-i any` column): 0 In (to us), 1 B (broadcast), 2 M (multicast),
  3 P (to another host, seen on bridge ports), 4 Out (sent by us). Null: unknown.
- `ts` is nanoseconds. What it counts from depends on the input's clock (see
  `Clock`): the Unix epoch, midnight of an unknown day, or the first packet.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeGuard

import polars as pl

from cniscope.packets.kinds import DIRECTION_LABELS as DIRECTION_LABELS
from cniscope.packets.kinds import IFINDEX_PREFIX as IFINDEX_PREFIX
from cniscope.packets.kinds import Clock as Clock
from cniscope.packets.kinds import Direction as Direction
from cniscope.packets.kinds import LinkType as LinkType
from cniscope.packets.kinds import Tunnel as Tunnel
from cniscope.packets.kinds import unsupported_linktype as unsupported_linktype

# Text of few distinct values repeated over many rows (nodes, interfaces, IPv6 addresses, host names): a 4-byte code
# a row into one dictionary. As plain text every row costs a 16-byte view, null or not: src6 and dst6, null for
# almost every row of an IPv4 capture, cost 34 bytes a row. So are the decoders' few reasons for stopping early (`error`):
# as text, the 1.4% of truncated rows of the reference 10M capture made the column cost 37 B a row (views, offsets),
# 4 as codes. (Free text, `info`, stays text.)
NAME = pl.Categorical()


@dataclass(frozen=True)
class Column:
    name: str
    dtype: pl.DataType | type[pl.DataType]
    doc: str


C = Column
COLUMNS: tuple[Column, ...] = (
    # where and when it was seen
    C("input", pl.UInt16, "index of the input (file) in the list of inputs"),
    C("frame", pl.UInt32, "0-based index of the packet within its input"),
    C("line", pl.UInt32, "1-based line of the packet in a text capture; null for binary inputs"),
    C("node", NAME, "node the input belongs to (tag, pcapng section, --node); null if unknown"),
    C("iface", NAME, "interface name; null when the capture does not name it"),
    C("direction", pl.UInt8, "Linux packet type (see Direction); null when unknown"),
    C("ts", pl.Int64, "timestamp in ns, counted as the input's Clock says; null with tcpdump -t"),
    C("linktype", pl.UInt16, "link-layer type of the frame (LinkType)"),
    C("caplen", pl.UInt32, "bytes captured; null for text"),
    C("wirelen", pl.UInt32, "bytes on the wire (frame length); null when unknown"),
    C("truncated", pl.Boolean, "the frame was cut by the snap length before the end of what was decoded"),
    # link layer of the outermost frame
    C("eth_src", pl.UInt64, "source MAC of the outermost Ethernet header"),
    C("eth_dst", pl.UInt64, "destination MAC of the outermost Ethernet header"),
    C("vlan", pl.UInt16, "802.1Q VLAN id of the outermost frame"),
    C("ethertype", pl.UInt16, "ethertype of the packet (0x0800 IPv4, 0x86dd IPv6, 0x0806 ARP)"),
    # tunnel envelope (null unless tunnel != 0)
    C("tunnel", pl.UInt8, "Tunnel kind of the envelope; 0 when not tunnelled"),
    C("vni", pl.UInt32, "VXLAN/Geneve VNI (OTV instance in tcpdump text)"),
    C("outer_src", pl.UInt32, "envelope IPv4 source"),
    C("outer_dst", pl.UInt32, "envelope IPv4 destination"),
    C("outer_src6", NAME, "envelope IPv6 source, text (a tunnel over IPv6; outer_src is then null)"),
    C("outer_dst6", NAME, "envelope IPv6 destination, text"),
    C("outer_src_name", NAME, "envelope source as a host name tcpdump printed instead of its address (no -n)"),
    C("outer_dst_name", NAME, "envelope destination as a host name tcpdump printed (no -n)"),
    C("outer_sport", pl.UInt16, "envelope UDP source port"),
    C("outer_dport", pl.UInt16, "envelope UDP destination port"),
    C("outer_ttl", pl.UInt8, "envelope IPv4 TTL / IPv6 hop limit"),
    C("outer_ip_id", pl.UInt32, "envelope IPv4 identification (IPv6: fragment header id)"),
    C("outer_len", pl.UInt16, "envelope IPv4 total length / IPv6 payload length + 40"),
    C("outer_l4_csum_bad", pl.Boolean,
      "envelope UDP checksum known to be wrong: capture decode verifies it when the whole datagram was captured, "
      "tcpdump text shows it with -vv over IPv4 (`[bad udp cksum 0xffff -> 0x5a5a!] VXLAN`), -v over IPv6. "
      "Null when not checked, and for no checksum (0 over IPv4, `[no cksum]`: Linux's VXLAN default). "
      "True on the sending node's own capture is usually checksum offload (the NIC fills it in later), not damage"),
    C("inner_eth_src", pl.UInt64, "source MAC of the inner Ethernet frame (VXLAN, Geneve)"),
    C("inner_eth_dst", pl.UInt64, "destination MAC of the inner Ethernet frame"),
    # the packet (innermost)
    C("ip_version", pl.UInt8, "4 or 6; null for non-IP (ARP)"),
    C("src", pl.UInt32, "IPv4 source address"),
    C("dst", pl.UInt32, "IPv4 destination address"),
    C("src6", NAME, "IPv6 source address, text"),
    C("dst6", NAME, "IPv6 destination address, text"),
    C("src_name", NAME, "source as a host name tcpdump printed instead of its address (text without -n): "
      "src/src6 are then null (ARP: the sender's, arp_spa null)"),
    C("dst_name", NAME, "destination as a host name tcpdump printed instead of its address (text without -n)"),
    C("ip_id", pl.UInt32, "IPv4 identification (IPv6: fragment header id)"),
    C("ttl", pl.UInt8, "IPv4 TTL or IPv6 hop limit"),
    C("tos", pl.UInt8, "IPv4 TOS / IPv6 traffic class"),
    C("ip_len", pl.UInt16, "IPv4 total length / IPv6 payload length + 40"),
    C("df", pl.Boolean, "IPv4 don't-fragment flag"),
    C("mf", pl.Boolean, "more-fragments flag"),
    C("frag_offset", pl.UInt16, "fragment offset in bytes"),
    C("proto", pl.UInt8, "IP protocol / IPv6 next header after extension headers (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6)"),
    C("sport", pl.UInt16, "TCP/UDP source port"),
    C("dport", pl.UInt16, "TCP/UDP destination port"),
    C("tcp_flags", pl.UInt8, "TCP flags byte (FIN 1, SYN 2, RST 4, PSH 8, ACK 16, URG 32, ECE 64, CWR 128)"),
    C("seq", pl.UInt32, "TCP sequence number (absolute)"),
    C("ack", pl.UInt32, "TCP acknowledgement number (absolute); null when the ACK flag is off"),
    C("win", pl.UInt16, "TCP window (unscaled)"),
    C("mss", pl.UInt16, "TCP MSS option"),
    C("wscale", pl.UInt8, "TCP window-scale option"),
    C("sack_ok", pl.Boolean, "TCP SACK-permitted option present"),
    C("tsval", pl.UInt32, "TCP timestamp option value"),
    C("tsecr", pl.UInt32, "TCP timestamp option echo reply"),
    C("l4_csum_bad", pl.Boolean, "TCP/UDP/ICMP/ICMPv6 checksum known to be wrong (text: 'incorrect'/'bad'); null when not checked"),
    C("icmp_type", pl.UInt8, "ICMP / ICMPv6 type"),
    C("icmp_code", pl.UInt8, "ICMP / ICMPv6 code"),
    C("icmp_id", pl.UInt16, "ICMP echo identifier"),
    C("icmp_seq", pl.UInt16, "ICMP echo sequence"),
    C("icmp_mtu", pl.UInt16, "next-hop MTU of ICMP frag-needed / ICMPv6 packet-too-big"),
    C("quoted_src", pl.UInt32, "ICMP error: source address of the quoted packet"),
    C("quoted_dst", pl.UInt32, "ICMP error: destination address of the quoted packet"),
    C("quoted_proto", pl.UInt8, "ICMP error: protocol of the quoted packet"),
    C("quoted_sport", pl.UInt16, "ICMP error: source port of the quoted packet"),
    C("quoted_dport", pl.UInt16, "ICMP error: destination port of the quoted packet"),
    C("dns_id", pl.UInt16, "DNS transaction id (UDP port 53)"),
    C("dns_qr", pl.Boolean, "DNS: true for a response"),
    C("arp_op", pl.UInt16, "ARP opcode (1 request, 2 reply)"),
    C("arp_sha", pl.UInt64, "ARP sender hardware address"),
    C("arp_spa", pl.UInt32, "ARP sender protocol address"),
    C("arp_tpa", pl.UInt32, "ARP target protocol address"),
    C("payload_len", pl.UInt32, "L4 payload bytes (TCP/UDP data, ICMP data after the 8-byte header)"),
    C("payload_digest", pl.UInt64, "64-bit digest of the captured L4 payload; null for text or when nothing was captured"),
    C("info", pl.Utf8, "short protocol summary from text captures (e.g. 'HTTP: GET / HTTP/1.1'), else null"),
    C("error", NAME, "why decoding stopped early for this frame; null when fully decoded"),
)

NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {c.name: c.dtype for c in COLUMNS}




def named_iface(iface: str | None) -> TypeGuard[str]:
    """An interface with a name a network model can read (not None, not just an index)."""
    return iface is not None and not iface.startswith(IFINDEX_PREFIX)


def empty() -> pl.DataFrame:
    """A table with no rows and every column."""
    return pl.DataFrame(schema=SCHEMA)


def conform(df: pl.DataFrame) -> pl.DataFrame:
    """Add the missing columns as nulls, cast to the declared types, order as declared."""
    missing = [pl.lit(None, dtype=SCHEMA[n]).alias(n) for n in NAMES if n not in df.columns]
    if missing:
        df = df.with_columns(missing)
    return df.select([pl.col(n).cast(SCHEMA[n]) for n in NAMES])


@lru_cache(maxsize=1 << 16)  # addresses repeat: every sighting of a conversation
def ip4_text(value: int | None) -> str | None:
    if value is None:
        return None
    return f"{(value >> 24) & 255}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"


def ip4_value(text: str) -> int:
    a, b, c, d = (int(x) for x in text.split("."))
    if not all(0 <= x <= 255 for x in (a, b, c, d)):
        raise ValueError(f"not an IPv4 address: {text!r}")
    return (a << 24) | (b << 16) | (c << 8) | d


def address_text(row: Mapping[str, object], side: str) -> str | None:
    """How to show one end of a row: `src`, `dst`, `outer_src`, `outer_dst`: the IPv4 address, else the IPv6
    one, else the host name tcpdump printed instead (text without -n). None only when the row has none."""
    v4 = row.get(side)
    if isinstance(v4, int):
        return ip4_text(v4)
    text = row.get(f"{side}6") or row.get(f"{side}_name")
    return text if isinstance(text, str) else None


@lru_cache(maxsize=1 << 16)
def address_expr(side: str) -> pl.Expr:
    """`address_text` for a whole column: the IPv4 address as text, else the IPv6 one, else the host name."""
    return pl.coalesce(ip4_expr(side), pl.col(f"{side}6"), pl.col(f"{side}_name"))


_OCTETS = pl.Series([str(n) for n in range(256)])  # each octet's text, looked up: half the time of writing each number


def ip4_expr(column: str | pl.Expr) -> pl.Expr:
    """`ip4_text` for a whole column of IPv4 addresses as integers (named, or an expression)."""
    v4 = (pl.col(column) if isinstance(column, str) else column).cast(pl.Int64)
    return pl.concat_str([pl.lit(_OCTETS).gather(v4 // (1 << s) % 256) for s in (24, 16, 8, 0)], separator=".")


def mac_text(value: int | None) -> str | None:
    if value is None:
        return None
    return ":".join(f"{(value >> s) & 255:02x}" for s in range(40, -8, -8))


def mac_value(text: str) -> int:
    parts = text.split(":")
    if len(parts) != 6:
        raise ValueError(f"not a MAC address: {text!r}")
    return int("".join(p.zfill(2) for p in parts), 16)


@lru_cache(maxsize=512)
def tcp_flags_text(flags: int | None) -> str | None:
    """tcpdump's notation: 'S', 'S.', 'P.', 'F.', 'R' ..."""
    if flags is None:
        return None
    text = "".join(ch for ch, bit in (("S", 2), ("F", 1), ("P", 8), ("R", 4), ("U", 32), ("E", 64), ("W", 128)) if flags & bit)
    if flags & 16:
        text += "."
    return text or "none"
