"""A deterministic mix of frames covering every link type, tunnel and header family the decoder knows.

`synth_frames(n, seed)` returns (linktype, frame) pairs: Ethernet (with and
without 802.1Q), SLL, SLL2, RAW, IPv4 and IPv6 link types; IPv4 with and
without options and fragments; IPv6 with and without extension headers; TCP
with the Linux option layouts and odd ones; UDP, DNS, ICMP/ICMPv6 echo and
errors quoting a packet; ARP; and VXLAN (8472, 4789), Geneve (with and without
options), IPIP and flannel-UDP envelopes. TCP/UDP checksums are mostly right,
sometimes wrong (as captured on a sender that offloads them) or left 0; the
envelopes' UDP checksums mostly 0, as Linux sends VXLAN.
"""

from __future__ import annotations

import random
import struct

from tests.frames import (
    LinkType,
    arp,
    data_options,
    dns,
    ethernet,
    geneve,
    icmp,
    icmpv6,
    ipv4,
    ipv6,
    ipv6_ext,
    ipv6_fragment,
    sll,
    sll2,
    syn_options,
    tcp,
    udp,
    vxlan,
)

ETH_IPV4, ETH_IPV6, ETH_ARP = 0x0800, 0x86DD, 0x0806


def _ip4(r: random.Random, prefix: str) -> str:
    return f"{prefix}.{r.randrange(256)}.{r.randrange(1, 255)}"


def _ip6(r: random.Random) -> str:
    return f"fd00:{r.randrange(65536):x}::{r.randrange(1, 65536):x}"


def _checksum(r: random.Random) -> str:
    return r.choices(("good", "bad", "as-given"), (7, 2, 1))[0]


def _mac(r: random.Random) -> str:
    return "02:" + ":".join(f"{r.randrange(256):02x}" for _ in range(5))


def _tcp_options(r: random.Random) -> bytes:
    pick = r.randrange(6)
    if pick == 0:
        return b""
    if pick == 1:
        return syn_options(mss=r.randrange(536, 9000), wscale=r.randrange(15), tsval=r.randrange(1 << 32), tsecr=0)
    if pick in (2, 3):
        return data_options(tsval=r.randrange(1 << 32), tsecr=r.randrange(1 << 32))
    if pick == 4:  # MSS only (no timestamps): many non-Linux stacks
        return struct.pack("!BBH", 2, 4, r.randrange(536, 1461))
    # timestamps first, then SACK blocks: an odd layout for the vector walker
    return struct.pack("!BBII", 8, 10, r.randrange(1 << 32), r.randrange(1 << 32)) + b"\x01\x01" + struct.pack("!BBII", 5, 10, 1000, 2000)


def _l4(r: random.Random, v6: bool, allow_errors: bool = True) -> tuple[int, bytes]:
    """(protocol, transport bytes) of a random packet."""
    pick = r.randrange(10)
    payload = r.randbytes(r.choice((0, 0, 1, 7, 15, 16, 17, 100, r.randrange(300))))
    if pick <= 4:
        flags = r.choice(("S", "S.", ".", "P.", "F.", "R", "R.", "SEW"))
        return 6, tcp(payload, sport=r.randrange(1, 65536), dport=r.choice((80, 443, 6443, r.randrange(1, 65536))),
                      seq=r.randrange(1 << 32), ack=r.randrange(1 << 32), flags=flags, win=r.randrange(65536),
                      options=_tcp_options(r))
    if pick <= 6:
        if r.random() < 0.4:
            response = r.random() < 0.5
            ports = (53, r.randrange(32768, 61000)) if response else (r.randrange(32768, 61000), 53)
            return 17, udp(dns(r.randrange(65536), response), *ports)
        return 17, udp(payload, r.randrange(1, 4000), r.choice((123, 514, r.randrange(1, 4000))))
    if pick <= 8 or not allow_errors:
        if v6:
            return 58, icmpv6(r.choice((128, 129)), 0, r.randrange(65536), r.randrange(65536), payload)
        return 1, icmp(r.choice((0, 8)), 0, r.randrange(65536), r.randrange(65536), payload)
    # an error quoting the packet that caused it
    proto, quoted_l4 = _l4(r, v6, allow_errors=False)
    if v6:
        quoted = ipv6(quoted_l4, _ip6(r), _ip6(r), next_header=proto)[:48 + 8]
        if r.random() < 0.5:
            return 58, icmpv6(2, 0, payload=quoted, mtu=r.randrange(1280, 1500))
        return 58, icmpv6(1, r.randrange(5), payload=quoted)
    quoted = ipv4(quoted_l4, _ip4(r, "10.244"), _ip4(r, "10.96"), proto=proto)[:28]
    if r.random() < 0.5:
        return 1, icmp(3, 4, payload=quoted, mtu=r.choice((1400, 1450, 1480)))
    return 1, icmp(r.choice((3, 11)), r.choice((0, 1, 3)), payload=quoted)


def _ipv4_packet(r: random.Random, prefix: str = "10.244") -> bytes:
    proto, l4 = _l4(r, v6=False)
    kind = r.randrange(12)
    common = dict(src=_ip4(r, prefix), dst=_ip4(r, prefix), ttl=r.randrange(1, 256), ip_id=r.randrange(65536),
                  tos=r.choice((0, 0, 0x10, 0xB8)), df=r.random() < 0.7, l4_checksum=_checksum(r))
    if kind == 0:  # router-alert option
        return ipv4(l4, proto=proto, options=b"\x94\x04\x00\x00", **common)
    if kind == 1 and proto == 17:  # first fragment of a UDP datagram
        return ipv4(l4[:8 + 8 * r.randrange(3)], proto=proto, mf=True, **{**common, "df": False})
    if kind == 2:  # a later fragment
        return ipv4(r.randbytes(24), proto=proto, mf=r.random() < 0.5, frag_offset=8 * r.randrange(1, 100), **{**common, "df": False})
    return ipv4(l4, proto=proto, **common)


