"""A broad mix of protocols, generated for reading tcpdump's text back: every kind of packet users meet.

`packets(seed)` gives IP packets (no link header): IPv4 and IPv6 TCP conversations (handshake, data, teardown,
reset, a bad checksum), UDP, DNS, ICMP echo and errors, ICMPv6 echo and neighbour discovery, IPv4 and IPv6
fragments, ESP, IPv6 no-next-header, GRE, and VXLAN, Geneve and IP in IP over IPv4 and IPv6 with good, bad and
no envelope checksums. `capture(kind, seed)` wraps them for one link type (Ethernet with ARP and 802.1Q, -i any's
LINUX_SLL2, raw IP, BSD loopback ...). Timestamps: 1 to 3 ms apart, with gaps.
"""

from __future__ import annotations

import random
import struct
from pathlib import Path

from cniscope.packets.schema import LinkType
from tests.frames import (
    arp,
    data_options,
    dns,
    ethernet,
    geneve,
    icmp,
    icmpv6,
    ipv4,
    ipv6,
    ipv6_fragment,
    sll2,
    syn_options,
    tcp,
    udp,
    vxlan,
    write_pcap,
)

PODS4 = ["10.244.1.5", "10.244.2.7", "10.244.1.9", "10.96.0.10"]
NODES4 = ["192.168.56.11", "192.168.56.12"]
PODS6 = ["fd00:10:244:1::5", "fd00:10:244:2::7"]
NODES6 = ["fd00:56::11", "fd00:56::12"]
MACS = ["0a:58:0a:f4:01:05", "0a:58:0a:f4:02:07", "52:54:00:12:34:56"]
SERVICES = [80, 443, 22, 8080, 6443, 9100, 1701, 3306, 2379, 30080]


def _ip(payload: bytes, src: str, dst: str, proto: int, **kw: object) -> bytes:
    if ":" in src:
        return ipv6(payload, src=src, dst=dst, next_header=proto, **kw)  # type: ignore[arg-type]
    return ipv4(payload, src=src, dst=dst, proto=proto, **kw)  # type: ignore[arg-type]


def conversation(rng: random.Random, a: str, b: str, dport: int, ip_id: int) -> list[bytes]:
    """A TCP connection: handshake, a request, an answer in two segments, teardown (sometimes a reset)."""
    sport = rng.randrange(32768, 61000)
    s, r = rng.getrandbits(32), rng.getrandbits(32)
    ts = rng.getrandbits(31)
    v4 = ":" not in a
    extra = {"ip_id": ip_id} if v4 else {}

    def seg(src: str, dst: str, *args: object, **kw: object) -> bytes:
        out = {**extra, **({"ttl": 64} if v4 else {})}
        return _ip(tcp(*args, **kw), src, dst, 6, **out)  # type: ignore[arg-type]

    req = b"GET /healthz HTTP/1.1\r\nHost: svc\r\n\r\n"
    body = bytes(rng.randrange(256) for _ in range(rng.randrange(200, 1200)))
    out = [
        seg(a, b, b"", sport, dport, s, 0, "S", 64240, syn_options(tsval=ts)),
        seg(b, a, b"", dport, sport, r, s + 1, "S.", 65160, syn_options(tsval=ts + 7, tsecr=ts)),
        seg(a, b, b"", sport, dport, s + 1, r + 1, ".", 502, data_options(ts + 1, ts + 7)),
        seg(a, b, req, sport, dport, s + 1, r + 1, "P.", 502, data_options(ts + 1, ts + 7)),
        seg(b, a, body[:100], dport, sport, r + 1, s + 1 + len(req), ".", 509, data_options(ts + 8, ts + 1)),
        seg(b, a, body[100:], dport, sport, r + 101, s + 1 + len(req), "P.", 509, data_options(ts + 8, ts + 1)),
    ]
    if rng.random() < 0.2:
        out.append(seg(a, b, b"", sport, dport, s + 1 + len(req), 0, "R", 0))
    else:
        end = r + 1 + len(body)
        out += [seg(a, b, b"", sport, dport, s + 1 + len(req), end, "F.", 502, data_options(ts + 2, ts + 8)),
                seg(b, a, b"", dport, sport, end, s + 2 + len(req), "F.", 509, data_options(ts + 9, ts + 2)),
                seg(a, b, b"", sport, dport, s + 2 + len(req), end + 1, ".", 502, data_options(ts + 3, ts + 9))]
    return out


def _ping4(ident: int, seq: int, reply: bool = False) -> bytes:
    return icmp(0 if reply else 8, 0, ident, seq, bytes(range(56)))


def _icmp6(src: str, dst: str, body: bytes) -> bytes:
    """ICMPv6 with its checksum (tests.frames leaves it 0)."""
    pseudo = ipv6_packed(src) + ipv6_packed(dst) + struct.pack("!I3xB", len(body), 58)
    data = pseudo + body + b"\0" * (len(body) % 2)
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return body[:2] + struct.pack("!H", ~total & 0xFFFF) + body[4:]


