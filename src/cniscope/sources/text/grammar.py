"""tcpdump's packet text, one piece at a time.

Theory of operation. tcpdump prints a packet as nested pieces, each printer
handing the rest of the line to the next one:

    [ts] [iface dir] [link header: ] [IP ](-v header) src > dst: L4 text [: app text]

A tunnel printer (VXLAN/OTV, Geneve, IPIP) hands its payload to the frame
printer again, on the same line (Geneve, IPIP) or on the next one (VXLAN,
OTV, Geneve with -v). `-v` puts the IPv4 header on its own line and the
addresses on the next, indented one. So a packet is a stack of *layers*
(plain dicts keyed by packet-table column names; keys starting with `_` are
private), and `Packet.pending` says what the next line must complete:

    L3      the address line after a `-v` IPv4 header
    INNER   the inner frame of a tunnel
    QUOTED  the packet an ICMP error quotes (-v only; optional)

Nothing here invents a value: a field tcpdump did not print stays absent
(null in the table). TCP seq/ack are parsed as printed; the reader then
undoes tcpdump's relative numbering (`tcp_numbers`).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from functools import lru_cache

from cniscope.packets.ports import TunnelPorts
from cniscope.packets.schema import LinkType, Tunnel
from cniscope.sources.text.services import PORTS

L3 = "l3"
INNER = "inner"
QUOTED = "quoted"

Layer = dict[str, object]

INFO_MAX = 120
DNS_PORTS = frozenset((53, 5353))
PROTO_NAMES = {"icmp": 1, "igmp": 2, "tcp": 6, "udp": 17, "gre": 47, "esp": 50, "sctp": 132}

DIRECTIONS = {"In": 0, "B": 1, "M": 2, "P": 3, "Out": 4}
TCP_FLAG_LETTERS = {"F": 1, "S": 2, "R": 4, "P": 8, ".": 16, "U": 32, "E": 64, "W": 128}

# link-type names in `listening on X, link-type NAME (...)` banners (libpcap's pcap_datalink_val_to_name)
LINKTYPES = {
    "EN10MB": LinkType.ETHERNET, "RAW": LinkType.RAW, "LINUX_SLL": LinkType.LINUX_SLL,
    "LINUX_SLL2": LinkType.LINUX_SLL2, "IPV4": LinkType.IPV4, "IPV6": LinkType.IPV6, "NULL": LinkType.NULL,
    "LOOP": LinkType.LOOP, "PPP": LinkType.PPP, "PPP_SERIAL": LinkType.PPP_HDLC, "PPP_ETHER": LinkType.PPP_ETHER,
    "C_HDLC": LinkType.C_HDLC, "NFLOG": LinkType.NFLOG, "PKTAP": LinkType.PKTAP, "IEEE802_11": 105,
    "IEEE802_11_RADIO": 127,
}


@dataclass(slots=True)  # one per packet line: made and read faster with slots
class Packet:
    """A packet being assembled from its lines."""

    line: int
    ts: int | None
    iface: str | None
    direction: int | None
    linktype: int | None
    layers: list[Layer] = field(default_factory=list)
    pending: str | None = None
    quoted_header_seen: bool = False
    printed_relative: int | None = None  # a -ttt/-ttttt stamp as printed (ns), until the segment knows which flag it was
    ports: TunnelPorts = TunnelPorts()  # UDP ports of envelopes tcpdump leaves closed (-q; flannel's 8285 always)

    @property
    def top(self) -> Layer:
        return self.layers[-1]


_MAC = r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}"
# a MAC as printed without -n: `0a:58:0a:f4:01:05 (oui Unknown)`, `Broadcast`
_MACN = rf"(?:{_MAC}(?: \(oui [^)]*\))?|Broadcast)"
ETHER_RE = re.compile(
    rf"({_MACN}) > ({_MACN}), (?:ethertype (\S+) \((0x[0-9a-f]{{4}})\)|(802\.3|llc|[^,]*)), length (\d+): ?"
)  # with -q the ethertype is its name alone: `, IPv4, length 74: `
# `-i any -e`: SLL2 (4.99, after the iface/dir columns) and SLL (before 4.99, direction first)
SLL2_RE = re.compile(rf"ifindex \d+ (?:({_MACN}) )?ethertype (\S+) \((0x[0-9a-f]{{4}})\), length (\d+): ?")
SLL1_RE = re.compile(rf" *(In|Out|B|M|P) (?:({_MACN}) )?ethertype (\S+) \((0x[0-9a-f]{{4}})\), length (\d+): ?")
VLAN_RE = re.compile(r"vlan (\d+), p \d+, (?:ethertype )?(\S+?)(?: \((0x[0-9a-f]{4})\))?, ")  # -q: no `ethertype`
ETHERTYPE_NAMES = {"IPv4": 0x0800, "IPv6": 0x86DD, "ARP": 0x0806, "802.1Q": 0x8100, "802.1Q-QinQ": 0x88A8}
LOOPBACK_RE = re.compile(r"(?:AF )?(IPv4|IPv6)(?: \(\d+\))?, length (\d+): ?")  # BSD loopback with -e (-q: no AF)
SLL2_QUIET_RE = re.compile(rf"ifindex \d+ (?:({_MACN}) )?(?=\S+ > \S+: )")  # -i any -e -q: no ethertype, no length
QUIET_TRANSPORT_RE = re.compile(r"(tcp|udp) (\d+)(?: |$)")  # -q: `tcp 36`
ESP_RE = re.compile(r"ESP\(spi=0x[0-9a-f]+,seq=0x[0-9a-f]+\)")
GRE_RE = re.compile(r"GREv\d")

V4_HEADER_RE = re.compile(
    r"\(tos (0x[0-9a-f]+)[^,]*, ttl (\d+), id (\d+), offset (\d+), flags \[([^\]]*)\], "
    r"proto (\S+) \((\d+)\), length (\d+)(.*?)\)(?: |$)"
)
# three styles: 4.99.3 `next-header UDP (17) payload length: 114)`, current releases `next-header ICMPv6 (58),
# payload length 32)`, before 4.0 `next-header: TCP (6), length: 40)`
V6_HEADER_RE = re.compile(
    r"\((?:class (0x[0-9a-f]+), )?(?:flowlabel 0x[0-9a-f]+, )?hlim (\d+), next-header:? (\S+) \((\d+)\),? "
    r"(?:payload )?length:? (\d+)\) "
)
PAIR_RE = re.compile(r"(\S+) > (\S+?):(?: +|$)")
# the common pair, IPv4 addresses and port numbers (`10.0.0.1.80 > 10.0.0.2.8080: `), read in one match
PAIR4_RE = re.compile(r"(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,5}) > "
                      r"(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,5}):(?: +|$)")
V4_RE = re.compile(r"(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\.([\w-]+))?$")
# an IP header in an IP header, printed without its `IP ` (`-q -e`, tcpdump before 4.99 for IPIP): a pair of addresses
_V4_END = r"\d{1,3}(?:\.\d{1,3}){3}(?:\.[\w-]+)?"  # an address and maybe its port (number or name)
_V6_END = r"[0-9a-f]*:[0-9a-f:]*(?:\.[\w-]+)?"
IPIP_PAIR_RE = re.compile(rf"(?:{_V4_END}|{_V6_END}) > (?:{_V4_END}|{_V6_END}): ")

TCP_RE = re.compile(
    r"Flags \[([^\]]*)\](?:, cksum 0x[0-9a-f]+ \((correct|incorrect)[^)]*\))?(?:, seq (\d+)(?::(\d+))?)?"
    r"(?:, ack (\d+))?(?:, win (\d+))?(?:, urg \d+)?(?:, options \[([^\]]*)\])?(?:, length (\d+))?(?:: (.*))?"
)
MSS_RE = re.compile(r"mss (\d+)")
WSCALE_RE = re.compile(r"wscale (\d+)")
TS_OPT_RE = re.compile(r"TS val (\d+) ecr (\d+)")
UDP_CSUM_RE = re.compile(r"\[(udp sum ok|bad udp cksum [^\]]*|no cksum|icmp6 sum ok|bad icmp6 cksum [^\]]*)\] ")
UDP_LEN_RE = re.compile(r"UDP, length (\d+)")
OTV_RE = re.compile(r"OTV, flags \[[^\]]*\] \(0x[0-9a-f]+\), overlay \d+, instance (\d+)")
VXLAN_RE = re.compile(r"VXLAN, flags \[[^\]]*\] \(0x[0-9a-f]+\), vni (\d+)")
GENEVE_RE = re.compile(r"Geneve, Flags \[[^\]]*\], vni (0x[0-9a-f]+)(?:, proto \S+ \((0x[0-9a-f]+)\))?(?:, options \[[^\]]*\])?(?:: |$)")
DNS_RE = re.compile(r"(\d+)\S* ")
DNS_COUNTS_RE = re.compile(r"(?:^| )\d+/\d+/\d+(?: |$)")
DNS_LEN_RE = re.compile(r"\((\d+)\)$")
LENGTH_END_RE = re.compile(r", length (\d+)$")
ARP_REQUEST_RE = re.compile(rf"Request who-has ([^\s,]+)(?: \({_MAC}\))? tell ([^\s,]+)")
ARP_REPLY_RE = re.compile(rf"Reply (\S+) is-at ({_MACN})")
IP_PROTO_RE = re.compile(r"ip-proto-(\d+)")
ICMP_BAD_CSUM_RE = re.compile(r" \(wrong icmp cksum [0-9a-f]+ \(->[0-9a-f]+\)!\)$")
IP6_EXT_RE = re.compile(r"(?:(?:HBH|DSTOPT|srcrt)(?: \([^)]*\))* )+")
IP6_FRAG_RE = re.compile(r"frag \((?:0x([0-9a-f]+):)?(\d+)\|(\d+)\)(?: |$)")
PORT_PAIR_RE = re.compile(r"(\d{1,5}) > (\d{1,5}): ")
IP6_EXTENSION_HEADERS = frozenset((0, 43, 44, 60))  # hop-by-hop, routing, fragment, destination options

# ICMP messages: (pattern after "ICMP ", type, code, quoted protocol, what the captures mean)
ICMP_FORMS: tuple[tuple[re.Pattern[str], int, int | None, int | None, str], ...] = tuple(
    (re.compile(p), t, c, qp, kind)
    for p, t, c, qp, kind in (
        (r"echo request, id (\d+), seq (\d+)", 8, 0, None, "echo"),
        (r"echo reply, id (\d+), seq (\d+)", 0, 0, None, "echo"),
        (r"(\S+) udp port (\S+) unreachable", 3, 3, 17, "port"),
        (r"(\S+) tcp port (\S+) unreachable", 3, 3, 6, "port"),
        (r"(\S+) protocol (\d+) unreachable", 3, 2, None, "proto"),
        (r"(\S+) unreachable - need to frag \(mtu (\d+)\)", 3, 4, None, "mtu"),
        (r"(\S+) unreachable - source route failed", 3, 5, None, "dst"),
        (r"net (\S+) unreachable - admin prohibited", 3, 9, None, "dst"),
        (r"host (\S+) unreachable - admin prohibited", 3, 10, None, "dst"),
        (r"(\S+) unreachable - admin prohibited filter", 3, 13, None, "dst"),
        (r"net (\S+) unreachable", 3, 0, None, "dst"),
        (r"host (\S+) unreachable", 3, 1, None, "dst"),
        (r"time exceeded in-transit", 11, 0, None, ""),
        (r"ip reassembly time exceeded", 11, 1, None, ""),
        (r"redirect ", 5, None, None, ""),
        (r"(\S+) unreachable", 3, None, None, "dst"),
    )
)
ICMP6_FORMS: tuple[tuple[re.Pattern[str], int], ...] = tuple(
    (re.compile(p), t)
    for p, t in (
        (r"echo request, id (\d+), seq (\d+)", 128),
        (r"echo reply, id (\d+), seq (\d+)", 129),
        (r"packet too big, mtu (\d+)", 2),
        (r"destination unreachable", 1),
        (r"time exceeded", 3),
        (r"parameter problem", 4),
        (r"router solicitation", 133),
        (r"router advertisement", 134),
        (r"neighbor solicitation", 135),
        (r"neighbor advertisement", 136),
        (r"redirect", 137),
        (r"multicast listener query", 130),
        (r"multicast listener report v2", 143),
        (r"multicast listener report", 131),
        (r"multicast listener done", 132),
    )
)


def _short(text: str) -> str:
    return text if len(text) <= INFO_MAX else text[: INFO_MAX - 3] + "..."


def _mac(text: str) -> int:
    if text == "Broadcast":
        return 0xFFFFFFFFFFFF
    return int(text[:17].replace(":", ""), 16)


def _port(text: str | None) -> int | None:
    if text is None:
        return None
    if text.isdigit():
        value = int(text)
        return value if value < 65536 else None
    return PORTS.get(text)


@lru_cache(maxsize=1 << 16)
def endpoint(token: str) -> tuple[int | None, str | None, int | None, str | None, str | None]:
    """`10.0.0.1.80`, `fd00::5.8080`, `node3.http` -> (IPv4 value, IPv6 text, port, host name, port name).

    A host or port that tcpdump printed by name and that cannot be turned back
    into a number comes back as text so the caller can keep it. Something with a
    colon that is no IPv6 address (`192.16:.200.21`) raises ValueError.
    """
    parts = token.split(".")
    if len(parts) == 5 and parts[4].isdecimal() or len(parts) == 4:  # the common `10.0.0.1.80`, without a regex:
        a, b, c, d = parts[:4]  # what V4_RE matches when each octet is 1-3 decimal digits
        if 0 < len(a) < 4 and 0 < len(b) < 4 and 0 < len(c) < 4 and 0 < len(d) < 4 and (a + b + c + d).isdecimal():
            return _v4(int(a), int(b), int(c), int(d), parts[4] if len(parts) == 5 else None, token)
    m = V4_RE.match(token)
    if m:
        return _v4(int(m.group(1)), int(m.group(2)), int(m.group(3)), int(m.group(4)), m.group(5), token)
    if ":" in token:
        addr, dot, port_text = token.rpartition(".")
        if dot and ":" in addr:
            port = _port(port_text)
            return None, str(ipaddress.IPv6Address(addr)), port, None, port_text if port is None else None
        return None, str(ipaddress.IPv6Address(token)), None, None, None
    host, dot, last = token.rpartition(".")
    if dot and host and (last.isdigit() or last in PORTS):
        return None, None, _port(last), host, None
    return None, None, None, token, None


def _v4(a: int, b: int, c: int, d: int, port_text: str | None,
        token: str) -> tuple[int | None, str | None, int | None, str | None, str | None]:
    """`endpoint` of an IPv4 address (and port) whose octets are read."""
    if a > 255 or b > 255 or c > 255 or d > 255:  # `10.0.0.300.80`: no host name is all digits
        raise ValueError(f"{token}: an octet above 255")
    port = _port(port_text)
    return (a << 24) | (b << 16) | (c << 8) | d, None, port, None, port_text if port is None else None


def _names(layer: Layer, role: str, host: str | None, port_name: str | None) -> None:
    """A host printed by name goes to its name column; a port name no services table knows, to `info`."""
    if host is not None:
        layer[f"{role}_name"] = host
    if port_name is not None:
        names = layer.setdefault("_names", [])
        assert isinstance(names, list)
        names.append(f"{'s' if role == 'src' else 'd'}port={port_name}")


def parse_pair(s: str, layer: Layer) -> str | None:
    """`src > dst: rest` -> fills addresses and ports, returns rest (None if no pair)."""
    m = PAIR_RE.match(s)
    if m is None:
        return None
    try:
        s4, s6, sport, sname, sport_name = endpoint(m.group(1))
        d4, d6, dport, dname, dport_name = endpoint(m.group(2))
    except ValueError:  # an address no IP stack would print: the reader skips the line, saying why
        layer["_bad_address"] = f"{m.group(1)} > {m.group(2)}"
        return None
    if s6 is not None or d6 is not None or layer.get("ip_version") == 6:  # names: the caller knows the family
        layer["ip_version"] = 6
        layer["src6"], layer["dst6"] = s6, d6
        layer.setdefault("ethertype", 0x86DD)
    else:
        layer["ip_version"] = 4
        layer["src"], layer["dst"] = s4, d4
        layer.setdefault("ethertype", 0x0800)
    if sport is not None:
        layer["sport"] = sport
    if dport is not None:
        layer["dport"] = dport
    if sname or sport_name:
        _names(layer, "src", sname, sport_name)
    if dname or dport_name:
        _names(layer, "dst", dname, dport_name)
    return s[m.end() :]


def parse_v4_header(s: str, layer: Layer) -> str | None:
    """`(tos 0x0, ttl 64, id 1, offset 0, flags [DF], proto TCP (6), length 60)` -> rest of line, or None."""
    m = V4_HEADER_RE.match(s)
    if m is None:
        return None
    tos, ttl, ident, offset, flags, _name, proto, length, options = m.groups()
    layer["ip_version"] = 4
    layer.setdefault("ethertype", 0x0800)
    layer["tos"] = int(tos, 16)
    layer["ttl"] = int(ttl)
    layer["ip_id"] = int(ident)
    layer["frag_offset"] = int(offset)
    layer["df"] = "DF" in flags
    layer["mf"] = "+" in flags
    layer["proto"] = int(proto)
    layer["ip_len"] = int(length)
    if not options:
        layer["_ihl"] = 20  # no options printed: a 20-byte header
    return s[m.end() :]


DAMAGE_RE = re.compile(r"(?:truncated-ip - \d+ bytes missing! |bad-len (\d+)|bad-hlen \d+)")


def parse_ip4(s: str, pkt: Packet) -> None:
    """IPv4 as printed after `IP ` (or after an Ethernet header with -e). After a damage note
    (`truncated-ip - 74 bytes missing!`, tcpdump goes on) the rest of the line is read as usual."""
    layer = pkt.top
    m = DAMAGE_RE.match(s)
    if m is not None:
        layer["ip_version"] = 4
        layer.setdefault("ethertype", 0x0800)
        if m.group(1) is not None:  # `bad-len 0`: the header's total length, and nothing after it
            layer["ip_len"] = int(m.group(1))
        s = s[m.end() :]
        if not s:
            return
    if s.startswith("("):
        rest = parse_v4_header(s, layer)
        if rest is None:
            layer["info"] = _short(s)
            return
        if not rest:
            pkt.pending = L3
            return
        s = rest
    parse_l3_line(s, pkt)


def parse_ip6(s: str, pkt: Packet) -> None:
    layer = pkt.top
    layer["ip_version"] = 6
    layer.setdefault("ethertype", 0x86DD)
    layer["mf"], layer["frag_offset"] = False, 0  # tcpdump prints a fragment header whenever there is one
    if s.startswith("("):
        m = V6_HEADER_RE.match(s)
        if m is None:
            layer["info"] = _short(s)
            return
        tclass, hlim, _name, nh, plen = m.groups()
        layer["tos"] = int(tclass, 16) if tclass else 0
        layer["ttl"] = int(hlim)
        if int(nh) not in IP6_EXTENSION_HEADERS:  # `proto` is the header after the extensions
            layer["proto"] = int(nh)
        layer["ip_len"] = int(plen) + 40
        s = s[m.end() :]
    parse_l3_line(s, pkt)


def parse_l3_line(s: str, pkt: Packet) -> None:
    """`src > dst: L4 ...` for the top layer (also the line after a -v IPv4 header)."""
    layer = pkt.top
    m = PAIR4_RE.match(s)
    if m is not None and layer.get("ip_version") != 6:  # what parse_pair makes of it, without a call per end
        a, b, c, d, sport, e, f, g, h, dport = map(int, m.groups())
        if a | b | c | d | e | f | g | h < 256 and sport < 65536 and dport < 65536:  # else: not an address, a name
            layer["ip_version"] = 4
            layer["src"], layer["dst"] = (a << 24) | (b << 16) | (c << 8) | d, (e << 24) | (f << 16) | (g << 8) | h
            layer.setdefault("ethertype", 0x0800)
            layer["sport"], layer["dport"] = sport, dport
            parse_l4(s[m.end() :], pkt)
            return
    rest = parse_pair(s, layer)
    if rest is None:
        layer["info"] = _short(s)
        return
    parse_l4(rest, pkt)


def parse_l4(s: str, pkt: Packet) -> None:
    layer = pkt.top
    if s.startswith("Flags ["):
        parse_tcp(s, layer)
        return
    if layer.get("ip_version") == 6:
        s = parse_ip6_extensions(s, layer)
    m = UDP_CSUM_RE.match(s) if s.startswith("[") else None
    if m:
        verdict = m.group(1)
        if verdict.endswith("sum ok"):
            layer["l4_csum_bad"] = False
        elif verdict.startswith("bad"):
            layer["l4_csum_bad"] = True
        s = s[m.end() :]
        if verdict.startswith(("udp", "bad udp", "no")):
            layer["proto"] = 17
    m = UDP_LEN_RE.match(s)  # first: none of the forms below starts like it
    if m:
        layer["proto"] = 17
        kind = _envelope_port(layer, pkt.ports)
        if kind and "_fragment" not in layer and not layer.get("mf"):  # an envelope tcpdump did not open (-q, 8285)
            layer["_encap"] = kind
        elif not layer.get("mf") and "_fragment" not in layer:  # else the datagram's length, not this packet's
            layer["payload_len"] = int(m.group(1))
        elif layer.get("mf") and not layer.get("frag_offset") and "_ihl" in layer:  # a first fragment, with -v:
            layer["payload_len"] = _int(layer, "ip_len") - 20 - 8  # what it carries
        elif "_frag_len" in layer and not layer.get("frag_offset"):  # IPv6: `frag (0|1448)` says what it carries
            layer["payload_len"] = _int(layer, "_frag_len") - 8
        return
    if s.startswith("ICMP "):
        parse_icmp(s[5:], pkt)
        return
    if s.startswith("ICMP6, "):
        parse_icmp6(s[7:], layer)
        return
    if s.startswith("IP ") or s.startswith("(tos ") or IPIP_PAIR_RE.match(s):
        layer["_encap"] = Tunnel.IPIP
        pkt.layers.append({})
        if s.startswith(("IP ", "(tos ")):
            parse_ip4(s[3:] if s.startswith("IP ") else s, pkt)
        else:
            parse_l3_line(s, pkt)
        return
    if s.startswith(("IP6 ", "(hlim ", "(class ", "(flowlabel ")):
        layer["_encap"] = Tunnel.IPIP
        pkt.layers.append({})
        parse_ip6(s[4:] if s.startswith("IP6 ") else s, pkt)
        return
    m = QUIET_TRANSPORT_RE.match(s)
    if m and ("sport" in layer or "dport" in layer):
        layer["proto"] = 6 if m.group(1) == "tcp" else 17
        if not layer.get("mf") and "_fragment" not in layer:
            layer["payload_len"] = int(m.group(2))
        return
    if ESP_RE.match(s):
        layer["proto"] = 50
        layer["info"] = _short(s)
        return
    if s == "no next header":
        layer["proto"] = 59
        return
    if GRE_RE.match(s):  # GRE: not an envelope the table opens; its contents stay in info
        layer["proto"] = 47
        layer["info"] = _short(s)
        return
    m = OTV_RE.match(s) or VXLAN_RE.match(s)
    if m:
        layer["proto"] = 17
        layer["_encap"] = Tunnel.VXLAN
        layer["_vni"] = int(m.group(1))
        pkt.pending = INNER
        return
    m = GENEVE_RE.match(s)
    if m:
        layer["proto"] = 17
        layer["_encap"] = Tunnel.GENEVE
        layer["_vni"] = int(m.group(1), 16)
        rest = s[m.end() :]
        if rest:
            pkt.layers.append({})
            parse_frame(rest, pkt)
        else:
            pkt.pending = INNER
        return
    if ("sport" in layer or "dport" in layer) and s.startswith("BFDv"):
        kind = _envelope_port(layer, pkt.ports)
        if kind:  # tcpdump decodes UDP 6784, weave's VXLAN port, as BFD over LAG (RFC 7130): an envelope
            layer["proto"] = 17  # it did not open (-T vxlan opens it), as with -q
            layer["_encap"] = kind
            return
    if "sport" in layer or "dport" in layer:
        parse_udp_app(s, layer)
        return
    m = IP_PROTO_RE.match(s)
    if m:
        layer.setdefault("proto", int(m.group(1)))
    elif s in PROTO_NAMES:  # a fragment after the first, printed without -n
        layer.setdefault("proto", PROTO_NAMES[s])
    if s:
        layer["info"] = _short(s)


def parse_ip6_extensions(s: str, layer: Layer) -> str:
    """IPv6 extension headers tcpdump prints before the upper layer: `HBH (rtalert: 0x0000) (padn) `,
    `frag (0x0000002a:1448|160) ` (id:offset|length; the id with -v only), then `5000 > 6000: ` ports."""
    m = IP6_EXT_RE.match(s)
    if m:
        s = s[m.end() :]
    m = IP6_FRAG_RE.match(s)
    if m is None:
        return s
    ident, offset, length = m.groups()
    if ident is not None:
        layer["ip_id"] = int(ident, 16)
    layer["frag_offset"] = int(offset)
    layer["mf"] = None  # tcpdump does not print the more-fragments bit
    layer["_frag_len"] = int(length)
    layer["_fragment"] = True
    s = s[m.end() :]
    m = PORT_PAIR_RE.match(s)
    if m is not None:
        layer["sport"], layer["dport"] = int(m.group(1)), int(m.group(2))
        s = s[m.end() :]
    return s


def _envelope_port(layer: Layer, ports: TunnelPorts) -> Tunnel:
    """The envelope a UDP port of the layer stands for; Tunnel.NONE for none."""
    by_port = ports.by_port
    return by_port.get(_int(layer, "dport"), Tunnel.NONE) or by_port.get(_int(layer, "sport"), Tunnel.NONE)


def _int(layer: Layer, key: str) -> int:
    """A number the layer holds (0 when it holds none: ports of a line that showed none)."""
    value = layer.get(key, 0)
    if not isinstance(value, int):
        raise TypeError(f"{key}: a number, not {type(value).__name__}")
    return value


def parse_udp_app(s: str, layer: Layer) -> None:
    """UDP (or another port protocol) with an application decode: DNS, NTP, DHCP ..."""
    if s.startswith(("sctp", "dccp")):
        layer["info"] = _short(s)
        return
    layer.setdefault("proto", 17)
    if layer.get("sport") in DNS_PORTS or layer.get("dport") in DNS_PORTS:
        m = DNS_RE.match(s)
        if m:
            layer["dns_id"] = int(m.group(1))
            layer["dns_qr"] = DNS_COUNTS_RE.search(s) is not None
            n = DNS_LEN_RE.search(s)
            if n:
                layer["payload_len"] = int(n.group(1))
    if s:
        layer["info"] = _short(s)


def parse_tcp(s: str, layer: Layer) -> None:
    layer["proto"] = 6
    m = TCP_RE.match(s)
    if m is None:  # cut before the closing `]`
        layer["info"] = _short(s)
        return
    flags, csum, seq, seq_end, ack, win, options, length, app = m.groups()
    bits = 0
    for ch in flags:
        bits |= TCP_FLAG_LETTERS.get(ch, 0)
    layer["tcp_flags"] = bits
    if csum is not None:
        layer["l4_csum_bad"] = csum == "incorrect"
    if seq is not None:
        layer["seq"] = int(seq)
    if ack is not None:
        layer["ack"] = int(ack)
    if win is not None:
        layer["win"] = int(win)
    if options:
        o = MSS_RE.search(options)
        if o:
            layer["mss"] = int(o.group(1))
        o = WSCALE_RE.search(options)
        if o:
            layer["wscale"] = int(o.group(1))
        layer["sack_ok"] = "sackOK" in options
        o = TS_OPT_RE.search(options)
        if o:
            layer["tsval"] = int(o.group(1))
            layer["tsecr"] = int(o.group(2))
    elif length is not None:
        layer["sack_ok"] = False
    if length is not None:
        layer["payload_len"] = int(length)
    elif seq_end is not None and seq is not None:
        layer["payload_len"] = (int(seq_end) - int(seq)) & 0xFFFFFFFF
    if app:
        layer["info"] = _short(app)


def parse_icmp(s: str, pkt: Packet) -> None:
    layer = pkt.top
    layer["proto"] = 1
    m = ICMP_BAD_CSUM_RE.search(s)  # -vv checks ICMP checksums and says so only when wrong
    if m is not None:
        layer["l4_csum_bad"] = True
        s = s[: m.start()]
    layer["info"] = _short(s)
    for pattern, type_, code, quoted_proto, kind in ICMP_FORMS:
        m = pattern.match(s)
        if m is None:
            continue
        layer["icmp_type"] = type_
        if code is not None:
            layer["icmp_code"] = code
        if kind == "echo":
            layer["icmp_id"] = int(m.group(1))
            layer["icmp_seq"] = int(m.group(2))
        elif kind in ("port", "proto", "mtu", "dst"):
            q4 = endpoint(m.group(1))[0]
            if q4 is not None:
                layer["quoted_dst"] = q4
            if kind == "port":
                layer["quoted_proto"] = quoted_proto
                port = _port(m.group(2))
                if port is not None:
                    layer["quoted_dport"] = port
            elif kind == "proto":
                layer["quoted_proto"] = int(m.group(2))
            elif kind == "mtu":
                layer["icmp_mtu"] = int(m.group(2))
        if type_ in (3, 5, 11):
            pkt.pending = QUOTED
        break
    n = LENGTH_END_RE.search(s)
    if n:
        layer["payload_len"] = max(int(n.group(1)) - 8, 0)


# destination unreachable (1), time exceeded (3), parameter problem (4): the code from tcpdump's words (print-icmp6.c)
ICMP6_CODES: dict[int, tuple[tuple[str, int], ...]] = {
    1: (("unreachable route", 0), ("unreachable prohibited", 1), ("beyond scope", 2), ("unreachable address", 3),
        ("unreachable port", 4)),
    3: (("in-transit (reassembly)", 1), ("in-transit", 0)),
    4: (("erroneous - octet", 0), ("next header - octet", 1), ("option - octet", 2)),
}
ICMP6_PORT_RE = re.compile(r"unreachable port, \S+ (tcp|udp) port (\d+)")


def parse_icmp6(s: str, layer: Layer) -> None:
    # `-v` prints no ICMPv6 length: the IPv6 payload length gives it when no extension header came first
    directly = layer.get("proto") == 58
    layer["proto"] = 58
    layer["info"] = _short(s)
    for pattern, type_ in ICMP6_FORMS:
        m = pattern.match(s)
        if m is None:
            continue
        layer["icmp_type"] = type_
        if type_ not in (1, 3, 4):  # the other messages have only code 0
            layer["icmp_code"] = 0
        if type_ in (128, 129):
            layer["icmp_id"] = int(m.group(1))
            layer["icmp_seq"] = int(m.group(2))
        elif type_ == 2:
            layer["icmp_mtu"] = int(m.group(1))
        for words, code in ICMP6_CODES.get(type_, ()):
            if words in s:
                layer["icmp_code"] = code
                break
        port = ICMP6_PORT_RE.search(s) if type_ == 1 else None
        if port is not None:  # the quoted packet's protocol and destination port
            layer["quoted_proto"] = 6 if port.group(1) == "tcp" else 17
            layer["quoted_dport"] = int(port.group(2))
        break
    n = LENGTH_END_RE.search(s)
    if n:
        layer["payload_len"] = max(int(n.group(1)) - 8, 0)
    elif directly and "ip_len" in layer:
        layer["payload_len"] = max(_int(layer, "ip_len") - 48, 0)


def parse_quoted(s: str, pkt: Packet) -> bool:
    """The packet an ICMP error quotes (printed with -v on the lines after it). True if consumed."""
    layer = pkt.top
    body = s.lstrip()
    if body.startswith("IP "):
        body = body[3:]
    if not pkt.quoted_header_seen and body.startswith("(tos "):
        quoted: Layer = {}
        if parse_v4_header(body, quoted) is None:
            return False
        layer["quoted_proto"] = quoted["proto"]
        pkt.quoted_header_seen = True
        return True
    quoted = {}
    if parse_pair(body, quoted) is None or quoted.get("ip_version") != 4:
        return False
    layer["quoted_src"], layer["quoted_dst"] = quoted["src"], quoted["dst"]
    if "sport" in quoted:
        layer["quoted_sport"] = quoted["sport"]
    if "dport" in quoted:
        layer["quoted_dport"] = quoted["dport"]
    pkt.pending = None
    return True


def _arp_address(layer: Layer, column: str, token: str) -> None:
    """An ARP protocol address, or the host name tcpdump printed for it (no -n): sender as src_name, target as dst_name."""
    value, _v6, _port, host, _port_name = endpoint(token)
    if value is not None:
        layer[column] = value
    elif host is not None:
        layer["src_name" if column == "arp_spa" else "dst_name"] = host


def parse_arp(s: str, layer: Layer) -> None:
    layer["ethertype"] = 0x0806
    m = ARP_REQUEST_RE.search(s)
    if m:
        layer["arp_op"] = 1
        _arp_address(layer, "arp_tpa", m.group(1))
        _arp_address(layer, "arp_spa", m.group(2))
        return
    m = ARP_REPLY_RE.search(s)
    if m:
        layer["arp_op"] = 2
        _arp_address(layer, "arp_spa", m.group(1))
        layer["arp_sha"] = _mac(m.group(2))
        return
    layer["info"] = _short(s)


def parse_body(ethertype: int, s: str, pkt: Packet) -> None:
    """What follows a link header whose ethertype tcpdump printed (no `IP ` prefix then)."""
    layer = pkt.top
    layer["ethertype"] = ethertype
    if ethertype == 0x8100 or ethertype == 0x88A8:
        m = VLAN_RE.match(s)
        if m is None:
            layer["info"] = _short(s)
            return
        layer.setdefault("vlan", int(m.group(1)))
        inner_type = int(m.group(3), 16) if m.group(3) else ETHERTYPE_NAMES.get(m.group(2), -1)
        parse_body(inner_type, s[m.end() :], pkt)
        return
    if ethertype == 0x0800:
        parse_ip4(s, pkt)
    elif ethertype == 0x86DD:
        parse_ip6(s, pkt)
    elif ethertype == 0x0806:
        parse_arp(s, layer)
    elif s:
        layer["info"] = _short(s)


def parse_frame(s: str, pkt: Packet) -> None:
    """A frame as the Ethernet printer shows it: with -e the MAC header, else `IP ...`, `ARP, ...`."""
    if s.startswith("IP "):  # the common line, which neither header below starts like (a MAC; `AF `, `IPv4`)
        parse_ip4(s[3:], pkt)
        return
    layer = pkt.top
    m = ETHER_RE.match(s)
    if m:
        src, dst, _name, ethertype, other, length = m.groups()
        layer["eth_src"] = _mac(src)
        layer["eth_dst"] = _mac(dst)
        layer["wirelen"] = int(length)
        rest = s[m.end() :]
        if ethertype is None and other in ETHERTYPE_NAMES:  # -q
            parse_body(ETHERTYPE_NAMES[other], rest, pkt)
            return
        if ethertype is None:
            layer["info"] = _short(f"{other}: {rest}" if rest else other)
            return
        parse_body(int(ethertype, 16), rest, pkt)
        return
    m = LOOPBACK_RE.match(s)
    if m:
        pkt.top["wirelen"] = int(m.group(2))
        parse_body(ETHERTYPE_NAMES[m.group(1)], s[m.end() :], pkt)
        return
    parse_prefixed(s, pkt)


def parse_prefixed(s: str, pkt: Packet) -> None:
    """`IP ...`, `IP6 ...`, `ARP, ...`, tunl0's `ip: ...`, or a protocol tcpdump names otherwise."""
    if s.startswith("IP "):
        parse_ip4(s[3:], pkt)
    elif s.startswith("IP6 "):
        parse_ip6(s[4:], pkt)
    elif s.startswith("ARP, "):
        parse_arp(s[5:], pkt.top)
    elif s.startswith("ip: "):
        body = s[4:]
        if body.startswith("(tos ") or V4_RE.match(body.split(" ", 1)[0]):
            parse_ip4(body, pkt)
        else:
            parse_ip6(body, pkt)
    elif s:
        pkt.top["info"] = _short(s)