def _ipv6_packet(r: random.Random) -> bytes:
    proto, l4 = _l4(r, v6=True)
    kind = r.randrange(8)
    src, dst = _ip6(r), _ip6(r)
    hop, tclass, csum = r.randrange(1, 256), r.choice((0, 0, 0xB8)), _checksum(r)
    if kind == 0:  # hop-by-hop + destination options
        return ipv6(ipv6_ext(60, b"\x01\x04\0\0\0\0") + ipv6_ext(proto, b"\x01\x04\0\0\0\0") + l4, src, dst, 0, hop, tclass,
                    l4_checksum=csum)
    if kind == 1:  # an atomic fragment (offset 0, M=0): the layers above still decode
        return ipv6(ipv6_fragment(proto, r.randrange(1 << 32)) + l4, src, dst, 44, hop, tclass, l4_checksum=csum)
    if kind == 2:  # a later fragment
        return ipv6(ipv6_fragment(proto, r.randrange(1 << 32), offset=8 * r.randrange(1, 50)) + r.randbytes(16), src, dst, 44, hop, tclass)
    return ipv6(l4, src, dst, proto, hop, tclass, l4_checksum=csum)


def _arp(r: random.Random) -> bytes:
    return arp(r.choice((1, 2)), _mac(r), _ip4(r, "10.244"), _mac(r), _ip4(r, "10.244"))


def _inner_ethernet(r: random.Random) -> bytes:
    pick = r.randrange(10)
    if pick == 0:
        return ethernet(_arp(r), _mac(r), _mac(r), ETH_ARP)
    if pick == 1:
        return ethernet(_ipv6_packet(r), _mac(r), _mac(r), ETH_IPV6)
    return ethernet(_ipv4_packet(r), _mac(r), _mac(r), ETH_IPV4)


def _enveloped(r: random.Random) -> bytes:
    """An IPv4 packet between nodes carrying a pod packet."""
    pick = r.randrange(6)
    outer = dict(src=_ip4(r, "192.168"), dst=_ip4(r, "192.168"), ttl=64, ip_id=r.randrange(65536), df=False,
                 l4_checksum=r.choice(("as-given", "as-given", "good")))
    sport = r.randrange(32768, 61000)
    if pick <= 1:
        port = 8472 if pick == 0 else 4789
        return ipv4(udp(vxlan(_inner_ethernet(r), vni=r.choice((1, 4096, 7))), sport, port), proto=17, **outer)
    if pick == 2:
        options = r.choice((b"", b"\x01\x02\x03\x01\0\0\0\x2a"))
        return ipv4(udp(geneve(_inner_ethernet(r), vni=r.randrange(1 << 24), options=options), sport, 6081), proto=17, **outer)
    if pick == 3:
        return ipv4(_ipv4_packet(r), proto=4, **outer)
    return ipv4(udp(_ipv4_packet(r), sport, 8285), proto=17, **outer)


def _network(r: random.Random, allow_arp: bool) -> tuple[int, bytes]:
    """(ethertype, packet) of a random sighting."""
    pick = r.randrange(20)
    if pick < 6:
        return ETH_IPV4, _enveloped(r)
    if pick < 8:
        return ETH_IPV6, _ipv6_packet(r)
    if pick < 9 and allow_arp:
        return ETH_ARP, _arp(r)
    return ETH_IPV4, _ipv4_packet(r)


def synth_frame(r: random.Random, linktype: LinkType) -> bytes:
    if linktype == LinkType.IPV4:
        return _enveloped(r) if r.random() < 0.3 else _ipv4_packet(r)
    if linktype == LinkType.IPV6:
        return _ipv6_packet(r)
    ethertype, packet = _network(r, allow_arp=linktype != LinkType.RAW)
    if linktype == LinkType.RAW:
        return packet
    if linktype == LinkType.ETHERNET:
        vlans = (r.randrange(1, 4095),) if r.random() < 0.2 else ()
        return ethernet(packet, _mac(r), _mac(r), ethertype, vlans=vlans)
    pkttype = r.choice((0, 0, 4, 4, 1, 2, 3))
    vlan = r.randrange(1, 4095) if r.random() < 0.1 else None
    if linktype == LinkType.LINUX_SLL:
        return sll(packet, pkttype, _mac(r), ethertype, vlan=vlan)
    return sll2(packet, pkttype, r.randrange(1, 40), _mac(r), ethertype, vlan=vlan)


LINKTYPES = (LinkType.ETHERNET, LinkType.LINUX_SLL, LinkType.LINUX_SLL2, LinkType.RAW, LinkType.IPV4, LinkType.IPV6)


def synth_frames(n: int, seed: int = 1) -> list[tuple[LinkType, bytes]]:
    """`n` frames, link types spread evenly, every kind of content present."""
    r = random.Random(seed)
    return [(LINKTYPES[i % len(LINKTYPES)], synth_frame(r, LINKTYPES[i % len(LINKTYPES)])) for i in range(n)]
