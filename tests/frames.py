"""Build test frames and capture files byte by byte (no scapy): `from tests.frames import *`.

Headers nest by argument, innermost first, e.g. a VXLAN-encapsulated TCP SYN
seen on a node's eth0 with `tcpdump -i any` (LINUX_SLL2):

    inner = ethernet(ipv4(tcp(sport=40000, dport=80, flags="S", options=syn_options()), src="10.244.1.2", dst="10.244.2.3"))
    frame = sll2(ipv4(udp(vxlan(inner, vni=1), sport=51000, dport=8472), src="192.168.0.11", dst="192.168.0.12"))

Every builder returns bytes, its headers written by the declarations the decoders
read (`cniscope.packets.headers`, `Header.pack`) and its checksums by the one
Internet checksum (`cniscope.packets.checksum.internet`), as `--pcapng` rebuilds
frames. Addresses are text ("10.0.0.1", "fd00::1",
"02:00:00:00:00:01"). IPv4 header checksums are computed, and so are the
TCP/UDP checksums of whole, unfragmented segments when `ipv4`/`ipv6` wrap them
(`l4_checksum="bad"` spoils one on purpose, `"as-given"` keeps the field as the
segment has it: 0 from `tcp`/`udp`, which over IPv4 means "no checksum" for UDP). Writers:

    write_pcap(path, frames, linktype=LinkType.ETHERNET, snaplen=..., nanosecond=..., big_endian=...)
    write_pcapng(path, [(iface_index, frame), ...], interfaces=[("eth0", LinkType.ETHERNET), ...])
    frame_batch(frames, linktypes) -> FrameBatch  (no file: what a reader would hand to decode)

Frames longer than `snaplen` are cut (caplen < wirelen), as tcpdump -s does.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cniscope.packets import headers as H
from cniscope.packets.checksum import internet, pseudo_v4, pseudo_v6
from cniscope.packets.frames import FrameBatch
from cniscope.packets.schema import LinkType

__all__ = [
    "LinkType", "mac", "ethernet", "sll", "sll2", "ipv4", "ipv6", "ipv6_ext", "ipv6_fragment", "tcp", "udp",
    "icmp", "icmpv6", "arp", "dns", "vxlan", "geneve", "syn_options", "data_options", "write_pcap",
    "write_pcapng", "frame_batch", "TCP_FLAGS",
]

TCP_FLAGS = {"F": 1, "S": 2, "R": 4, "P": 8, ".": 16, "U": 32, "E": 64, "W": 128}


def mac(text: str) -> bytes:
    return bytes(int(part, 16) for part in text.split(":"))


def _ip4(text: str) -> bytes:
    return ipaddress.IPv4Address(text).packed


def _ip6(text: str) -> bytes:
    return ipaddress.IPv6Address(text).packed


L4_CHECKSUM_AT = {6: (16, 20), 17: (6, 8)}  # protocol -> (checksum offset, header size)


def _l4_checksum(segment: bytes, proto: int, pseudo: bytes, how: str) -> bytes:
    """`segment` with its TCP/UDP checksum filled in (`how`: "good", "bad" or "as-given")."""
    if how not in ("good", "bad", "as-given"):
        raise ValueError(f"l4_checksum is good, bad or as-given, not {how!r}")
    at, size = L4_CHECKSUM_AT.get(proto, (0, 0))
    if how == "as-given" or not size or len(segment) < size:
        return segment
    blank = segment[:at] + b"\0\0" + segment[at + 2 :]
    value = internet(pseudo + blank)
    if proto == 17 and value == 0:
        value = 0xFFFF  # UDP sends a computed 0 as all ones: 0 means "no checksum"
    if how == "bad":
        value ^= 1  # never the same in ones' complement (only 0 and 0xffff are)
    return segment[:at] + struct.pack("!H", value) + segment[at + 2 :]


# -- link layer --------------------------------------------------------------------
def ethernet(payload: bytes, src: str = "02:00:00:00:00:01", dst: str = "02:00:00:00:00:02",
             ethertype: int = 0x0800, vlans: Sequence[int] = (), vlan_tpid: int = 0x8100) -> bytes:
    """Ethernet II; `vlans` adds 802.1Q tags outermost first (QinQ: two tags, vlan_tpid=0x88a8 for the outer)."""
    types = [vlan_tpid, *[0x8100] * (len(vlans) - 1), ethertype] if vlans else [ethertype]
    tags = b"".join(H.VLAN.pack(tci=vid, type=kind) for vid, kind in zip(vlans, types[1:], strict=True))
    return H.ETHERNET.pack(dst=mac(dst), src=mac(src), type=types[0]) + tags + payload


def _tag(payload: bytes, proto: int, vlan: int | None) -> tuple[int, bytes]:
    """(protocol field, bytes after it) with an optional 802.1Q tag, as libpcap puts it back after SLL/SLL2."""
    if vlan is None:
        return proto, payload
    return 0x8100, H.VLAN.pack(tci=vlan, type=proto) + payload


def sll(payload: bytes, pkttype: int = 0, addr: str = "02:00:00:00:00:01", proto: int = 0x0800, hatype: int = 1,
        vlan: int | None = None) -> bytes:
    """LINUX_SLL (link type 113): tcpdump -i any before libpcap 1.10."""
    proto, payload = _tag(payload, proto, vlan)
    return H.SLL.pack(pkttype=pkttype, hatype=hatype, halen=6, addr=mac(addr), proto=proto) + payload


def sll2(payload: bytes, pkttype: int = 0, ifindex: int = 2, addr: str = "02:00:00:00:00:01", proto: int = 0x0800, hatype: int = 1,
         vlan: int | None = None) -> bytes:
    """LINUX_SLL2 (link type 276): tcpdump -i any with libpcap >= 1.10."""
    proto, payload = _tag(payload, proto, vlan)
    return H.SLL2.pack(proto=proto, ifindex=ifindex, hatype=hatype, pkttype=pkttype, halen=6, addr=mac(addr)) + payload


# -- network layer -------------------------------------------------------------------
def ipv4(payload: bytes, src: str = "10.0.0.1", dst: str = "10.0.0.2", proto: int = 6, ttl: int = 64, ip_id: int = 1,
         tos: int = 0, df: bool = True, mf: bool = False, frag_offset: int = 0, options: bytes = b"",
         total_length: int | None = None, l4_checksum: str = "good") -> bytes:
    """IPv4 with a correct header checksum; `frag_offset` in bytes (multiple of 8); options padded to 4.
    A whole TCP/UDP segment gets its checksum as `l4_checksum` says (not a fragment, nor with `total_length`)."""
    if not mf and not frag_offset and total_length is None:
        payload = _l4_checksum(payload, proto, pseudo_v4(_ip4(src), _ip4(dst), proto, len(payload)), l4_checksum)
    options = options + b"\0" * (-len(options) % 4)
    ihl = 5 + len(options) // 4
    length = total_length if total_length is not None else 4 * ihl + len(payload)
    flags = (0x4000 if df else 0) | (0x2000 if mf else 0) | (frag_offset // 8)
    fields = dict(vihl=0x40 | ihl, tos=tos, len=length, id=ip_id, frag=flags, ttl=ttl, proto=proto, src=_ip4(src), dst=_ip4(dst))
    csum = internet(H.IPV4.pack(**fields) + options)
    return H.IPV4.pack(**fields, csum=csum) + options + payload


def ipv6(payload: bytes, src: str = "fd00::1", dst: str = "fd00::2", next_header: int = 6, hop_limit: int = 64,
         tclass: int = 0, flow: int = 0, l4_checksum: str = "good") -> bytes:
    """IPv6 fixed header; put extension headers (ipv6_ext, ipv6_fragment) in front of the payload yourself.
    A whole TCP/UDP segment after them gets its checksum as `l4_checksum` says (not after a routing header)."""
    nh, at = next_header, 0
    while nh in (0, 60, 44) and at + 8 <= len(payload):  # hop-by-hop, destination options, fragment
        if nh == 44 and struct.unpack_from("!H", payload, at + 2)[0] & 0xFFF9:
            break  # a fragment other than an atomic one: no whole segment here
        nh, at = payload[at], at + (8 if nh == 44 else (payload[at + 1] + 1) * 8)
    if nh in L4_CHECKSUM_AT and at <= len(payload):
        segment = payload[at:]
        pseudo = pseudo_v6(_ip6(src), _ip6(dst), nh, len(segment))
        payload = payload[:at] + _l4_checksum(segment, nh, pseudo, l4_checksum)
    first = (6 << 28) | (tclass << 20) | flow
    return H.IPV6.pack(vtcfl=first, plen=len(payload), nh=next_header, hlim=hop_limit, src=_ip6(src), dst=_ip6(dst)) + payload


def ipv6_ext(next_header: int, body: bytes = b"\0" * 6) -> bytes:
    """Hop-by-hop / routing / destination options header: `body` (6 + 8n bytes) after next-header and length."""
    if (len(body) + 2) % 8:
        raise ValueError("extension header body must be 6 + 8n bytes")
    return struct.pack("!BB", next_header, (len(body) + 2) // 8 - 1) + body


def ipv6_fragment(next_header: int, ident: int, offset: int = 0, more: bool = False) -> bytes:
    return struct.pack("!BBHI", next_header, 0, (offset & 0xFFF8) | int(more), ident)


def arp(op: int = 1, sha: str = "02:00:00:00:00:01", spa: str = "10.0.0.1", tha: str = "00:00:00:00:00:00",
        tpa: str = "10.0.0.2") -> bytes:
    return H.ARP.pack(htype=1, ptype=H.ETH_IPV4, hlen=6, plen=4, op=op, sha=mac(sha), spa=_ip4(spa), tha=mac(tha), tpa=_ip4(tpa))


# -- transport layer -------------------------------------------------------------------
def syn_options(mss: int = 1460, wscale: int = 7, tsval: int = 1000, tsecr: int = 0) -> bytes:
    """The Linux SYN layout: MSS, SACK-permitted, timestamps, NOP, window scale (20 bytes)."""
    return struct.pack("!BBH", 2, 4, mss) + b"\x04\x02" + struct.pack("!BBII", 8, 10, tsval, tsecr) + b"\x01" + struct.pack("!BBB", 3, 3, wscale)


def data_options(tsval: int = 1000, tsecr: int = 2000) -> bytes:
    """The Linux data-segment layout: NOP, NOP, timestamps (12 bytes)."""
    return b"\x01\x01" + struct.pack("!BBII", 8, 10, tsval, tsecr)


def tcp(payload: bytes = b"", sport: int = 40000, dport: int = 80, seq: int = 1, ack: int = 0, flags: str | int = "S",
        win: int = 64240, options: bytes = b"") -> bytes:
    """TCP; `flags` in tcpdump letters ("S", "S.", "P.", "F.", "R") or as the flags byte. Options padded to 4 with EOL."""
    bits = flags if isinstance(flags, int) else sum(TCP_FLAGS[ch] for ch in flags)
    options = options + b"\0" * (-len(options) % 4)
    doff = 5 + len(options) // 4
    return H.TCP.pack(sport=sport, dport=dport, seq=seq, ack=ack, doff=doff << 4, flags=bits, win=win) + options + payload


def udp(payload: bytes = b"", sport: int = 40000, dport: int = 53) -> bytes:
    return H.UDP.pack(sport=sport, dport=dport, len=H.UDP.size + len(payload)) + payload


def icmp(type_: int = 8, code: int = 0, ident: int = 1, seq: int = 1, payload: bytes = b"", mtu: int | None = None) -> bytes:
    """ICMP; for errors pass the quoted packet as `payload` (and `mtu` for frag-needed, type 3 code 4)."""
    fields: dict[str, int] = dict(type=type_, code=code)
    if mtu is not None:
        fields["mtu4"] = mtu
    elif type_ in (0, 8):
        fields.update(id=ident, seq=seq)
    return H.ICMP.pack(**fields, csum=internet(H.ICMP.pack(**fields) + payload)) + payload


def icmpv6(type_: int = 128, code: int = 0, ident: int = 1, seq: int = 1, payload: bytes = b"", mtu: int | None = None) -> bytes:
    """ICMPv6 (checksum left 0); packet-too-big is type 2 with `mtu`, errors quote `payload`."""
    fields: dict[str, int] = dict(type=type_, code=code)
    if mtu is not None:
        fields["mtu6"] = mtu
    elif type_ in (128, 129):
        fields.update(id=ident, seq=seq)
    return H.ICMP.pack(**fields) + payload


def dns(ident: int = 0x1234, response: bool = False, name: str = "kubernetes.default") -> bytes:
    """A one-question DNS message (A record)."""
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    flags = 0x8180 if response else 0x0100
    return struct.pack("!HHHHHH", ident, flags, 1, 0, 0, 0) + qname + struct.pack("!HH", 1, 1)


# -- tunnels -------------------------------------------------------------------------------
def vxlan(inner_frame: bytes, vni: int = 1) -> bytes:
    """VXLAN header + inner Ethernet frame: the UDP payload."""
    return H.VXLAN.pack(flags=0x08, vni_res=vni << 8) + inner_frame


def geneve(inner: bytes, vni: int = 1, options: bytes = b"", proto: int = 0x6558) -> bytes:
    """Geneve header (+ options, a multiple of 4 bytes) + inner frame (Ethernet for proto 0x6558)."""
    if len(options) % 4:
        raise ValueError("Geneve options are a multiple of 4 bytes")
    return H.GENEVE.pack(verlen=len(options) // 4, proto=proto, vni_res=vni << 8) + options + inner


# -- files -------------------------------------------------------------------------------
def write_pcap(path: str | Path, frames: Sequence[bytes], linktype: int = LinkType.ETHERNET, snaplen: int = 262144,
               nanosecond: bool = False, big_endian: bool = False, start_ns: int = 1_700_000_000_000_000_000,
               step_ns: int = 1000) -> Path:
    """A pcap file; frame i has timestamp start_ns + i * step_ns."""
    e = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
    parts = [struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, snaplen, int(linktype))]
    for i, frame in enumerate(frames):
        ts = start_ns + i * step_ns
        sec, sub = divmod(ts, 1_000_000_000)
        if not nanosecond:
            sub //= 1000
        cap = frame[:snaplen]
        parts.append(struct.pack(e + "IIII", sec, sub, len(cap), len(frame)) + cap)
    path = Path(path)
    path.write_bytes(b"".join(parts))
    return path


def _block(kind: int, body: bytes) -> bytes:
    body = body + b"\0" * (-len(body) % 4)
    length = 12 + len(body)
    return struct.pack("<II", kind, length) + body + struct.pack("<I", length)


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def write_pcapng(path: str | Path, packets: Sequence[tuple[int, bytes]], interfaces: Sequence[tuple[str, int]],
                 snaplen: int = 262144, start_ns: int = 1_700_000_000_000_000_000, step_ns: int = 1000,
                 flags: Sequence[int | None] | None = None) -> Path:
    """A little-endian pcapng file: one section, one IDB per (name, linktype) with if_tsresol 9 (ns),
    one EPB per (interface index, frame); `flags[i]` sets epb_flags (direction bits) when given."""
    out = [_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))]
    for name, linktype in interfaces:
        options = _option(2, name.encode()) + _option(9, b"\x09") + _option(0, b"")
        out.append(_block(1, struct.pack("<HHI", int(linktype), 0, snaplen) + options))
    for i, (iface, frame) in enumerate(packets):
        ts = start_ns + i * step_ns
        cap = frame[:snaplen]
        body = struct.pack("<IIIII", iface, ts >> 32, ts & 0xFFFFFFFF, len(cap), len(frame)) + cap + b"\0" * (-len(cap) % 4)
        if flags is not None and flags[i] is not None:
            body += _option(2, struct.pack("<I", flags[i])) + _option(0, b"")
        out.append(_block(6, body))
    path = Path(path)
    path.write_bytes(b"".join(out))
    return path


def frame_batch(frames: Sequence[bytes], linktypes: int | Sequence[int] = LinkType.ETHERNET, snaplen: int = 262144,
                start_ns: int = 1_700_000_000_000_000_000, step_ns: int = 1000, first_frame: int = 0,
                iface_names: Sequence[str | None] = (), ifaces: Sequence[int] | None = None,
                directions: Sequence[int] | None = None) -> FrameBatch:
    """The FrameBatch a binary reader would produce for these frames, laid end to end in one buffer."""
    n = len(frames)
    cut = [f[:snaplen] for f in frames]
    offsets = np.zeros(n, dtype=np.int64)
    if n:
        offsets[1:] = np.cumsum([len(f) for f in cut])[:-1]
    if isinstance(linktypes, int):
        linktypes = [linktypes] * n
    return FrameBatch(
        data=np.frombuffer(b"".join(cut), dtype=np.uint8) if n else np.zeros(0, dtype=np.uint8),
        offset=offsets,
        caplen=np.array([len(f) for f in cut], dtype=np.uint32),
        wirelen=np.array([len(f) for f in frames], dtype=np.uint32),
        ts=start_ns + np.arange(n, dtype=np.int64) * step_ns,
        linktype=np.array(linktypes, dtype=np.uint16),
        iface=np.array(ifaces if ifaces is not None else [-1] * n, dtype=np.int32),
        iface_names=list(iface_names),
        node=np.full(n, -1, dtype=np.int32),
        node_names=[],
        direction=np.array(directions if directions is not None else [-1] * n, dtype=np.int16),
        first_frame=first_frame,
    )