def ipv6_packed(text: str) -> bytes:
    import ipaddress

    return ipaddress.IPv6Address(text).packed


def others(rng: random.Random) -> list[bytes]:
    """One of everything that is not a TCP conversation."""
    p1, p2, p3, dns_server = PODS4
    q1, q2 = PODS6
    n1, n2 = NODES4
    m1, m2 = NODES6
    ident = rng.randrange(1, 60000)
    out = [
        ipv4(udp(dns(ident, name="kubernetes.default.svc.cluster.local"), 41000 + ident % 1000, 53), src=p1,
             dst=dns_server, proto=17, df=False, ip_id=ident),
        ipv4(udp(dns(ident, response=True, name="kubernetes.default.svc.cluster.local"), 53, 41000 + ident % 1000),
             src=dns_server, dst=p1, proto=17, ip_id=ident + 1),
        ipv6(udp(dns(ident + 1, name="api.example"), 42000, 53), src=q1, dst=q2, next_header=17),
        ipv4(udp(b"u" * rng.randrange(1, 300), 5000, 6000), src=p1, dst=p2, proto=17, ip_id=ident + 2),
        ipv6(udp(b"w" * 40, 5001, 6001), src=q1, dst=q2, next_header=17),
        ipv4(_ping4(ident, 1), src=p1, dst=p2, proto=1, ip_id=ident + 3),
        ipv4(_ping4(ident, 1, reply=True), src=p2, dst=p1, proto=1, ip_id=ident + 4, df=False),
        ipv6(_icmp6(q1, q2, icmpv6(128, 0, ident, 1, b"p" * 56)), src=q1, dst=q2, next_header=58),
        ipv6(_icmp6(q2, q1, icmpv6(129, 0, ident, 1, b"p" * 56)), src=q2, dst=q1, next_header=58),
        # neighbour solicitation and advertisement
        ipv6(_icmp6("fe80::1", "ff02::1:ff00:7", icmpv6(135, 0, payload=ipv6_packed(q2))), src="fe80::1",
             dst="ff02::1:ff00:7", next_header=58, hop_limit=255),
        ipv6(_icmp6("fe80::2", "fe80::1", struct.pack("!BBHI", 136, 0, 0, 0x60000000) + ipv6_packed(q2)),
             src="fe80::2", dst="fe80::1", next_header=58, hop_limit=255),
        # ICMP errors: port unreachable quoting UDP, frag needed quoting TCP, time exceeded
        ipv4(icmp(3, 3, payload=ipv4(udp(b"q" * 12, 33434, 4000), src=p1, dst=p3, proto=17)[:28]), src=p3, dst=p1,
             proto=1, df=False, ip_id=ident + 5),
        ipv4(icmp(3, 4, mtu=1450, payload=ipv4(tcp(b"y" * 40, 40000, 80, 7, 9, "P."), src=p1, dst=p2)[:28]),
             src=n1, dst=p1, proto=1, df=False, ip_id=ident + 6, tos=0xC0),
        ipv4(icmp(11, 0, payload=ipv4(udp(b"t" * 8, 33435, 33434), src=p1, dst=p2, proto=17, ttl=1)[:28]), src=n2,
             dst=p1, proto=1, df=False, ip_id=ident + 7),
        ipv6(_icmp6(m1, q1, icmpv6(2, 0, mtu=1280, payload=ipv6(udp(b"z" * 20, 5001, 6001), src=q1, dst=q2,
                                                                 next_header=17)[:48])), src=m1, dst=q1, next_header=58),
        # fragments: IPv4 first and second, IPv6 first and second
        ipv4(udp(b"f" * 1600, 5002, 6002)[:1480], src=p1, dst=p2, proto=17, ip_id=ident + 8, df=False, mf=True),
        ipv4(b"f" * 128, src=p1, dst=p2, proto=17, ip_id=ident + 8, df=False, frag_offset=1480),
        ipv6(ipv6_fragment(17, ident, 0, more=True) + udp(b"g" * 1600, 5003, 6003)[:1448], src=q1, dst=q2,
             next_header=44),
        ipv6(ipv6_fragment(17, ident, 1448) + b"g" * 160, src=q1, dst=q2, next_header=44),
        # ESP, IPv6 no next header, GRE (not a tunnel the table decodes: proto 47)
        ipv4(struct.pack("!II", 0x1000 + ident, 1) + b"e" * 64, src=n1, dst=n2, proto=50, ip_id=ident + 9),
        ipv6(struct.pack("!II", 0x2000 + ident, 7) + b"e" * 48, src=m1, dst=m2, next_header=50),
        ipv6(b"", src=q1, dst=q2, next_header=59),
        ipv4(struct.pack("!HH", 0, 0x0800) + ipv4(_ping4(ident, 2), src=p1, dst=p2, proto=1), src=n1, dst=n2,
             proto=47, ip_id=ident + 10),
        ipv6(struct.pack("!HH", 0, 0x0800) + ipv4(_ping4(ident, 3), src=p1, dst=p2, proto=1), src=m1, dst=m2,
             next_header=47),
    ]
    return out