def parse_sll2(s: str, pkt: Packet) -> bool:
    """tcpdump 4.99 `-i any -e`: `ifindex 2 0a:58:.. ethertype IPv4 (0x0800), length 104: ...`."""
    m = SLL2_RE.match(s)
    if m is None:
        m = SLL2_QUIET_RE.match(s)
        if m is None:
            return False
        if m.group(1):
            pkt.top["eth_src"] = _mac(m.group(1))
        parse_l3_line(s[m.end() :], pkt)
        return True
    layer = pkt.top
    src, _name, ethertype, length = m.groups()
    if src:
        layer["eth_src"] = _mac(src)
    layer["wirelen"] = int(length)
    parse_body(int(ethertype, 16), s[m.end() :], pkt)
    return True


def parse_sll1(s: str, pkt: Packet) -> bool:
    """tcpdump before 4.99 `-i any -e`: `In 0a:58:.. ethertype IPv4 (0x0800), length 100: ...`."""
    m = SLL1_RE.match(s)
    if m is None:
        return False
    direction, src, _name, ethertype, length = m.groups()
    pkt.direction = DIRECTIONS[direction]
    if pkt.linktype is None:
        pkt.linktype = LinkType.LINUX_SLL
    layer = pkt.top
    if src:
        layer["eth_src"] = _mac(src)
    layer["wirelen"] = int(length)
    parse_body(int(ethertype, 16), s[m.end() :], pkt)
    return True