def tunnel(rng: random.Random, packet: bytes, i: int) -> bytes:
    """The packet in an envelope: VXLAN (8472, 4789), Geneve, IP in IP, over IPv4 and IPv6, by `i`."""
    n1, n2 = NODES4
    m1, m2 = NODES6
    v6 = packet[0] >> 4 == 6
    frame = ethernet(packet, src=MACS[0], dst=MACS[1], ethertype=0x86DD if v6 else 0x0800)
    sport = rng.randrange(32768, 61000)
    kind = i % 7
    if kind == 0:  # no envelope checksum over IPv4: Linux's VXLAN default
        return ipv4(udp(vxlan(frame, 1), sport, 8472), src=n1, dst=n2, proto=17, l4_checksum="as-given", df=False, ip_id=i)
    if kind == 1:
        return ipv4(udp(vxlan(frame, 4096), sport, 4789), src=n2, dst=n1, proto=17, df=False, ip_id=i)
    if kind == 2:  # a bad envelope checksum: what checksum offload looks like on the sender
        return ipv4(udp(geneve(frame, 77), sport, 6081), src=n1, dst=n2, proto=17, l4_checksum="bad", ip_id=i)
    if kind == 3:
        return ipv4(packet, src=n1, dst=n2, proto=41 if v6 else 4, ip_id=i)
    if kind == 4:
        return ipv6(udp(vxlan(frame, 2), sport, 4789), src=m1, dst=m2, next_header=17)
    if kind == 5:
        return ipv6(udp(geneve(frame, 78), sport, 6081), src=m2, dst=m1, next_header=17, l4_checksum="bad")
    return ipv6(packet, src=m1, dst=m2, next_header=41 if v6 else 4)


def packets(seed: int = 1, conversations: int = 6) -> list[bytes]:
    """IP packets as a capture on a node would have them: a third also seen in an envelope, right after."""
    rng = random.Random(seed)
    plain: list[bytes] = []
    for i in range(conversations):
        if i % 3 == 2:
            a, b = PODS6
        else:
            a, b = rng.sample(PODS4[:3], 2)
        plain += conversation(rng, a, b, SERVICES[i % len(SERVICES)], 1000 * (i + 1))
    plain += others(rng)
    out: list[bytes] = []
    for i, packet in enumerate(plain):
        out.append(packet)
        if rng.random() < 0.33:
            out.append(tunnel(rng, packet, i))
    return out


def _ethertype(packet: bytes) -> int:
    return 0x86DD if packet[0] >> 4 == 6 else 0x0800


def frames(kind: str, seed: int = 1) -> tuple[int, list[bytes]]:
    """(link type, frames) of the mix as captured on one kind of interface."""
    ips = packets(seed)
    rng = random.Random(seed + 1)
    if kind == "ether":
        out = [arp(1, MACS[0], PODS4[0], "00:00:00:00:00:00", "10.244.1.1"),
               arp(2, MACS[2], "10.244.1.1", MACS[0], PODS4[0])]
        framed = [ethernet(a, src=MACS[0], dst="ff:ff:ff:ff:ff:ff", ethertype=0x0806) for a in out[:1]]
        framed += [ethernet(out[1], src=MACS[2], dst=MACS[0], ethertype=0x0806)]
        for i, p in enumerate(ips):
            vlans = (100,) if i % 17 == 5 else ()
            framed.append(ethernet(p, src=MACS[i % 2], dst=MACS[(i + 1) % 2], ethertype=_ethertype(p), vlans=vlans))
        return LinkType.ETHERNET, framed
    if kind == "any":  # -i any: LINUX_SLL2, interface 1 (lo: this machine names it) with every direction
        return LinkType.LINUX_SLL2, [sll2(p, pkttype=rng.choice((0, 4, 4, 0, 3)), ifindex=1, addr=MACS[i % 2],
                                          proto=_ethertype(p)) for i, p in enumerate(ips)]
    if kind == "raw":
        return LinkType.RAW, ips
    if kind == "null":  # BSD loopback: address family in host (little-endian) order; macOS's AF_INET6 is 30
        return 0, [struct.pack("<I", 30 if p[0] >> 4 == 6 else 2) + p for p in ips]
    if kind == "loop":  # OpenBSD loopback: the family in network order (AF_INET6 24)
        return 108, [struct.pack("!I", 24 if p[0] >> 4 == 6 else 2) + p for p in ips]
    raise ValueError(f"no such capture kind: {kind}")


KINDS = ("ether", "any", "raw", "null", "loop")


def write(path: Path, kind: str, seed: int = 1) -> Path:
    linktype, framed = frames(kind, seed)
    return write_pcap(path, framed, linktype=linktype, start_ns=1_764_132_902_500_000_000 + seed * 3_600_000_000_000,
                      step_ns=1_731_000)
